//! The jobs the command line runs, as library functions: fine-tuning on a benchmark's folds,
//! video-level evaluation, linear evaluation of frozen features, and prediction for one video.
//! Each takes a model folder and a [`dataset_spec::DatasetSpec`] and returns a report.

pub mod dataset_spec;
pub mod evaluate;
pub mod finetune;
pub mod linear;
pub mod predict;
