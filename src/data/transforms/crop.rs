//! Crop geometry: torchvision's `RandomResizedCrop.get_params` (identical to SlowFast/VideoMAE's
//! `_get_param_spatial_crop` with `log_scale=True`), SlowFast's `uniform_crop` and torchvision's
//! `CenterCrop` offsets, and the short-side sizes of both resizes.

use super::resize::Rect;
use crate::nn::rng::SeededRng;

/// Python's `round()` on a float: halves go to the even neighbour.
pub fn round_half_even(v: f64) -> f64 {
    v.round_ties_even()
}

/// The crop of `RandomResizedCrop.get_params(img, scale, ratio)` for a `width`×`height` image:
/// 10 tries of area `U(scale)·H·W` and log-uniform ratio, accepted if it fits, then a centre crop
/// with the ratio clamped.
pub fn random_resized_crop_params(
    width: usize,
    height: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    rng: &mut SeededRng,
) -> Rect {
    let area = (width * height) as f64;
    let (lr0, lr1) = (ratio.0.ln(), ratio.1.ln());
    for _ in 0..10 {
        let target_area = area * (scale.0 + (scale.1 - scale.0) * rng.uniform_f64());
        let aspect = (lr0 + (lr1 - lr0) * rng.uniform_f64()).exp();
        let w = round_half_even((target_area * aspect).sqrt()) as usize;
        let h = round_half_even((target_area / aspect).sqrt()) as usize;
        if 0 < w && w <= width && 0 < h && h <= height {
            // randint(0, H - h) inclusive.
            let y = rng.range(0, height - h + 1);
            let x = rng.range(0, width - w + 1);
            return Rect { x, y, w, h };
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (lo, hi) = (ratio.0.min(ratio.1), ratio.0.max(ratio.1));
    let (w, h) = if in_ratio < lo {
        (width, round_half_even(width as f64 / lo) as usize)
    } else if in_ratio > hi {
        (round_half_even(height as f64 * hi) as usize, height)
    } else {
        (width, height)
    };
    Rect {
        x: (width - w) / 2,
        y: (height - h) / 2,
        w,
        h,
    }
}

/// SlowFast's `uniform_crop(images, size, spatial_idx)`: index 0/1/2 = left/centre/right, or
/// top/centre/bottom when the image is portrait; the centre offset is `ceil((L - size) / 2)`.
pub fn uniform_crop(width: usize, height: usize, size: usize, idx: usize) -> Rect {
    let mut y = (height - size).div_ceil(2);
    let mut x = (width - size).div_ceil(2);
    if height > width {
        match idx {
            0 => y = 0,
            2 => y = height - size,
            _ => {}
        }
    } else {
        match idx {
            0 => x = 0,
            2 => x = width - size,
            _ => {}
        }
    }
    Rect {
        x,
        y,
        w: size,
        h: size,
    }
}

/// torchvision's `CenterCrop(size)` offsets: `int(round((L - size) / 2))` (Python rounding).
pub fn center_crop(width: usize, height: usize, size: usize) -> Rect {
    Rect {
        x: round_half_even((width - size) as f64 / 2.0) as usize,
        y: round_half_even((height - size) as f64 / 2.0) as usize,
        w: size,
        h: size,
    }
}

/// torchvision `Resize(size)` (an int) output: the short side becomes `size`, the long side
/// `int(size * long / short)`. Returns (width, height).
pub fn torchvision_short_side(width: usize, height: usize, size: usize) -> (usize, usize) {
    if width <= height {
        (size, (size as f64 * height as f64 / width as f64) as usize)
    } else {
        ((size as f64 * width as f64 / height as f64) as usize, size)
    }
}

/// SlowFast's `random_short_side_scale_jitter(min=max=size)` output (no resize when the short
/// side already is `size`): the long side is `floor(long / short * size)`. Returns (width, height).
pub fn slowfast_short_side(width: usize, height: usize, size: usize) -> (usize, usize) {
    if (width <= height && width == size) || (height <= width && height == size) {
        return (width, height);
    }
    if width < height {
        (
            size,
            (height as f64 / width as f64 * size as f64).floor() as usize,
        )
    } else {
        (
            (width as f64 / height as f64 * size as f64).floor() as usize,
            size,
        )
    }
}
