//! RandAugment as timm's `rand_augment_transform` in the SlowFast/VideoMAE copy XKD uses
//! (`rand-m7-n4-mstd0.5-inc1`): `n` ops drawn uniformly with replacement from
//! `_RAND_INCREASING_TRANSFORMS`, each applied with probability 0.5 at a magnitude drawn from
//! N(m, mstd) clipped to [0, 10], with a random sign where timm negates. One draw per clip: every
//! frame gets the same ops and arguments.
//!
//! VideoMAE's `create_random_augment` passes `translate_const` (unused by the `*Rel` translations,
//! which move by `0.45 · magnitude/10 · size`) and bilinear interpolation but no `img_mean`, so the
//! fill colour is timm's `_FILL` = (128, 128, 128).

use super::pil_ops as ops;
use crate::nn::rng::SeededRng;
use image::RgbImage;

const MAX_LEVEL: f64 = 10.0;

/// The ops of `_RAND_INCREASING_TRANSFORMS`, in timm's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AugOp {
    AutoContrast,
    Equalize,
    Invert,
    Rotate,
    PosterizeIncreasing,
    SolarizeIncreasing,
    SolarizeAdd,
    ColorIncreasing,
    ContrastIncreasing,
    BrightnessIncreasing,
    SharpnessIncreasing,
    ShearX,
    ShearY,
    TranslateXRel,
    TranslateYRel,
}

impl AugOp {
    pub const INCREASING: [AugOp; 15] = [
        AugOp::AutoContrast,
        AugOp::Equalize,
        AugOp::Invert,
        AugOp::Rotate,
        AugOp::PosterizeIncreasing,
        AugOp::SolarizeIncreasing,
        AugOp::SolarizeAdd,
        AugOp::ColorIncreasing,
        AugOp::ContrastIncreasing,
        AugOp::BrightnessIncreasing,
        AugOp::SharpnessIncreasing,
        AugOp::ShearX,
        AugOp::ShearY,
        AugOp::TranslateXRel,
        AugOp::TranslateYRel,
    ];

    /// Whether timm's level function draws a random sign (`_randomly_negate`).
    fn signed(self) -> bool {
        matches!(
            self,
            AugOp::Rotate
                | AugOp::ColorIncreasing
                | AugOp::ContrastIncreasing
                | AugOp::BrightnessIncreasing
                | AugOp::SharpnessIncreasing
                | AugOp::ShearX
                | AugOp::ShearY
                | AugOp::TranslateXRel
                | AugOp::TranslateYRel
        )
    }

    /// timm's `LEVEL_TO_ARG` for this op at `level` in [0, 10], `negate` the drawn sign.
    pub fn arg(self, level: f64, negate: bool) -> f64 {
        let s = if negate && self.signed() { -1.0 } else { 1.0 };
        let l = level / MAX_LEVEL;
        match self {
            AugOp::AutoContrast | AugOp::Equalize | AugOp::Invert => 0.0,
            AugOp::Rotate => s * l * 30.0,
            AugOp::PosterizeIncreasing => (4 - (l * 4.0) as i64) as f64,
            AugOp::SolarizeIncreasing => (256 - (l * 256.0) as i64) as f64,
            AugOp::SolarizeAdd => ((l * 110.0) as i64) as f64,
            AugOp::ColorIncreasing
            | AugOp::ContrastIncreasing
            | AugOp::BrightnessIncreasing
            | AugOp::SharpnessIncreasing => 1.0 + s * l * 0.9,
            AugOp::ShearX | AugOp::ShearY => s * l * 0.3,
            AugOp::TranslateXRel | AugOp::TranslateYRel => s * l * 0.45,
        }
    }

    /// Applies the op with its (already computed) argument, as timm's op functions on PIL.
    pub fn apply(self, img: &mut RgbImage, arg: f64, fill: [u8; 3]) {
        let (w, h) = (img.width() as f64, img.height() as f64);
        match self {
            AugOp::AutoContrast => {
                let lut = ops::autocontrast_lut(img);
                ops::apply_lut(img, &lut)
            }
            AugOp::Equalize => {
                let lut = ops::equalize_lut(img);
                ops::apply_lut(img, &lut)
            }
            AugOp::Invert => ops::apply_lut(img, &ops::invert_lut()),
            AugOp::Rotate => *img = ops::rotate(img, arg, fill),
            AugOp::PosterizeIncreasing => ops::apply_lut(img, &ops::posterize_lut(arg as u32)),
            AugOp::SolarizeIncreasing => ops::apply_lut(img, &ops::solarize_lut(arg as i64)),
            AugOp::SolarizeAdd => ops::apply_lut(img, &ops::solarize_add_lut(arg as i64)),
            AugOp::ColorIncreasing => ops::color(img, arg),
            AugOp::ContrastIncreasing => ops::contrast(img, arg),
            AugOp::BrightnessIncreasing => ops::brightness(img, arg),
            AugOp::SharpnessIncreasing => ops::sharpness(img, arg),
            AugOp::ShearX => *img = ops::affine(img, [1.0, arg, 0.0, 0.0, 1.0, 0.0], fill),
            AugOp::ShearY => *img = ops::affine(img, [1.0, 0.0, 0.0, arg, 1.0, 0.0], fill),
            AugOp::TranslateXRel => {
                *img = ops::affine(img, [1.0, 0.0, arg * w, 0.0, 1.0, 0.0], fill)
            }
            AugOp::TranslateYRel => {
                *img = ops::affine(img, [1.0, 0.0, 0.0, 0.0, 1.0, arg * h], fill)
            }
        }
    }
}

/// RandAugment's parameters (timm's config string `rand-m{magnitude}-n{num_ops}-mstd{..}-inc1`).
#[derive(Debug, Clone, PartialEq)]
pub struct RandAugment {
    pub magnitude: f64,
    pub magnitude_std: f64,
    pub num_ops: usize,
    /// Probability that each drawn op is applied.
    pub prob: f64,
    pub ops: Vec<AugOp>,
    pub fill: [u8; 3],
}

/// One op as drawn for a clip (ops whose 0.5 coin said skip are left out), with timm's argument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DrawnOp {
    pub op: AugOp,
    pub arg: f64,
}

impl RandAugment {
    /// `rand-m7-n4-mstd0.5-inc1` with VideoMAE's hparams (XKD fine-tuning).
    pub fn xkd() -> Self {
        Self {
            magnitude: 7.0,
            magnitude_std: 0.5,
            num_ops: 4,
            prob: 0.5,
            ops: AugOp::INCREASING.to_vec(),
            fill: [128, 128, 128],
        }
    }

    /// Draws the ops for one clip (in timm's order of random calls per op: apply coin, magnitude,
    /// sign), leaving out those whose coin says skip.
    pub fn draw(&self, rng: &mut SeededRng) -> Vec<DrawnOp> {
        let picks: Vec<AugOp> = (0..self.num_ops)
            .map(|_| self.ops[rng.range(0, self.ops.len())])
            .collect();
        let mut drawn = Vec::new();
        for op in picks {
            if self.prob < 1.0 && rng.uniform_f64() > self.prob {
                continue;
            }
            let mut m = self.magnitude;
            if self.magnitude_std > 0.0 {
                m += self.magnitude_std * rng.normal_f64();
            }
            let m = m.clamp(0.0, MAX_LEVEL);
            let negate = op.signed() && rng.uniform_f64() > 0.5;
            drawn.push(DrawnOp {
                op,
                arg: op.arg(m, negate),
            });
        }
        drawn
    }

    /// Draws once and applies the same ops to every frame, in place.
    pub fn apply(&self, frames: &mut [RgbImage], rng: &mut SeededRng) {
        let drawn = self.draw(rng);
        for f in frames.iter_mut() {
            for d in &drawn {
                d.op.apply(f, d.arg, self.fill);
            }
        }
    }
}
