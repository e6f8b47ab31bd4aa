//! `avkd extract` end to end on a synthetic dataset (frame folders + WAV audio): the converted PANNs
//! Cnn14 fixture (CCL's audio teacher, reduced widths), the R(2+1)D student and the ResNet teacher,
//! through the command line. Every stored feature is checked against the model run directly on that
//! video's own input; the index, per-window features, videos without audio, resuming after a partial
//! run and after SIGKILL, and the refusals are checked too.

mod common;

use avkd::checkpoint::convert::{convert, ConvertOptions};
use avkd::data::audio::load_file;
use avkd::data::clip_dataset::ClipDataset;
use avkd::data::feature_store::{read_index, read_window_features, FeatureIndex, Segmenting};
use avkd::data::mel::{LogMel, LogMelConfig};
use avkd::data::splits::Sample;
use avkd::data::synth_dataset::{write_synth_dataset, SynthDatasetConfig};
use avkd::data::teacher_features::TeacherFeatures;
use avkd::data::transforms::{ClipArray, ResizeKind, TestAugment};
use avkd::data::video_source::VideoSource;
use avkd::jobs::clip_recipe::recipe_for_model;
use avkd::models::ccl::cnn14::Cnn14Emb512;
use avkd::models::config::ModelConfig;
use avkd::models::folder::ModelFolder;
use avkd::models::model::Model;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use common::{fixture_path, kill_twice};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

const ATOL: f32 = 1e-5;
/// 3 classes x 6 videos of 32 frames at 25 fps (1.28 s of 16 kHz audio each).
const VIDEOS: usize = 18;

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    data: PathBuf,
    video_root: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let data = dir.join("data");
        let cfg = SynthDatasetConfig {
            classes: 3,
            train_per_class: 4,
            test_per_class: 2,
            frames: 32,
            size: 64,
            seed: 7,
            ..Default::default()
        };
        let summary = write_synth_dataset(&data, &cfg).unwrap();
        assert_eq!(summary.videos, VIDEOS);
        Self {
            _tmp: tmp,
            dir,
            video_root: summary.video_dir,
            data,
        }
    }

    /// Converts a fixture checkpoint into a model folder under the test's folder.
    fn model(&self, name: &str, src: &str, overrides: Option<serde_json::Value>) -> PathBuf {
        let out = self.dir.join(name);
        let opts = ConvertOptions {
            config_overrides: overrides,
            ..Default::default()
        };
        convert(&fixture_path(src), &out, &opts).unwrap();
        out
    }

    fn panns(&self) -> PathBuf {
        // PANNs' hop size is not in its weights: the fixture's is 160.
        let hop = serde_json::json!({"hop_size": 160});
        self.model(
            "panns",
            "ccl/panns_cnn14_emb512/Cnn14_emb512_reduced.pth",
            Some(hop),
        )
    }

    /// `avkd extract --model M --dataset ucf101 --root DATA --fold all -o OUT` plus `extra`.
    fn extract_command(&self, model: &Path, out: &Path, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_avkd"));
        c.args(["extract", "--model"])
            .arg(model)
            .args(["--dataset", "ucf101", "--root"])
            .arg(&self.data)
            .args(["--fold", "all", "--json", "-o"])
            .arg(out)
            .args(extra)
            .env("RUST_LOG", "info")
            .env("RUST_BACKTRACE", "0");
        c
    }

    fn extract(&self, model: &Path, out: &Path, extra: &[&str]) -> Output {
        self.extract_command(model, out, extra).output().unwrap()
    }

    /// Runs extract, expecting success; returns the JSON summary and the log.
    fn extract_ok(&self, model: &Path, out: &Path, extra: &[&str]) -> (serde_json::Value, String) {
        let o = self.extract(model, out, extra);
        let log = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "avkd extract failed: {log}");
        (serde_json::from_slice(&o.stdout).unwrap(), log)
    }

    /// Runs extract, expecting failure; returns its error output.
    fn extract_err(&self, model: &Path, out: &Path, extra: &[&str]) -> String {
        let o = self.extract(model, out, extra);
        assert!(!o.status.success(), "avkd extract succeeded with {extra:?}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    fn audio_of(&self, key: &str) -> PathBuf {
        self.video_root.join(key).join("audio.wav")
    }
}

/// Every feature the index lists, by key.
fn stored(feats: &Path) -> (FeatureIndex, HashMap<String, Vec<f32>>) {
    let index = read_index(feats).unwrap();
    let features = avkd::data::feature_store::read_features(feats, &index).unwrap();
    (index, features)
}

fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let d = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(d <= atol, "{what}: max abs difference {d:.3e} > {atol:.0e}");
}

/// The PANNs model built straight from the folder's weights, outside the extract job.
fn cnn14(folder: &Path) -> Cnn14Emb512 {
    let folder = ModelFolder::open(folder).unwrap();
    let ModelConfig::PannsCnn14(cfg) = &folder.config.model else {
        panic!("not a PANNs folder")
    };
    let vb = VarBuilder::from_tensors(
        folder.tensors(&Device::Cpu).unwrap(),
        DType::F32,
        &Device::Cpu,
    );
    Cnn14Emb512::new(cfg, vb).unwrap()
}

/// Cnn14's embedding of one waveform, zero-padded to `len` when shorter.
fn embed(model: &Cnn14Emb512, samples: &[f32], len: usize) -> Vec<f32> {
    let mut wav = samples.to_vec();
    wav.resize(wav.len().max(len), 0.0);
    let n = wav.len();
    let x = Tensor::from_vec(wav, (1, n), &Device::Cpu).unwrap();
    model
        .forward(&x)
        .unwrap()
        .embedding
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// A RIFF chunk (padded to an even size).
fn riff_chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = id.to_vec();
    v.extend((body.len() as u32).to_le_bytes());
    v.extend(body);
    if body.len() % 2 == 1 {
        v.push(0);
    }
    v
}

fn riff_list(kind: &[u8; 4], items: &[Vec<u8>]) -> Vec<u8> {
    riff_chunk(b"LIST", &[kind.to_vec(), items.concat()].concat())
}

/// An AVI file whose only stream is video (stream headers and one frame chunk).
fn video_only_avi() -> Vec<u8> {
    let mut strh = b"vids".to_vec();
    strh.resize(56, 0);
    let strl = riff_list(
        b"strl",
        &[riff_chunk(b"strh", &strh), riff_chunk(b"strf", &[0; 40])],
    );
    let hdrl = riff_list(b"hdrl", &[riff_chunk(b"avih", &[0; 56]), strl]);
    let movi = riff_list(b"movi", &[riff_chunk(b"00dc", b"frame")]);
    riff_chunk(b"RIFF", &[b"AVI ".to_vec(), hdrl, movi].concat())
}

/// A short mono 16-bit WAV at 16 kHz (shorter than the model's minimum once at 32 kHz).
fn write_short_wav(path: &Path, samples: usize) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..samples {
        w.write_sample(((i as f32 * 0.3).sin() * 8000.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn panns_features_equal_the_model_on_each_videos_audio() {
    let s = Setup::new();
    let panns = s.panns();
    let silent = "Move120/v_Move120_g01_c01";
    let short = "Move240/v_Move240_g01_c01";
    let missing = "Move000/v_Move000_g03_c02";
    let silent_avi = "Move000/v_Move000_g01_c02";
    std::fs::remove_file(s.audio_of(silent)).unwrap();
    // An .avi with a video stream only, as half of UCF101's are: no audio, not an error.
    std::fs::remove_dir_all(s.video_root.join(silent_avi)).unwrap();
    std::fs::write(
        s.video_root.join(format!("{silent_avi}.avi")),
        video_only_avi(),
    )
    .unwrap();
    write_short_wav(&s.audio_of(short), 2000);
    std::fs::remove_dir_all(s.video_root.join(missing)).unwrap();

    let feats = s.dir.join("feats");
    let args = [
        "--workers",
        "2",
        "--batch",
        "4",
        "--shard-size",
        "5",
        "--skip-bad",
    ];
    let (summary, _) = s.extract_ok(&panns, &feats, &args);
    assert_eq!(summary["extracted"], VIDEOS - 3, "{summary}");
    assert_eq!(
        (summary["no_audio"].as_u64(), summary["failed"].as_u64()),
        (Some(2), Some(1))
    );

    let (index, features) = stored(&feats);
    assert_eq!(index.format, "avkd-features");
    assert_eq!(index.version, 1);
    let src = &index.source;
    assert_eq!(
        (src.model_type.as_str(), src.modality.as_str()),
        ("panns-cnn14", "audio")
    );
    assert_eq!(
        (src.dim, src.sample_rate, src.per_window),
        (16, Some(32000), false)
    );
    assert_eq!(src.segmenting, Segmenting::WholeTrack);
    assert!(
        src.segmenting_text.contains("whole audio track"),
        "{}",
        src.segmenting_text
    );
    assert!(src.padding.as_deref().unwrap().contains("4960 samples"));
    assert_eq!(src.model, panns.display().to_string());
    assert_eq!(index.dataset["kind"], "ucf101");
    assert_eq!(
        index.no_audio.iter().collect::<Vec<_>>(),
        [silent_avi, silent]
    );
    assert_eq!(index.padded.iter().collect::<Vec<_>>(), [short]);
    assert_eq!(index.failed.keys().collect::<Vec<_>>(), [missing]);
    assert!(
        index.failed[missing].contains("v_Move000_g03_c02"),
        "{:?}",
        index.failed
    );
    assert_eq!(features.len(), VIDEOS - 3);
    assert_eq!(index.last_shard(), Some(2), "15 features in shards of 5");

    // Each stored feature is the model on that video's own audio, decoded to 32 kHz mono.
    let model = cnn14(&panns);
    let min = model.config().min_samples();
    for (key, got) in &features {
        let audio = load_file(&s.audio_of(key), 32_000).unwrap();
        assert_close(key, got, &embed(&model, &audio.samples, min), ATOL);
        assert!(
            got.iter().all(|v| v.is_finite() && *v >= 0.0),
            "{key}: ReLU output"
        );
    }

    // The same store through the distillation reader, keyed as split lists write videos.
    let t = TeacherFeatures::open(&feats).unwrap();
    assert_eq!((t.len(), t.dim()), (VIDEOS - 3, 16));
    let listed = |key: &str| PathBuf::from(format!("{key}.avi"));
    assert_eq!(t.get(&listed(short)).unwrap(), features[short].as_slice());
    for key in [silent, silent_avi, missing] {
        assert!(t.get(&listed(key)).is_none(), "{key}");
    }
}

#[test]
fn panns_windows_are_averaged_and_kept_per_window() {
    let s = Setup::new();
    let panns = s.panns();
    let feats = s.dir.join("feats");
    let args = ["--window-seconds", "0.5", "--per-window", "--batch", "5"];
    s.extract_ok(&panns, &feats, &args);
    let (index, features) = stored(&feats);
    assert_eq!(
        index.source.segmenting,
        Segmenting::AudioWindows {
            window_seconds: 0.5
        }
    );
    assert!(index.source.segmenting_text.contains("windows of 0.5 s"));
    let windows = read_window_features(&feats, &index).unwrap();
    assert_eq!(windows.len(), VIDEOS);
    let model = cnn14(&panns);
    for (key, (rows, w)) in &windows {
        // 1.28 s = two whole windows of 0.5 s and a tail of 0.28 s, kept (more than half).
        assert_eq!(*w, 3, "{key}");
        let rows: Vec<&[f32]> = rows.chunks(16).collect();
        let mean: Vec<f32> = (0..16)
            .map(|j| (rows.iter().map(|r| r[j] as f64).sum::<f64>() / 3.0) as f32)
            .collect();
        assert_close(&format!("{key} mean"), &features[key], &mean, 1e-6);
        let audio = load_file(&s.audio_of(key), 32_000).unwrap().samples;
        for (i, row) in rows.iter().enumerate() {
            let part = &audio[i * 16_000..((i + 1) * 16_000).min(audio.len())];
            assert_close(
                &format!("{key} window {i}"),
                row,
                &embed(&model, part, 16_000),
                ATOL,
            );
        }
    }
}

#[test]
fn resume_after_a_partial_run_computes_only_the_missing_videos() {
    let s = Setup::new();
    let panns = s.panns();
    let whole = s.dir.join("whole");
    s.extract_ok(&panns, &whole, &[]);
    let (_, reference) = stored(&whole);

    let feats = s.dir.join("feats");
    let (first, _) = s.extract_ok(&panns, &feats, &["--stop-after", "7", "--shard-size", "3"]);
    assert_eq!(
        (first["extracted"].as_u64(), first["remaining"].as_u64()),
        (Some(7), Some(11))
    );
    let (partial, _) = stored(&feats);
    assert_eq!(partial.videos.len(), 7);
    let old_shards: Vec<(PathBuf, Vec<u8>)> = (0..3)
        .map(|n| feats.join(avkd::data::feature_store::shard_name(n)))
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();

    let (second, log) = s.extract_ok(&panns, &feats, &["--shard-size", "3"]);
    assert_eq!(
        (second["already"].as_u64(), second["extracted"].as_u64()),
        (Some(7), Some(11))
    );
    assert!(
        log.contains("7 already in") && log.contains("11 to extract"),
        "{log}"
    );
    let (index, features) = stored(&feats);
    for (path, bytes) in &old_shards {
        assert_eq!(
            &std::fs::read(path).unwrap(),
            bytes,
            "{} was rewritten",
            path.display()
        );
    }
    for (key, shard) in &index.videos {
        let old = partial.videos.get(key);
        assert!(old.is_none_or(|o| o == shard), "{key} moved");
        assert_eq!(
            old.is_some(),
            shard < &avkd::data::feature_store::shard_name(3),
            "{key}"
        );
    }
    assert_eq!(features.len(), VIDEOS);
    for (key, want) in &reference {
        assert_close(key, &features[key], want, ATOL);
    }
    let (third, _) = s.extract_ok(&panns, &feats, &[]);
    assert_eq!(
        (third["already"].as_u64(), third["extracted"].as_u64()),
        (Some(18), Some(0))
    );

    // Another segmenting, per-window features or another model would mix kinds in one store.
    for (extra, field) in [
        (&["--window-seconds", "0.5"][..], "`segmenting`"),
        (&["--per-window"][..], "`per_window`"),
    ] {
        let e = s.extract_err(&panns, &feats, extra);
        assert!(e.contains(field) && e.contains("index.json"), "{e}");
    }
    let resnet = s.model("resnet", "ccl/resnet34_teacher/resnet34.pth", None);
    let e = s.extract_err(&resnet, &feats, &[]);
    assert!(e.contains("`model_type`"), "{e}");
}

/// R(2+1)D's features of one video, straight from the model on its recipe's test views: the mean
/// and each view's.
fn r21d_direct(folder: &Path, root: &Path, key: &str) -> (Vec<f32>, Vec<Vec<f32>>) {
    let folder = ModelFolder::open(folder).unwrap();
    let recipe = recipe_for_model(&folder.preprocessor, None, None, None).unwrap();
    let sample = Sample {
        video: PathBuf::from(format!("{key}.avi")),
        label: 0,
    };
    let (views, _) = ClipDataset::new(root, vec![sample], recipe)
        .test_views(0)
        .unwrap();
    let Model::CclR2Plus1d(m) = folder.load(&Device::Cpu).unwrap() else {
        panic!("not an R(2+1)D")
    };
    let x = ClipArray::stack(&views, &Device::Cpu).unwrap();
    let rows: Vec<Vec<f32>> = m.forward_t(&x, false).unwrap().feature.to_vec2().unwrap();
    let mean = (0..rows[0].len())
        .map(|j| (rows.iter().map(|r| r[j] as f64).sum::<f64>() / rows.len() as f64) as f32)
        .collect();
    (mean, rows)
}

#[test]
fn video_and_image_models_extract_their_views_and_resume_after_sigkill() {
    let s = Setup::new();
    let r21d = s.model("r21d", "ccl/r21d_student/save_2.pth", None);
    let feats = s.dir.join("r21d-feats");
    let args = [
        "--per-window",
        "--workers",
        "2",
        "--batch",
        "3",
        "--shard-size",
        "2",
    ];
    let started = Instant::now();
    s.extract_ok(&r21d, &feats, &args);
    let whole = started.elapsed();
    let (index, features) = stored(&feats);
    assert_eq!(
        (index.source.modality.as_str(), index.source.dim),
        ("video", 9)
    );
    assert!(matches!(
        index.source.segmenting,
        Segmenting::ClipViews {
            frames: 16,
            crops: 1,
            ..
        }
    ));
    let windows = read_window_features(&feats, &index).unwrap();
    for (key, f) in &features {
        assert!(f.iter().all(|v| v.is_finite()), "{key}");
        assert_eq!(windows[key].1, 2, "{key}: 32 frames = two 16-frame windows");
    }
    let key = "Move120/v_Move120_g02_c01";
    let (mean, rows) = r21d_direct(&r21d, &s.video_root, key);
    assert_close(key, &features[key], &mean, ATOL);
    assert_close(
        &format!("{key} windows"),
        &windows[key].0,
        &rows.concat(),
        ATOL,
    );

    // SIGKILL twice at random moments after the first shard, then finish: the same features.
    let killed = s.dir.join("killed");
    kill_twice(
        |_| {
            let mut c = s.extract_command(&r21d, &killed, &args);
            c.stdout(Stdio::null()).stderr(Stdio::null());
            c
        },
        &killed,
        &killed.join("index.json"),
        whole,
    );
    let (_, before) = stored(&killed);
    let (last, _) = s.extract_ok(&r21d, &killed, &args);
    assert_eq!(last["already"].as_u64(), Some(before.len() as u64));
    let (_, resumed) = stored(&killed);
    assert_eq!(resumed.len(), VIDEOS);
    for (key, want) in &features {
        assert_close(key, &resumed[key], want, ATOL);
    }

    // ResNet: the centre frame, resized and centre-cropped to 112, ImageNet-normalised.
    let resnet = s.model("resnet", "ccl/resnet34_teacher/resnet34.pth", None);
    let feats = s.dir.join("resnet-feats");
    s.extract_ok(&resnet, &feats, &[]);
    let (index, features) = stored(&feats);
    assert_eq!(
        (index.source.modality.as_str(), index.source.dim),
        ("image", 10)
    );
    assert_eq!(index.source.segmenting, Segmenting::CentreFrame);
    let video = VideoSource::open(&s.video_root, Path::new(&format!("{key}.avi")), None).unwrap();
    let frame = video.read(&[video.num_frames() / 2]).unwrap();
    let test = TestAugment {
        short_side: 112,
        crop: 112,
        crops: 1,
        resize: ResizeKind::PilBilinear,
    };
    let clip = test
        .apply(&frame, &avkd::data::transforms::Normalization::imagenet())
        .unwrap();
    let x = Tensor::from_slice(&clip[0].data, (1, 3, 112, 112), &Device::Cpu).unwrap();
    let Model::ResNet(m) = ModelFolder::open(&resnet)
        .unwrap()
        .load(&Device::Cpu)
        .unwrap()
    else {
        panic!("not a ResNet")
    };
    let want: Vec<f32> = m
        .features(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_close(key, &features[key], &want, ATOL);
    assert!(features.values().flatten().all(|v| v.is_finite()));
}

#[test]
fn xkd_audio_vit_sees_log_mel_windows_of_its_input_length() {
    let s = Setup::new();
    let cfg = serde_json::json!({"transformer": {"num_heads": 3}, "spec_size": [16, 64],
                                 "patch_size": [4, 16]});
    let vit = s.model(
        "xkd-audio",
        "xkd/audio_backbone/audio_backbone.pth.tar",
        Some(cfg),
    );
    let feats = s.dir.join("feats");
    s.extract_ok(&vit, &feats, &["--per-window"]);
    let (index, features) = stored(&feats);
    // 64 frames of hop 143 at 16 kHz: windows of 63 hops = 9009 samples.
    let Segmenting::AudioWindows { window_seconds } = index.source.segmenting else {
        panic!("{:?}", index.source.segmenting)
    };
    assert_eq!((window_seconds * 16_000.0).round(), 9009.0);
    assert_eq!(
        (index.source.modality.as_str(), index.source.dim),
        ("audio", 12)
    );
    assert_eq!(index.source.sample_rate, Some(16_000));
    let folder = ModelFolder::open(&vit).unwrap();
    let pre = &folder.preprocessor;
    let logmel = LogMel::new(LogMelConfig {
        sample_rate: 16_000,
        n_fft: 1024,
        hop_length: 143,
        n_mels: 16,
        fmin: 0.0,
        fmax: pre.fmax,
        normalize: Some((pre.spec_mean.unwrap() as f32, pre.spec_std.unwrap() as f32)),
    })
    .unwrap();
    let model = folder.load(&Device::Cpu).unwrap();
    let windows = read_window_features(&feats, &index).unwrap();
    for key in ["Move000/v_Move000_g01_c01", "Move240/v_Move240_g03_c02"] {
        let audio = load_file(&s.audio_of(key), 16_000).unwrap().samples;
        // 1.28 s = two windows of 0.563 s and a tail of 0.154 s, dropped (under half a window).
        let rows: Vec<Vec<f32>> = (0..2)
            .map(|i| {
                let spec = logmel.forward(&audio[i * 9009..(i + 1) * 9009], &Device::Cpu);
                let x = spec.unwrap().unsqueeze(0).unwrap();
                let out = model
                    .embed(&avkd::models::model::ModelInputs {
                        input: Some(x),
                        ..Default::default()
                    })
                    .unwrap();
                out["features"].flatten_all().unwrap().to_vec1().unwrap()
            })
            .collect();
        assert_eq!(windows[key].1, 2, "{key}");
        assert_close(key, &windows[key].0, &rows.concat(), ATOL);
        let mean = avkd::jobs::extract::mean_rows(&rows);
        assert_close(key, &features[key], &mean, ATOL);
    }
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let s = Setup::new();
    let panns = s.panns();
    // A listed video that is not there, without --skip-bad: named, and what was done is kept.
    let missing = "Move240/v_Move240_g03_c02";
    std::fs::remove_dir_all(s.video_root.join(missing)).unwrap();
    let feats = s.dir.join("feats");
    let e = s.extract_err(&panns, &feats, &["--shard-size", "4"]);
    assert!(
        e.contains("v_Move240_g03_c02") && e.contains("--skip-bad"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");
    let (index, _) = stored(&feats);
    assert_eq!(
        index.videos.len(),
        VIDEOS - 1,
        "the others were extracted before the error"
    );

    let r21d = s.model("r21d", "ccl/r21d_student/save_2.pth", None);
    let e = s.extract_err(&r21d, &s.dir.join("r"), &["--window-seconds", "1"]);
    assert!(
        e.contains("--window-seconds") && e.contains("clip recipe"),
        "{e}"
    );
    let e = s.extract_err(&panns, &s.dir.join("w"), &["--window-seconds", "0.1"]);
    assert!(e.contains("fewer than the 4960"), "{e}");
    let head = s.model("head", "ccl/composition_losses/save_2_image.pth", None);
    let e = s.extract_err(&head, &s.dir.join("h"), &[]);
    assert!(e.contains("takes embeddings"), "{e}");
    let e = s.extract_err(&panns, &s.data, &[]);
    assert!(e.contains("not an avkd feature store"), "{e}");
}

#[test]
fn keys_drop_the_extension_and_use_slashes() {
    use avkd::jobs::extract::video_key;
    assert_eq!(
        video_key(Path::new("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi")),
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01"
    );
    assert_eq!(video_key(Path::new("./a/b/c.mp4")), "a/b/c");
}
