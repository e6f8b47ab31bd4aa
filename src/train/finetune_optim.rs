//! The fine-tuning loop's optimizer and learning-rate schedule: AdamW or SGD behind one interface,
//! the scheduled lr of a step, and each parameter group's lr.

use super::finetune_config::{FinetuneConfig, OptimizerConfig, ScheduleConfig};
use super::optim::{AdamW, AdamWConfig, ParamGroup};
use super::schedule::{MultiStepLr, WarmupCosine};
use super::sgd::{Sgd, SgdConfig};
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};
use std::collections::HashMap;

/// AdamW or SGD behind one interface.
pub(crate) enum Optimizer {
    AdamW(AdamW),
    Sgd(Sgd),
}

impl Optimizer {
    pub(crate) fn new(cfg: &FinetuneConfig, groups: Vec<ParamGroup>) -> Result<Self> {
        Ok(match cfg.optimizer {
            OptimizerConfig::Adamw { betas, eps, .. } => Self::AdamW(AdamW::new(
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
            } => Self::Sgd(Sgd::new(
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

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::AdamW(_) => "adamw",
            Self::Sgd(_) => "sgd",
        }
    }

    pub(crate) fn set_learning_rate(&mut self, lr: f64) {
        match self {
            Self::AdamW(o) => o.set_learning_rate(lr),
            Self::Sgd(o) => o.set_learning_rate(lr),
        }
    }

    pub(crate) fn step(&mut self, grads: &GradStore) -> Result<()> {
        match self {
            Self::AdamW(o) => o.step(grads),
            Self::Sgd(o) => o.step(grads),
        }
    }

    pub(crate) fn step_count(&self) -> u64 {
        match self {
            Self::AdamW(o) => o.step_count(),
            Self::Sgd(o) => o.step_count(),
        }
    }

    pub(crate) fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        match self {
            Self::AdamW(o) => o.state_tensors(),
            Self::Sgd(o) => o.state_tensors(),
        }
    }

    pub(crate) fn load_state(&mut self, t: &HashMap<String, Tensor>, steps: u64) -> Result<()> {
        match self {
            Self::AdamW(o) => o.load_state(t, steps),
            Self::Sgd(o) => o.load_state(t, steps),
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
    match &cfg.schedule {
        ScheduleConfig::WarmupCosine => WarmupCosine::new(
            cfg.base_lr,
            cfg.min_lr,
            cfg.epochs,
            steps_per_epoch,
            cfg.warmup_epochs,
            cfg.warmup_lr,
        )
        .value(global_step as usize),
        ScheduleConfig::Multistep { milestones, gamma } => {
            MultiStepLr::new(cfg.base_lr, milestones.clone(), *gamma).value(epoch)
        }
    }
}

/// The learning rate each group steps with at `lr`: `lr * lr_scale`, by group name.
pub fn group_learning_rates(groups: &[ParamGroup], lr: f64) -> Vec<(String, f64)> {
    groups
        .iter()
        .map(|g| (g.name.clone(), lr * g.lr_scale))
        .collect()
}
