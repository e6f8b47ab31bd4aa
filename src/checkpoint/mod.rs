//! Reading official checkpoints and mapping their tensor names to avkd's: PyTorch files (never
//! executing code), key maps, convert, verify, export, inspect, PANNs checkpoints.
//!
//! Above `models` (it builds and writes them); below `hub`.

pub mod convert;
pub mod detect;
pub mod export;
pub mod inspect;
pub mod keymap;
pub mod model_card;
pub mod panns;
pub mod pickle;
pub mod pickle_globals;
pub mod pickle_value;
pub mod pth;
pub mod safetensors_writer;
pub mod storage_tensor;
pub mod verify;
pub mod xkd_net;
pub mod zip_archive;
