//! The two bilinear resizes of the official pipelines.
//!
//! * [`pil_bilinear`]: Pillow's `Image.resize(size, BILINEAR)` on u8 RGB (`libImaging/Resample.c`):
//!   a triangle filter widened by the downscale factor (so it antialiases), coefficients fixed to
//!   22-bit integers, a horizontal pass rounded to u8, then a vertical pass. Bit-exact.
//! * [`TorchLinear`]: `F.interpolate(mode="bilinear", align_corners=False)` without antialiasing,
//!   the two source taps and weights of each output index, in f32 as torch's CPU kernel.

use image::RgbImage;

/// A rectangle of an image: left, top, width, height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: usize,
    pub y: usize,
    pub w: usize,
    pub h: usize,
}

impl Rect {
    pub fn full(w: usize, h: usize) -> Self {
        Self { x: 0, y: 0, w, h }
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Fixed-point taps of PIL's bilinear filter for one axis: per output index the first source index
/// and the integer weights (`precompute_coeffs` + `normalize_coeffs_8bpc`).
struct PilTaps {
    start: Vec<usize>,
    ksize: usize,
    weights: Vec<i32>,
}

fn pil_taps(in_size: usize, out_size: usize) -> PilTaps {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // the bilinear filter's support is 1
    let ksize = support.ceil() as usize * 2 + 1;
    let mut start = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C casts truncate toward zero; both values are > -1 so `max(0)` after the cast matches.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let t = ((x + xmin) as f64 - center + 0.5) * ss;
            let w = (1.0 - t.abs()).max(0.0);
            *kx = w;
            ww += w;
        }
        for (x, &kx) in k.iter().enumerate().take(xmax) {
            let kx = if ww != 0.0 { kx / ww } else { kx };
            let v = kx * (1u32 << PRECISION_BITS) as f64;
            weights[xx * ksize + x] = if kx < 0.0 {
                (-0.5 + v) as i32
            } else {
                (0.5 + v) as i32
            };
        }
        start.push(xmin);
    }
    PilTaps {
        start,
        ksize,
        weights,
    }
}

#[inline]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// PIL's `img.crop(rect).resize((out_w, out_h), Image.BILINEAR)` for an RGB image (torchvision's
/// `resized_crop` on PIL images). The crop is taken first, so the filter never reads outside it.
pub fn pil_bilinear(src: &RgbImage, rect: Rect, out_w: usize, out_h: usize) -> RgbImage {
    let sw = src.width() as usize;
    let raw = src.as_raw();
    let need_h = out_w != rect.w;
    let need_v = out_h != rect.h;
    // Horizontal pass into rows of width out_w (or the crop itself when the width is unchanged).
    let mut tmp = vec![0u8; rect.h * out_w * 3];
    if need_h {
        let taps = pil_taps(rect.w, out_w);
        let half = 1i32 << (PRECISION_BITS - 1);
        for y in 0..rect.h {
            let row =
                &raw[((rect.y + y) * sw + rect.x) * 3..((rect.y + y) * sw + rect.x + rect.w) * 3];
            let out = &mut tmp[y * out_w * 3..(y + 1) * out_w * 3];
            for xx in 0..out_w {
                let k = &taps.weights[xx * taps.ksize..(xx + 1) * taps.ksize];
                let x0 = taps.start[xx];
                let (mut s0, mut s1, mut s2) = (half, half, half);
                for (x, &kx) in k.iter().enumerate() {
                    if kx == 0 || x0 + x >= rect.w {
                        continue;
                    }
                    let p = &row[(x0 + x) * 3..(x0 + x) * 3 + 3];
                    s0 += p[0] as i32 * kx;
                    s1 += p[1] as i32 * kx;
                    s2 += p[2] as i32 * kx;
                }
                out[xx * 3] = clip8(s0);
                out[xx * 3 + 1] = clip8(s1);
                out[xx * 3 + 2] = clip8(s2);
            }
        }
    } else {
        for y in 0..rect.h {
            let from = ((rect.y + y) * sw + rect.x) * 3;
            tmp[y * out_w * 3..(y + 1) * out_w * 3].copy_from_slice(&raw[from..from + out_w * 3]);
        }
    }
    if !need_v {
        return RgbImage::from_raw(out_w as u32, out_h as u32, tmp)
            .expect("buffer sized for the image");
    }
    let taps = pil_taps(rect.h, out_h);
    let half = 1i32 << (PRECISION_BITS - 1);
    let stride = out_w * 3;
    let mut out = vec![0u8; out_h * stride];
    let mut acc = vec![0i32; stride];
    for yy in 0..out_h {
        let k = &taps.weights[yy * taps.ksize..(yy + 1) * taps.ksize];
        let y0 = taps.start[yy];
        acc.fill(half);
        for (y, &ky) in k.iter().enumerate() {
            if ky == 0 || y0 + y >= rect.h {
                continue;
            }
            let row = &tmp[(y0 + y) * stride..(y0 + y + 1) * stride];
            for (a, &p) in acc.iter_mut().zip(row) {
                *a += p as i32 * ky;
            }
        }
        for (o, &a) in out[yy * stride..(yy + 1) * stride].iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    RgbImage::from_raw(out_w as u32, out_h as u32, out).expect("buffer sized for the image")
}

/// Source taps and weights of `F.interpolate(bilinear, align_corners=False)` along one axis.
#[derive(Debug, Clone)]
pub struct TorchLinear {
    /// Per output index: (first tap, second tap, weight of first, weight of second).
    pub taps: Vec<(usize, usize, f32, f32)>,
}

impl TorchLinear {
    /// `in_size` → `out_size`, with scale `in/out` in f32 as torch computes it when given a size.
    pub fn new(in_size: usize, out_size: usize) -> Self {
        let scale = in_size as f32 / out_size as f32;
        let taps = (0..out_size)
            .map(|d| {
                let src = (scale * (d as f32 + 0.5) - 0.5).max(0.0);
                let i0 = (src as usize).min(in_size - 1);
                let i1 = if i0 < in_size - 1 { i0 + 1 } else { i0 };
                let l1 = (src - i0 as f32).clamp(0.0, 1.0);
                (i0, i1, 1.0 - l1, l1)
            })
            .collect();
        Self { taps }
    }
}

/// Bilinear resize (torch semantics) of one plane read through `pix(y, x)`, writing the output
/// window rows `oy..oy+oh`, cols `ox..ox+ow` of the full resized plane into `out` (row-major,
/// `ow` wide). With `flip`, columns are written right to left (a horizontal flip of the window).
#[allow(clippy::too_many_arguments)]
pub fn torch_bilinear_window(
    pix: impl Fn(usize, usize) -> f32,
    ys: &TorchLinear,
    xs: &TorchLinear,
    oy: usize,
    oh: usize,
    ox: usize,
    ow: usize,
    flip: bool,
    out: &mut [f32],
) {
    // Separable: each needed source row is interpolated horizontally once (rows are shared by
    // neighbouring outputs), then rows are blended; the same products and sums as torch's kernel.
    let (ylo, yhi) = (ys.taps[oy].0, ys.taps[oy + oh - 1].1);
    let mut rows = vec![0f32; (yhi - ylo + 1) * ow];
    for (k, row) in rows.chunks_exact_mut(ow).enumerate() {
        let y = ylo + k;
        for (c, v) in row.iter_mut().enumerate() {
            let (x0, x1, w0, w1) = xs.taps[ox + c];
            *v = pix(y, x0) * w0 + pix(y, x1) * w1;
        }
    }
    for r in 0..oh {
        let (y0, y1, h0, h1) = ys.taps[oy + r];
        let top = &rows[(y0 - ylo) * ow..(y0 - ylo + 1) * ow];
        let bot = &rows[(y1 - ylo) * ow..(y1 - ylo + 1) * ow];
        let out_row = &mut out[r * ow..(r + 1) * ow];
        if flip {
            for (c, (&t, &b)) in top.iter().zip(bot).enumerate() {
                out_row[ow - 1 - c] = t * h0 + b * h1;
            }
        } else {
            for ((o, &t), &b) in out_row.iter_mut().zip(top).zip(bot) {
                *o = t * h0 + b * h1;
            }
        }
    }
}
