//! AdamW with parameter groups (SGD is in `sgd.rs`), following PyTorch's single-tensor (CPU) code path.
//!
//! The update formulas are written out op by op in the order PyTorch evaluates them (lerp for the
//! first moment, `addcmul` for the second, `addcdiv` for the parameter, true division by the bias
//! correction) so that one step reproduces `torch.optim.AdamW` / `torch.optim.SGD` to within an ulp
//! or two. Learning rates and weight decays live in [`ParamGroup`]s, as in PyTorch, because XKD's
//! fine-tuning uses layer-wise lr decay (`lr = base_lr * lr_scale`) and a weight-decay schedule on
//! one group only.
//!
//! Optimiser state is kept per parameter, including PyTorch's per-parameter step count: a parameter
//! without a gradient is skipped entirely (no decay, no moment update, no step increment), which is
//! what DINO/XKD rely on when they drop the gradients of the projector's last layer in epoch 0.

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};
use std::collections::{HashMap, HashSet};

/// A set of parameters sharing a learning-rate multiplier and a weight decay.
#[derive(Clone)]
pub struct ParamGroup {
    /// Free-form label (e.g. `layer_3_decay`), used in error messages only.
    pub name: String,
    /// Named parameters; the names key the optimiser state in checkpoints.
    pub vars: Vec<(String, Var)>,
    /// The group's learning rate is `base_lr * lr_scale`.
    pub lr_scale: f64,
    pub weight_decay: f64,
}

impl ParamGroup {
    /// A group with `lr_scale = 1`.
    pub fn new(name: impl Into<String>, vars: Vec<(String, Var)>, weight_decay: f64) -> Self {
        Self {
            name: name.into(),
            vars,
            lr_scale: 1.0,
            weight_decay,
        }
    }
}

/// Builds a [`GradStore`] from explicit gradients (e.g. loaded from a file or computed elsewhere).
///
/// candle offers no public constructor, so this takes the (empty) store of a constant's backward
/// pass and inserts the given gradients after a shape check.
pub fn grad_store<'a>(grads: impl IntoIterator<Item = (&'a Var, Tensor)>) -> Result<GradStore> {
    let seed = Tensor::zeros((), DType::F32, &candle_core::Device::Cpu)?;
    let mut store = seed.backward()?;
    store.remove(&seed);
    for (var, grad) in grads {
        if var.dims() != grad.dims() {
            candle_core::bail!(
                "grad_store: gradient of shape {:?} for a parameter of shape {:?}",
                grad.dims(),
                var.dims()
            )
        }
        store.insert(var, grad);
    }
    Ok(store)
}

/// Checks that no parameter name or `Var` appears twice (PyTorch rejects that too).
pub(super) fn check_groups(groups: &[ParamGroup]) -> Result<()> {
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    for group in groups {
        for (name, var) in &group.vars {
            if !names.insert(name.as_str()) {
                candle_core::bail!(
                    "optimizer: parameter name `{name}` appears more than once (group `{}`)",
                    group.name
                )
            }
            if !ids.insert(var.id()) {
                candle_core::bail!(
                    "optimizer: parameter `{name}` (group `{}`) is the same Var as another parameter",
                    group.name
                )
            }
        }
    }
    Ok(())
}

/// The gradient of `var` in f32, checked against the parameter's shape.
pub(super) fn f32_grad(grads: &GradStore, name: &str, var: &Var) -> Result<Option<Tensor>> {
    let Some(g) = grads.get(var) else {
        return Ok(None);
    };
    if g.dims() != var.dims() {
        candle_core::bail!(
            "optimizer: gradient of `{name}` has shape {:?}, the parameter has {:?}",
            g.dims(),
            var.dims()
        )
    }
    Ok(Some(g.detach().to_dtype(DType::F32)?))
}

/// A 0-dim f32 tensor, for exact (non-reciprocal) division by a scalar.
pub(super) fn scalar_f32(x: f64, like: &Tensor) -> Result<Tensor> {
    Tensor::new(x as f32, like.device())
}

/// Looks a state tensor up by key, checking its shape; the result is f32 and contiguous.
pub(super) fn state_tensor(
    tensors: &HashMap<String, Tensor>,
    key: &str,
    var: &Var,
    used: &mut HashSet<String>,
) -> Result<Tensor> {
    let Some(t) = tensors.get(key) else {
        candle_core::bail!("optimizer state: missing `{key}`")
    };
    if t.dims() != var.dims() {
        candle_core::bail!(
            "optimizer state: `{key}` has shape {:?}, the parameter has {:?}",
            t.dims(),
            var.dims()
        )
    }
    used.insert(key.to_string());
    t.to_dtype(DType::F32)?
        .to_device(var.device())?
        .contiguous()?
        .copy()
}

/// Reads a per-parameter step counter stored as a 0-dim (or 1-element) tensor of any dtype.
pub(super) fn state_step(
    tensors: &HashMap<String, Tensor>,
    key: &str,
    used: &mut HashSet<String>,
) -> Result<u64> {
    let Some(t) = tensors.get(key) else {
        candle_core::bail!("optimizer state: missing `{key}`")
    };
    if t.elem_count() != 1 {
        candle_core::bail!(
            "optimizer state: `{key}` should hold one number, it has shape {:?}",
            t.dims()
        )
    }
    let v = t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?[0];
    if !(v >= 0.0 && v.fract() == 0.0) {
        candle_core::bail!("optimizer state: `{key}` = {v} is not a step count")
    }
    used.insert(key.to_string());
    Ok(v as u64)
}

/// Errors on keys that belong to no parameter: loading another model's state is a bug.
pub(super) fn check_unused(
    tensors: &HashMap<String, Tensor>,
    used: &HashSet<String>,
) -> Result<()> {
    let mut extra: Vec<&String> = tensors.keys().filter(|k| !used.contains(*k)).collect();
    if !extra.is_empty() {
        extra.sort();
        extra.truncate(5);
        candle_core::bail!("optimizer state: unexpected keys (first ones) {extra:?}")
    }
    Ok(())
}

/// True for negative or NaN hyper-parameters.
pub(super) fn invalid_nonnegative(x: f64) -> bool {
    x.is_nan() || x < 0.0
}

/// `torch.optim.AdamW` hyper-parameters shared by all groups (PyTorch defaults).
#[derive(Debug, Clone, Copy)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

#[derive(Clone)]
struct AdamState {
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    step: u64,
}

/// `torch.optim.AdamW` (amsgrad=False, maximize=False) over parameter groups.
pub struct AdamW {
    groups: Vec<ParamGroup>,
    base_lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// `state[g][i]` belongs to `groups[g].vars[i]`; `None` until its first gradient.
    state: Vec<Vec<Option<AdamState>>>,
    step: u64,
}

impl AdamW {
    pub fn new(groups: Vec<ParamGroup>, cfg: AdamWConfig) -> Result<Self> {
        check_groups(&groups)?;
        if invalid_nonnegative(cfg.lr) || invalid_nonnegative(cfg.eps) {
            candle_core::bail!("AdamW: invalid lr {} or eps {}", cfg.lr, cfg.eps)
        }
        for b in [cfg.beta1, cfg.beta2] {
            if !(0.0..1.0).contains(&b) {
                candle_core::bail!("AdamW: invalid beta {b}, expected 0 <= beta < 1")
            }
        }
        let state = groups.iter().map(|g| vec![None; g.vars.len()]).collect();
        Ok(Self {
            groups,
            base_lr: cfg.lr,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            state,
            step: 0,
        })
    }

    pub fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    pub fn learning_rate(&self) -> f64 {
        self.base_lr
    }

    /// Sets the base lr; group `g` then steps with `lr * groups[g].lr_scale`, which is how XKD's
    /// engines apply their per-iteration schedule.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.base_lr = lr;
    }

    /// The learning rate group `g` uses at the next step.
    pub fn group_lr(&self, g: usize) -> Option<f64> {
        self.groups.get(g).map(|grp| self.base_lr * grp.lr_scale)
    }

    /// Overrides one group's weight decay (XKD pretraining schedules the decay of group 1 only).
    pub fn set_weight_decay(&mut self, group: usize, weight_decay: f64) -> Result<()> {
        let n = self.groups.len();
        match self.groups.get_mut(group) {
            Some(g) => g.weight_decay = weight_decay,
            None => candle_core::bail!("AdamW: no group {group} ({n} groups)"),
        }
        Ok(())
    }

    /// Number of `step` calls so far (including those loaded with [`AdamW::load_state`]).
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// One AdamW update of every parameter that has a gradient in `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        for (group, states) in self.groups.iter().zip(self.state.iter_mut()) {
            let lr = self.base_lr * group.lr_scale;
            let wd = group.weight_decay;
            for ((name, var), state) in group.vars.iter().zip(states.iter_mut()) {
                let Some(g) = f32_grad(grads, name, var)? else {
                    continue;
                };
                if var.elem_count() == 0 {
                    continue;
                }
                let mut p = var.as_detached_tensor().to_dtype(DType::F32)?;
                let (m, v, t) = match state.take() {
                    Some(s) => (s.exp_avg, s.exp_avg_sq, s.step + 1),
                    None => (g.zeros_like()?, g.zeros_like()?, 1),
                };
                // param.mul_(1 - lr * wd)
                if wd != 0.0 {
                    p = p.affine(1.0 - lr * wd, 0.0)?;
                }
                // exp_avg.lerp_(grad, 1 - beta1), with ATen's two-branch lerp in f32.
                let w = (1.0 - b1) as f32;
                let m = if w.abs() < 0.5 {
                    (&m + (&g - &m)?.affine(w as f64, 0.0)?)?
                } else {
                    (&g - (&g - &m)?.affine((1.0f32 - w) as f64, 0.0)?)?
                };
                // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                let v = (v.affine(b2, 0.0)? + (g.affine(1.0 - b2, 0.0)? * &g)?)?;
                let bias_correction1 = 1.0 - b1.powf(t as f64);
                let bias_correction2 = 1.0 - b2.powf(t as f64);
                let step_size = lr / bias_correction1;
                let bc2_sqrt = bias_correction2.sqrt();
                // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
                let denom = v
                    .sqrt()?
                    .broadcast_div(&scalar_f32(bc2_sqrt, &v)?)?
                    .affine(1.0, self.eps)?;
                // param.addcdiv_(exp_avg, denom, value=-step_size)
                let p = (p + (m.affine(-step_size, 0.0)? / denom)?)?;
                var.set(&p.to_dtype(var.dtype())?)?;
                *state = Some(AdamState {
                    exp_avg: m,
                    exp_avg_sq: v,
                    step: t,
                });
            }
        }
        Ok(())
    }

    /// The optimiser state as named tensors: `<param>.exp_avg`, `<param>.exp_avg_sq` (f32) and
    /// `<param>.step` (0-dim f32, like PyTorch), for every parameter. A parameter that never had a
    /// gradient is exported as zero moments with step 0, which is equivalent to no state.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (group, states) in self.groups.iter().zip(self.state.iter()) {
            for ((name, var), state) in group.vars.iter().zip(states.iter()) {
                let (m, v, t) = match state {
                    Some(s) => (s.exp_avg.clone(), s.exp_avg_sq.clone(), s.step),
                    None => {
                        let z = Tensor::zeros(var.shape(), DType::F32, var.device())?;
                        (z.clone(), z, 0)
                    }
                };
                out.insert(format!("{name}.exp_avg"), m);
                out.insert(format!("{name}.exp_avg_sq"), v);
                out.insert(format!("{name}.step"), Tensor::new(t as f32, var.device())?);
            }
        }
        Ok(out)
    }

    /// Restores the state written by [`AdamW::state_tensors`]. Every parameter needs its three
    /// entries with matching shapes, and unknown keys are rejected, so a checkpoint of another model
    /// fails loudly instead of silently restarting the moments.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, step_count: u64) -> Result<()> {
        let mut used = HashSet::new();
        let mut new_state = Vec::with_capacity(self.groups.len());
        for group in &self.groups {
            let mut states = Vec::with_capacity(group.vars.len());
            for (name, var) in &group.vars {
                let m = state_tensor(tensors, &format!("{name}.exp_avg"), var, &mut used)?;
                let v = state_tensor(tensors, &format!("{name}.exp_avg_sq"), var, &mut used)?;
                let t = state_step(tensors, &format!("{name}.step"), &mut used)?;
                states.push((t > 0).then_some(AdamState {
                    exp_avg: m,
                    exp_avg_sq: v,
                    step: t,
                }));
            }
            new_state.push(states);
        }
        check_unused(tensors, &used)?;
        self.state = new_state;
        self.step = step_count;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn duplicate_parameters_are_rejected() -> Result<()> {
        let v = Var::new(&[1f32, 2.], &Device::Cpu)?;
        let g = ParamGroup::new(
            "g",
            vec![("a".into(), v.clone()), ("b".into(), v.clone())],
            0.0,
        );
        assert!(AdamW::new(vec![g], AdamWConfig::default()).is_err());
        Ok(())
    }

    #[test]
    fn params_without_gradient_are_untouched() -> Result<()> {
        let a = Var::new(&[1f32, 2.], &Device::Cpu)?;
        let b = Var::new(&[3f32, 4.], &Device::Cpu)?;
        let group = ParamGroup::new(
            "g",
            vec![("a".into(), a.clone()), ("b".into(), b.clone())],
            0.1,
        );
        let mut opt = AdamW::new(vec![group], AdamWConfig::default())?;
        let grads = grad_store([(&a, Tensor::new(&[0.5f32, -0.5], &Device::Cpu)?)])?;
        opt.step(&grads)?;
        assert_eq!(b.to_vec1::<f32>()?, vec![3., 4.]);
        let st = opt.state_tensors()?;
        assert_eq!(st["b.step"].to_scalar::<f32>()?, 0.0);
        assert_eq!(st["a.step"].to_scalar::<f32>()?, 1.0);
        Ok(())
    }
}
