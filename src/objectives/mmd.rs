//! MMD domain-alignment loss of XKD (`MMD_Loss(kernel_type='gaussian')`, taken from DomainBed).
//!
//! XKD aligns the student and teacher feature distributions of the two modalities with a biased
//! MMD estimate under a sum of seven Gaussian kernels of very different widths, so no bandwidth has
//! to be tuned.

use candle_core::{bail, Result, Tensor};

/// Kernel precisions γ of the multi-scale Gaussian kernel (DomainBed's defaults):
/// K(x, y) = Σ_γ exp(−γ‖x − y‖²). They are summed in this order, as the official code does.
pub const GAMMAS: [f64; 7] = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0];

/// Squared distances below this are clamped to it (DomainBed's `clamp_min_(1e-30)`), which keeps
/// the rounding error of the expanded form from producing negative distances.
const MIN_SQ_DIST: f64 = 1e-30;

/// Pairwise squared Euclidean distances [n, m] of the rows of `x` [n, d] and `y` [m, d], in the
/// expanded form ‖x‖² + ‖y‖²ᵀ − 2·x·yᵀ that the official code computes with `addmm`.
fn squared_distances(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let (_, dx) = match x.dims() {
        [n, d] => (*n, *d),
        s => bail!("mmd: x must be [n, d], got shape {s:?}"),
    };
    let (_, dy) = match y.dims() {
        [m, d] => (*m, *d),
        s => bail!("mmd: y must be [m, d], got shape {s:?}"),
    };
    if dx != dy {
        bail!(
            "mmd: feature dims differ, x {:?} vs y {:?}",
            x.dims(),
            y.dims()
        );
    }
    let x_norm = x.sqr()?.sum_keepdim(1)?; // [n, 1]
    let y_norm = y.sqr()?.sum_keepdim(1)?.t()?; // [1, m]
    let xy = x.matmul(&y.t()?)?; // [n, m]
                                 // Same association as addmm(y_norm, x, yᵀ, alpha=-2).add_(x_norm).
    let d = y_norm
        .broadcast_add(&(xy * -2.0)?)?
        .broadcast_add(&x_norm)?;
    d.maximum(MIN_SQ_DIST)
}

/// Multi-scale Gaussian kernel matrix K [n, m] between the rows of `x` [n, d] and `y` [m, d]:
/// K = Σ_{γ ∈ GAMMAS} exp(−γ·D) with D the clamped squared distances.
pub fn gaussian_kernel(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let d = squared_distances(x, y)?;
    let mut k = d.zeros_like()?;
    for &g in GAMMAS.iter() {
        k = (k + (&d * -g)?.exp()?)?;
    }
    Ok(k)
}

/// Biased MMD estimate between the samples `x` [n, d] and `y` [m, d]:
/// mean K(X,X) + mean K(Y,Y) − 2·mean K(X,Y), diagonals included. Returns a 0-dim tensor.
pub fn mmd(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let kxx = gaussian_kernel(x, x)?.mean_all()?;
    let kyy = gaussian_kernel(y, y)?.mean_all()?;
    let kxy = gaussian_kernel(x, y)?.mean_all()?;
    (kxx + kyy)? - (kxy * 2.0)?
}
