//! Dropout drawn from avkd's seeded generator (candle's `Dropout` uses its unseedable CPU RNG).

use super::rng::SeededRng;
use candle_core::{Result, Tensor};

/// In training (`rng` is `Some`), zeroes each element with probability `p` and scales the rest by
/// 1/(1-p); identity otherwise.
pub fn dropout(x: &Tensor, p: f64, rng: Option<&mut SeededRng>) -> Result<Tensor> {
    let rng = match rng {
        Some(rng) if p > 0.0 => rng,
        _ => return Ok(x.clone()),
    };
    if p >= 1.0 {
        return x.zeros_like();
    }
    let scale = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if rng.uniform_f64() < p { 0.0 } else { scale })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    x * mask
}
