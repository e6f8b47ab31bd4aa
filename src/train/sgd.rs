//! `torch.optim.SGD` with momentum over parameter groups (CCL: lr 1e-3, momentum 0.9, weight decay
//! 5e-4), written op by op in PyTorch's order, with savable state.

use super::optim::{
    check_groups, check_unused, f32_grad, invalid_nonnegative, state_step, state_tensor, ParamGroup,
};
use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor};
use std::collections::{HashMap, HashSet};

/// `torch.optim.SGD` hyper-parameters shared by all groups; the weight decay is per group.
#[derive(Debug, Clone, Copy)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
}

impl Default for SgdConfig {
    /// CCL's setting: lr 1e-3, momentum 0.9, no dampening, no Nesterov.
    fn default() -> Self {
        Self {
            lr: 1e-3,
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
        }
    }
}

#[derive(Clone)]
struct SgdState {
    momentum_buffer: Option<Tensor>,
    step: u64,
}

/// `torch.optim.SGD` (maximize=False) over parameter groups.
pub struct Sgd {
    groups: Vec<ParamGroup>,
    base_lr: f64,
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    state: Vec<Vec<SgdState>>,
    step: u64,
}

impl Sgd {
    pub fn new(groups: Vec<ParamGroup>, cfg: SgdConfig) -> Result<Self> {
        check_groups(&groups)?;
        if invalid_nonnegative(cfg.lr) || invalid_nonnegative(cfg.momentum) {
            candle_core::bail!("SGD: invalid lr {} or momentum {}", cfg.lr, cfg.momentum)
        }
        if cfg.nesterov && (cfg.momentum <= 0.0 || cfg.dampening != 0.0) {
            candle_core::bail!("SGD: Nesterov momentum requires a momentum and zero dampening")
        }
        let state = groups
            .iter()
            .map(|g| {
                vec![
                    SgdState {
                        momentum_buffer: None,
                        step: 0
                    };
                    g.vars.len()
                ]
            })
            .collect();
        Ok(Self {
            groups,
            base_lr: cfg.lr,
            momentum: cfg.momentum,
            dampening: cfg.dampening,
            nesterov: cfg.nesterov,
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

    /// Sets the base lr; group `g` uses `lr * groups[g].lr_scale`.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.base_lr = lr;
    }

    pub fn set_weight_decay(&mut self, group: usize, weight_decay: f64) -> Result<()> {
        let n = self.groups.len();
        match self.groups.get_mut(group) {
            Some(g) => g.weight_decay = weight_decay,
            None => candle_core::bail!("SGD: no group {group} ({n} groups)"),
        }
        Ok(())
    }

    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// One SGD update of every parameter that has a gradient in `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        for (group, states) in self.groups.iter().zip(self.state.iter_mut()) {
            let lr = self.base_lr * group.lr_scale;
            let wd = group.weight_decay;
            for ((name, var), state) in group.vars.iter().zip(states.iter_mut()) {
                let Some(mut g) = f32_grad(grads, name, var)? else {
                    continue;
                };
                if var.elem_count() == 0 {
                    continue;
                }
                let p = var.as_detached_tensor().to_dtype(DType::F32)?;
                // grad = grad.add(param, alpha=weight_decay)
                if wd != 0.0 {
                    g = (&g + p.affine(wd, 0.0)?)?;
                }
                if self.momentum != 0.0 {
                    // First step: buf = clone(grad); then buf.mul_(momentum).add_(grad, alpha=1-dampening).
                    let buf = match state.momentum_buffer.take() {
                        None => g.copy()?,
                        Some(buf) => {
                            (buf.affine(self.momentum, 0.0)?
                                + g.affine(1.0 - self.dampening, 0.0)?)?
                        }
                    };
                    g = if self.nesterov {
                        (&g + buf.affine(self.momentum, 0.0)?)?
                    } else {
                        buf.clone()
                    };
                    state.momentum_buffer = Some(buf);
                }
                // param.add_(grad, alpha=-lr)
                let p = (p + g.affine(-lr, 0.0)?)?;
                var.set(&p.to_dtype(var.dtype())?)?;
                state.step += 1;
            }
        }
        Ok(())
    }

    /// The state as named tensors: `<param>.momentum_buffer` (f32; zeros before the first
    /// gradient; only when momentum is non-zero) and `<param>.step` (0-dim f32) for every parameter.
    /// The step tells a zero buffer apart from a missing one, which matters with dampening.
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (group, states) in self.groups.iter().zip(self.state.iter()) {
            for ((name, var), state) in group.vars.iter().zip(states.iter()) {
                if self.momentum != 0.0 {
                    let buf = match &state.momentum_buffer {
                        Some(b) => b.clone(),
                        None => Tensor::zeros(var.shape(), DType::F32, var.device())?,
                    };
                    out.insert(format!("{name}.momentum_buffer"), buf);
                }
                out.insert(
                    format!("{name}.step"),
                    Tensor::new(state.step as f32, var.device())?,
                );
            }
        }
        Ok(out)
    }

    /// Restores the state written by [`Sgd::state_tensors`] (strict: all keys, matching shapes,
    /// nothing extra).
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, step_count: u64) -> Result<()> {
        let mut used = HashSet::new();
        let mut new_state = Vec::with_capacity(self.groups.len());
        for group in &self.groups {
            let mut states = Vec::with_capacity(group.vars.len());
            for (name, var) in &group.vars {
                let step = state_step(tensors, &format!("{name}.step"), &mut used)?;
                let momentum_buffer = if self.momentum != 0.0 {
                    let key = format!("{name}.momentum_buffer");
                    let buf = state_tensor(tensors, &key, var, &mut used)?;
                    (step > 0).then_some(buf)
                } else {
                    None
                };
                states.push(SgdState {
                    momentum_buffer,
                    step,
                });
            }
            new_state.push(states);
        }
        check_unused(tensors, &used)?;
        self.state = new_state;
        self.step = step_count;
        Ok(())
    }
}
