//! Data: benchmark splits, what exists on disk for a listed video, and synthetic audio-visual clips.

pub mod media;
pub mod splits;
pub mod synth;
