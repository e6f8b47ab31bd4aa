//! A log-mel spectrogram held as plain data (one audio view), and the batch tensor made of several.

use super::mel::LogMel;
use candle_core::{Device, Result, Tensor};

/// Row-major `[mels, frames]` values (frequency rows, time columns), as XKD's audio encoder reads
/// one channel of `[B, 1, mels, frames]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrogram {
    pub data: Vec<f32>,
    pub mels: usize,
    pub frames: usize,
}

impl Spectrogram {
    /// The log-mel of a waveform (standardised when the [`LogMel`]'s configuration says so).
    pub fn log_mel(logmel: &LogMel, wav: &[f32]) -> Result<Self> {
        let data = logmel.log_mel(wav)?;
        Ok(Self {
            data,
            mels: logmel.config().n_mels,
            frames: logmel.num_frames(wav.len()),
        })
    }

    /// `[mels, frames]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.mels, self.frames]
    }

    /// The spectrogram as `[1, mels, frames]`.
    pub fn to_tensor(&self, dev: &Device) -> Result<Tensor> {
        Tensor::from_slice(&self.data, (1, self.mels, self.frames), dev)
    }

    /// Same-shaped spectrograms stacked into `[B, 1, mels, frames]`.
    pub fn stack(specs: &[&Spectrogram], dev: &Device) -> Result<Tensor> {
        let first = specs
            .first()
            .ok_or_else(|| candle_core::Error::Msg("stacking spectrograms: none given".into()))?;
        let mut data = Vec::with_capacity(specs.len() * first.data.len());
        for (i, s) in specs.iter().enumerate() {
            if s.shape() != first.shape() || s.data.len() != first.data.len() {
                candle_core::bail!(
                    "stacking spectrograms: spectrogram {i} is {:?} ({} values), expected {:?} \
                     like spectrogram 0",
                    s.shape(),
                    s.data.len(),
                    first.shape()
                )
            }
            data.extend_from_slice(&s.data);
        }
        Tensor::from_vec(data, (specs.len(), 1, first.mels, first.frames), dev)
    }
}
