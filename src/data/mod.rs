//! Data: benchmark splits, what exists on disk for a listed video, frame-folder decoding, and
//! synthetic audio-visual clips.

pub mod media;
pub mod splits;
pub mod synth;
pub mod video;
