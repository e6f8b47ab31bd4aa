//! PANNs' audio front end: the torchlibrosa 0.0.9 `Spectrogram` (STFT as a strided convolution with
//! frozen DFT kernels, periodic Hann window, centred with reflect padding, power 2) followed by
//! `LogmelFilterBank` (librosa 0.9.2 Slaney mel filterbank, 10·log10 with amin 1e-10, ref 1.0,
//! top_db None), as `Cnn14` builds them.
//!
//! The strided convolution is written as a gather of (reflect-padded) frames and one matrix product
//! with the real and imaginary kernels stacked: the same sums as PyTorch's conv1d, with a correct
//! gradient (candle's conv1d weight gradient is wrong for batch > 1).

use super::cnn14::Cnn14Config;
use crate::nn::mel_filters::{periodic_hann, slaney_mel_weights};
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};

/// `amin` of torchlibrosa's `power_to_db`: powers are clamped to it before the logarithm.
pub const AMIN: f64 = 1e-10;
/// `ref` of torchlibrosa's `power_to_db` (PANNs uses 1.0, so nothing is subtracted).
pub const REF: f64 = 1.0;

/// torchlibrosa's STFT kernels `conv_real.weight` and `conv_imag.weight`, each [n_fft/2+1, 1, n_fft]:
/// cos(2πkn/N)·w[n] and −sin(2πkn/N)·w[n] with the periodic Hann window w (win_length = n_fft).
/// Computed in f64 with the phase k·n reduced modulo N, then rounded to f32.
pub fn dft_kernels(n_fft: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    if n_fft == 0 {
        candle_core::bail!("dft_kernels: n_fft must be positive")
    }
    let bins = n_fft / 2 + 1;
    let window = periodic_hann(n_fft);
    let mut real = Vec::with_capacity(bins * n_fft);
    let mut imag = Vec::with_capacity(bins * n_fft);
    for k in 0..bins {
        for (n, w) in window.iter().enumerate() {
            let phase = 2.0 * std::f64::consts::PI * ((k * n) % n_fft) as f64 / n_fft as f64;
            real.push((phase.cos() * w) as f32);
            imag.push((-phase.sin() * w) as f32);
        }
    }
    Ok((
        Tensor::from_vec(real, (bins, 1, n_fft), device)?,
        Tensor::from_vec(imag, (bins, 1, n_fft), device)?,
    ))
}

/// `logmel_extractor.melW` [n_fft/2+1, n_mels]: the transpose of
/// `librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False, norm='slaney')` (librosa 0.9.2).
pub fn slaney_mel_filterbank(
    sample_rate: usize,
    n_fft: usize,
    n_mels: usize,
    fmin: f64,
    fmax: f64,
    device: &Device,
) -> Result<Tensor> {
    let weights = slaney_mel_weights(sample_rate, n_fft, n_mels, fmin, fmax)?;
    Tensor::from_vec(weights, (n_mels, n_fft / 2 + 1), device)?
        .t()?
        .contiguous()
}

/// A frozen buffer of the checkpoint: loaded when `vb` has it; otherwise `computed` is used, and
/// stored in `vb`'s variables when it is backed by a parameter store (so that it is saved with the
/// model, as PyTorch saves these buffers).
fn frozen_buffer(vb: &VarBuilder, name: &str, computed: Tensor) -> Result<Tensor> {
    let computed = computed.to_dtype(vb.dtype())?.to_device(vb.device())?;
    if vb.contains_tensor(name) {
        return Ok(vb.get(computed.shape(), name)?.detach());
    }
    match vb.get_with_hints(computed.shape(), name, Init::Const(0.)) {
        Ok(t) => match Var::from_tensor(&t) {
            // `Var::from_tensor` returns the same variable when `t` is one.
            Ok(var) if var.as_tensor().id() == t.id() => {
                var.set(&computed)?;
                Ok(t.detach())
            }
            _ => Ok(computed),
        },
        Err(_) => Ok(computed),
    }
}

/// Waveform [B, L] -> log-mel spectrogram in dB [B, 1, frames, mel_bins].
#[derive(Debug, Clone)]
pub struct LogMelFrontend {
    /// [n_fft, 2·bins]: the real kernels then the imaginary ones, transposed for `frames · dft`.
    dft: Tensor,
    /// [bins, mel_bins]
    mel_w: Tensor,
    n_fft: usize,
    hop: usize,
    bins: usize,
}

impl LogMelFrontend {
    /// Reads `spectrogram_extractor.stft.conv_{real,imag}.weight` and `logmel_extractor.melW` from
    /// `vb` (the model's root), or computes them from `cfg` when absent.
    pub fn new(cfg: &Cnn14Config, vb: VarBuilder) -> Result<Self> {
        let (n_fft, hop) = (cfg.window_size, cfg.hop_size);
        if n_fft < 2 || hop == 0 {
            candle_core::bail!(
                "LogMelFrontend: window_size {n_fft} must be >= 2 and hop_size {hop} >= 1"
            )
        }
        let bins = n_fft / 2 + 1;
        let (real, imag) = dft_kernels(n_fft, &Device::Cpu)?;
        let stft = vb.pp("spectrogram_extractor").pp("stft");
        let real = frozen_buffer(&stft.pp("conv_real"), "weight", real)?;
        let imag = frozen_buffer(&stft.pp("conv_imag"), "weight", imag)?;
        let dft = Tensor::cat(&[real, imag], 0)?
            .reshape((2 * bins, n_fft))?
            .t()?
            .contiguous()?;
        let mel_w = slaney_mel_filterbank(
            cfg.sample_rate,
            n_fft,
            cfg.mel_bins,
            cfg.fmin,
            cfg.fmax,
            &Device::Cpu,
        )?;
        let mel_w = frozen_buffer(&vb.pp("logmel_extractor"), "melW", mel_w)?;
        Ok(Self {
            dft,
            mel_w,
            n_fft,
            hop,
            bins,
        })
    }

    /// Frames of a waveform of `len` samples: (len + 2·(n_fft/2) − n_fft)/hop + 1, or 0 when the
    /// reflect padding is impossible (PyTorch needs len > n_fft/2).
    pub fn num_frames(&self, len: usize) -> usize {
        let pad = self.n_fft / 2;
        if len <= pad || len + 2 * pad < self.n_fft {
            return 0;
        }
        (len + 2 * pad - self.n_fft) / self.hop + 1
    }

    /// Sample index of every frame element, frame-major [frames·n_fft], of the waveform padded by
    /// n_fft/2 on both sides with reflection (the edge sample is not repeated).
    fn frame_indices(&self, len: usize, frames: usize, device: &Device) -> Result<Tensor> {
        let (pad, last) = ((self.n_fft / 2) as i64, len as i64 - 1);
        let mut idx = Vec::with_capacity(frames * self.n_fft);
        for t in 0..frames {
            for k in 0..self.n_fft {
                let mut j = (t * self.hop + k) as i64 - pad;
                if j < 0 {
                    j = -j;
                } else if j > last {
                    j = 2 * last - j;
                }
                idx.push(j as u32);
            }
        }
        Tensor::from_vec(idx, frames * self.n_fft, device)
    }

    /// Power spectrogram |STFT|² [B, 1, frames, n_fft/2+1].
    pub fn power_spectrogram(&self, wav: &Tensor) -> Result<Tensor> {
        let (b, len) = match wav.dims() {
            &[b, len] => (b, len),
            d => candle_core::bail!(
                "log-mel front end: waveform must be [batch, samples], got shape {d:?}"
            ),
        };
        let frames = self.num_frames(len);
        if frames == 0 {
            candle_core::bail!(
                "log-mel front end: waveform of shape {:?} is too short for reflect padding of {} (n_fft {})",
                wav.dims(),
                self.n_fft / 2,
                self.n_fft
            )
        }
        let wav = wav.to_dtype(self.dft.dtype())?.contiguous()?;
        let idx = self.frame_indices(len, frames, wav.device())?;
        let framed = wav
            .index_select(&idx, 1)?
            .reshape((b * frames, self.n_fft))?;
        let spec = framed.matmul(&self.dft)?;
        let real = spec.narrow(1, 0, self.bins)?;
        let imag = spec.narrow(1, self.bins, self.bins)?;
        (real.sqr()? + imag.sqr()?)?.reshape((b, 1, frames, self.bins))
    }

    /// Log-mel spectrogram in dB [B, 1, frames, mel_bins]: 10·log10(max(P·melW, amin)) − 10·log10(max(amin, ref)).
    pub fn forward(&self, wav: &Tensor) -> Result<Tensor> {
        let power = self.power_spectrogram(wav)?;
        let (b, _, frames, bins) = power.dims4()?;
        let mel = power.reshape((b * frames, bins))?.matmul(&self.mel_w)?;
        let db = (mel.maximum(AMIN)?.log()? * (10.0 / std::f64::consts::LN_10))?;
        let db = (db - 10.0 * AMIN.max(REF).log10())?;
        db.reshape((b, 1, frames, self.mel_w.dim(1)?))
    }

    pub fn mel_filterbank(&self) -> &Tensor {
        &self.mel_w
    }

    /// The STFT kernels as one [n_fft, 2·(n_fft/2+1)] matrix (real columns, then imaginary).
    pub fn dft_matrix(&self) -> &Tensor {
        &self.dft
    }

    pub fn dtype(&self) -> DType {
        self.dft.dtype()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// n_fft 4, hop 2, 5 samples: padded x2 x1 | x0 x1 x2 x3 x4 | x3 x2, frames start every 2.
    #[test]
    fn frames_reflect_the_edges() -> Result<()> {
        let cfg = Cnn14Config {
            window_size: 4,
            hop_size: 2,
            ..Cnn14Config::panns()
        };
        let fe = LogMelFrontend::new(&cfg, VarBuilder::zeros(DType::F32, &Device::Cpu))?;
        assert_eq!(fe.num_frames(5), 3);
        let idx = fe.frame_indices(5, 3, &Device::Cpu)?.to_vec1::<u32>()?;
        assert_eq!(idx, [2, 1, 0, 1, 0, 1, 2, 3, 2, 3, 4, 3]);
        assert_eq!(fe.num_frames(2), 0);
        Ok(())
    }
}
