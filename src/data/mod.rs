//! Data: audio decoding and resampling, XKD's log-mel, synthetic audio-visual clips (more — splits,
//! video decoding, transforms, loaders — comes with the data-pipeline work).

pub mod mel;
pub mod mel_filters;
pub mod synth;
