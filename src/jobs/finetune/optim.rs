//! The fine-tuning optimizer and learning-rate schedule from a [`FinetuneConfig`]: AdamW or SGD,
//! the scheduled lr of a step, and each parameter group's lr.

use super::config::{FinetuneConfig, OptimizerConfig, ScheduleConfig};
use crate::train::optim::{AdamW, AdamWConfig, ParamGroup};
use crate::train::optimizer::Optimizer;
use crate::train::schedule::{MultiStepLr, Schedule, WarmupCosine};
use crate::train::sgd::{Sgd, SgdConfig};
use candle_core::Result;

/// The optimizer a fine-tuning config asks for, over `groups`.
pub fn build_optimizer(cfg: &FinetuneConfig, groups: Vec<ParamGroup>) -> Result<Optimizer> {
    Ok(match cfg.optimizer {
        OptimizerConfig::Adamw { betas, eps, .. } => Optimizer::AdamW(AdamW::new(
            groups,
            AdamWConfig {
                lr: cfg.base_lr,
                beta1: betas[0],
                beta2: betas[1],
                eps,
            },
        )?),
        OptimizerConfig::Sgd {
            momentum, nesterov, ..
        } => Optimizer::Sgd(Sgd::new(
            groups,
            SgdConfig {
                lr: cfg.base_lr,
                momentum,
                dampening: 0.0,
                nesterov,
            },
        )?),
    })
}

/// The learning-rate schedule of a fine-tuning config, for `steps_per_epoch` optimizer steps per
/// epoch.
pub fn lr_schedule(cfg: &FinetuneConfig, steps_per_epoch: usize) -> Schedule {
    match &cfg.schedule {
        ScheduleConfig::WarmupCosine => Schedule::PerStep(WarmupCosine::new(
            cfg.base_lr,
            cfg.min_lr,
            cfg.epochs,
            steps_per_epoch,
            cfg.warmup_epochs,
            cfg.warmup_lr,
        )),
        ScheduleConfig::Multistep { milestones, gamma } => {
            Schedule::PerEpoch(MultiStepLr::new(cfg.base_lr, milestones.clone(), *gamma))
        }
    }
}

/// Optimizer steps per epoch: micro-batches grouped by `accum_steps`, the last group possibly short.
pub fn steps_per_epoch(cfg: &FinetuneConfig, batches_per_epoch: usize) -> usize {
    batches_per_epoch.div_ceil(cfg.accum_steps)
}

/// The scheduled (unscaled) learning rate of optimizer step `global_step`, in `epoch`.
pub fn scheduled_lr(
    cfg: &FinetuneConfig,
    steps_per_epoch: usize,
    global_step: u64,
    epoch: usize,
) -> f64 {
    lr_schedule(cfg, steps_per_epoch).value(global_step, epoch)
}

/// The learning rate each group steps with at `lr`: `lr * lr_scale`, by group name.
pub fn group_learning_rates(groups: &[ParamGroup], lr: f64) -> Vec<(String, f64)> {
    groups
        .iter()
        .map(|g| (g.name.clone(), lr * g.lr_scale))
        .collect()
}
