//! XKD, XKD-MAS and XKD-MATS pre-training on the training engine: the settings ([`config`]), the
//! net's size ([`size`]), the official step as a job ([`job`]), in-memory synthetic batches for the
//! quickstart ([`synthetic`]), and the replay of recorded official steps ([`replay`]).

pub mod config;
pub mod dataset;
pub mod job;
pub mod probe;
pub mod replay;
pub mod replay_compare;
pub mod replay_config;
pub mod run;
pub mod size;
pub mod synthetic;

pub use config::{PretrainConfig, TeacherTemperatures};
pub use job::{PretrainBatch, PretrainStepSettings, Pretraining};
pub use probe::Probe;
pub use size::NetSize;
pub use synthetic::{pretrain_synthetic, PretrainSummary, SyntheticAvBatches};

use crate::models::xkd::net::XkdNet;
use crate::train::clip::Clipping;
use crate::train::engine::{Engine, LoopSettings, RunOptions, RunSummary};
use crate::train::job::TrainData;
use crate::train::optim::{AdamW, AdamWConfig};
use crate::train::optimizer::{Optimizer, OptimizerSlot};
use crate::train::param_groups::pretrain_groups;
use crate::train::schedule::Schedule;
use candle_core::Result;

/// The AdamW slot of a pre-training run: the official two groups (biases and 1-D tensors never
/// decayed), lr and weight decay per step from the schedules.
pub fn adamw_slot(
    net: &XkdNet,
    betas: [f64; 2],
    eps: f64,
    lr: Schedule,
    weight_decay: Schedule,
) -> Result<OptimizerSlot> {
    let groups = pretrain_groups(&net.trainable_vars(), 0.0);
    let adamw = AdamW::new(
        groups,
        AdamWConfig {
            lr: 0.0,
            beta1: betas[0],
            beta2: betas[1],
            eps,
        },
    )?;
    // As the official loop: the schedule sets the decay of group 1 (weights), group 0 stays at 0.
    OptimizerSlot::new("model", Optimizer::AdamW(adamw), lr)
        .with_weight_decay_on(weight_decay, vec![1])
}

/// Pre-trains `net` on `data` with `cfg` on the engine: `last/` (and `best/`, the best-probed
/// checkpoint, with a probe) and `metrics.jsonl` with every loss term and scheduled value, under
/// `opts.out_dir`.
pub fn pretrain(
    net: &mut XkdNet,
    data: &mut dyn TrainData<Batch = PretrainBatch>,
    cfg: &PretrainConfig,
    opts: &RunOptions,
    probe: Option<Probe>,
) -> Result<RunSummary> {
    if cfg.probe_every > 0 && probe.is_none() {
        candle_core::bail!(
            "probe_every = {} needs a labelled dataset with test videos to probe on (ucf101, ucf51, hmdb51, or a list with --test-list)",
            cfg.probe_every
        )
    }
    cfg.validate()?;
    let steps_per_epoch = data.num_batches().div_ceil(cfg.accum_steps);
    let slot = adamw_slot(
        net,
        cfg.betas,
        cfg.eps,
        cfg.lr_schedule(steps_per_epoch),
        cfg.weight_decay_schedule(steps_per_epoch),
    )?;
    let (vid_ema, aud_ema) = cfg.ema_schedules(steps_per_epoch);
    let settings = serde_json::to_value(cfg).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let step = PretrainStepSettings {
        clip_grad: cfg.clip_grad,
        freeze_last_layer: cfg.freeze_last_layer,
        vid_ema,
        aud_ema,
        temperatures: cfg.teacher_temperatures(),
        settings,
    };
    let mut job = Pretraining::new(net, step);
    job.probe = probe.filter(|_| cfg.probe_every > 0);
    let loop_settings = LoopSettings {
        epochs: cfg.epochs,
        accum_steps: cfg.accum_steps,
        eval_every: cfg.probe_every.max(1),
        save_every_steps: cfg.save_every_steps,
        log_every: cfg.log_every,
        seed: cfg.seed,
    };
    // The job clips (per parameter, in the official visit order), so the engine does not.
    Engine::new(&mut job, vec![slot], Clipping::None, loop_settings)?.run(data, opts)
}
