//! A normalized clip in channel-major layout, and the per-channel normalization that makes it.

use candle_core::{Device, Result, Tensor};
use image::RgbImage;

fn msg(s: String) -> candle_core::Error {
    candle_core::Error::Msg(s)
}

/// Per-channel mean and std applied after scaling u8 to [0, 1] (torchvision `ToTensor` +
/// `Normalize`): `(x / 255 - mean) / std`, in f32.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// ImageNet statistics (XKD fine-tuning and evaluation).
    pub fn imagenet() -> Self {
        Self {
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }

    /// CCL's `--mean_dataset kinetics` (its default).
    pub fn ccl_kinetics() -> Self {
        Self {
            mean: [0.4345, 0.4051, 0.3775],
            std: [0.2768, 0.2713, 0.2737],
        }
    }

    /// The normalized value of every u8 level per channel. Looking values up gives exactly the
    /// f32 arithmetic of normalizing a tensor element by element.
    pub fn lut(&self) -> [[f32; 256]; 3] {
        let mut lut = [[0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, out) in table.iter_mut().enumerate() {
                *out = (v as f32 / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        lut
    }
}

/// A clip as channel-major f32 `[3, T, H, W]`, normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipArray {
    pub data: Vec<f32>,
    pub frames: usize,
    pub height: usize,
    pub width: usize,
}

impl ClipArray {
    /// A zeroed clip.
    pub fn zeros(frames: usize, height: usize, width: usize) -> Self {
        Self {
            data: vec![0.0; 3 * frames * height * width],
            frames,
            height,
            width,
        }
    }

    /// Normalizes u8 frames as they are (ToTensor + Normalize).
    pub fn from_frames(frames: &[RgbImage], norm: &Normalization) -> Result<Self> {
        let (w, h) = super::check_frames(frames)?;
        let lut = norm.lut();
        let mut clip = Self::zeros(frames.len(), h, w);
        let plane = h * w;
        for (t, f) in frames.iter().enumerate() {
            for (i, p) in f.as_raw().chunks_exact(3).enumerate() {
                for c in 0..3 {
                    clip.data[(c * frames.len() + t) * plane + i] = lut[c][p[c] as usize];
                }
            }
        }
        Ok(clip)
    }

    pub fn shape(&self) -> [usize; 4] {
        [3, self.frames, self.height, self.width]
    }

    /// The plane of channel `c`, frame `t`.
    pub fn plane_mut(&mut self, c: usize, t: usize) -> &mut [f32] {
        let n = self.height * self.width;
        let at = (c * self.frames + t) * n;
        &mut self.data[at..at + n]
    }

    pub fn to_tensor(&self, dev: &Device) -> Result<Tensor> {
        if self.data.len() != self.shape().iter().product::<usize>() {
            return Err(msg(format!(
                "clip data has {} values, shape {:?} needs {}",
                self.data.len(),
                self.shape(),
                self.shape().iter().product::<usize>()
            )));
        }
        Tensor::from_slice(&self.data, self.shape().to_vec(), dev)
    }

    /// Stacks same-shaped clips into `[B, 3, T, H, W]`.
    pub fn stack(clips: &[ClipArray], dev: &Device) -> Result<Tensor> {
        let first = clips
            .first()
            .ok_or_else(|| msg("stacking clips: no clips given".into()))?;
        let shape = first.shape();
        let mut data = Vec::with_capacity(clips.len() * first.data.len());
        for (i, c) in clips.iter().enumerate() {
            if c.shape() != shape || c.data.len() != first.data.len() {
                return Err(msg(format!(
                    "stacking clips: clip {i} has shape {:?}, expected {shape:?} like clip 0",
                    c.shape()
                )));
            }
            data.extend_from_slice(&c.data);
        }
        let mut dims = vec![clips.len()];
        dims.extend_from_slice(&shape);
        Tensor::from_vec(data, dims, dev)
    }
}
