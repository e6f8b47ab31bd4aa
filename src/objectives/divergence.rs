//! CCL's classification-level losses: the symmetric KL divergence that the official code calls
//! `JSDLoss` (`loss/jsd_loss.py`, used with weight 0.5 and `softmax_sign=False`), and the plain
//! mean cross-entropy (`nn.CrossEntropyLoss()`).
//!
//! Despite its name, `JSDLoss` is KL(p‖q) + KL(q‖p), not the Jensen-Shannon divergence, with the
//! epsilon inside the log of the ratio. It is reproduced as written: no temperature, no detach, so
//! both sides get gradients.

use crate::nn::softmax::softmax_last_dim;
use candle_core::{bail, Result, Tensor};

/// Added to the probability ratio inside the logarithm (`EPISILON` in the official code).
const RATIO_EPS: f64 = 1e-10;

/// `weight · mean_i[Σ_c p·log(p/q + 1e-10) + Σ_c q·log(q/p + 1e-10)]` with p = softmax(logits_p)
/// and q = softmax(logits_q) over the classes; both are `[N, C]`. CCL uses weight 0.5.
///
/// An empty batch gives 0 (the official mean would be NaN).
pub fn symmetric_kl(logits_p: &Tensor, logits_q: &Tensor, weight: f64) -> Result<Tensor> {
    let n = match logits_p.dims() {
        [n, _] => *n,
        s => bail!("symmetric_kl: logits must be [N, C], got {s:?}"),
    };
    if logits_q.dims() != logits_p.dims() {
        bail!(
            "symmetric_kl: logits shapes differ, {:?} vs {:?}",
            logits_p.dims(),
            logits_q.dims()
        )
    }
    if n == 0 {
        return Tensor::zeros((), logits_p.dtype(), logits_p.device());
    }
    let p = softmax_last_dim(logits_p)?;
    let q = softmax_last_dim(logits_q)?;
    let kl_pq = (&p * (p.div(&q)? + RATIO_EPS)?.log()?)?.sum(1)?;
    let kl_qp = (&q * (q.div(&p)? + RATIO_EPS)?.log()?)?.sum(1)?;
    (kl_pq + kl_qp)?.mean_all()? * weight
}

/// Mean cross-entropy of `[N, C]` logits against `[N]` integer labels (u8/u32/i64) in `0..C`
/// (`nn.CrossEntropyLoss()`): the label-smoothed loss with no smoothing.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    if logits.dim(0)? == 0 {
        bail!("cross_entropy: empty batch (logits {:?})", logits.dims())
    }
    super::smoothing::label_smoothing_ce(logits, labels, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn symmetric_kl_is_zero_for_equal_logits_and_symmetric() -> Result<()> {
        let p = Tensor::new(&[[0.3f32, -1.0, 2.0], [0.0, 0.5, -0.5]], &Device::Cpu)?;
        let q = Tensor::new(&[[1.0f32, 0.0, -2.0], [0.2, 0.1, 0.0]], &Device::Cpu)?;
        let same = symmetric_kl(&p, &p, 0.5)?.to_scalar::<f32>()?;
        assert!(same.abs() < 1e-6, "{same}");
        let pq = symmetric_kl(&p, &q, 0.5)?.to_scalar::<f32>()?;
        let qp = symmetric_kl(&q, &p, 0.5)?.to_scalar::<f32>()?;
        assert!(pq > 0.0 && (pq - qp).abs() < 1e-6, "{pq} vs {qp}");
        Ok(())
    }

    #[test]
    fn cross_entropy_accepts_i64_and_u32_labels() -> Result<()> {
        let x = Tensor::new(&[[0.3f32, -1.0, 2.0], [0.0, 0.5, -0.5]], &Device::Cpu)?;
        let a = cross_entropy(&x, &Tensor::new(&[2i64, 0], &Device::Cpu)?)?;
        let b = cross_entropy(&x, &Tensor::new(&[2u32, 0], &Device::Cpu)?)?;
        assert_eq!(a.to_scalar::<f32>()?, b.to_scalar::<f32>()?);
        assert!(cross_entropy(&x, &Tensor::new(&[3i64, 0], &Device::Cpu)?).is_err());
        Ok(())
    }
}
