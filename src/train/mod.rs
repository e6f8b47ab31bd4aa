//! Optimisers, schedules, EMA teachers and gradient clipping.

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
