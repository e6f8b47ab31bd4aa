//! Learning-rate, weight-decay and EMA-momentum schedules.
//!
//! XKD (like DINO) precomputes per-iteration schedules with numpy; [`cosine_scheduler`] reproduces
//! `np.linspace` warmup + cosine decay value for value, and [`WarmupCosine`] gives the same numbers
//! one step at a time without materialising the vector. XKD's fine-tune
//! `warmup_cosine_scheduler(warmup_epochs, warmup_lr, num_epochs, base_lr, final_lr, ipe)` is
//! `cosine_scheduler(base_lr, final_lr, num_epochs, ipe, warmup_epochs, warmup_lr)`. CCL steps
//! `torch.optim.lr_scheduler.MultiStepLR` once per epoch: [`MultiStepLr`].

use std::f64::consts::PI;

/// `np.linspace(start, stop, n)`: `start + i * step` with the last value pinned to `stop`
/// (a single point is `start`).
pub fn linspace_at(start: f64, stop: f64, n: usize, i: usize) -> f64 {
    if n > 1 && i == n - 1 {
        return stop;
    }
    if n <= 1 {
        return start;
    }
    let step = (stop - start) / (n - 1) as f64;
    i as f64 * step + start
}

/// `final + 0.5 * (base - final) * (1 + cos(pi * i / n))`, in numpy's evaluation order.
fn cosine_at(base: f64, final_value: f64, i: usize, n: usize) -> f64 {
    final_value + 0.5 * (base - final_value) * (1.0 + (PI * i as f64 / n as f64).cos())
}

/// DINO/XKD `cosine_scheduler`: `warmup_epochs * ipe` values linearly from `start_warmup_value` to
/// `base_value`, then a half cosine from `base_value` towards `final_value` over the remaining
/// iterations (the final value itself is never reached). Length `epochs * ipe` (or the warmup
/// length if that is longer, as numpy would give).
pub fn cosine_scheduler(
    base_value: f64,
    final_value: f64,
    epochs: usize,
    iters_per_epoch: usize,
    warmup_epochs: usize,
    start_warmup_value: f64,
) -> Vec<f64> {
    let warmup_iters = warmup_epochs * iters_per_epoch;
    let mut schedule: Vec<f64> = (0..warmup_iters)
        .map(|i| linspace_at(start_warmup_value, base_value, warmup_iters, i))
        .collect();
    let n = (epochs * iters_per_epoch).saturating_sub(warmup_iters);
    schedule.extend((0..n).map(|i| cosine_at(base_value, final_value, i, n)));
    schedule
}

/// XKD's teacher EMA momentum: `cosine_scheduler(base, final, epochs, ipe, 0, 0)`, i.e. from
/// `base` (0.997 in the configs) towards 1.
pub fn ema_momentum_schedule(
    base: f64,
    final_value: f64,
    epochs: usize,
    iters_per_epoch: usize,
) -> Vec<f64> {
    cosine_scheduler(base, final_value, epochs, iters_per_epoch, 0, 0.0)
}

/// [`cosine_scheduler`] evaluated lazily: `value(step)` equals `cosine_scheduler(..)[step]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupCosine {
    pub base_value: f64,
    pub final_value: f64,
    pub start_warmup_value: f64,
    pub warmup_iters: usize,
    pub total_iters: usize,
}

impl WarmupCosine {
    pub fn new(
        base_value: f64,
        final_value: f64,
        epochs: usize,
        iters_per_epoch: usize,
        warmup_epochs: usize,
        start_warmup_value: f64,
    ) -> Self {
        Self {
            base_value,
            final_value,
            start_warmup_value,
            warmup_iters: warmup_epochs * iters_per_epoch,
            total_iters: epochs * iters_per_epoch,
        }
    }

    /// Number of scheduled steps (the length of the equivalent vector).
    pub fn len(&self) -> usize {
        self.total_iters.max(self.warmup_iters)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at iteration `step`; steps past the end keep the last value (0 for an empty
    /// schedule) rather than failing, so a resumed run with an extra iteration stays defined.
    pub fn value(&self, step: usize) -> f64 {
        let len = self.len();
        if len == 0 {
            return 0.0;
        }
        let step = step.min(len - 1);
        if step < self.warmup_iters {
            return linspace_at(
                self.start_warmup_value,
                self.base_value,
                self.warmup_iters,
                step,
            );
        }
        let n = self.total_iters - self.warmup_iters;
        cosine_at(
            self.base_value,
            self.final_value,
            step - self.warmup_iters,
            n,
        )
    }
}

/// `torch.optim.lr_scheduler.MultiStepLR` stepped once per epoch: the lr is multiplied by
/// `gamma^k` when the epoch counter reaches a milestone listed `k` times. The product is built
/// epoch by epoch, as PyTorch's chainable form does, so the rounding matches too.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiStepLr {
    pub base_lr: f64,
    pub milestones: Vec<usize>,
    pub gamma: f64,
}

impl MultiStepLr {
    pub fn new(base_lr: f64, milestones: Vec<usize>, gamma: f64) -> Self {
        Self {
            base_lr,
            milestones,
            gamma,
        }
    }

    /// The lr used during `epoch` (0-based), i.e. after `epoch` calls of `scheduler.step()`.
    pub fn value(&self, epoch: usize) -> f64 {
        let mut lr = self.base_lr;
        for e in 0..=epoch {
            let k = self.milestones.iter().filter(|&&m| m == e).count();
            if k > 0 {
                lr *= self.gamma.powf(k as f64);
            }
        }
        lr
    }
}

/// A scheduled value as the engine asks for it: a function of the optimizer step and the epoch, so
/// a resumed run needs nothing but its position (DINO's per-iteration arrays, indexed lazily).
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Constant(f64),
    /// Per optimizer step (XKD's warmup + cosine of lr, weight decay and EMA momentum).
    PerStep(WarmupCosine),
    /// Per epoch (CCL's MultiStepLR).
    PerEpoch(MultiStepLr),
    /// Recorded values, one per optimizer step (a replay of an official run); steps past the end
    /// keep the last value.
    Table(Vec<f64>),
}

impl Schedule {
    /// The value during optimizer step `global_step` (0-based), which falls in `epoch` (0-based).
    pub fn value(&self, global_step: u64, epoch: usize) -> f64 {
        match self {
            Self::Constant(v) => *v,
            Self::PerStep(s) => s.value(global_step as usize),
            Self::PerEpoch(s) => s.value(epoch),
            Self::Table(values) => {
                let last = values.len().saturating_sub(1);
                values
                    .get((global_step as usize).min(last))
                    .copied()
                    .unwrap_or(0.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_like_numpy() {
        let v: Vec<f64> = (0..5).map(|i| linspace_at(0.0, 1.0, 5, i)).collect();
        assert_eq!(v, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(linspace_at(2.0, 3.0, 1, 0), 2.0);
    }
}
