//! The training transform of a clip: RandAugment (optional), RandomResizedCrop, horizontal flip,
//! normalization and random erasing (optional), with one set of crop/flip/RandAugment parameters
//! for all frames of the clip.

use super::crop::random_resized_crop_params;
use super::resize::{pil_bilinear, torch_bilinear_window, Rect, TorchLinear};
use super::{
    check_frames, write_normalized, ClipArray, Normalization, RandAugment, RandomErasing,
    ResizeKind,
};
use crate::nn::rng::SeededRng;
use candle_core::Result;
use image::RgbImage;

/// Parameters of the training transform.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainAugment {
    /// Output side (square crops).
    pub size: usize,
    /// RandomResizedCrop area fraction range.
    pub scale: (f64, f64),
    /// RandomResizedCrop aspect ratio range (w / h).
    pub ratio: (f64, f64),
    pub hflip_prob: f64,
    pub rand_augment: Option<RandAugment>,
    /// timm RandomErasing probability per frame (0 = off).
    pub erasing_prob: f64,
    pub resize: ResizeKind,
}

/// The random choices made for one clip (the erasing boxes are drawn per frame afterwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainParams {
    pub crop: Rect,
    pub flip: bool,
}

impl TrainAugment {
    /// XKD fine-tuning (spec xkd §5.1, VideoMAE's `_aug_frame`): RandAugment m7 n4 mstd0.5 inc1 →
    /// normalize → RRC(size, scale (0.2, 0.766), ratio (0.75, 1.3333)) with `F.interpolate`
    /// bilinear on the normalized tensor → hflip 0.5 → RandomErasing 0.25 (pixel, per frame).
    pub fn xkd_finetune(size: usize) -> Self {
        Self {
            size,
            scale: (0.2, 0.766),
            ratio: (0.75, 1.3333),
            hflip_prob: 0.5,
            rand_augment: Some(RandAugment::xkd()),
            erasing_prob: 0.25,
            resize: ResizeKind::TorchBilinear,
        }
    }

    /// CCL (spec ccl §6.3): torchvision RRC(size, scale (0.25, 1), ratio (0.75, 1/0.75)) with PIL
    /// bilinear on u8 frames, hflip 0.5, no colour jitter, then ToTensor + Normalize.
    pub fn ccl(size: usize) -> Self {
        Self {
            size,
            scale: (0.25, 1.0),
            ratio: (0.75, 1.0 / 0.75),
            hflip_prob: 0.5,
            rand_augment: None,
            erasing_prob: 0.0,
            resize: ResizeKind::PilBilinear,
        }
    }

    /// Draws the crop and flip for a `width`×`height` clip (RRC first, then the flip coin).
    pub fn draw(&self, width: usize, height: usize, rng: &mut SeededRng) -> TrainParams {
        let crop = random_resized_crop_params(width, height, self.scale, self.ratio, rng);
        let flip = rng.uniform_f64() < self.hflip_prob;
        TrainParams { crop, flip }
    }

    /// Transforms one clip. Random draws, in order: RandAugment, crop, flip, erasing.
    pub fn apply(
        &self,
        frames: &[RgbImage],
        norm: &Normalization,
        rng: &mut SeededRng,
    ) -> Result<ClipArray> {
        check_frames(frames)?;
        if self.size == 0 {
            return Err(candle_core::Error::Msg("train transform: size is 0".into()));
        }
        let augmented;
        let frames = match &self.rand_augment {
            Some(ra) => {
                let mut f = frames.to_vec();
                ra.apply(&mut f, rng);
                augmented = f;
                &augmented[..]
            }
            None => frames,
        };
        let (w, h) = check_frames(frames)?;
        let p = self.draw(w, h, rng);
        let mut clip = self.crop_resize(frames, norm, p);
        if self.erasing_prob > 0.0 {
            RandomErasing::pixel(self.erasing_prob).apply(&mut clip, rng);
        }
        Ok(clip)
    }

    /// Crops, resizes, flips and normalizes with given parameters (no randomness).
    pub fn crop_resize(
        &self,
        frames: &[RgbImage],
        norm: &Normalization,
        p: TrainParams,
    ) -> ClipArray {
        let s = self.size;
        let lut = norm.lut();
        let mut clip = ClipArray::zeros(frames.len(), s, s);
        match self.resize {
            ResizeKind::PilBilinear => {
                for (t, f) in frames.iter().enumerate() {
                    let out = pil_bilinear(f, p.crop, s, s);
                    write_normalized(&mut clip, t, &out, &lut, p.flip);
                }
            }
            ResizeKind::TorchBilinear => {
                let ys = TorchLinear::new(p.crop.h, s);
                let xs = TorchLinear::new(p.crop.w, s);
                for (t, f) in frames.iter().enumerate() {
                    let (raw, fw) = (f.as_raw(), f.width() as usize);
                    for (c, table) in lut.iter().enumerate() {
                        let pix = |y: usize, x: usize| {
                            table[raw[((p.crop.y + y) * fw + p.crop.x + x) * 3 + c] as usize]
                        };
                        torch_bilinear_window(
                            pix,
                            &ys,
                            &xs,
                            0,
                            s,
                            0,
                            s,
                            p.flip,
                            clip.plane_mut(c, t),
                        );
                    }
                }
            }
        }
        clip
    }
}
