//! The training transform of a clip: RandAugment (optional), RandomResizedCrop, horizontal flip,
//! ColorJitter and RandomGrayscale (optional), normalization and random erasing (optional), with
//! one set of crop/flip/RandAugment/jitter/grey parameters for all frames of the clip.
//!
//! Colour jitter and grey (XKD's `strong3crop` / `GlobalLocalView` order: RandomResizedCrop →
//! flip → ColorJitter → RandomGrayscale) are pointwise per pixel except PIL's contrast, which
//! blends with the mean grey level of the whole (cropped) image:
//! * [`ResizeKind::PilBilinear`]: the crop is resized on u8, so jitter and grey are applied to
//!   the resized u8 crop, exactly as torchvision does (flipping does not change the mean).
//! * [`ResizeKind::TorchBilinear`]: the crop is resized on normalized floats, so jitter and grey
//!   are applied to the full u8 frames before normalization; contrast then uses the mean of the
//!   uncropped frame, and the other ops act before instead of after the bilinear resize.

use super::color::{gray_coin, to_grayscale, ColorJitter, JitterDraw};
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
    /// torchvision `ColorJitter`, one draw per clip (None = off).
    pub color_jitter: Option<ColorJitter>,
    /// torchvision `RandomGrayscale` probability, one coin per clip (0 = off).
    pub gray_prob: f64,
}

/// The random choices made for one clip (the erasing boxes are drawn per frame afterwards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainParams {
    pub crop: Rect,
    pub flip: bool,
}

/// The colour transform drawn for one clip: jitter, then grey.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ColorParams {
    /// The ColorJitter draw (None = no jitter).
    pub jitter: Option<JitterDraw>,
    /// Whether RandomGrayscale greys the clip.
    pub gray: bool,
}

impl ColorParams {
    /// True when nothing changes the colours.
    pub fn is_identity(&self) -> bool {
        self.jitter.is_none() && !self.gray
    }

    /// Applies the jitter then the grey to one u8 frame, in place.
    pub fn apply(&self, img: &mut RgbImage) {
        if let Some(d) = &self.jitter {
            d.apply(img);
        }
        if self.gray {
            to_grayscale(img);
        }
    }
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
            color_jitter: None,
            gray_prob: 0.0,
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
            color_jitter: None,
            gray_prob: 0.0,
        }
    }

    /// Draws the crop and flip for a `width`×`height` clip (RRC first, then the flip coin).
    pub fn draw(&self, width: usize, height: usize, rng: &mut SeededRng) -> TrainParams {
        let crop = random_resized_crop_params(width, height, self.scale, self.ratio, rng);
        let flip = rng.uniform_f64() < self.hflip_prob;
        TrainParams { crop, flip }
    }

    /// Draws the colour transform of one clip: the jitter (when on), then the grey coin (when
    /// `gray_prob` > 0). Nothing is drawn for what is off.
    pub fn draw_color(&self, rng: &mut SeededRng) -> ColorParams {
        ColorParams {
            jitter: self.color_jitter.map(|cj| cj.draw(rng)),
            gray: self.gray_prob > 0.0 && gray_coin(self.gray_prob, rng),
        }
    }

    /// Transforms one clip. Random draws, in order: RandAugment, crop, flip, colour jitter,
    /// grey coin, erasing.
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
        if let Some(cj) = &self.color_jitter {
            cj.validate()?;
        }
        if !(0.0..=1.0).contains(&self.gray_prob) {
            return Err(candle_core::Error::Msg(format!(
                "train transform: gray_prob is {}, expected a value in [0, 1]",
                self.gray_prob
            )));
        }
        let (w, h) = check_frames(frames)?;
        let p = self.draw(w, h, rng);
        let color = self.draw_color(rng);
        let mut clip = self.crop_resize_color(frames, norm, p, &color);
        if self.erasing_prob > 0.0 {
            RandomErasing::pixel(self.erasing_prob).apply(&mut clip, rng);
        }
        Ok(clip)
    }

    /// Crops, resizes, flips and normalizes with given parameters (no randomness, no colour).
    pub fn crop_resize(
        &self,
        frames: &[RgbImage],
        norm: &Normalization,
        p: TrainParams,
    ) -> ClipArray {
        self.crop_resize_color(frames, norm, p, &ColorParams::default())
    }

    /// [`Self::crop_resize`] with a colour transform: on the resized u8 crop for
    /// [`ResizeKind::PilBilinear`], on the full u8 frames before normalization for
    /// [`ResizeKind::TorchBilinear`] (see the module documentation).
    pub fn crop_resize_color(
        &self,
        frames: &[RgbImage],
        norm: &Normalization,
        p: TrainParams,
        color: &ColorParams,
    ) -> ClipArray {
        let s = self.size;
        let lut = norm.lut();
        let mut clip = ClipArray::zeros(frames.len(), s, s);
        match self.resize {
            ResizeKind::PilBilinear => {
                for (t, f) in frames.iter().enumerate() {
                    let mut out = pil_bilinear(f, p.crop, s, s);
                    color.apply(&mut out);
                    write_normalized(&mut clip, t, &out, &lut, p.flip);
                }
            }
            ResizeKind::TorchBilinear => {
                let coloured;
                let frames = if color.is_identity() {
                    frames
                } else {
                    let mut f = frames.to_vec();
                    f.iter_mut().for_each(|img| color.apply(img));
                    coloured = f;
                    &coloured[..]
                };
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
