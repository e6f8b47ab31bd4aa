//! The optimizers a job hands the engine: AdamW or SGD behind one interface, each in a named slot
//! with its own learning-rate schedule (and, optionally, a weight-decay schedule).
//!
//! Several slots step in one optimizer step over disjoint parameter sets (CCL steps the student and
//! each composition head with its own SGD; only the student's lr is scheduled).

use super::optim::{AdamW, ParamGroup};
use super::schedule::Schedule;
use super::sgd::Sgd;
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use std::collections::HashMap;

/// AdamW or SGD behind one interface.
pub enum Optimizer {
    AdamW(AdamW),
    Sgd(Sgd),
}

impl Optimizer {
    /// `adamw` or `sgd`, as recorded in checkpoints.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AdamW(_) => "adamw",
            Self::Sgd(_) => "sgd",
        }
    }

    pub fn groups(&self) -> &[ParamGroup] {
        match self {
            Self::AdamW(o) => o.groups(),
            Self::Sgd(o) => o.groups(),
        }
    }

    /// Every parameter this optimizer steps.
    pub fn vars(&self) -> Vec<Var> {
        self.groups()
            .iter()
            .flat_map(|g| g.vars.iter().map(|(_, v)| v.clone()))
            .collect()
    }

    pub fn set_learning_rate(&mut self, lr: f64) {
        match self {
            Self::AdamW(o) => o.set_learning_rate(lr),
            Self::Sgd(o) => o.set_learning_rate(lr),
        }
    }

    pub fn set_weight_decay(&mut self, group: usize, weight_decay: f64) -> Result<()> {
        match self {
            Self::AdamW(o) => o.set_weight_decay(group, weight_decay),
            Self::Sgd(o) => o.set_weight_decay(group, weight_decay),
        }
    }

    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        match self {
            Self::AdamW(o) => o.step(grads),
            Self::Sgd(o) => o.step(grads),
        }
    }

    pub fn step_count(&self) -> u64 {
        match self {
            Self::AdamW(o) => o.step_count(),
            Self::Sgd(o) => o.step_count(),
        }
    }

    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        match self {
            Self::AdamW(o) => o.state_tensors(),
            Self::Sgd(o) => o.state_tensors(),
        }
    }

    pub fn load_state(&mut self, t: &HashMap<String, Tensor>, steps: u64) -> Result<()> {
        match self {
            Self::AdamW(o) => o.load_state(t, steps),
            Self::Sgd(o) => o.load_state(t, steps),
        }
    }
}

/// One optimizer of a run, with what schedules it.
pub struct OptimizerSlot {
    /// Names the slot in checkpoints and metrics (`lr` is logged for the first slot, `lr_<name>`
    /// for the others).
    pub name: String,
    pub optimizer: Optimizer,
    /// The base learning rate; each group steps with it times its `lr_scale`.
    pub lr: Schedule,
    /// When set, the weight decay of the groups that decay (those built with a non-zero weight
    /// decay) follows this schedule; the others stay at 0 (XKD's per-iteration cosine).
    pub weight_decay: Option<Schedule>,
    decayed_groups: Vec<usize>,
}

impl OptimizerSlot {
    pub fn new(name: impl Into<String>, optimizer: Optimizer, lr: Schedule) -> Self {
        let decayed_groups = optimizer
            .groups()
            .iter()
            .enumerate()
            .filter(|(_, g)| g.weight_decay != 0.0)
            .map(|(i, _)| i)
            .collect();
        Self {
            name: name.into(),
            optimizer,
            lr,
            weight_decay: None,
            decayed_groups,
        }
    }

    /// The same slot with a weight-decay schedule.
    pub fn with_weight_decay(mut self, schedule: Schedule) -> Self {
        self.weight_decay = Some(schedule);
        self
    }

    /// The same slot with a weight-decay schedule on the groups named by index (XKD pre-training
    /// schedules `param_groups[1]` whatever its starting value); the other groups keep theirs.
    pub fn with_weight_decay_on(mut self, schedule: Schedule, groups: Vec<usize>) -> Result<Self> {
        let n = self.optimizer.groups().len();
        if let Some(g) = groups.iter().find(|&&g| g >= n) {
            candle_core::bail!(
                "slot `{}`: no parameter group {g} to decay ({n} groups)",
                self.name
            )
        }
        self.decayed_groups = groups;
        self.weight_decay = Some(schedule);
        Ok(self)
    }

    /// Sets the scheduled values of optimizer step `global_step` in `epoch`; returns the base lr
    /// and, when scheduled, the weight decay.
    pub fn schedule(&mut self, global_step: u64, epoch: usize) -> Result<(f64, Option<f64>)> {
        let lr = self.lr.value(global_step, epoch);
        self.optimizer.set_learning_rate(lr);
        let wd = match &self.weight_decay {
            Some(s) => {
                let wd = s.value(global_step, epoch);
                for &g in &self.decayed_groups {
                    self.optimizer.set_weight_decay(g, wd)?;
                }
                Some(wd)
            }
            None => None,
        };
        Ok((lr, wd))
    }
}
