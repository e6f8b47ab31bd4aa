//! One CCL-AI distillation step of the official configuration (R(2+1)D-18 student with 51
//! classes on [B, 3, 16, 112, 112], a ResNet-34 image teacher on one frame, 512-d audio features
//! with a quarter of the rows silent, both composition heads, the routed gradients and three SGD
//! steps), timed through the same job and engine as `avkd distill`.
//! scripts/bench_distill_vs_torch.py times the same step in PyTorch and prints the ratio.

use super::timed_batches::TimedBatches;
use super::Timing;
use crate::jobs::distill::{
    distill, DistillBatch, DistillConfig, DistillMethod, DistillNets, Distillation, StudentStart,
};
use crate::models::ccl::r2plus1d::R2Plus1dConfig;
use crate::models::ccl::resnet::{ResNet, ResNetConfig};
use crate::models::config::{ModelConfig, PreprocessorConfig};
use crate::nn::param_store::ParamStore;
use crate::nn::rng::SeededRng;
use crate::train::engine::RunOptions;
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use std::time::Instant;

const CLASSES: usize = 51;

/// Random normalised clips, labels with repeats, audio features with every 4th row silent.
fn official_batch(b: usize, dev: &Device) -> Result<DistillBatch> {
    let mut rng = SeededRng::new(7);
    let clips = rng.normal((b, 3, 16, 112, 112), 0.0, 1.0, dev)?;
    let labels: Vec<u32> = (0..b).map(|i| (i % (b / 2).max(2)) as u32).collect();
    let mut audio = rng.normal_vec(b * 512, 0.0, 1.0);
    for (i, x) in audio.iter_mut().enumerate() {
        *x = if (i / 512) % 4 == 3 { 0.0 } else { x.max(0.0) };
    }
    Ok(DistillBatch {
        clips,
        labels: Tensor::from_vec(labels, b, dev)?,
        audio: Some(Tensor::from_vec(audio, (b, 512), dev)?),
    })
}

/// A frozen ResNet-34 with random weights (the teacher's cost does not depend on its values).
fn resnet34(dev: &Device) -> Result<ResNet> {
    let cfg = ResNetConfig::resnet34_teacher();
    let init = ParamStore::new(3, DType::F32, dev);
    ResNet::new(&cfg, init.builder())?;
    ResNet::new(
        &cfg,
        VarBuilder::from_tensors(init.tensors()?, DType::F32, dev),
    )
}

/// Median and minimum seconds of `iters` CCL-AI steps (after one warm-up step) at batch `b`.
pub fn distill_step(b: usize, iters: usize, dev: &Device) -> Result<Timing> {
    let student = R2Plus1dConfig::official(18, CLASSES);
    let start = StudentStart::Scratch(student.clone());
    let method = DistillMethod::CclAi;
    let nets = DistillNets::new(
        method,
        &start,
        CLASSES,
        Some(resnet34(dev)?),
        Some(512),
        1,
        dev,
    )?;
    let cfg = DistillConfig {
        batch_size: b,
        log_every: iters + 2,
        ..Default::default()
    };
    let pre = PreprocessorConfig::for_model(&ModelConfig::CclR2Plus1d(student));
    let weight = cfg.video_loss_weight(method);
    let mut job = Distillation::new(nets, weight, serde_json::json!({}), pre, None);
    let mut data = TimedBatches::new(official_batch(b, dev)?, iters + 2);
    let work = std::env::temp_dir().join(format!("avkd-bench-distill-{}", std::process::id()));
    let opts = RunOptions {
        out_dir: work.clone(),
        stop_after_steps: Some(iters as u64 + 1),
        ..Default::default()
    };
    distill(&mut job, &mut data, &cfg, &opts)?;
    let end = Instant::now();
    std::fs::remove_dir_all(&work).ok();
    data.timing(format!("ccl_ai_step_b{b}"), end)
}
