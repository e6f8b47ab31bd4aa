//! Data: benchmark splits, what exists on disk for a listed video, frame-folder decoding, and
//! synthetic audio-visual clips (in memory, and as a small dataset on disk in UCF101's layout).

pub mod media;
pub mod splits;
pub mod synth;
pub mod synth_dataset;
pub mod video;
