//! Data: audio decoding, resampling and segmenting, XKD's log-mel, synthetic audio-visual clips
//! (more — splits, video decoding, transforms, loaders — comes with the data-pipeline work).

pub mod audio;
mod audio_track;
pub mod avi;
pub mod mel;
pub mod mel_filters;
pub mod resample;
pub mod synth;
