//! Optimisers, schedules, gradient clipping, metrics, and the pretraining and fine-tuning trainers
//! (the EMA update of momentum teachers is `nn::ema`). Below `eval`, whose linear probe uses the
//! optimisers here.

pub mod augment_config;
pub mod clip;
pub mod finetune;
pub mod finetune_config;
pub mod finetune_model;
pub mod finetune_optim;
pub mod metrics;
pub mod optim;
pub mod param_groups;
pub mod plot;
pub mod pretrain;
pub mod schedule;
pub mod sgd;
pub mod train_state;
