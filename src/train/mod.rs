//! The training engine and what it is made of: the [`job::Job`] trait every training job
//! implements, the loop ([`engine`]), optimizers in named slots with their schedules, clipping, the
//! collective, checkpoints with exact resume ([`train_state`]), the one place that reads values
//! back from the device ([`readback`]), metrics and curves. Jobs plug into it from `jobs/`; the EMA
//! update of momentum teachers is `nn::ema`. Below `eval`, whose linear probe uses the optimisers
//! here.

pub mod clip;
pub mod collective;
pub mod engine;
pub mod job;
pub mod metrics;
pub mod optim;
pub mod optimizer;
pub mod param_groups;
pub mod plot;
pub mod readback;
pub mod resume_check;
pub mod schedule;
pub mod sgd;
pub mod step_sum;
pub mod train_state;
