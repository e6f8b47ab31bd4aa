//! Model families.

pub mod ccl;
pub mod classifier;
pub mod config;
pub mod folder;
pub mod model;
pub mod resolve;
pub mod xkd;
