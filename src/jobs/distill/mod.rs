//! `avkd distill`: CCL (Chen et al., CVPR 2021) compositional-contrastive distillation of an
//! R(2+1)D video student from an image teacher (a frozen ResNet run online on one frame) and an
//! audio teacher (precomputed PANNs features, from `avkd extract` or the authors' release), on
//! the training engine: the settings ([`config`]), the networks ([`nets`]), the batches
//! ([`data`]), the official step as a job ([`job`]), and a whole run on a dataset ([`run`]).

pub mod config;
pub mod data;
pub mod job;
pub mod nets;
pub mod official;
pub mod run;

pub use config::{DistillConfig, DistillMethod};
pub use data::{DistillBatch, DistillBatches};
pub use job::Distillation;
pub use nets::{DistillNets, StudentStart};

use crate::train::clip::Clipping;
use crate::train::engine::{Engine, LoopSettings, RunOptions, RunSummary};
use crate::train::job::TrainData;
use crate::train::optim::ParamGroup;
use crate::train::optimizer::{Optimizer, OptimizerSlot};
use crate::train::schedule::Schedule;
use crate::train::sgd::{Sgd, SgdConfig};
use candle_core::{Result, Var};

/// An SGD optimiser over `vars` in one group, every parameter decayed (CCL's
/// `SGD(params, lr, momentum, weight_decay)`); the lr is the slot's schedule.
fn sgd(name: &str, vars: Vec<(String, Var)>, cfg: &DistillConfig) -> Result<Optimizer> {
    let group = ParamGroup::new(name, vars, cfg.weight_decay);
    let sgd = Sgd::new(
        vec![group],
        SgdConfig {
            lr: 0.0,
            momentum: cfg.momentum,
            dampening: 0.0,
            nesterov: cfg.nesterov,
        },
    )?;
    Ok(Optimizer::Sgd(sgd))
}

/// The optimiser slots in the official step order: each head (constant lr), then the student
/// (MultiStepLR per epoch).
pub fn optimizer_slots(job: &Distillation, cfg: &DistillConfig) -> Result<Vec<OptimizerSlot>> {
    let nets = job.nets();
    let mut slots = Vec::new();
    for head in &nets.heads {
        let vars = nets::trainable(&head.store);
        slots.push(OptimizerSlot::new(
            head.name(),
            sgd(head.name(), vars, cfg)?,
            Schedule::Constant(cfg.head_lr),
        ));
    }
    slots.push(OptimizerSlot::new(
        "student",
        sgd("student", nets.student_vars(), cfg)?,
        cfg.student_schedule(),
    ));
    Ok(slots)
}

/// Distils on `data` with `cfg` on the engine: `last/` (and `best/`, the best-evaluated
/// checkpoint, when the job evaluates) and `metrics.jsonl` with every loss term, under
/// `opts.out_dir`.
pub fn distill(
    job: &mut Distillation,
    data: &mut dyn TrainData<Batch = DistillBatch>,
    cfg: &DistillConfig,
    opts: &RunOptions,
) -> Result<RunSummary> {
    cfg.validate()?;
    let slots = optimizer_slots(job, cfg)?;
    let settings = LoopSettings {
        epochs: cfg.epochs,
        accum_steps: cfg.accum_steps,
        eval_every: cfg.eval_every,
        save_every_steps: cfg.save_every_steps,
        log_every: cfg.log_every,
        seed: cfg.seed,
    };
    // The official code clips nothing.
    Engine::new(job, slots, Clipping::None, settings)?.run(data, opts)
}
