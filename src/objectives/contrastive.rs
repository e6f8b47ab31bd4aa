//! CCL's multi-class contrastive loss (`loss/nce_loss.py::NCELoss(temperature)`, with the one-token
//! fix that makes it run on torch ≥ 1.2).
//!
//! Every anchor row of `a` is scored against every candidate row of `b` through a row softmax of
//! cosine similarities. All candidates with the anchor's label are positives (the same index
//! included) and are pulled up with −log p. All others are negatives and are pushed down with
//! −log(1 − p). Each of the two terms is averaged over its own pair count, so the loss is
//! "class-level": it does not depend on how many samples of a class the batch holds.
//!
//! Degenerate batches differ from the official code on purpose. There a row without negatives
//! (a single-class batch, or N = 1) divides 0 by 0 and the loss is NaN, and an empty batch gives
//! NaN too. Here the negative term of such a row is dropped (its positive term stays), an empty
//! batch gives 0, and both log a warning.

use crate::nn::softmax::softmax_last_dim;
use candle_core::{bail, DType, Result, Tensor};

/// Added inside both logarithms (`EPISILON` in the official code).
const LOG_EPS: f64 = 1e-10;

use crate::nn::norm::l2_normalize;

/// Reads integer class labels `[n]` (u8, u32 or i64) into a vector.
pub fn label_values(labels: &Tensor, n: usize, what: &str) -> Result<Vec<i64>> {
    if labels.dims() != [n] {
        bail!(
            "{what}: labels must have shape [{n}], got {:?}",
            labels.dims()
        )
    }
    match labels.dtype() {
        DType::U8 | DType::U32 | DType::I64 => labels.to_dtype(DType::I64)?.to_vec1::<i64>(),
        dt => bail!("{what}: labels must be an integer tensor (u8, u32, i64), got {dt:?}"),
    }
}

/// A 0-dim tensor holding `x` in `like`'s dtype and device, for exact division by a scalar
/// (candle's `tensor / f64` multiplies by the reciprocal).
fn scalar_like(x: f64, like: &Tensor) -> Result<Tensor> {
    Tensor::new(x, like.device())?.to_dtype(like.dtype())
}

/// The multi-class contrastive loss NCE_τ(a, b, y) of CCL, a 0-dim tensor.
///
/// `a` (anchors) and `b` (candidates) are `[N, D]`, `labels` is `[N]` (u8/u32/i64), `tau` the
/// softmax temperature (CCL: 0.1 for the image teacher, 0.5 for the audio teacher). With â, b̂ the
/// L2-normalised rows, s_ij = 1 − ½‖â_i − b̂_j‖² and p_ij = softmax_j(s_ij / τ),
/// loss_i = mean_{j: y_j = y_i} −log(p_ij + 1e-10) + mean_{j: y_j ≠ y_i} −log(1 − p_ij + 1e-10),
/// and the loss is the mean over i. See the module doc for batches without negatives.
pub fn nce_loss(a: &Tensor, b: &Tensor, labels: &Tensor, tau: f64) -> Result<Tensor> {
    let (n, d) = match a.dims() {
        [n, d] => (*n, *d),
        s => bail!("nce_loss: anchors must be [N, D], got {s:?}"),
    };
    if b.dims() != [n, d] {
        bail!(
            "nce_loss: candidates {:?} must have the anchors' shape {:?}",
            b.dims(),
            a.dims()
        )
    }
    if !(tau > 0.0 && tau.is_finite()) {
        bail!("nce_loss: temperature must be positive and finite, got {tau}")
    }
    let y = label_values(labels, n, "nce_loss")?;
    if n == 0 {
        tracing::warn!("nce_loss: empty batch, the loss is set to 0 (the official code gives NaN)");
        return Tensor::zeros((), a.dtype(), a.device());
    }

    // Positive / negative masks and their per-row counts (constants).
    let mut pos = vec![0f64; n * n];
    let mut neg = vec![0f64; n * n];
    let mut pos_count = vec![0f64; n];
    let mut neg_count = vec![0f64; n];
    for i in 0..n {
        for j in 0..n {
            if y[i] == y[j] {
                pos[i * n + j] = 1.0;
                pos_count[i] += 1.0;
            } else {
                neg[i * n + j] = 1.0;
                neg_count[i] += 1.0;
            }
        }
    }
    let no_neg = neg_count.iter().filter(|&&c| c == 0.0).count();
    if no_neg > 0 {
        tracing::warn!(
            "nce_loss: {no_neg} of {n} rows have no negative (all labels equal or N = 1); their \
             negative term is dropped (the official code gives NaN)"
        );
        // The row's negative sum is 0, so a divisor of 1 makes its term 0.
        neg_count
            .iter_mut()
            .filter(|c| **c == 0.0)
            .for_each(|c| *c = 1.0);
    }
    let (dt, dev) = (a.dtype(), a.device());
    let pos = Tensor::from_vec(pos, (n, n), dev)?.to_dtype(dt)?;
    let neg = Tensor::from_vec(neg, (n, n), dev)?.to_dtype(dt)?;
    let pos_count = Tensor::from_vec(pos_count, n, dev)?.to_dtype(dt)?;
    let neg_count = Tensor::from_vec(neg_count, n, dev)?.to_dtype(dt)?;

    // Cosine similarity in the official (distance) form, for the same rounding.
    let a = l2_normalize(a)?;
    let b = l2_normalize(b)?;
    let dist = a
        .unsqueeze(1)?
        .broadcast_sub(&b.unsqueeze(0)?)?
        .sqr()?
        .sum(2)?; // [n, n]
    let cos = dist.affine(-0.5, 1.0)?;
    let p = softmax_last_dim(&cos.broadcast_div(&scalar_like(tau, &cos)?)?)?;

    let log_pos = ((&p + LOG_EPS)?.log()?.neg()? * pos)?.sum(1)?;
    let log_neg = ((p.affine(-1.0, 1.0)? + LOG_EPS)?.log()?.neg()? * neg)?.sum(1)?;
    let per_row = (log_pos.div(&pos_count)? + log_neg.div(&neg_count)?)?;
    per_row.mean_all()
}

/// The symmetric form used throughout CCL: NCE_τ(a, b, y) + NCE_τ(b, a, y).
pub fn sym_nce(a: &Tensor, b: &Tensor, labels: &Tensor, tau: f64) -> Result<Tensor> {
    nce_loss(a, b, labels, tau)? + nce_loss(b, a, labels, tau)?
}
