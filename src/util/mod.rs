//! Small general helpers with no domain knowledge, one concept per file: atomic file writes, file
//! hashing, the safetensors header, progress bars, device choice and logging setup.
//!
//! The bottom layer: it imports nothing from the rest of the crate, and every other layer may use
//! it.

pub mod atomic;
pub mod device;
pub mod hash;
pub mod logging;
pub mod progress;
pub mod safetensors_header;
