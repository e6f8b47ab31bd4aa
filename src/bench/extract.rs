//! Feature-extraction throughput of CCL's audio teacher, for scripts/bench_extract_vs_torch.py.
//!
//! PANNs Cnn14_emb512 at full size (widths 64..2048, emb 512) with seeded random weights (the
//! throughput does not depend on the values), on waveforms of `seconds` at 32 kHz:
//! - `cnn14_forward`: the model alone on random waveforms, `batch` per forward, exactly what the
//!   PyTorch side times;
//! - `extract_pipeline`: the whole `avkd extract` job on a synthetic dataset of clips that long
//!   (WAV decoding, the forwards, the feature store), with the model written as an avkd folder.

use crate::checkpoint::export::write_model_folder;
use crate::data::feature_store::INDEX_FILE;
use crate::data::splits::Fold;
use crate::data::synth_dataset::{write_synth_dataset, SynthDatasetConfig, SYNTH_MARKER};
use crate::jobs::dataset_spec::{DatasetKind, DatasetSpec};
use crate::jobs::extract::{run_extract, ExtractJob};
use crate::models::ccl::cnn14::{Cnn14Config, Cnn14Emb512};
use crate::nn::param_store::ParamStore;
use crate::nn::rng::SeededRng;
use candle_core::{DType, Device, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// One throughput measurement.
#[derive(Debug, Clone, Serialize)]
pub struct ExtractTiming {
    pub name: String,
    pub videos: usize,
    pub seconds_per_video: f64,
    pub batch: usize,
    pub wall_s: f64,
    pub videos_per_s: f64,
}

/// The full-size model with weights drawn from `seed`, and its store (to save it).
fn full_size_cnn14(seed: u64, dev: &Device) -> Result<(Cnn14Emb512, ParamStore)> {
    let store = ParamStore::new(seed, DType::F32, dev);
    let model = Cnn14Emb512::new(&Cnn14Config::panns(), store.builder())?;
    Ok((model, store))
}

/// The model alone: `videos` random waveforms of `seconds` at 32 kHz, `batch` per forward, after
/// one warm-up forward.
pub fn cnn14_forward(
    videos: usize,
    seconds: f64,
    batch: usize,
    dev: &Device,
) -> Result<ExtractTiming> {
    let (model, _) = full_size_cnn14(0, dev)?;
    let samples = (seconds * 32_000.0) as usize;
    let batch = batch.clamp(1, videos.max(1));
    let mut rng = SeededRng::new(1);
    let x = (rng.normal((batch, samples), 0.0, 1.0, dev)? * 0.1)?;
    model.forward(&x)?.embedding.to_vec2::<f32>()?;
    let start = Instant::now();
    let mut done = 0;
    while done < videos {
        let n = batch.min(videos - done);
        model
            .forward(&x.narrow(0, 0, n)?)?
            .embedding
            .to_vec2::<f32>()?;
        done += n;
    }
    let wall_s = start.elapsed().as_secs_f64();
    Ok(ExtractTiming {
        name: format!("cnn14_forward_b{batch}"),
        videos,
        seconds_per_video: seconds,
        batch,
        wall_s,
        videos_per_s: videos as f64 / wall_s,
    })
}

/// `avkd extract` end to end on `videos` synthetic clips of `seconds` (32 kHz WAV, 25 fps frame
/// folders of 32 px) under `data`, written there on the first run along with the model folder.
pub fn extract_pipeline(
    data: &Path,
    videos: usize,
    seconds: f64,
    batch: usize,
    workers: usize,
    dev: &Device,
) -> Result<ExtractTiming> {
    let dataset = data.join("dataset");
    // Two classes, videos/2 clips each: one test clip per class, the rest train.
    let per_class = (videos / 2).max(2);
    let cfg = SynthDatasetConfig {
        classes: 2,
        train_per_class: per_class - 1,
        test_per_class: 1,
        frames: (seconds * 25.0).round() as usize,
        size: 32,
        sample_rate: 32_000,
        ..Default::default()
    };
    // The marker says whether an earlier run wrote this very dataset completely.
    let same = std::fs::read_to_string(dataset.join(SYNTH_MARKER))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|m| {
            m["complete"] == true
                && serde_json::from_value::<SynthDatasetConfig>(m["config"].clone())
                    .is_ok_and(|c| c == cfg)
        });
    if !same {
        write_synth_dataset(&dataset, &cfg)?;
    }
    let model_dir = data.join("panns-cnn14-random");
    if !model_dir.join("model.safetensors").is_file() {
        let (_, store) = full_size_cnn14(0, dev)?;
        let meta = BTreeMap::from([("source".to_string(), "random init, seed 0".to_string())]);
        write_model_folder(
            &model_dir,
            "panns-cnn14",
            &Cnn14Config::panns(),
            &store.tensors()?,
            &meta,
        )?;
    }
    let out = data.join(format!("features-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let job = ExtractJob {
        model: model_dir.display().to_string(),
        model_dir,
        dataset: DatasetSpec::new(DatasetKind::Ucf101, &dataset, Fold::One(1)),
        out: out.clone(),
        window_seconds: None,
        per_window: false,
        workers,
        batch,
        skip_bad: false,
        shard_size: 256,
        stop_after: None,
    };
    let summary = run_extract(&job, dev);
    let stored = out.join(INDEX_FILE).is_file();
    let _ = std::fs::remove_dir_all(&out);
    let summary = summary?;
    if !stored || summary.extracted != summary.listed {
        candle_core::bail!(
            "the benchmark's extraction stored {} of {} videos",
            summary.extracted,
            summary.listed
        )
    }
    Ok(ExtractTiming {
        name: format!("avkd_extract_b{batch}_w{workers}"),
        videos: summary.extracted,
        seconds_per_video: seconds,
        batch,
        wall_s: summary.extracted as f64 / summary.videos_per_s,
        videos_per_s: summary.videos_per_s,
    })
}
