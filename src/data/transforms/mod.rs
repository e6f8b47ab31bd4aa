//! Spatial transforms of XKD fine-tuning and CCL on decoded frames (all frames of a clip the same
//! size), giving normalized channel-major clips `[3, T, H, W]`.
//!
//! Which resize each preset uses, as the official code does:
//! * XKD (VideoMAE's pipeline): RandAugment on PIL-like u8 frames, then normalize, then
//!   `random_resized_crop` with `F.interpolate` bilinear (no antialias) on the normalized float
//!   tensor: [`ResizeKind::TorchBilinear`]. Its test transform normalizes at the native size and
//!   resizes the short side with `F.interpolate` too.
//! * CCL (torchvision on PIL images): `RandomResizedCrop` / `Resize` with PIL's antialiased
//!   bilinear on u8, then ToTensor + Normalize: [`ResizeKind::PilBilinear`].
//!
//! Normalizing before a bilinear resize is done by reading each source value through the
//! normalization's lookup table, which is exactly what resizing the normalized tensor computes.

pub mod bench;
pub mod blur;
pub mod clip;
pub mod color;
pub mod crop;
pub mod erasing;
pub mod eval;
pub mod mixup;
pub mod pil_ops;
pub mod rand_augment;
pub mod resize;
pub mod train;

pub use clip::{ClipArray, Normalization};
pub use color::{ColorJitter, JitterDraw};
pub use erasing::RandomErasing;
pub use eval::TestAugment;
pub use mixup::Mixup;
pub use rand_augment::{AugOp, RandAugment};
pub use train::TrainAugment;

use candle_core::Result;
use image::RgbImage;

/// How a transform resizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeKind {
    /// Pillow's `resize(BILINEAR)` on u8 (antialiased when downscaling), bit-exact.
    PilBilinear,
    /// `F.interpolate(mode="bilinear", align_corners=False)` on the normalized f32 clip.
    TorchBilinear,
}

/// Checks a clip's frames: at least one, all the same non-zero size. Returns (width, height).
pub fn check_frames(frames: &[RgbImage]) -> Result<(usize, usize)> {
    let first = frames
        .first()
        .ok_or_else(|| candle_core::Error::Msg("transform: the clip has no frames".into()))?;
    let (w, h) = first.dimensions();
    if w == 0 || h == 0 {
        return Err(candle_core::Error::Msg(format!(
            "transform: frame 0 is {w}x{h}, expected a non-empty image"
        )));
    }
    for (i, f) in frames.iter().enumerate() {
        if f.dimensions() != (w, h) {
            return Err(candle_core::Error::Msg(format!(
                "transform: frame {i} is {}x{}, expected {w}x{h} like frame 0",
                f.width(),
                f.height()
            )));
        }
    }
    Ok((w as usize, h as usize))
}

/// Writes u8 `src` (any size equal to the clip's H×W) normalized into frame `t` of `clip`,
/// flipping columns when asked.
pub(crate) fn write_normalized(
    clip: &mut ClipArray,
    t: usize,
    src: &RgbImage,
    lut: &[[f32; 256]; 3],
    flip: bool,
) {
    let w = clip.width;
    let raw = src.as_raw();
    for c in 0..3 {
        let plane = clip.plane_mut(c, t);
        for (y, row) in plane.chunks_exact_mut(w).enumerate() {
            for (x, v) in row.iter_mut().enumerate() {
                let sx = if flip { w - 1 - x } else { x };
                *v = lut[c][raw[(y * w + sx) * 3 + c] as usize];
            }
        }
    }
}
