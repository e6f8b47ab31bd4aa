//! Data: benchmark splits, what exists on disk for a listed video, frame-folder decoding, audio
//! decoding, resampling and segmenting, XKD's log-mel, XKD's pre-training views (`pretrain_views`
//! the recipe, `av_views` one sample, `pretrain_video` / `pretrain_audio` its two halves,
//! `spec_crop` BYOL-A's spectrogram crop), synthetic audio-visual clips (in memory, and as a
//! small dataset on disk in UCF101's layout), and precomputed per-video features (`feature_store`
//! written by `avkd extract`, `teacher_features` reading it or CCL's released `.npy` files).
//!
//! Knows nothing of models: it imports `nn` and `util` only. How a model's preprocessor
//! configuration becomes a clip recipe is `jobs::clip_recipe`.

pub mod audio;
mod audio_track;
pub mod av_views;
pub mod avi;
pub mod clip_dataset;
pub mod clip_sampling;
pub mod feature_store;
#[cfg(feature = "ffmpeg")]
pub mod ffmpeg;
#[cfg(feature = "ffmpeg")]
mod ffmpeg_write;
pub mod loader;
pub mod media;
pub mod mel;
pub mod npy;
pub mod pretrain_audio;
pub mod pretrain_video;
pub mod pretrain_views;
pub mod resample;
pub mod spec_crop;
pub mod spectrogram;
pub mod splits;
pub mod synth;
#[cfg(feature = "ffmpeg")]
pub mod synth_avi;
pub mod synth_dataset;
pub mod teacher_features;
pub mod transforms;
pub mod video;
pub mod video_audio;
pub mod video_source;
