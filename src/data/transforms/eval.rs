//! The test transform: short side resize, then one centre crop or three spatial crops.

use super::crop::{center_crop, slowfast_short_side, torchvision_short_side, uniform_crop};
use super::resize::{pil_bilinear, torch_bilinear_window, Rect, TorchLinear};
use super::{check_frames, write_normalized, ClipArray, Normalization, ResizeKind};
use candle_core::Result;
use image::RgbImage;

/// Parameters of the test transform.
#[derive(Debug, Clone, PartialEq)]
pub struct TestAugment {
    /// The short side after resizing.
    pub short_side: usize,
    /// Square crop side.
    pub crop: usize,
    /// 1 = centre crop, 3 = SlowFast `uniform_crop` left/centre/right (top/centre/bottom if
    /// portrait).
    pub crops: usize,
    /// `TorchBilinear`: SlowFast short-side scale (`floor(long/short·size)`) with `F.interpolate`
    /// on the normalized clip, centre offset `ceil((L - crop)/2)`. `PilBilinear`: torchvision
    /// `Resize(size)` (`int(size·long/short)`) + `CenterCrop` (offset `round((L - crop)/2)`).
    pub resize: ResizeKind,
}

impl TestAugment {
    /// XKD evaluation (spec xkd §5.1): normalize at the native size, short side → `size` with
    /// `F.interpolate` bilinear, 3 uniform crops of `size`.
    pub fn xkd(size: usize) -> Self {
        Self {
            short_side: size,
            crop: size,
            crops: 3,
            resize: ResizeKind::TorchBilinear,
        }
    }

    /// CCL evaluation (spec ccl §6.3): PIL `Resize(size)` bilinear (antialiased) + `CenterCrop(size)`.
    pub fn ccl(size: usize) -> Self {
        Self {
            short_side: size,
            crop: size,
            crops: 1,
            resize: ResizeKind::PilBilinear,
        }
    }

    /// The resized (width, height) and the crop windows in resized coordinates.
    pub fn windows(&self, width: usize, height: usize) -> Result<((usize, usize), Vec<Rect>)> {
        if self.short_side == 0 || self.crop == 0 {
            return Err(candle_core::Error::Msg(
                "test transform: short_side and crop must be > 0".into(),
            ));
        }
        let (nw, nh) = match self.resize {
            ResizeKind::TorchBilinear => slowfast_short_side(width, height, self.short_side),
            ResizeKind::PilBilinear => torchvision_short_side(width, height, self.short_side),
        };
        if self.crop > nw || self.crop > nh {
            return Err(candle_core::Error::Msg(format!(
                "test transform: crop {} is larger than the resized {nw}x{nh} frame (from {width}x{height}, short side {})",
                self.crop, self.short_side
            )));
        }
        let rects = match (self.crops, self.resize) {
            (1, ResizeKind::PilBilinear) => vec![center_crop(nw, nh, self.crop)],
            (1, ResizeKind::TorchBilinear) => vec![uniform_crop(nw, nh, self.crop, 1)],
            (3, _) => (0..3).map(|i| uniform_crop(nw, nh, self.crop, i)).collect(),
            (n, _) => {
                return Err(candle_core::Error::Msg(format!(
                    "test transform: crops must be 1 or 3, found {n}"
                )))
            }
        };
        Ok(((nw, nh), rects))
    }

    /// One normalized clip per crop.
    pub fn apply(&self, frames: &[RgbImage], norm: &Normalization) -> Result<Vec<ClipArray>> {
        let (w, h) = check_frames(frames)?;
        let ((nw, nh), rects) = self.windows(w, h)?;
        let lut = norm.lut();
        let s = self.crop;
        let mut clips: Vec<ClipArray> = rects
            .iter()
            .map(|_| ClipArray::zeros(frames.len(), s, s))
            .collect();
        match self.resize {
            ResizeKind::PilBilinear => {
                for (t, f) in frames.iter().enumerate() {
                    let resized = pil_bilinear(f, Rect::full(w, h), nw, nh);
                    for (clip, r) in clips.iter_mut().zip(&rects) {
                        let cropped = image::imageops::crop_imm(
                            &resized, r.x as u32, r.y as u32, s as u32, s as u32,
                        )
                        .to_image();
                        write_normalized(clip, t, &cropped, &lut, false);
                    }
                }
            }
            ResizeKind::TorchBilinear => {
                let ys = TorchLinear::new(h, nh);
                let xs = TorchLinear::new(w, nw);
                // Resize the union of the crop windows once, then copy each crop out of it.
                let ux = rects.iter().map(|r| r.x).min().unwrap_or(0);
                let uy = rects.iter().map(|r| r.y).min().unwrap_or(0);
                let uw = rects.iter().map(|r| r.x + s).max().unwrap_or(s) - ux;
                let uh = rects.iter().map(|r| r.y + s).max().unwrap_or(s) - uy;
                let mut union = vec![0f32; uw * uh];
                for (t, f) in frames.iter().enumerate() {
                    let raw = f.as_raw();
                    for (c, table) in lut.iter().enumerate() {
                        let pix = |y: usize, x: usize| table[raw[(y * w + x) * 3 + c] as usize];
                        torch_bilinear_window(pix, &ys, &xs, uy, uh, ux, uw, false, &mut union);
                        for (clip, r) in clips.iter_mut().zip(&rects) {
                            let plane = clip.plane_mut(c, t);
                            for (y, row) in plane.chunks_exact_mut(s).enumerate() {
                                let at = (r.y - uy + y) * uw + r.x - ux;
                                row.copy_from_slice(&union[at..at + s]);
                            }
                        }
                    }
                }
            }
        }
        Ok(clips)
    }
}
