//! Reading official checkpoints and mapping their tensor names to avkd's.

pub mod keymap;
pub mod pth;
