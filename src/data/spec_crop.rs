//! BYOL-A's `RandomResizeCrop` of a log-mel spectrogram, as XKD's local audio views use it
//! (`datasets/audiotransforms/spec_aug.py`, from nttcslab/byol-a):
//!
//! 1. a zero canvas of `int(F · vf)` × `int(T · vt)` (official (vf, vt) = (1.0, 1.5): 80 × 168 for
//!    an 80 × 112 spectrogram), with the spectrogram copied at its centre, at row
//!    `(canvas_h − F) // 2` and column `(canvas_w − T) // 2`;
//! 2. a crop of `h = clip(int(U(freq_scale) · F), 1, canvas_h)` rows and
//!    `w = clip(int(U(time_scale) · T), 1, canvas_w)` columns, at row `randint(0, canvas_h − h)`
//!    and column `randint(0, canvas_w − w)` (0 when the crop fills that side);
//! 3. `F.interpolate(crop, size=(F, T), mode='bicubic', align_corners=True)`, back to the input size.
//!
//! The resize is PyTorch's CPU bicubic kernel: cubic convolution with A = −0.75, taps clamped at
//! the borders, source coordinate `dst · (in − 1) / (out − 1)`, four horizontal interpolations
//! then one vertical, all in f32, and a plain copy when the size does not change.

use crate::nn::rng::SeededRng;
use candle_core::Result;
use serde::{Deserialize, Serialize};

/// The crop's ranges: all `(lo, hi)`, the first of `virtual_scale` for frequency, the second for
/// time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpecCrop {
    /// The canvas size relative to the spectrogram, (frequency, time).
    pub virtual_scale: (f64, f64),
    /// Crop height as a fraction of the spectrogram's.
    pub freq_scale: (f64, f64),
    /// Crop width as a fraction of the spectrogram's.
    pub time_scale: (f64, f64),
}

/// Where one crop lies on its canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecCropParams {
    pub canvas_h: usize,
    pub canvas_w: usize,
    /// Top row and left column of the crop on the canvas.
    pub i: usize,
    pub j: usize,
    pub h: usize,
    pub w: usize,
}

impl SpecCrop {
    /// XKD's (and BYOL-A's) values: canvas (1.0, 1.5), scales (0.6, 1.5) on both axes.
    pub fn xkd() -> Self {
        Self {
            virtual_scale: (1.0, 1.5),
            freq_scale: (0.6, 1.5),
            time_scale: (0.6, 1.5),
        }
    }

    /// The official assertions (both scale ranges reach 1) plus what the canvas needs (at least
    /// the spectrogram's size).
    pub fn validate(&self) -> Result<()> {
        let check = |name: &str, (lo, hi): (f64, f64), min_lo: f64, min_hi: f64| -> Result<()> {
            if !(lo.is_finite() && hi.is_finite() && lo >= min_lo && lo <= hi && hi >= min_hi) {
                candle_core::bail!(
                    "spectrogram crop: `{name}` must be a range (lo, hi) with {min_lo} <= lo <= hi \
                     and hi >= {min_hi}, found ({lo}, {hi})"
                )
            }
            Ok(())
        };
        let (vf, vt) = self.virtual_scale;
        check("virtual_scale (frequency)", (vf, vf), 1.0, 1.0)?;
        check("virtual_scale (time)", (vt, vt), 1.0, 1.0)?;
        check("freq_scale", self.freq_scale, f64::MIN_POSITIVE, 1.0)?;
        check("time_scale", self.time_scale, f64::MIN_POSITIVE, 1.0)
    }

    /// Draws a crop for a `mels` × `frames` spectrogram: the height factor, the width factor, then
    /// the row and the column, in the official order.
    pub fn draw(&self, mels: usize, frames: usize, rng: &mut SeededRng) -> SpecCropParams {
        let canvas_h = (mels as f64 * self.virtual_scale.0) as usize;
        let canvas_w = (frames as f64 * self.virtual_scale.1) as usize;
        let uniform =
            |rng: &mut SeededRng, (lo, hi): (f64, f64)| lo + (hi - lo) * rng.uniform_f64();
        let h = ((uniform(rng, self.freq_scale) * mels as f64) as usize).clamp(1, canvas_h.max(1));
        let w =
            ((uniform(rng, self.time_scale) * frames as f64) as usize).clamp(1, canvas_w.max(1));
        let i = if canvas_h > h {
            rng.range(0, canvas_h - h + 1)
        } else {
            0
        };
        let j = if canvas_w > w {
            rng.range(0, canvas_w - w + 1)
        } else {
            0
        };
        SpecCropParams {
            canvas_h,
            canvas_w,
            i,
            j,
            h,
            w,
        }
    }

    /// Crops and resizes a row-major `mels` × `frames` spectrogram with given parameters.
    pub fn apply_with(
        &self,
        spec: &[f32],
        mels: usize,
        frames: usize,
        p: SpecCropParams,
    ) -> Result<Vec<f32>> {
        if spec.len() != mels * frames || mels == 0 || frames == 0 {
            candle_core::bail!(
                "spectrogram crop: expected a non-empty {mels} x {frames} spectrogram ({} values), \
                 found {} values",
                mels * frames,
                spec.len()
            )
        }
        if p.canvas_h < mels
            || p.canvas_w < frames
            || p.i + p.h > p.canvas_h
            || p.j + p.w > p.canvas_w
        {
            candle_core::bail!(
                "spectrogram crop: crop {p:?} does not fit a canvas holding a {mels} x {frames} \
                 spectrogram"
            )
        }
        let (y0, x0) = ((p.canvas_h - mels) / 2, (p.canvas_w - frames) / 2);
        // The crop read straight off the implicit canvas: zero outside the spectrogram.
        let mut crop = vec![0f32; p.h * p.w];
        for (r, row) in crop.chunks_exact_mut(p.w).enumerate() {
            let y = p.i + r;
            if y < y0 || y >= y0 + mels {
                continue;
            }
            for (c, v) in row.iter_mut().enumerate() {
                let x = p.j + c;
                if x >= x0 && x < x0 + frames {
                    *v = spec[(y - y0) * frames + (x - x0)];
                }
            }
        }
        Ok(bicubic_align_corners(&crop, p.h, p.w, mels, frames))
    }

    /// Draws a crop and applies it.
    pub fn apply(
        &self,
        spec: &[f32],
        mels: usize,
        frames: usize,
        rng: &mut SeededRng,
    ) -> Result<Vec<f32>> {
        let p = self.draw(mels, frames, rng);
        self.apply_with(spec, mels, frames, p)
    }
}

const CUBIC_A: f32 = -0.75;

/// PyTorch's `cubic_convolution1` (|x| <= 1) and `cubic_convolution2` (1 < |x| < 2).
fn cubic1(x: f32) -> f32 {
    ((CUBIC_A + 2.0) * x - (CUBIC_A + 3.0)) * x * x + 1.0
}

fn cubic2(x: f32) -> f32 {
    ((CUBIC_A * x - 5.0 * CUBIC_A) * x + 8.0 * CUBIC_A) * x - 4.0 * CUBIC_A
}

/// `cubic_interp1d(x0, x1, x2, x3, t)`.
fn cubic_interp(v: [f32; 4], t: f32) -> f32 {
    let x2 = 1.0 - t;
    let c = [cubic2(t + 1.0), cubic1(t), cubic1(x2), cubic2(x2 + 1.0)];
    v[0] * c[0] + v[1] * c[1] + v[2] * c[2] + v[3] * c[3]
}

/// Per output index along one axis: the integer source position and the fraction, from
/// `area_pixel_compute_scale` / `area_pixel_compute_source_index` with align_corners.
fn source_positions(input: usize, output: usize) -> Vec<(isize, f32)> {
    let scale = if output > 1 {
        (input - 1) as f32 / (output - 1) as f32
    } else {
        0.0
    };
    (0..output)
        .map(|d| {
            let real = scale * d as f32;
            let base = real.floor();
            (base as isize, real - base)
        })
        .collect()
}

/// `F.interpolate(x[None, None], size=(out_h, out_w), mode='bicubic', align_corners=True)` of a
/// row-major `in_h` × `in_w` plane, as PyTorch's CPU kernel computes it.
pub fn bicubic_align_corners(
    src: &[f32],
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
) -> Vec<f32> {
    if in_h == out_h && in_w == out_w {
        return src.to_vec();
    }
    let at = |y: isize, x: isize| {
        let y = y.clamp(0, in_h as isize - 1) as usize;
        let x = x.clamp(0, in_w as isize - 1) as usize;
        src[y * in_w + x]
    };
    let ys = source_positions(in_h, out_h);
    let xs = source_positions(in_w, out_w);
    let mut out = Vec::with_capacity(out_h * out_w);
    for &(y, ty) in &ys {
        for &(x, tx) in &xs {
            let rows = [0isize, 1, 2, 3].map(|k| {
                let yy = y - 1 + k;
                cubic_interp([at(yy, x - 1), at(yy, x), at(yy, x + 1), at(yy, x + 2)], tx)
            });
            out.push(cubic_interp(rows, ty));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys' cubic convolution kernel (A = −0.75) in its textbook piecewise form, in f64.
    fn keys(x: f64) -> f64 {
        let (a, x) = (-0.75, x.abs());
        if x <= 1.0 {
            (a + 2.0) * x.powi(3) - (a + 3.0) * x.powi(2) + 1.0
        } else if x < 2.0 {
            a * x.powi(3) - 5.0 * a * x.powi(2) + 8.0 * a * x - 4.0 * a
        } else {
            0.0
        }
    }

    /// The align_corners bicubic resize written from its definition: output (oy, ox) samples the
    /// source at (oy·(H−1)/(OH−1), ox·(W−1)/(OW−1)) with Keys' kernel over the 4×4 nearest taps,
    /// indices clamped to the image.
    fn reference(src: &[f64], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f64> {
        let mut out = Vec::new();
        for oy in 0..oh {
            for ox in 0..ow {
                let sy = oy as f64 * (h - 1) as f64 / (oh - 1) as f64;
                let sx = ox as f64 * (w - 1) as f64 / (ow - 1) as f64;
                let (by, bx) = (sy.floor() as isize, sx.floor() as isize);
                let mut v = 0.0;
                for ky in by - 1..=by + 2 {
                    for kx in bx - 1..=bx + 2 {
                        let yy = ky.clamp(0, h as isize - 1) as usize;
                        let xx = kx.clamp(0, w as isize - 1) as usize;
                        v += src[yy * w + xx] * keys(sy - ky as f64) * keys(sx - kx as f64);
                    }
                }
                out.push(v);
            }
        }
        out
    }

    #[test]
    fn bicubic_matches_the_kernel_definition() {
        let (h, w) = (5, 7);
        let src: Vec<f32> = (0..h * w).map(|i| ((i * 37) % 11) as f32 - 4.0).collect();
        let src64: Vec<f64> = src.iter().map(|&v| v as f64).collect();
        for (oh, ow) in [(9, 4), (3, 13), (5, 12), (8, 7)] {
            let got = bicubic_align_corners(&src, h, w, oh, ow);
            let want = reference(&src64, h, w, oh, ow);
            for (k, (g, e)) in got.iter().zip(&want).enumerate() {
                assert!((*g as f64 - e).abs() < 1e-4, "{oh}x{ow} [{k}]: {g} vs {e}");
            }
            // align_corners: the four corners are the source's.
            assert!((got[0] - src[0]).abs() < 1e-5);
            assert!((got[oh * ow - 1] - src[h * w - 1]).abs() < 1e-4);
        }
        assert_eq!(bicubic_align_corners(&src, h, w, h, w), src);
    }

    #[test]
    fn crop_params_stay_on_the_canvas() {
        let crop = SpecCrop::xkd();
        let mut rng = SeededRng::new(3);
        let (mut min_w, mut max_w) = (usize::MAX, 0);
        for _ in 0..2000 {
            let p = crop.draw(80, 112, &mut rng);
            assert_eq!((p.canvas_h, p.canvas_w), (80, 168));
            // int(U(0.6, 1.5) · 80) ∈ [48, 119], clipped to the canvas's 80; int(U · 112) ∈
            // [67, 167] (U < 1.5), always on the 168-wide canvas.
            assert!((48..=80).contains(&p.h), "{p:?}");
            assert!((67..=167).contains(&p.w), "{p:?}");
            assert!(p.i + p.h <= 80 && p.j + p.w <= 168, "{p:?}");
            (min_w, max_w) = (min_w.min(p.w), max_w.max(p.w));
        }
        assert!(min_w < 75 && max_w > 160, "{min_w}..{max_w}");
    }

    #[test]
    fn the_spectrogram_sits_at_the_canvas_centre() {
        let crop = SpecCrop::xkd();
        let (f, t) = (6, 8);
        let spec: Vec<f32> = (0..f * t).map(|i| i as f32 + 1.0).collect();
        // Canvas 6 x 12, spectrogram at column (12 - 8) / 2 = 2: that crop is the spectrogram itself.
        let p = |j, w| SpecCropParams {
            canvas_h: 6,
            canvas_w: 12,
            i: 0,
            j,
            h: 6,
            w,
        };
        assert_eq!(crop.apply_with(&spec, f, t, p(2, 8)).unwrap(), spec);
        // The two columns left of it are the zero margin.
        let margin = crop.apply_with(&spec, f, t, p(0, 2)).unwrap();
        assert!(margin.iter().all(|&v| v == 0.0));
        // One column off: the first output column is the margin's zero.
        let shifted = crop.apply_with(&spec, f, t, p(1, 8)).unwrap();
        assert_eq!(shifted[0], 0.0);
        assert_eq!(shifted[1], spec[0]);
        assert!(crop.apply_with(&spec, f, t, p(6, 8)).is_err());
        assert!(crop.apply_with(&spec[1..], f, t, p(2, 8)).is_err());
    }
}
