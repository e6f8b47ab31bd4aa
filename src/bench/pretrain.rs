//! One XKD pre-training step of the official configuration (ViT-B encoders, 4×384 decoders, the
//! 8192-d DINO heads; views 32×112² and 8×96² video, 80×448 and 80×112 log-mel, one local view),
//! timed through the same job and engine as `avkd pretrain`: forward, backward, per-parameter
//! clipping, AdamW, EMA. scripts/bench_pretrain_vs_torch.py times the official step in PyTorch on
//! the same shapes and prints the ratios.

use super::timed_batches::TimedBatches;
use super::Timing;
use crate::data::mel::{LogMel, LogMelConfig};
use crate::jobs::pretrain::run::net_config;
use crate::jobs::pretrain::{pretrain, NetSize, PretrainBatch, PretrainConfig};
use crate::models::xkd::net::{XkdNet, XkdVariant};
use crate::nn::param_store::ParamStore;
use crate::nn::rng::SeededRng;
use crate::train::engine::RunOptions;
use candle_core::{DType, Device, Result};
use std::time::Instant;

/// Random official-size views for a batch of `b`.
fn official_views(cfg: &PretrainConfig, b: usize, dev: &Device) -> Result<PretrainBatch> {
    let v = &cfg.views;
    let mut rng = SeededRng::new(7);
    let logmel = LogMel::new(LogMelConfig::xkd())?;
    let spec_frames = |samples: usize| logmel.num_frames(samples);
    let frames = vec![
        rng.normal((b, 3, v.global_frames, v.crop, v.crop), 0.0, 1.0, dev)?,
        rng.normal(
            (b, 3, v.local_frames, v.local_crop, v.local_crop),
            0.0,
            1.0,
            dev,
        )?,
    ];
    let specs = vec![
        rng.normal((b, 1, 80, spec_frames(v.clip_samples())), 0.0, 1.0, dev)?,
        rng.normal(
            (b, 1, 80, spec_frames(v.local_audio_samples())),
            0.0,
            1.0,
            dev,
        )?,
    ];
    Ok(PretrainBatch {
        frames,
        specs,
        masking_noise: None,
    })
}

/// Median and minimum seconds of `iters` pre-training steps (after one warm-up step) at each batch
/// size.
pub fn pretrain_step(batches: &[usize], iters: usize, dev: &Device) -> Result<Vec<Timing>> {
    let mut cfg = PretrainConfig::official(XkdVariant::Xkd);
    // Past the warmup, so the step is a full one with the official lr.
    cfg.warmup_epochs = 0;
    let size = NetSize::preset("base")?;
    let work = std::env::temp_dir().join(format!("avkd-bench-pretrain-{}", std::process::id()));
    let mut out = Vec::new();
    for &b in batches {
        let store = ParamStore::new(0, DType::F32, dev);
        let mut net = XkdNet::new(&net_config(XkdVariant::Xkd, &size, &cfg)?, &store)?;
        let mut data = TimedBatches::new(official_views(&cfg, b, dev)?, iters + 2);
        cfg.batch_size = b;
        cfg.log_every = iters + 2;
        let opts = RunOptions {
            out_dir: work.clone(),
            stop_after_steps: Some(iters as u64 + 1),
            ..Default::default()
        };
        pretrain(&mut net, &mut data, &cfg, &opts, None)?;
        let end = Instant::now();
        std::fs::remove_dir_all(&work).ok();
        out.push(data.timing(format!("pretrain_step_b{b}"), end)?);
    }
    Ok(out)
}
