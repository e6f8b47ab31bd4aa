//! Reading official checkpoints and mapping their tensor names to avkd's.

pub mod convert;
pub mod keymap;
pub mod pth;
