//! The training-clip augmentation of a fine-tuning run, as `[augment]` in its TOML. Test views
//! always follow the model's evaluation protocol; these settings only change training clips.

use crate::data::transforms::rand_augment::RandAugment;
use crate::data::transforms::TrainAugment;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    /// RandomResizedCrop: the crop's area as a fraction of the frame's.
    pub scale: [f64; 2],
    /// RandomResizedCrop: the crop's aspect ratio (w / h).
    pub ratio: [f64; 2],
    pub hflip_prob: f64,
    /// RandAugment (timm, increasing ops, the same ops for every frame of a clip): ops per clip
    /// (0 = off) and magnitude (0-10, jittered with std 0.5).
    pub rand_augment_ops: usize,
    pub rand_augment_magnitude: f64,
    /// timm RandomErasing ("pixel" mode) probability per frame.
    pub erasing_prob: f64,
}

impl AugmentConfig {
    /// XKD / VideoMAE fine-tuning (xkd.md §5.1): RandAugment m7 n4, crop scale (0.2, 0.766),
    /// flip 0.5, random erasing 0.25.
    pub fn xkd() -> Self {
        Self {
            scale: [0.2, 0.766],
            ratio: [0.75, 4.0 / 3.0],
            hflip_prob: 0.5,
            rand_augment_ops: 4,
            rand_augment_magnitude: 7.0,
            erasing_prob: 0.25,
        }
    }

    /// CCL (ccl.md §6.3): crop scale (0.25, 1), flip 0.5, nothing else.
    pub fn ccl() -> Self {
        Self {
            scale: [0.25, 1.0],
            ratio: [0.75, 1.0 / 0.75],
            hflip_prob: 0.5,
            rand_augment_ops: 0,
            rand_augment_magnitude: 0.0,
            erasing_prob: 0.0,
        }
    }

    pub fn validate(&self) -> candle_core::Result<()> {
        let [lo, hi] = self.scale;
        if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
            candle_core::bail!("augment.scale must satisfy 0 < min <= max <= 1, found {lo}, {hi}")
        }
        let [lo, hi] = self.ratio;
        if !(lo > 0.0 && lo <= hi) {
            candle_core::bail!("augment.ratio must satisfy 0 < min <= max, found {lo}, {hi}")
        }
        for (key, p) in [
            ("augment.hflip_prob", self.hflip_prob),
            ("augment.erasing_prob", self.erasing_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                candle_core::bail!("{key} must be in [0, 1], found {p}")
            }
        }
        if !(0.0..=10.0).contains(&self.rand_augment_magnitude) {
            candle_core::bail!(
                "augment.rand_augment_magnitude must be in [0, 10], found {}",
                self.rand_augment_magnitude
            )
        }
        Ok(())
    }

    /// These settings on a model's training transform (its size and resize kind are kept).
    pub fn apply_to(&self, train: &mut TrainAugment) {
        train.scale = (self.scale[0], self.scale[1]);
        train.ratio = (self.ratio[0], self.ratio[1]);
        train.hflip_prob = self.hflip_prob;
        train.erasing_prob = self.erasing_prob;
        train.rand_augment = (self.rand_augment_ops > 0).then(|| RandAugment {
            num_ops: self.rand_augment_ops,
            magnitude: self.rand_augment_magnitude,
            ..RandAugment::xkd()
        });
    }
}
