//! The video half of XKD's pre-training views (`GlobalLocalView` in
//! `datasets/augmentations/video_augmentations.py`), on the clip's decoded u8 frames:
//!
//! * basic: every frame's short side resized to `crop` with PIL bilinear (the clip's `Resize`
//!   asks for 'nearest', which `resize_clip` maps to `PIL.BILINEAR`; a frame whose short side
//!   already is `crop` is left alone), the clip padded to `global_frames` by the caller;
//! * global: RandomResizedCrop(`crop`, `global_scale`, `ratio`) → flip → ColorJitter → normalise;
//! * each local view: a random window of `local_frames` consecutive frames (start uniform in
//!   [0, T − local_frames]), RandomResizedCrop(`local_crop`, `local_scale`, `ratio`) → flip →
//!   ColorJitter → RandomGray → Gaussian blur → normalise.
//!
//! One set of parameters per view, for all its frames. All colour and blur operations act on the
//! resized u8 crop, as on PIL images; the flip is applied while normalising (flipping commutes with
//! all of them: contrast uses the whole image's mean, the blur is symmetric). ImageNet
//! normalisation, as `Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])`.

use super::pretrain_views::PretrainViews;
use super::transforms::blur::GaussianBlur;
use super::transforms::color::{gray_coin, to_grayscale};
use super::transforms::crop::{random_resized_crop_params, torchvision_short_side};
use super::transforms::resize::{pil_bilinear, Rect};
use super::transforms::{check_frames, write_normalized, ClipArray, ColorJitter, Normalization};
use crate::nn::rng::SeededRng;
use candle_core::Result;
use image::RgbImage;

/// One view's transform: `StrongTransforms2` with its switches.
struct ViewTransform {
    size: usize,
    scale: (f64, f64),
    ratio: (f64, f64),
    hflip_prob: f64,
    jitter: Option<ColorJitter>,
    gray_prob: f64,
    blur: Option<(f64, GaussianBlur)>,
}

impl ViewTransform {
    fn global(v: &PretrainViews) -> Self {
        Self {
            size: v.crop,
            scale: v.global_scale,
            ratio: v.ratio,
            hflip_prob: v.hflip_prob,
            jitter: v.jitter(),
            gray_prob: 0.0,
            blur: None,
        }
    }

    fn local(v: &PretrainViews) -> Result<Self> {
        let blur = (v.local_blur_prob > 0.0)
            .then(|| v.local_blur().map(|b| (v.local_blur_prob, b)))
            .transpose()?;
        Ok(Self {
            size: v.local_crop,
            scale: v.local_scale,
            ratio: v.ratio,
            hflip_prob: v.hflip_prob,
            jitter: v.jitter(),
            gray_prob: v.local_gray_prob,
            blur,
        })
    }

    /// Draws the view's parameters in the official order (crop, flip, jitter, grey, blur; nothing
    /// for what is off) and transforms every frame with them.
    fn apply(
        &self,
        frames: &[RgbImage],
        lut: &[[f32; 256]; 3],
        rng: &mut SeededRng,
    ) -> Result<ClipArray> {
        let (w, h) = check_frames(frames)?;
        let crop = random_resized_crop_params(w, h, self.scale, self.ratio, rng);
        let flip = self.hflip_prob > 0.0 && rng.uniform_f64() < self.hflip_prob;
        let jitter = self.jitter.map(|j| j.draw(rng));
        let gray = self.gray_prob > 0.0 && gray_coin(self.gray_prob, rng);
        let blur = match &self.blur {
            Some((p, blur)) if rng.uniform_f64() < *p => Some(blur),
            _ => None,
        };
        let s = self.size;
        let mut clip = ClipArray::zeros(frames.len(), s, s);
        for (t, frame) in frames.iter().enumerate() {
            let mut out = pil_bilinear(frame, crop, s, s);
            if let Some(d) = &jitter {
                d.apply(&mut out);
            }
            if gray {
                to_grayscale(&mut out);
            }
            if let Some(b) = blur {
                b.apply(&mut out);
            }
            write_normalized(&mut clip, t, &out, lut, flip);
        }
        Ok(clip)
    }
}

/// `Resize(size)` of the official clip transforms on one frame: the short side becomes `size`
/// (the long side `int(size · long / short)`), PIL bilinear; unchanged when it already is.
pub fn resize_short_side(frame: &RgbImage, size: usize) -> RgbImage {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    if w.min(h) == size {
        return frame.clone();
    }
    let (ow, oh) = torchvision_short_side(w, h, size);
    pil_bilinear(frame, Rect::full(w, h), ow, oh)
}

/// The global view then `num_local_views` local views of a clip of `global_frames` decoded frames
/// (already sampled and padded), each `[3, T, H, W]` normalised with ImageNet's statistics.
pub fn video_views(
    frames: &[RgbImage],
    views: &PretrainViews,
    rng: &mut SeededRng,
) -> Result<Vec<ClipArray>> {
    check_frames(frames)?;
    if frames.len() < views.local_frames {
        candle_core::bail!(
            "pre-training views: the clip has {} frames, fewer than local_frames ({})",
            frames.len(),
            views.local_frames
        )
    }
    let resized: Vec<RgbImage> = frames
        .iter()
        .map(|f| resize_short_side(f, views.crop))
        .collect();
    let lut = Normalization::imagenet().lut();
    let mut out = Vec::with_capacity(1 + views.num_local_views);
    out.push(ViewTransform::global(views).apply(&resized, &lut, rng)?);
    let local = ViewTransform::local(views)?;
    for _ in 0..views.num_local_views {
        let start = rng.range(0, resized.len() - views.local_frames + 1);
        let window = &resized[start..start + views.local_frames];
        out.push(local.apply(window, &lut, rng)?);
    }
    Ok(out)
}
