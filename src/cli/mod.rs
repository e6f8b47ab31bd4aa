//! The command line's verbs, one file per group: argument structs and handlers that call the
//! library (`jobs`, `checkpoint`, `hub`, `models`, `bench`). `main.rs` only parses and dispatches.
//!
//! The top layer: nothing in the library imports it.

pub mod bench;
pub mod checkpoint;
pub mod distill;
pub mod extract;
#[cfg(feature = "hub")]
pub mod hub;
pub mod jobs;
mod output;
pub mod pretrain;
pub mod quickstart;
pub mod synth;
pub mod zoo;
