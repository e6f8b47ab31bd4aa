//! Layers Candle lacks or whose Candle version drops gradients. Everything here is differentiable.

pub mod batch_norm;
pub mod conv2d;
pub mod conv3d;
pub mod cpu_kernel;
pub mod drop_path;
pub mod dropout;
pub mod ema;
pub mod gelu;
pub mod init;
pub mod interpolate;
pub mod linear;
pub mod matmul;
pub mod mel_filters;
pub mod norm;
pub mod param_store;
pub mod pool;
pub mod rng;
pub mod shape_recorder;
pub mod softmax;
pub mod vit;
pub mod weight_norm;
