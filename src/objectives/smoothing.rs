//! Classification losses of XKD's fine-tuning (timm): label-smoothed cross-entropy, soft-target
//! cross-entropy (used after mixup/cutmix) and the smoothed one-hot targets mixup builds.

use crate::nn::softmax::log_softmax_last_dim;
use candle_core::{Device, Result, Tensor, D};

/// Checks `[B, C]` logits against `[B]` integer labels in `0..C` and returns the labels as a
/// `[B, 1]` u32 index for `gather` (u32 works on every candle backend).
fn label_index(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (b, c) = logits.dims2().map_err(|_| {
        candle_core::Error::Msg(format!(
            "cross-entropy: logits must be [batch, classes], got {:?}",
            logits.dims()
        ))
    })?;
    let values = super::contrastive::label_values(labels, b, "cross-entropy")?;
    if let Some(bad) = values.iter().find(|&&v| v < 0 || v >= c as i64) {
        candle_core::bail!("cross-entropy: label {bad} out of range for {c} classes")
    }
    let idx: Vec<u32> = values.iter().map(|&v| v as u32).collect();
    Tensor::from_vec(idx, (b, 1), logits.device())
}

/// timm `LabelSmoothingCrossEntropy(smoothing)`:
/// `mean_b[(1 - s) * (-log p[y]) + s * mean_c(-log p_c)]`. `labels` is `[B]` u8/u32/i64.
pub fn label_smoothing_ce(logits: &Tensor, labels: &Tensor, smoothing: f64) -> Result<Tensor> {
    if !(0.0..1.0).contains(&smoothing) {
        candle_core::bail!("label_smoothing_ce: smoothing {smoothing} must be in [0, 1)")
    }
    let idx = label_index(logits, labels)?;
    let logprobs = log_softmax_last_dim(logits)?;
    let nll = logprobs.gather(&idx, 1)?.squeeze(1)?.neg()?;
    let smooth = logprobs.mean(D::Minus1)?.neg()?;
    let loss = (nll.affine(1.0 - smoothing, 0.0)? + smooth.affine(smoothing, 0.0)?)?;
    loss.mean_all()
}

/// timm `SoftTargetCrossEntropy`: `mean_b sum_c(-target * log_softmax(x))` for `[B, C]` targets.
pub fn soft_target_ce(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    if logits.rank() != 2 || logits.dims() != target.dims() {
        candle_core::bail!(
            "soft_target_ce: logits {:?} and targets {:?} must both be [batch, classes]",
            logits.dims(),
            target.dims()
        )
    }
    let target = target.to_dtype(logits.dtype())?;
    let logprobs = log_softmax_last_dim(logits)?;
    (target.neg()? * logprobs)?.sum(D::Minus1)?.mean_all()
}

/// timm mixup's smoothed one-hot targets `[B, C]` (f32): `off = s / C` everywhere and
/// `on = 1 - s + off` at the label.
pub fn one_hot_smoothed(
    labels: &[usize],
    num_classes: usize,
    smoothing: f64,
    dev: &Device,
) -> Result<Tensor> {
    if num_classes == 0 {
        candle_core::bail!("one_hot_smoothed: num_classes must be positive")
    }
    let off = smoothing / num_classes as f64;
    let on = 1.0 - smoothing + off;
    let mut data = vec![off as f32; labels.len() * num_classes];
    for (row, &y) in labels.iter().enumerate() {
        if y >= num_classes {
            candle_core::bail!("one_hot_smoothed: label {y} out of range for {num_classes} classes")
        }
        data[row * num_classes + y] = on as f32;
    }
    Tensor::from_vec(data, (labels.len(), num_classes), dev)
}
