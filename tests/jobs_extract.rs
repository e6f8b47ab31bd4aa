//! `avkd extract` end to end on a synthetic dataset (frame folders + WAV audio): the converted PANNs
//! Cnn14 fixture (CCL's audio teacher, reduced widths), the R(2+1)D student and the ResNet teacher,
//! through the command line. Every stored feature is checked against the model run directly on that
//! video's own input; the index, per-window features, videos without audio, resuming after a partial
//! run and after SIGKILL, and the refusals are checked too.

mod common;
#[path = "jobs_extract/support.rs"]
mod support;

use avkd::data::audio::load_file;
use avkd::data::feature_store::{read_window_features, Segmenting};
use avkd::data::mel::{LogMel, LogMelConfig};
use avkd::data::teacher_features::TeacherFeatures;
use avkd::data::transforms::{ResizeKind, TestAugment};
use avkd::data::video_source::VideoSource;
use avkd::models::folder::ModelFolder;
use avkd::models::model::Model;
use candle_core::{Device, Tensor};
use common::kill_twice;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;
use support::*;

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
