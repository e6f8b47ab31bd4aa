//! torchvision's `ColorJitter` and `RandomGrayscale` on u8 RGB frames, as torchvision applies them
//! to PIL images (`torchvision.transforms.functional` on PIL):
//! * brightness / contrast / saturation: `ImageEnhance.Brightness` / `Contrast` / `Color`
//!   ([`pil_ops::brightness`], [`pil_ops::contrast`], [`pil_ops::color`], Pillow-exact);
//! * hue: `img.convert("HSV")`, the H channel shifted as uint8 by `uint8(int(hue * 255))` with
//!   wraparound, then `convert("RGB")` ([`hsv_from_rgb`], [`rgb_from_hsv`], Pillow-exact);
//! * grayscale: `convert("L")` (ITU-R 601-2 luma in Pillow's fixed point) replicated to three
//!   channels ([`to_grayscale`]).
//!
//! A clip gets one [`JitterDraw`] (the order of the four ops and their factors), applied
//! identically to every frame. Contrast blends with each frame's own mean grey level, as
//! torchvision does when it is given the frames one by one.

use super::pil_ops::{self, luma};
use crate::nn::rng::SeededRng;
use candle_core::Result;
use image::RgbImage;

/// One of ColorJitter's four ops (torchvision's `fn_idx` 0, 1, 2, 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JitterOp {
    Brightness,
    Contrast,
    Saturation,
    Hue,
}

impl JitterOp {
    /// The ops in torchvision's index order.
    pub const ALL: [JitterOp; 4] = [
        JitterOp::Brightness,
        JitterOp::Contrast,
        JitterOp::Saturation,
        JitterOp::Hue,
    ];
}

/// The random choices of one `ColorJitter` call: the order of the ops and the factors. A factor
/// is `None` when its strength is 0 (torchvision then skips the op and draws nothing for it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterDraw {
    /// The order the ops are applied in (a permutation of [`JitterOp::ALL`]).
    pub order: [JitterOp; 4],
    /// Brightness factor in [max(0, 1 - b), 1 + b].
    pub brightness: Option<f64>,
    /// Contrast factor in [max(0, 1 - c), 1 + c].
    pub contrast: Option<f64>,
    /// Saturation factor in [max(0, 1 - s), 1 + s].
    pub saturation: Option<f64>,
    /// Hue shift in [-h, h] (fraction of the hue circle).
    pub hue: Option<f64>,
}

/// `torchvision.transforms.ColorJitter(brightness, contrast, saturation, hue)` with scalar
/// strengths (0 turns an op off).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorJitter {
    /// Brightness strength (≥ 0).
    pub brightness: f64,
    /// Contrast strength (≥ 0).
    pub contrast: f64,
    /// Saturation strength (≥ 0).
    pub saturation: f64,
    /// Hue strength, in [0, 0.5].
    pub hue: f64,
}

impl JitterDraw {
    /// Applies a draw to one frame, in place (the ops in the drawn order, skipping those off).
    pub fn apply(&self, img: &mut RgbImage) {
        for op in self.order {
            match op {
                JitterOp::Brightness => {
                    if let Some(f) = self.brightness {
                        pil_ops::brightness(img, f);
                    }
                }
                JitterOp::Contrast => {
                    if let Some(f) = self.contrast {
                        pil_ops::contrast(img, f);
                    }
                }
                JitterOp::Saturation => {
                    if let Some(f) = self.saturation {
                        pil_ops::color(img, f);
                    }
                }
                JitterOp::Hue => {
                    if let Some(f) = self.hue {
                        adjust_hue(img, f);
                    }
                }
            }
        }
    }
}

fn msg(s: String) -> candle_core::Error {
    candle_core::Error::Msg(s)
}

/// The factor range of a brightness/contrast/saturation strength, `None` when off.
fn enhance_range(v: f64) -> Option<(f64, f64)> {
    (v != 0.0).then(|| ((1.0 - v).max(0.0), 1.0 + v))
}

fn uniform(rng: &mut SeededRng, (lo, hi): (f64, f64)) -> f64 {
    lo + (hi - lo) * rng.uniform_f64()
}

impl ColorJitter {
    /// XKD's `ColorJitter(0.4, 0.4, 0.4, 0.2)`.
    pub fn xkd() -> Self {
        Self {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.2,
        }
    }

    /// Checks the strengths as torchvision does: finite, non-negative, hue at most 0.5.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(msg(format!(
                    "color jitter: {name} is {v}, expected a finite value >= 0"
                )));
            }
        }
        if !(0.0..=0.5).contains(&self.hue) {
            return Err(msg(format!(
                "color jitter: hue is {}, expected a value in [0, 0.5]",
                self.hue
            )));
        }
        Ok(())
    }

    /// Draws the op order and the factors for one clip, in `ColorJitter.get_params`' order of
    /// random calls: the permutation, then brightness, contrast, saturation, hue (each only when
    /// on).
    pub fn draw(&self, rng: &mut SeededRng) -> JitterDraw {
        let perm = rng.permutation(4);
        let order = [0, 1, 2, 3].map(|i| JitterOp::ALL[perm[i]]);
        let brightness = enhance_range(self.brightness).map(|r| uniform(rng, r));
        let contrast = enhance_range(self.contrast).map(|r| uniform(rng, r));
        let saturation = enhance_range(self.saturation).map(|r| uniform(rng, r));
        let hue = (self.hue != 0.0).then(|| uniform(rng, (-self.hue, self.hue)));
        JitterDraw {
            order,
            brightness,
            contrast,
            saturation,
            hue,
        }
    }

    /// Applies a draw to one frame, in place (see [`JitterDraw::apply`]).
    pub fn apply(&self, draw: &JitterDraw, img: &mut RgbImage) {
        draw.apply(img);
    }

    /// Draws once and applies the same draw to every frame of a clip, in place.
    pub fn apply_clip(&self, frames: &mut [RgbImage], rng: &mut SeededRng) -> JitterDraw {
        let draw = self.draw(rng);
        for f in frames.iter_mut() {
            self.apply(&draw, f);
        }
        draw
    }
}

/// Pillow's `convert("HSV")` of one RGB pixel (`rgb2hsv_row` in `Convert.c`, following
/// `colorsys`), with its mix of f32 variables and f64 constants.
pub fn hsv_from_rgb(rgb: [u8; 3]) -> [u8; 3] {
    let [r, g, b] = rgb;
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    if maxc == minc {
        return [0, 0, maxc];
    }
    let cr = (maxc - minc) as f32;
    let s = cr / maxc as f32;
    let rc = (maxc - r) as f32 / cr;
    let gc = (maxc - g) as f32 / cr;
    let bc = (maxc - b) as f32 / cr;
    let h: f32 = if r == maxc {
        bc - gc
    } else if g == maxc {
        (2.0 + rc as f64 - bc as f64) as f32
    } else {
        (4.0 + gc as f64 - rc as f64) as f32
    };
    // C `fmod` of a positive value is Rust's `%`.
    let h = ((h as f64 / 6.0 + 1.0) % 1.0) as f32;
    let clip8 = |v: f64| (v as i32).clamp(0, 255) as u8;
    [clip8(h as f64 * 255.0), clip8(s as f64 * 255.0), maxc]
}

/// Pillow's `convert("RGB")` of one HSV pixel (`hsv2rgb` in `Convert.c`, following `colorsys`):
/// sector and remainder of `h * 6 / 255`, then `round(v * (1 - s·…))` (half away from zero).
pub fn rgb_from_hsv(hsv: [u8; 3]) -> [u8; 3] {
    let [h, s, v] = hsv;
    if s == 0 {
        return [v, v, v];
    }
    let h6 = h as f32 as f64 * 6.0 / 255.0;
    let i = h6.floor() as i32;
    let f = (h6 - i as f32 as f64) as f32;
    let fs = (s as f32 as f64 / 255.0) as f32;
    let vf = v as f32 as f64;
    let clip8 = |x: f64| (x.round() as i32).clamp(0, 255) as u8;
    let p = clip8(vf * (1.0 - fs as f64));
    let q = clip8(vf * (1.0 - (fs * f) as f64));
    let t = clip8(vf * (1.0 - fs as f64 * (1.0 - f as f64)));
    match i % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// The uint8 shift torchvision adds to the H channel: `np.int64(hue * 255).astype(np.uint8)`
/// (truncation toward zero, then modulo 256).
pub fn hue_shift(hue_factor: f64) -> u8 {
    ((hue_factor * 255.0) as i64).rem_euclid(256) as u8
}

/// torchvision's `adjust_hue` on a PIL RGB image: to HSV, H += [`hue_shift`] with wraparound,
/// back to RGB. `hue_factor` should lie in [-0.5, 0.5] (torchvision's check; [`ColorJitter`]
/// draws stay inside it).
pub fn adjust_hue(img: &mut RgbImage, hue_factor: f64) {
    let shift = hue_shift(hue_factor);
    for p in (**img).chunks_exact_mut(3) {
        let [h, s, v] = hsv_from_rgb([p[0], p[1], p[2]]);
        p.copy_from_slice(&rgb_from_hsv([h.wrapping_add(shift), s, v]));
    }
}

/// Pillow's `convert("L")` then back to three channels (torchvision `rgb_to_grayscale(img,
/// num_output_channels=3)` on PIL), in place.
pub fn to_grayscale(img: &mut RgbImage) {
    for p in (**img).chunks_exact_mut(3) {
        let l = luma(p);
        p.fill(l);
    }
}

/// `RandomGrayscale(p)`'s coin: one uniform draw, grey when it is below `p`.
pub fn gray_coin(p: f64, rng: &mut SeededRng) -> bool {
    rng.uniform_f64() < p
}
