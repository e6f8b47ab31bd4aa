//! Gradient clipping on a candle [`GradStore`].
//!
//! Norms are accumulated in f64 and rounded to f32 (PyTorch returns an f32 norm); the clip
//! coefficient is then formed in f32 as PyTorch does for `clip / (norm + 1e-6)` with a tensor
//! norm, which Python evaluates as `(norm + 1e-6).reciprocal() * clip`. Every norm of one call
//! is read back in a single copy ([`super::readback`]).

use super::readback::read_scalars;
use candle_core::backprop::GradStore;
use candle_core::{DType, Result, TensorId, Var};
use std::collections::HashMap;

/// ‖g‖₂ of every gradient of `vars` present in `grads`, each accumulated in f64 and rounded to
/// f32, in order, with the parameters they belong to. The norms are computed on the device and read
/// back in one copy.
fn grad_norms(vars: &[Var], grads: &GradStore) -> Result<(Vec<Var>, Vec<f64>)> {
    let mut present = Vec::with_capacity(vars.len());
    let mut norms = Vec::with_capacity(vars.len());
    for var in vars {
        if let Some(g) = grads.get(var) {
            norms.push(g.to_dtype(DType::F64)?.sqr()?.sum_all()?.sqrt()?);
            present.push(var.clone());
        }
    }
    // The f32 copy rounds each f64 norm to f32, as PyTorch's f32 norm is.
    Ok((present, read_scalars(&norms)?))
}

/// `clip / (norm + 1e-6)` in f32, via the reciprocal like PyTorch's `__rtruediv__`.
fn clip_coef(clip: f64, norm: f64) -> f32 {
    (1.0f32 / (norm as f32 + 1e-6f32)) * clip as f32
}

/// Multiplies the gradient of `var` by `coef` in place in the store.
fn scale_grad(grads: &mut GradStore, var: &Var, coef: f32) -> Result<()> {
    if let Some(g) = grads.get(var) {
        let scaled = g.affine(coef as f64, 0.0)?;
        grads.insert(var, scaled);
    }
    Ok(())
}

/// `torch.nn.utils.clip_grad_norm_` (L2): the global norm over all gradients of `vars` present in
/// `grads`; if `max_norm / (norm + 1e-6) < 1` every gradient is scaled by it. Returns the norm
/// before clipping. Parameters without a gradient are ignored.
pub fn clip_grad_norm(vars: &[Var], grads: &mut GradStore, max_norm: f64) -> Result<f64> {
    let (present, norms) = grad_norms(vars, grads)?;
    let sq: f64 = norms.iter().map(|n| n * n).sum();
    let total = sq.sqrt() as f32 as f64;
    let coef = clip_coef(max_norm, total);
    if coef < 1.0 {
        for var in &present {
            scale_grad(grads, var, coef)?;
        }
    }
    Ok(total)
}

/// DINO's `clip_gradients` (also XKD's `clip_gradients`): each gradient is clipped on its own
/// to norm `clip`, visiting `vars` in order. Returns the norm of each visit that found a gradient,
/// in order (parameters without one are skipped, as in the Python list). A parameter listed twice
/// (XKD-MAS's shared blocks, reached through both students) is clipped again at its second visit,
/// with the norm its gradient has after the first.
pub fn clip_per_param(vars: &[Var], grads: &mut GradStore, clip: f64) -> Result<Vec<f64>> {
    let (present, norms) = grad_norms(vars, grads)?;
    let mut scaled: HashMap<TensorId, f64> = HashMap::new();
    let mut visits = Vec::with_capacity(norms.len());
    for (var, &norm) in present.iter().zip(&norms) {
        let factor = scaled.get(&var.id()).copied().unwrap_or(1.0);
        let norm = (norm * factor) as f32 as f64;
        let coef = clip_coef(clip, norm);
        if coef < 1.0 {
            scale_grad(grads, var, coef)?;
            scaled.insert(var.id(), factor * coef as f64);
        }
        visits.push(norm);
    }
    Ok(visits)
}

/// The clipping a training run applies after the gradients are reduced and before the optimizer
/// steps.
#[derive(Clone, Default)]
pub enum Clipping {
    #[default]
    None,
    /// `clip_grad_norm_` over `vars` together (fine-tuning's `clip_grad`).
    GlobalNorm { max_norm: f64, vars: Vec<Var> },
    /// Each gradient of `vars` on its own (DINO/XKD's `clip_gradients`, students only).
    PerParam { max_norm: f64, vars: Vec<Var> },
}

impl Clipping {
    /// Clips `grads` in place; returns the L2 norm of the clipped set's gradients before clipping
    /// (`None` without clipping).
    pub fn apply(&self, grads: &mut GradStore) -> Result<Option<f64>> {
        match self {
            Self::None => Ok(None),
            Self::GlobalNorm { max_norm, vars } => clip_grad_norm(vars, grads, *max_norm).map(Some),
            Self::PerParam { max_norm, vars } => {
                let norms = clip_per_param(vars, grads, *max_norm)?;
                Ok(Some(norms.iter().map(|n| n * n).sum::<f64>().sqrt()))
            }
        }
    }
}
