//! XKD (Sarkar & Etemad, AAAI 2024): masked audio and video ViT autoencoders with cross-modal
//! teacher-student distillation and MMD domain alignment, after pritamqu/XKD at 806c75d.

pub mod audio;
pub mod config;
pub mod encoder;
pub mod head;
pub mod mae;
pub mod net;
pub mod net_config;
pub mod refine;
pub mod video;

pub use audio::AudioViT;
pub use config::{AudioVitConfig, DinoHeadConfig, MaeDecoderConfig, VideoVitConfig, VitSize};
pub use encoder::XkdEncoder;
pub use video::VideoViT;
