//! Pillow's image operations used by RandAugment, on u8 RGB, with Pillow's arithmetic:
//! `ImageOps` (autocontrast, equalize, invert, posterize, solarize), `ImageEnhance` (Color,
//! Contrast, Brightness, Sharpness through `Image.blend`), and `Image.transform(AFFINE, BILINEAR)`
//! / `Image.rotate` with a fill colour.

use image::RgbImage;

/// Applies a per-channel lookup table (`Image.point`).
pub fn apply_lut(img: &mut RgbImage, lut: &[[u8; 256]; 3]) {
    for p in (**img).chunks_exact_mut(3) {
        for c in 0..3 {
            p[c] = lut[c][p[c] as usize];
        }
    }
}

fn histograms(img: &RgbImage) -> [[u64; 256]; 3] {
    let mut h = [[0u64; 256]; 3];
    for p in img.as_raw().chunks_exact(3) {
        for c in 0..3 {
            h[c][p[c] as usize] += 1;
        }
    }
    h
}

fn same_lut(f: impl Fn(u8) -> u8) -> [[u8; 256]; 3] {
    let mut t = [0u8; 256];
    for (i, v) in t.iter_mut().enumerate() {
        *v = f(i as u8);
    }
    [t; 3]
}

/// `ImageOps.autocontrast(img)` (cutoff 0): each channel stretched from its [min, max] to [0, 255].
pub fn autocontrast_lut(img: &RgbImage) -> [[u8; 256]; 3] {
    let hist = histograms(img);
    let mut lut = [[0u8; 256]; 3];
    for c in 0..3 {
        let lo = hist[c].iter().position(|&n| n != 0);
        let hi = hist[c].iter().rposition(|&n| n != 0);
        match (lo, hi) {
            (Some(lo), Some(hi)) if hi > lo => {
                let scale = 255.0 / (hi - lo) as f64;
                let offset = -(lo as f64) * scale;
                for (ix, v) in lut[c].iter_mut().enumerate() {
                    *v = ((ix as f64 * scale + offset) as i64).clamp(0, 255) as u8;
                }
            }
            _ => lut[c] = same_lut(|v| v)[0],
        }
    }
    lut
}

/// `ImageOps.equalize(img)`.
pub fn equalize_lut(img: &RgbImage) -> [[u8; 256]; 3] {
    let hist = histograms(img);
    let mut lut = [[0u8; 256]; 3];
    for c in 0..3 {
        let nonzero: Vec<u64> = hist[c].iter().copied().filter(|&n| n != 0).collect();
        let step = if nonzero.len() <= 1 {
            0
        } else {
            (nonzero.iter().sum::<u64>() - nonzero[nonzero.len() - 1]) / 256
        };
        if step == 0 {
            lut[c] = same_lut(|v| v)[0];
            continue;
        }
        let mut n = step / 2;
        for i in 0..256 {
            lut[c][i] = (n / step).min(255) as u8;
            n += hist[c][i];
        }
    }
    lut
}

/// `ImageOps.invert`.
pub fn invert_lut() -> [[u8; 256]; 3] {
    same_lut(|v| 255 - v)
}

/// `ImageOps.posterize(img, bits)` (identity for bits ≥ 8, as timm skips it).
pub fn posterize_lut(bits: u32) -> [[u8; 256]; 3] {
    if bits >= 8 {
        return same_lut(|v| v);
    }
    let mask = !((1u32 << (8 - bits)) - 1) as u8;
    same_lut(|v| v & mask)
}

/// `ImageOps.solarize(img, threshold)`: values ≥ threshold are inverted.
pub fn solarize_lut(threshold: i64) -> [[u8; 256]; 3] {
    same_lut(|v| if (v as i64) < threshold { v } else { 255 - v })
}

/// timm's `solarize_add(img, add, thresh=128)`: values below 128 get `add`, capped at 255.
pub fn solarize_add_lut(add: i64) -> [[u8; 256]; 3] {
    same_lut(|v| {
        if (v as i64) < 128 {
            (v as i64 + add).min(255) as u8
        } else {
            v
        }
    })
}

/// Pillow's `convert("L")`: `(19595 R + 38470 G + 7471 B + 0x8000) >> 16`.
#[inline]
pub fn luma(p: &[u8]) -> u8 {
    ((p[0] as u32 * 19595 + p[1] as u32 * 38470 + p[2] as u32 * 7471 + 0x8000) >> 16) as u8
}

/// `Image.blend(degenerate, img, alpha)` per value: in f32, truncated, clipped only when
/// extrapolating (alpha outside [0, 1]), as `ImagingBlend`.
#[inline]
fn blend(deg: u8, v: u8, alpha: f32, extrapolate: bool) -> u8 {
    let t = deg as i32 as f32 + alpha * (v as i32 - deg as i32) as f32;
    if extrapolate {
        if t <= 0.0 {
            0
        } else if t >= 255.0 {
            255
        } else {
            t as u8
        }
    } else {
        t as u8
    }
}

fn extrapolates(alpha: f32) -> bool {
    !(0.0..=1.0).contains(&alpha)
}

/// `ImageEnhance.Color(img).enhance(factor)`: blend with the grey version.
pub fn color(img: &mut RgbImage, factor: f64) {
    let a = factor as f32;
    let ex = extrapolates(a);
    for p in (**img).chunks_exact_mut(3) {
        let l = luma(p);
        for v in p.iter_mut() {
            *v = blend(l, *v, a, ex);
        }
    }
}

/// `ImageEnhance.Contrast(img).enhance(factor)`: blend with the mean grey level,
/// `int(mean(L) + 0.5)`.
pub fn contrast(img: &mut RgbImage, factor: f64) {
    let (sum, n) = img
        .as_raw()
        .chunks_exact(3)
        .fold((0u64, 0u64), |(s, n), p| (s + luma(p) as u64, n + 1));
    let mean = if n == 0 {
        0
    } else {
        (sum as f64 / n as f64 + 0.5) as u8
    };
    let a = factor as f32;
    let ex = extrapolates(a);
    for v in (**img).iter_mut() {
        *v = blend(mean, *v, a, ex);
    }
}

/// `ImageEnhance.Brightness(img).enhance(factor)`: blend with black.
pub fn brightness(img: &mut RgbImage, factor: f64) {
    let a = factor as f32;
    let ex = extrapolates(a);
    for v in (**img).iter_mut() {
        *v = blend(0, *v, a, ex);
    }
}

/// `ImageEnhance.Sharpness(img).enhance(factor)`: blend with `ImageFilter.SMOOTH` (3×3 kernel
/// 1 1 1 / 1 5 1 / 1 1 1 over 13; the border rows and columns are copied unfiltered).
pub fn sharpness(img: &mut RgbImage, factor: f64) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let src = img.as_raw().clone();
    let k = [1.0f32 / 13.0, 5.0 / 13.0];
    let a = factor as f32;
    let ex = extrapolates(a);
    let out: &mut [u8] = img;
    for y in 1..h.saturating_sub(1) {
        for x in 1..w - 1 {
            for c in 0..3 {
                let at = |yy: usize, xx: usize| src[(yy * w + xx) * 3 + c] as f32;
                // Filter.c sums the row below, the row itself, then the row above, each as
                // left*k0 + centre*k1 + right*k2, in f32.
                let row = |yy: usize, mid: f32| {
                    at(yy, x - 1) * k[0] + at(yy, x) * mid + at(yy, x + 1) * k[0]
                };
                let ss = 0.0f32 + row(y + 1, k[0]) + row(y, k[1]) + row(y - 1, k[0]);
                let smooth = if ss <= 0.0 {
                    0
                } else if ss >= 255.0 {
                    255
                } else {
                    (ss + 0.5) as u8
                };
                let i = (y * w + x) * 3 + c;
                out[i] = blend(smooth, src[i], a, ex);
            }
        }
    }
}

/// `Image.transform(size, AFFINE, (a, b, c, d, e, f), BILINEAR, fillcolor=fill)`: output pixel
/// (x, y) samples the input at (a·(x+.5) + b·(y+.5) + c, d·(x+.5) + e·(y+.5) + f) with PIL's
/// bilinear filter (`bilinear_filter32RGB`: f64, edge-clamped taps, truncated to u8); samples
/// outside the image keep the fill colour.
pub fn affine(img: &RgbImage, m: [f64; 6], fill: [u8; 3]) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let src = img.as_raw();
    let mut out = RgbImage::from_pixel(w as u32, h as u32, image::Rgb(fill));
    let dst: &mut [u8] = &mut out;
    let xclip = |x: i64| x.clamp(0, w as i64 - 1) as usize;
    for y in 0..h {
        for x in 0..w {
            let (xi, yi) = (x as f64 + 0.5, y as f64 + 0.5);
            let xin = m[0] * xi + m[1] * yi + m[2];
            let yin = m[3] * xi + m[4] * yi + m[5];
            if xin < 0.0 || xin >= w as f64 || yin < 0.0 || yin >= h as f64 {
                continue;
            }
            let (xs, ys) = (xin - 0.5, yin - 0.5);
            let (xf, yf) = (xs.floor(), ys.floor());
            let (dx, dy) = (xs - xf, ys - yf);
            let (x0, x1) = (xclip(xf as i64), xclip(xf as i64 + 1));
            let yrow = (yf as i64).clamp(0, h as i64 - 1) as usize;
            let y1 = yf as i64 + 1;
            for c in 0..3 {
                let at = |yy: usize, xx: usize| src[(yy * w + xx) * 3 + c] as f64;
                let a = at(yrow, x0);
                let v1 = a + (at(yrow, x1) - a) * dx;
                let v2 = if y1 >= 0 && y1 < h as i64 {
                    let b = at(y1 as usize, x0);
                    b + (at(y1 as usize, x1) - b) * dx
                } else {
                    v1
                };
                let v = v1 + (v2 - v1) * dy;
                dst[(y * w + x) * 3 + c] = if v < 0.0 {
                    0
                } else if v >= 255.0 {
                    255
                } else {
                    v as u8
                };
            }
        }
    }
    out
}

/// Python's `round(v, 15)` (correctly rounded through the decimal string, as CPython does).
fn round15(v: f64) -> f64 {
    format!("{v:.15}").parse().unwrap_or(v)
}

/// The affine matrix of `Image.rotate(degrees)` about the centre, without expanding.
pub fn rotate_matrix(degrees: f64, w: usize, h: usize) -> [f64; 6] {
    // Python's float `%` (sign of the divisor).
    let mut deg = degrees % 360.0;
    if deg != 0.0 && deg < 0.0 {
        deg += 360.0;
    }
    let angle = -deg.to_radians();
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let (a, b) = (round15(angle.cos()), round15(angle.sin()));
    let (d, e) = (round15(-angle.sin()), round15(angle.cos()));
    let c = a * -cx + b * -cy + cx;
    let f = d * -cx + e * -cy + cy;
    [a, b, c, d, e, f]
}

/// `Image.rotate(degrees, BILINEAR, fillcolor=fill)`. Pillow transposes exactly for 0 and 180
/// degrees (and 90/270 on square images); the affine path gives the same pixels up to rounding.
pub fn rotate(img: &RgbImage, degrees: f64, fill: [u8; 3]) -> RgbImage {
    let mut deg = degrees % 360.0;
    if deg != 0.0 && deg < 0.0 {
        deg += 360.0;
    }
    if deg == 0.0 {
        return img.clone();
    }
    if deg == 180.0 {
        return image::imageops::rotate180(img);
    }
    affine(
        img,
        rotate_matrix(degrees, img.width() as usize, img.height() as usize),
        fill,
    )
}
