//! avkd: a model zoo for audio-visual video representation learning on Candle.
//!
//! The two published cross-modal distillation methods, XKD (masked audio and video ViT autoencoders
//! with cross-modal teacher-student distillation and MMD alignment, and its modality-agnostic variants
//! XKD-MAS and XKD-MATS) and CCL, as Candle modules that give the same numbers as the official PyTorch
//! code.

pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod eval;
pub mod hub;
pub mod jobs;
pub mod models;
pub mod nn;
pub mod objectives;
pub mod train;
pub mod util;
