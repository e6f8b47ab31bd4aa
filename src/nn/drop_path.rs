//! Stochastic depth (timm's `DropPath`): in training, each sample's residual branch is dropped with
//! probability `rate` and the kept ones are scaled by 1/(1-rate).

use super::rng::SeededRng;
use candle_core::{Result, Tensor};

#[derive(Debug, Clone, Copy)]
pub struct DropPath {
    rate: f64,
}

impl DropPath {
    pub fn new(rate: f64) -> Self {
        Self { rate }
    }

    /// `rng` is `Some` in training mode; evaluation (or a zero rate) is the identity.
    pub fn forward(&self, x: &Tensor, rng: Option<&mut SeededRng>) -> Result<Tensor> {
        let rng = match rng {
            Some(rng) if self.rate > 0.0 => rng,
            _ => return Ok(x.clone()),
        };
        let b = x.dim(0)?;
        let keep = 1.0 - self.rate;
        let mask: Vec<f32> = (0..b)
            .map(|_| {
                if rng.uniform_f64() < keep {
                    (1.0 / keep) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let mut shape = vec![1; x.rank()];
        shape[0] = b;
        let mask = Tensor::from_vec(mask, shape, x.device())?.to_dtype(x.dtype())?;
        x.broadcast_mul(&mask)
    }
}

/// Linearly increasing drop-path rates over `depth` blocks, as timm's `torch.linspace(0, rate, depth)`.
pub fn drop_path_schedule(rate: f64, depth: usize) -> Vec<f64> {
    if depth <= 1 {
        return vec![0.0; depth];
    }
    (0..depth)
        .map(|i| rate * i as f64 / (depth - 1) as f64)
        .collect()
}
