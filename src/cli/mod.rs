//! Command-line argument groups and handlers that would crowd main.rs.

pub mod bench;
pub mod quickstart;
pub mod synth;
pub mod jobs;
