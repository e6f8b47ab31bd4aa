//! The training objectives of XKD and CCL.

pub mod dino;
pub mod mae;
pub mod mmd;
pub mod smoothing;
