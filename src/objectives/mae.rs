//! The MAE reconstruction loss of XKD (`forward_loss` with `norm_pix_loss=True`): each target patch is
//! standardised with its own mean and *unbiased* variance (eps 1e-6), the squared error is averaged
//! over the patch vector, then averaged over the removed tokens only.

use candle_core::{Result, Tensor, D};

/// pred, target: [B, L, P]; mask: [B, L] with 1 = removed (the tokens the loss is taken over).
pub fn masked_patch_loss(
    pred: &Tensor,
    target: &Tensor,
    mask: &Tensor,
    norm_pix: bool,
) -> Result<Tensor> {
    if pred.dims() != target.dims() {
        candle_core::bail!(
            "MAE loss: prediction {:?} and target {:?} differ in shape",
            pred.dims(),
            target.dims()
        )
    }
    let target = if norm_pix {
        normalize_patches(target)?
    } else {
        target.clone()
    };
    let per_token = (pred - target)?.sqr()?.mean(D::Minus1)?;
    (per_token * mask)?.sum_all()? / mask.sum_all()?.to_scalar::<f32>()? as f64
}

/// (t - mean) / sqrt(var + 1e-6) per patch, with PyTorch's default unbiased variance.
pub fn normalize_patches(target: &Tensor) -> Result<Tensor> {
    let n = target.dim(D::Minus1)?;
    let mean = target.mean_keepdim(D::Minus1)?;
    let centred = target.broadcast_sub(&mean)?;
    let var = (centred.sqr()?.sum_keepdim(D::Minus1)? / (n as f64 - 1.0))?;
    centred.broadcast_div(&(var + 1e-6)?.sqrt()?)
}
