//! Reading official checkpoints and mapping their tensor names to avkd's.

pub mod convert;
pub mod export;
pub mod inspect;
pub mod keymap;
pub mod pickle;
pub mod pickle_globals;
pub mod pickle_value;
pub mod pth;
pub mod storage_tensor;
pub mod zip_archive;
