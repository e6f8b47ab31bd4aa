//! Model families (XKD, CCL), the video classifier, model configs, avkd model folders and the zoo
//! registry.
//!
//! Imports `objectives` (the XKD net computes its losses in its forward), `nn` and `util`; never
//! `checkpoint` (reading PyTorch files) or `hub` (what `--model` names: `hub::resolve`).

pub mod ccl;
pub mod classifier;
pub mod config;
pub mod folder;
pub mod model;
pub mod param_count;
pub mod registry;
pub mod xkd;
pub mod zoo_report;
