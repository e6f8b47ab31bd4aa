//! Model families.

pub mod ccl;
pub mod classifier;
pub mod config;
pub mod folder;
pub mod model;
pub mod param_count;
pub mod registry;
pub mod xkd;
pub mod zoo_report;
