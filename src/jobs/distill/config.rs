//! Every knob of a CCL distillation run, with the official UCF51 recipe (ccl.md §5.1, the
//! `scripts/run_ccl_*.sh` scripts and `opts.py`) as defaults. Names follow fine-tuning's wherever
//! they mean the same thing (`epochs`, `batch_size`, `base_lr`, `weight_decay`, `momentum`,
//! `milestones`, `gamma`, `eval_every`, `seed`, ...), so `--set` reads the same across verbs.

use crate::jobs::finetune::augment::AugmentConfig;
use crate::train::schedule::{MultiStepLr, Schedule};
use candle_core::Result;
use serde::{Deserialize, Serialize};

/// Which teachers a run distils from (`--method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DistillMethod {
    /// CCL-A: the audio teacher (precomputed PANNs features; rows without audio leave the audio
    /// terms).
    #[serde(rename = "ccl-a")]
    CclA,
    /// CCL-I: the image teacher (a frozen ResNet on one frame of the clip).
    #[serde(rename = "ccl-i")]
    CclI,
    /// CCL-AI: both teachers, the contrastive and KL terms weighted by `loss_weight`.
    #[serde(rename = "ccl-ai")]
    CclAi,
}

impl DistillMethod {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "ccl-a" => Ok(Self::CclA),
            "ccl-i" => Ok(Self::CclI),
            "ccl-ai" => Ok(Self::CclAi),
            other => candle_core::bail!("--method {other}: expected ccl-a, ccl-i or ccl-ai"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::CclA => "ccl-a",
            Self::CclI => "ccl-i",
            Self::CclAi => "ccl-ai",
        }
    }

    pub fn uses_audio(self) -> bool {
        matches!(self, Self::CclA | Self::CclAi)
    }

    pub fn uses_image(self) -> bool {
        matches!(self, Self::CclI | Self::CclAi)
    }
}

/// A distillation run. Serialised into every checkpoint's `trainer_state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistillConfig {
    pub epochs: usize,
    /// Clips per micro-batch (official: 16).
    pub batch_size: usize,
    /// Micro-batches summed into one optimizer step (official: 1).
    pub accum_steps: usize,
    /// The student's SGD learning rate, decayed by `gamma` at each of `milestones` (epochs).
    pub base_lr: f64,
    pub milestones: Vec<usize>,
    pub gamma: f64,
    /// The composition heads' SGD learning rate: constant (the official heads have no scheduler).
    pub head_lr: f64,
    /// SGD momentum, coupled weight decay (every parameter decayed) and Nesterov, for the student
    /// and the heads alike (the official three optimisers share them).
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
    /// CCL-AI's weight w of the contrastive and KL terms in the video loss (`--loss_weight`);
    /// CCL-A and CCL-I use 1.
    pub loss_weight: f64,
    /// Frames per clip and crop size of the student (official: 16 at 112²).
    pub frames: usize,
    pub crop: usize,
    /// The training clips' augmentation (`augment.scale`, `augment.hflip_prob`, ... as
    /// fine-tuning's; official: RandomResizedCrop scale 0.25-1 and a horizontal flip).
    pub augment: AugmentConfig,
    /// Evaluate video-level (every non-overlapping window, softmax averaged) every this many
    /// epochs, and after the last; `best/` keeps the best top-1.
    pub eval_every: usize,
    /// Clips per forward pass at evaluation.
    pub eval_batch: usize,
    pub seed: u64,
    /// Write `last/` every this many optimizer steps inside an epoch (besides every epoch end).
    pub save_every_steps: Option<usize>,
    /// Drop the last incomplete batch of each epoch (official: false).
    pub drop_last: bool,
    /// Log (and read values back from the device) every this many optimizer steps.
    pub log_every: usize,
}

impl Default for DistillConfig {
    /// The official UCF51 recipe (ccl.md §5.1), `--manual_seed 1`.
    fn default() -> Self {
        Self {
            epochs: 300,
            batch_size: 16,
            accum_steps: 1,
            base_lr: 1e-3,
            milestones: vec![150, 225],
            gamma: 0.1,
            head_lr: 1e-3,
            momentum: 0.9,
            weight_decay: 5e-4,
            nesterov: false,
            loss_weight: crate::objectives::ccl::CCL_AI_WEIGHT,
            frames: 16,
            crop: 112,
            augment: AugmentConfig::ccl(),
            eval_every: 1,
            eval_batch: 16,
            seed: 1,
            save_every_steps: None,
            drop_last: false,
            log_every: 1,
        }
    }
}

/// Settings a resumed run may change: how long it goes on, and how often it saves, logs and
/// evaluates.
pub const RESUME_FREE_KEYS: [&str; 5] = [
    "epochs",
    "save_every_steps",
    "log_every",
    "eval_every",
    "eval_batch",
];

impl DistillConfig {
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("accum_steps", self.accum_steps),
            ("frames", self.frames),
            ("crop", self.crop),
            ("eval_every", self.eval_every),
            ("eval_batch", self.eval_batch),
            ("log_every", self.log_every),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            candle_core::bail!("distillation setting `{key}` must be at least 1, found 0")
        }
        if self.batch_size < 2 {
            candle_core::bail!(
                "distillation setting `batch_size` must be at least 2 (the contrastive loss needs a negative for every clip), found {}",
                self.batch_size
            )
        }
        let rates = [
            ("base_lr", self.base_lr),
            ("head_lr", self.head_lr),
            ("momentum", self.momentum),
            ("weight_decay", self.weight_decay),
            ("gamma", self.gamma),
            ("loss_weight", self.loss_weight),
        ];
        if let Some((key, v)) = rates.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
            candle_core::bail!(
                "distillation setting `{key}` must be a finite value >= 0, found {v}"
            )
        }
        if self.nesterov && self.momentum == 0.0 {
            candle_core::bail!("distillation setting `nesterov = true` needs `momentum` > 0")
        }
        if self.milestones.windows(2).any(|w| w[0] >= w[1]) {
            candle_core::bail!(
                "distillation setting `milestones` must increase, found {:?}",
                self.milestones
            )
        }
        self.augment.validate()
    }

    /// The student's lr: MultiStepLR, stepped at the end of every epoch.
    pub fn student_schedule(&self) -> Schedule {
        Schedule::PerEpoch(MultiStepLr::new(
            self.base_lr,
            self.milestones.clone(),
            self.gamma,
        ))
    }

    /// The weight of the video loss's distillation terms for `method`.
    pub fn video_loss_weight(&self, method: DistillMethod) -> f64 {
        match method {
            DistillMethod::CclAi => self.loss_weight,
            DistillMethod::CclA | DistillMethod::CclI => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_official_ucf51_recipe_and_valid() {
        let cfg = DistillConfig::default();
        cfg.validate().unwrap();
        let lr = cfg.student_schedule();
        assert_eq!(lr.value(0, 149), 1e-3);
        assert!((lr.value(0, 150) - 1e-4).abs() < 1e-15);
        assert!((lr.value(0, 225) - 1e-5).abs() < 1e-16);
        assert_eq!(cfg.video_loss_weight(DistillMethod::CclAi), 0.5);
        assert_eq!(cfg.video_loss_weight(DistillMethod::CclA), 1.0);
    }

    #[test]
    fn bad_settings_name_the_key() {
        let cfg = DistillConfig {
            batch_size: 1,
            ..Default::default()
        };
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("batch_size"));
        let cfg = DistillConfig {
            milestones: vec![10, 5],
            ..Default::default()
        };
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("milestones"));
    }
}
