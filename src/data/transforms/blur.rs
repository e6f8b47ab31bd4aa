//! The Gaussian blur of XKD's local views, as its `RandomGaussianBlur` computes it: torchvision
//! 0.8's `gaussian_blur` on a PIL image, i.e.
//!
//! 1. `to_tensor`: u8 / 255 in f32;
//! 2. a 1-D kernel per axis, `exp(-0.5 (x / sigma)²)` at x = −k/2 … k/2, divided by its sum (f32);
//!    the 2-D kernel is the outer product `ky[:, None] * kx[None, :]` (one f32 product each);
//! 3. `reflect` padding of k/2 on each side (the edge pixel is not repeated), then a depthwise
//!    `conv2d`, all in f32;
//! 4. `to_pil_image`: `mul(255).byte()`, which truncates, so a flat area comes back up to one level
//!    darker than it was.
//!
//! The official call passes the pair `sigma=(0.1, 2.0)`, which torchvision reads as
//! (sigma_x, sigma_y): the blur is fixed and mostly vertical. [`GaussianBlur`] takes both sigmas,
//! so a recipe can choose otherwise. The 81 products of a pixel are summed in kernel order, so
//! results can differ from torch's convolution in the last bit of f32, and then by one level
//! where the truncation sits on that bit.

use candle_core::Result;
use image::RgbImage;

/// A Gaussian blur with a square `kernel`-sided window (odd) and per-axis sigmas.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianBlur {
    kernel: usize,
    /// The normalised 1-D kernels along x (width) and y (height).
    kx: Vec<f32>,
    ky: Vec<f32>,
}

/// torchvision's `_get_gaussian_kernel1d(size, sigma)` in f32: `linspace(-h, h, size)` (exact
/// integers for an odd size), the unnormalised Gaussian, divided by its sum.
pub fn gaussian_kernel_1d(size: usize, sigma: f64) -> Vec<f32> {
    let half = (size as f32 - 1.0) * 0.5;
    let sigma = sigma as f32;
    let pdf: Vec<f32> = (0..size)
        .map(|i| {
            let x = (i as f32 - half) / sigma;
            (-0.5 * (x * x)).exp()
        })
        .collect();
    let sum: f32 = pdf.iter().sum();
    pdf.iter().map(|p| p / sum).collect()
}

/// Index into a line of `n` samples padded in `reflect` mode (the edge not repeated); pads longer
/// than the line keep reflecting, where torch would refuse.
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let j = i.rem_euclid(period);
    (if j >= n as isize { period - j } else { j }) as usize
}

impl GaussianBlur {
    /// A blur with an odd, positive `kernel` side and positive sigmas, or an error naming the bad
    /// value.
    pub fn new(kernel: usize, sigma_x: f64, sigma_y: f64) -> Result<Self> {
        if kernel.is_multiple_of(2) {
            candle_core::bail!(
                "gaussian blur: kernel side must be odd and positive, found {kernel}"
            )
        }
        for (name, s) in [("sigma_x", sigma_x), ("sigma_y", sigma_y)] {
            if !(s.is_finite() && s > 0.0) {
                candle_core::bail!("gaussian blur: {name} must be positive, found {s}")
            }
        }
        Ok(Self {
            kernel,
            kx: gaussian_kernel_1d(kernel, sigma_x),
            ky: gaussian_kernel_1d(kernel, sigma_y),
        })
    }

    pub fn kernel(&self) -> usize {
        self.kernel
    }

    /// Blurs an RGB image in place (each channel on its own).
    pub fn apply(&self, img: &mut RgbImage) {
        let (w, h) = (img.width() as usize, img.height() as usize);
        if w == 0 || h == 0 {
            return;
        }
        let k = self.kernel;
        let pad = (k / 2) as isize;
        // The 2-D kernel as torch builds it: row i, column j = ky[i] * kx[j].
        let k2d: Vec<f32> = self
            .ky
            .iter()
            .flat_map(|&y| self.kx.iter().map(move |&x| y * x))
            .collect();
        let cols: Vec<Vec<usize>> = (0..w)
            .map(|x| {
                (0..k)
                    .map(|j| reflect(x as isize + j as isize - pad, w))
                    .collect()
            })
            .collect();
        let rows: Vec<Vec<usize>> = (0..h)
            .map(|y| {
                (0..k)
                    .map(|i| reflect(y as isize + i as isize - pad, h))
                    .collect()
            })
            .collect();
        let src: Vec<f32> = img.as_raw().iter().map(|&v| v as f32 / 255.0).collect();
        let out = &mut **img;
        for (y, row_taps) in rows.iter().enumerate() {
            for (x, col_taps) in cols.iter().enumerate() {
                for c in 0..3 {
                    let mut acc = 0f32;
                    for (i, &sy) in row_taps.iter().enumerate() {
                        let line = &src[sy * w * 3..(sy + 1) * w * 3];
                        let weights = &k2d[i * k..(i + 1) * k];
                        for (&wgt, &sx) in weights.iter().zip(col_taps) {
                            acc += wgt * line[sx * 3 + c];
                        }
                    }
                    // `mul(255).byte()`: truncation (the float cast saturates at 0 and 255).
                    out[(y * w + x) * 3 + c] = (acc * 255.0) as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed-form normalised Gaussian weight at offset `d` (f64).
    fn gauss(d: i32, sigma: f64, k: usize) -> f64 {
        let half = (k / 2) as i32;
        let g = |x: i32| (-(x as f64).powi(2) / (2.0 * sigma * sigma)).exp();
        g(d) / (-half..=half).map(g).sum::<f64>()
    }

    #[test]
    fn kernel_is_the_normalised_gaussian() {
        let k = gaussian_kernel_1d(9, 2.0);
        assert_eq!(k.len(), 9);
        for (i, &v) in k.iter().enumerate() {
            assert!(
                (v as f64 - gauss(i as i32 - 4, 2.0, 9)).abs() < 1e-7,
                "{i}: {v}"
            );
            assert_eq!(v, k[8 - i], "symmetric");
        }
        // sigma 0.1: all the weight on the centre tap.
        let sharp = gaussian_kernel_1d(9, 0.1);
        assert_eq!(sharp[4], 1.0);
        assert!(sharp[3] < 1e-20);
    }

    #[test]
    fn an_impulse_spreads_as_the_separable_gaussian() {
        let blur = GaussianBlur::new(9, 1.5, 2.0).unwrap();
        let mut img = RgbImage::new(21, 21);
        img.put_pixel(10, 10, image::Rgb([255, 255, 255]));
        blur.apply(&mut img);
        for dy in -4i32..=4 {
            for dx in -4i32..=4 {
                let exact = 255.0 * gauss(dx, 1.5, 9) * gauss(dy, 2.0, 9);
                let got = img.get_pixel((10 + dx) as u32, (10 + dy) as u32)[0] as f64;
                // Truncated, as `byte()` does; values a hair from an integer may land either way.
                if (exact - exact.round()).abs() > 1e-3 {
                    assert_eq!(got, exact.floor(), "({dx}, {dy}): {exact}");
                }
            }
        }
        assert_eq!(img.get_pixel(10, 5)[0], 0, "beyond the kernel");
    }

    #[test]
    fn the_official_sigmas_blur_down_not_across() {
        // sigma_x 0.1, sigma_y 2.0: a vertical line stays one column wide, a horizontal one spreads.
        let blur = GaussianBlur::new(9, 0.1, 2.0).unwrap();
        let mut vertical = RgbImage::new(15, 15);
        let mut horizontal = RgbImage::new(15, 15);
        for i in 0..15 {
            vertical.put_pixel(7, i, image::Rgb([200, 200, 200]));
            horizontal.put_pixel(i, 7, image::Rgb([200, 200, 200]));
        }
        blur.apply(&mut vertical);
        blur.apply(&mut horizontal);
        for y in 0..15 {
            assert_eq!(vertical.get_pixel(6, y)[0], 0);
            assert!((199..=200).contains(&vertical.get_pixel(7, y)[0]));
        }
        let expected = (200.0 / 255.0 * gauss(2, 2.0, 9) * 255.0).floor() as u8;
        assert!(expected > 0);
        let got = horizontal.get_pixel(3, 9)[0];
        assert!(got.abs_diff(expected) <= 1, "{got} vs {expected}");
    }

    #[test]
    fn borders_reflect_without_repeating_the_edge() {
        // Only column 0 lit: with reflect padding, output column x sees it through tap x only
        // (column −x reflects to x, never to 0), so it gets 255·kx[4 − x].
        let blur = GaussianBlur::new(9, 2.0, 0.1).unwrap();
        let mut img = RgbImage::new(12, 5);
        for y in 0..5 {
            img.put_pixel(0, y, image::Rgb([255, 255, 255]));
        }
        blur.apply(&mut img);
        for x in 0..5 {
            let exact = 255.0 * gauss(x, 2.0, 9);
            let got = img.get_pixel(x as u32, 2)[0] as f64;
            assert!(
                (got - exact.floor()).abs() <= 1.0,
                "x {x}: {got} vs {exact}"
            );
        }
        assert!(GaussianBlur::new(8, 1.0, 1.0).is_err());
        assert!(GaussianBlur::new(9, 0.0, 1.0).is_err());
    }
}
