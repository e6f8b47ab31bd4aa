//! timm's `RandomErasing` (mode "pixel", one box) as VideoMAE applies it to a clip: the clip is
//! viewed as `(T, C, H, W)` and every frame is erased independently with probability `prob`.

use super::clip::ClipArray;
use super::crop::round_half_even;
use crate::nn::rng::SeededRng;

/// Parameters of timm's `RandomErasing(prob, mode="pixel", max_count=1)`.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomErasing {
    pub prob: f64,
    pub min_area: f64,
    pub max_area: f64,
    pub min_aspect: f64,
    pub max_aspect: f64,
}

/// A box chosen for one frame: top, left, height, width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EraseBox {
    pub top: usize,
    pub left: usize,
    pub h: usize,
    pub w: usize,
}

impl RandomErasing {
    /// timm's defaults: area U(0.02, 1/3), aspect log-uniform in (0.3, 1/0.3).
    pub fn pixel(prob: f64) -> Self {
        Self {
            prob,
            min_area: 0.02,
            max_area: 1.0 / 3.0,
            min_aspect: 0.3,
            max_aspect: 1.0 / 0.3,
        }
    }

    /// The box for one `img_h`×`img_w` frame, or `None` (skipped by the coin or no fit in 10 tries).
    pub fn draw_box(&self, img_h: usize, img_w: usize, rng: &mut SeededRng) -> Option<EraseBox> {
        if rng.uniform_f64() > self.prob {
            return None;
        }
        let area = (img_h * img_w) as f64;
        let (la, lb) = (self.min_aspect.ln(), self.max_aspect.ln());
        for _ in 0..10 {
            let target =
                (self.min_area + (self.max_area - self.min_area) * rng.uniform_f64()) * area;
            let aspect = (la + (lb - la) * rng.uniform_f64()).exp();
            // timm: h from area * aspect, w from area / aspect; strict fit.
            let h = round_half_even((target * aspect).sqrt()) as usize;
            let w = round_half_even((target / aspect).sqrt()) as usize;
            if w < img_w && h < img_h {
                let top = rng.range(0, img_h - h + 1);
                let left = rng.range(0, img_w - w + 1);
                return Some(EraseBox { top, left, h, w });
            }
        }
        None
    }

    /// Erases each frame of the clip in place with standard-normal values (per pixel and channel).
    /// Returns the box of each frame.
    pub fn apply(&self, clip: &mut ClipArray, rng: &mut SeededRng) -> Vec<Option<EraseBox>> {
        let (h, w) = (clip.height, clip.width);
        (0..clip.frames)
            .map(|t| {
                let b = self.draw_box(h, w, rng)?;
                for c in 0..3 {
                    let plane = clip.plane_mut(c, t);
                    for y in b.top..b.top + b.h {
                        for v in &mut plane[y * w + b.left..y * w + b.left + b.w] {
                            *v = rng.normal_f64() as f32;
                        }
                    }
                }
                Some(b)
            })
            .collect()
    }
}
