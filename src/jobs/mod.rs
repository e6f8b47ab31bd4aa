//! What users run, as library functions, each composed from the layers below: fine-tuning on a
//! benchmark's folds, video-level evaluation, linear evaluation of frozen features, prediction for
//! one video, feature extraction into a feature store, and the quickstart (synth → pretrain →
//! finetune → evaluate → export). Each takes a model folder and a [`dataset_spec::DatasetSpec`]
//! and returns a report.
//!
//! Above `eval` (and so above `train`, `data`, `hub`, `checkpoint` and `models`); only `bench` and
//! the command line sit above it.

pub mod clip_recipe;
pub mod dataset_spec;
pub mod distill;
pub mod distill_routing;
pub mod evaluate;
pub mod extract;
pub mod finetune;
pub mod linear;
pub mod predict;
pub mod pretrain;
pub mod quickstart;
pub mod skipped;
