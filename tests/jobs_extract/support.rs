//! What the `avkd extract` tests share: a synthetic dataset with converted fixture models, the
//! command line, reading the store back, and the models run directly (outside the job) to check
//! the stored features against.

use avkd::checkpoint::convert::{convert, ConvertOptions};
use avkd::data::clip_dataset::ClipDataset;
use avkd::data::feature_store::{read_features, read_index, FeatureIndex};
use avkd::data::splits::Sample;
use avkd::data::synth_dataset::{write_synth_dataset, SynthDatasetConfig};
use avkd::data::transforms::ClipArray;
use avkd::jobs::clip_recipe::recipe_for_model;
use avkd::models::ccl::cnn14::Cnn14Emb512;
use avkd::models::config::ModelConfig;
use avkd::models::folder::ModelFolder;
use avkd::models::model::Model;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::common::fixture_path;

pub const ATOL: f32 = 1e-5;
/// 3 classes x 6 videos of 32 frames at 25 fps (1.28 s of 16 kHz audio each).
pub const VIDEOS: usize = 18;

pub struct Setup {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub data: PathBuf,
    pub video_root: PathBuf,
}

impl Setup {
    pub fn new() -> Self {
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
    pub fn model(&self, name: &str, src: &str, overrides: Option<serde_json::Value>) -> PathBuf {
        let out = self.dir.join(name);
        let opts = ConvertOptions {
            config_overrides: overrides,
            ..Default::default()
        };
        convert(&fixture_path(src), &out, &opts).unwrap();
        out
    }

    pub fn panns(&self) -> PathBuf {
        // PANNs' hop size is not in its weights: the fixture's is 160.
        let hop = serde_json::json!({"hop_size": 160});
        self.model(
            "panns",
            "ccl/panns_cnn14_emb512/Cnn14_emb512_reduced.pth",
            Some(hop),
        )
    }

    /// `avkd extract --model M --dataset ucf101 --root DATA --fold all -o OUT` plus `extra`.
    pub fn extract_command(&self, model: &Path, out: &Path, extra: &[&str]) -> Command {
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

    pub fn extract(&self, model: &Path, out: &Path, extra: &[&str]) -> Output {
        self.extract_command(model, out, extra).output().unwrap()
    }

    /// Runs extract, expecting success; returns the JSON summary and the log.
    pub fn extract_ok(
        &self,
        model: &Path,
        out: &Path,
        extra: &[&str],
    ) -> (serde_json::Value, String) {
        let o = self.extract(model, out, extra);
        let log = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "avkd extract failed: {log}");
        (serde_json::from_slice(&o.stdout).unwrap(), log)
    }

    /// Runs extract, expecting failure; returns its error output.
    pub fn extract_err(&self, model: &Path, out: &Path, extra: &[&str]) -> String {
        let o = self.extract(model, out, extra);
        assert!(!o.status.success(), "avkd extract succeeded with {extra:?}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    pub fn audio_of(&self, key: &str) -> PathBuf {
        self.video_root.join(key).join("audio.wav")
    }
}

/// Every feature the index lists, by key.
pub fn stored(feats: &Path) -> (FeatureIndex, HashMap<String, Vec<f32>>) {
    let index = read_index(feats).unwrap();
    let features = read_features(feats, &index).unwrap();
    (index, features)
}

pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let d = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(d <= atol, "{what}: max abs difference {d:.3e} > {atol:.0e}");
}

/// The PANNs model built straight from the folder's weights, outside the extract job.
pub fn cnn14(folder: &Path) -> Cnn14Emb512 {
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
pub fn embed(model: &Cnn14Emb512, samples: &[f32], len: usize) -> Vec<f32> {
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
pub fn riff_chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = id.to_vec();
    v.extend((body.len() as u32).to_le_bytes());
    v.extend(body);
    if body.len() % 2 == 1 {
        v.push(0);
    }
    v
}

pub fn riff_list(kind: &[u8; 4], items: &[Vec<u8>]) -> Vec<u8> {
    riff_chunk(b"LIST", &[kind.to_vec(), items.concat()].concat())
}

/// An AVI file whose only stream is video (stream headers and one frame chunk).
pub fn video_only_avi() -> Vec<u8> {
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
pub fn write_short_wav(path: &Path, samples: usize) {
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

/// R(2+1)D's features of one video, straight from the model on its recipe's test views: the mean
/// and each view's.
pub fn r21d_direct(folder: &Path, root: &Path, key: &str) -> (Vec<f32>, Vec<Vec<f32>>) {
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
