//! Data: synthetic audio-visual clips (more — splits, decoding, transforms, loaders — comes with the
//! data-pipeline work).

pub mod synth;
