//! The training objectives of XKD and CCL.

pub mod ccl;
pub mod contrastive;
pub mod dino;
pub mod divergence;
pub mod mae;
pub mod mmd;
pub mod smoothing;
