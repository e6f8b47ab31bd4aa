//! Layers Candle lacks or whose Candle version drops gradients. Everything here is differentiable.
//! Also the building blocks several layers above share: librosa's mel filterbank (`mel_filters`, for
//! XKD's log-mel in `data` and the PANNs front end in `models`) and the EMA update of a teacher
//! from a student (`ema`, for the XKD net's momentum teachers).
//!
//! Imports only `util`; every layer above may use it.

pub mod batch_norm;
pub mod batch_norm_train;
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
