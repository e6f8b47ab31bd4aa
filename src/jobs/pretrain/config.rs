//! Every knob of an XKD pre-training run, with the official values (xkd.md §2.6–§2.8, the
//! `kinetics400/xkd*.yaml` configs) as defaults. Names follow fine-tuning's wherever they mean the
//! same thing (`epochs`, `batch_size`, `base_lr`, `min_lr`, `warmup_lr`, `warmup_epochs`, `seed`,
//! `save_every_steps`, `drop_last`, `log_every`), and the official names otherwise (`vid_ema`,
//! `clip_grad`, `freeze_last_layer`, `recon_coeff`, ...), so `--set` reads the same across verbs.

use crate::data::pretrain_views::PretrainViews;
use crate::models::xkd::net::XkdVariant;
use crate::train::schedule::{linspace_at, Schedule, WarmupCosine};
use candle_core::Result;
use serde::{Deserialize, Serialize};

/// A pre-training run. Serialised into every checkpoint's `trainer_state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    pub epochs: usize,
    /// Samples per micro-batch (official: 32 per GPU, 256 in all).
    pub batch_size: usize,
    /// Micro-batches summed into one optimizer step.
    pub accum_steps: usize,
    /// Peak learning rate, reached after the warmup (official: 1e-4 for an effective batch of 256).
    pub base_lr: f64,
    /// The cosine's end value.
    pub min_lr: f64,
    pub warmup_lr: f64,
    pub warmup_epochs: usize,
    /// Weight decay of the decayed group, along a cosine from `weight_decay` to `weight_decay_end`
    /// (official: 0.3 → 0.3). Biases and 1-D tensors are never decayed.
    pub weight_decay: f64,
    pub weight_decay_end: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    /// Teacher EMA momentum per modality, along a cosine from the value to its `_end`.
    pub vid_ema: f64,
    pub vid_ema_end: f64,
    pub aud_ema: f64,
    pub aud_ema_end: f64,
    /// Per-parameter gradient-norm limit of the students (DINO's `clip_gradients`); 0 disables it.
    pub clip_grad: f64,
    /// Epochs during which the students' last head layer gets no update.
    pub freeze_last_layer: usize,
    /// Teacher temperatures: linear from the `warmup_` values over `warmup_teacher_temp_epochs`
    /// epochs, then constant (per epoch, as the official schedule).
    pub teacher_temp_video: f64,
    pub teacher_temp_audio: f64,
    pub warmup_teacher_temp_video: f64,
    pub warmup_teacher_temp_audio: f64,
    pub warmup_teacher_temp_epochs: usize,
    pub student_temp: f64,
    pub vid_mask_ratio: f64,
    pub aud_mask_ratio: f64,
    pub align_coeff: f64,
    pub kd_coeff: f64,
    pub recon_coeff: f64,
    /// DINO centre momentum of both distillation losses.
    pub center_momentum: f64,
    pub seed: u64,
    /// Write `last/` every this many optimizer steps inside an epoch (besides every epoch end).
    pub save_every_steps: Option<usize>,
    /// Drop the last incomplete batch of each epoch (official: true).
    pub drop_last: bool,
    /// Log (and read values back from the device) every this many optimizer steps.
    pub log_every: usize,
    /// Probe the frozen video student (linear SVM on a labelled dataset) every this many epochs,
    /// and after the last; 0: never.
    pub probe_every: usize,
    /// The probe's classifier: the papers' linear SVM (true) or a trained linear head (false).
    pub probe_svm: bool,
    /// The views of each sample (`views.frames`, `views.crop`, `views.local_frames`, ...).
    pub views: PretrainViews,
}

impl Default for PretrainConfig {
    /// The official XKD run (`kinetics400/xkd.yaml`) on one device.
    fn default() -> Self {
        Self {
            epochs: 800,
            batch_size: 32,
            accum_steps: 1,
            base_lr: 1e-4,
            min_lr: 0.0,
            warmup_lr: 0.0,
            warmup_epochs: 30,
            weight_decay: 0.3,
            weight_decay_end: 0.3,
            betas: [0.9, 0.95],
            eps: 1e-8,
            vid_ema: 0.997,
            vid_ema_end: 1.0,
            aud_ema: 0.997,
            aud_ema_end: 1.0,
            clip_grad: 0.3,
            freeze_last_layer: 0,
            teacher_temp_video: 0.1,
            teacher_temp_audio: 0.07,
            warmup_teacher_temp_video: 0.1,
            warmup_teacher_temp_audio: 0.07,
            warmup_teacher_temp_epochs: 30,
            student_temp: 0.1,
            vid_mask_ratio: 0.85,
            aud_mask_ratio: 0.8,
            align_coeff: 1.0,
            kd_coeff: 1.0,
            recon_coeff: 5.0,
            center_momentum: 0.9,
            seed: 99999,
            save_every_steps: None,
            drop_last: true,
            log_every: 10,
            probe_every: 0,
            probe_svm: true,
            views: PretrainViews::xkd(),
        }
    }
}

impl PretrainConfig {
    /// The official settings of a method: XKD-MAS and XKD-MATS warm their teacher temperatures up
    /// (video 0.09 → 0.11, audio 0.04 → 0.06) where XKD keeps them constant.
    pub fn official(variant: XkdVariant) -> Self {
        let mut cfg = Self::default();
        if variant != XkdVariant::Xkd {
            cfg.views = PretrainViews::xkd_multi_local();
            cfg.warmup_teacher_temp_video = 0.09;
            cfg.teacher_temp_video = 0.11;
            cfg.warmup_teacher_temp_audio = 0.04;
            cfg.teacher_temp_audio = 0.06;
        }
        cfg
    }

    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("accum_steps", self.accum_steps),
            ("log_every", self.log_every),
        ];
        for (key, v) in positive {
            if v == 0 {
                candle_core::bail!("pre-training setting `{key}` must be at least 1, found 0")
            }
        }
        for (key, v) in [
            ("vid_mask_ratio", self.vid_mask_ratio),
            ("aud_mask_ratio", self.aud_mask_ratio),
        ] {
            if !(0.0..1.0).contains(&v) {
                candle_core::bail!("pre-training setting `{key}` must be in [0, 1), found {v}")
            }
        }
        for (key, v) in [
            ("vid_ema", self.vid_ema),
            ("aud_ema", self.aud_ema),
            ("center_momentum", self.center_momentum),
        ] {
            if !(0.0..=1.0).contains(&v) {
                candle_core::bail!("pre-training setting `{key}` must be in [0, 1], found {v}")
            }
        }
        let temps = [
            ("teacher_temp_video", self.teacher_temp_video),
            ("teacher_temp_audio", self.teacher_temp_audio),
            ("warmup_teacher_temp_video", self.warmup_teacher_temp_video),
            ("warmup_teacher_temp_audio", self.warmup_teacher_temp_audio),
            ("student_temp", self.student_temp),
        ];
        for (key, v) in temps {
            if v <= 0.0 || !v.is_finite() {
                candle_core::bail!("pre-training setting `{key}` must be positive, found {v}")
            }
        }
        self.views.validate()?;
        if self.warmup_teacher_temp_epochs > self.epochs {
            candle_core::bail!(
                "warmup_teacher_temp_epochs ({}) is longer than the run ({} epochs), which the official schedule does not allow; give --set warmup_teacher_temp_epochs=N with N <= epochs",
                self.warmup_teacher_temp_epochs,
                self.epochs
            )
        }
        Ok(())
    }

    /// The per-step schedules for `steps_per_epoch` optimizer steps per epoch.
    pub fn lr_schedule(&self, steps_per_epoch: usize) -> Schedule {
        Schedule::PerStep(WarmupCosine::new(
            self.base_lr,
            self.min_lr,
            self.epochs,
            steps_per_epoch,
            self.warmup_epochs,
            self.warmup_lr,
        ))
    }

    pub fn weight_decay_schedule(&self, steps_per_epoch: usize) -> Schedule {
        let c = WarmupCosine::new(
            self.weight_decay,
            self.weight_decay_end,
            self.epochs,
            steps_per_epoch,
            0,
            0.0,
        );
        Schedule::PerStep(c)
    }

    /// (video, audio) EMA momentum schedules.
    pub fn ema_schedules(&self, steps_per_epoch: usize) -> (Schedule, Schedule) {
        let ema = |base, end| {
            Schedule::PerStep(WarmupCosine::new(
                base,
                end,
                self.epochs,
                steps_per_epoch,
                0,
                0.0,
            ))
        };
        (
            ema(self.vid_ema, self.vid_ema_end),
            ema(self.aud_ema, self.aud_ema_end),
        )
    }

    pub fn teacher_temperatures(&self) -> TeacherTemperatures {
        TeacherTemperatures {
            video: (self.warmup_teacher_temp_video, self.teacher_temp_video),
            audio: (self.warmup_teacher_temp_audio, self.teacher_temp_audio),
            warmup_epochs: self.warmup_teacher_temp_epochs,
        }
    }
}

/// The official per-epoch teacher temperature: `np.linspace(warmup, final, warmup_epochs)` for the
/// first epochs, then `final`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TeacherTemperatures {
    /// (warmup start, final) of each modality.
    pub video: (f64, f64),
    pub audio: (f64, f64),
    pub warmup_epochs: usize,
}

impl TeacherTemperatures {
    pub fn constant(video: f64, audio: f64) -> Self {
        Self {
            video: (video, video),
            audio: (audio, audio),
            warmup_epochs: 0,
        }
    }

    /// (video, audio) temperatures of `epoch` (0-based).
    pub fn at(&self, epoch: usize) -> (f64, f64) {
        let n = self.warmup_epochs;
        let at = |(start, end): (f64, f64)| match epoch < n {
            true => linspace_at(start, end, n, epoch),
            false => end,
        };
        (at(self.video), at(self.audio))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teacher_temperature_warms_up_like_linspace() {
        let t = PretrainConfig::official(XkdVariant::Mas).teacher_temperatures();
        let (v0, a0) = t.at(0);
        assert_eq!((v0, a0), (0.09, 0.04));
        let (v29, a29) = t.at(29);
        assert_eq!((v29, a29), (0.11, 0.06));
        assert_eq!(t.at(500), (0.11, 0.06));
        assert_eq!(
            PretrainConfig::official(XkdVariant::Xkd)
                .teacher_temperatures()
                .at(3),
            (0.1, 0.07)
        );
    }
}
