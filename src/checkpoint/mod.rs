//! Reading official checkpoints and mapping their tensor names to avkd's.

pub mod convert;
pub mod export;
pub mod inspect;
pub mod keymap;
pub mod pickle;
pub mod pth;
