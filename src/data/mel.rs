//! XKD's log-mel spectrogram, as its reference computes it (`MelSpectrogramLibrosa` + `SpecAug` in
//! mode 'val', librosa 0.8.1, numpy 1.x, torch):
//!
//! 1. `librosa.stft(y, n_fft=1024, hop_length=143)`: periodic Hann window (f64), centred with numpy
//!    `reflect` padding of n_fft/2, one real FFT per frame in f64, stored as complex64;
//! 2. power `|X|²` in f32 (numpy's complex64 abs), plus `np.finfo(float).eps` (rounded to f32 by
//!    value-based casting);
//! 3. `M @ power` with the Slaney mel filterbank of 80 bands over [0, sr/2];
//! 4. `ln(mel + 1.1920929e-7)` (torch's float32 eps), then `(x − mean) / std`.
//!
//! Each frame goes through a real FFT (realfft) and the mel bands only visit their non-zero bins,
//! so a 4 s clip costs 448 FFTs of 1024 points and about 1000 multiply-adds per frame.

use crate::nn::mel_filters::{periodic_hann, slaney_mel_weights};
use candle_core::{Device, Result, Tensor};
use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Log-mel statistics of Kinetics-Sound (`_KINETICS` in XKD's `cal_norm_stats.py`), the
/// normalisation every XKD pretraining and evaluation config uses.
pub const XKD_KINETICS_MEAN: f32 = -5.3688107;
pub const XKD_KINETICS_STD: f32 = 4.410007;

/// `np.finfo(float).eps`, added to the power spectrum.
const POWER_EPS: f64 = f64::EPSILON;
/// `torch.finfo().eps` (float32), added to the mel energies before the logarithm.
const LOG_EPS: f32 = f32::EPSILON;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LogMelConfig {
    pub sample_rate: usize,
    pub n_fft: usize,
    pub hop_length: usize,
    pub n_mels: usize,
    pub fmin: f64,
    /// `None`: sample_rate / 2 (librosa's default).
    pub fmax: Option<f64>,
    /// `(mean, std)` the log-mel is standardised with; `None` leaves it as ln(mel + eps).
    pub normalize: Option<(f32, f32)>,
}

impl LogMelConfig {
    /// XKD's front end: 16 kHz, n_fft 1024, hop 143, 80 mels over [0, 8000] Hz, Kinetics-Sound
    /// statistics. 4 s (64,000 samples) give [1, 80, 448]; 1 s gives [1, 80, 112].
    pub fn xkd() -> Self {
        Self {
            sample_rate: 16_000,
            n_fft: 1024,
            hop_length: 143,
            n_mels: 80,
            fmin: 0.0,
            fmax: None,
            normalize: Some((XKD_KINETICS_MEAN, XKD_KINETICS_STD)),
        }
    }
}

/// One mel band: the first FFT bin it covers and its non-zero weights from there on.
#[derive(Debug, Clone)]
struct Band {
    first_bin: usize,
    weights: Vec<f32>,
}

/// A waveform -> log-mel transform with its window, FFT plan and filterbank prepared once.
#[derive(Clone)]
pub struct LogMel {
    cfg: LogMelConfig,
    window: Vec<f64>,
    fft: Arc<dyn RealToComplex<f64>>,
    bands: Vec<Band>,
}

impl std::fmt::Debug for LogMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMel").field("cfg", &self.cfg).finish()
    }
}

/// Index into a signal of length `n` padded in numpy's `reflect` mode (edge not repeated; pads
/// longer than the signal keep reflecting, with period 2(n − 1)).
fn reflect_index(i: i64, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as i64 - 1);
    let j = i.rem_euclid(period);
    (if j >= n as i64 { period - j } else { j }) as usize
}

/// `np.abs` of a complex64 as numpy >= 1.25 computes it on x86 with AVX2/AVX-512 (its SIMD
/// `cabsolute` loop): `larger · sqrt(fma(r, r, 1))` with `r = smaller / larger`, all in f32. This
/// differs from `hypotf` in the last bit for about a third of the fixture's bins; matching it
/// makes the power spectrum bit-exact (inputs are finite, so the loop's inf/nan cases never arise).
fn numpy_abs_c64(re: f32, im: f32) -> f32 {
    let (re, im) = (re.abs(), im.abs());
    let (larger, smaller) = (re.max(im), re.min(im));
    if larger == 0.0 {
        return 0.0;
    }
    let r = smaller / larger;
    r.mul_add(r, 1.0).sqrt() * larger
}

impl LogMel {
    pub fn new(cfg: LogMelConfig) -> Result<Self> {
        if cfg.n_fft < 2 || cfg.hop_length == 0 || cfg.n_mels == 0 || cfg.sample_rate == 0 {
            candle_core::bail!("log-mel: invalid configuration {cfg:?}")
        }
        if let Some((_, std)) = cfg.normalize {
            if !(std.is_finite() && std > 0.0) {
                candle_core::bail!("log-mel: normalisation std must be positive, got {std}")
            }
        }
        let fmax = cfg.fmax.unwrap_or(cfg.sample_rate as f64 / 2.0);
        let bins = cfg.n_fft / 2 + 1;
        let dense = slaney_mel_weights(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, fmax)?;
        let bands = dense
            .chunks_exact(bins)
            .map(|row| {
                let first = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let last = row.iter().rposition(|&w| w != 0.0).map_or(0, |l| l + 1);
                Band {
                    first_bin: first,
                    weights: row[first..last.max(first)].to_vec(),
                }
            })
            .collect();
        Ok(Self {
            cfg,
            window: periodic_hann(cfg.n_fft),
            fft: RealFftPlanner::<f64>::new().plan_fft_forward(cfg.n_fft),
            bands,
        })
    }

    pub fn config(&self) -> &LogMelConfig {
        &self.cfg
    }

    /// Number of STFT frames for `len` samples: 1 + len / hop (centred, n_fft even or odd).
    pub fn num_frames(&self, len: usize) -> usize {
        let pad = self.cfg.n_fft / 2;
        1 + (len + 2 * pad - self.cfg.n_fft) / self.cfg.hop_length
    }

    fn frames_of(&self, wav: &[f32]) -> Result<usize> {
        if wav.is_empty() {
            candle_core::bail!("log-mel: empty waveform")
        }
        if let Some(i) = wav.iter().position(|x| !x.is_finite()) {
            candle_core::bail!("log-mel: waveform sample {i} is not finite ({})", wav[i])
        }
        Ok(self.num_frames(wav.len()))
    }

    /// Runs `per_frame(t, power)` with the power spectrum (f32, `|X|² + eps` as librosa + numpy
    /// round it) of every frame t.
    fn for_each_frame(&self, wav: &[f32], mut per_frame: impl FnMut(usize, &[f32])) -> Result<()> {
        let frames = self.frames_of(wav)?;
        let (n_fft, hop, pad) = (self.cfg.n_fft, self.cfg.hop_length, self.cfg.n_fft / 2);
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; n_fft / 2 + 1];
        let eps = POWER_EPS as f32;
        for t in 0..frames {
            let start = (t * hop) as i64 - pad as i64;
            if start >= 0 && start as usize + n_fft <= wav.len() {
                let frame = &wav[start as usize..start as usize + n_fft];
                for ((x, w), &v) in input.iter_mut().zip(&self.window).zip(frame) {
                    *x = v as f64 * w;
                }
            } else {
                for (j, (x, w)) in input.iter_mut().zip(&self.window).enumerate() {
                    *x = wav[reflect_index(start + j as i64, wav.len())] as f64 * w;
                }
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .map_err(|e| candle_core::Error::Msg(format!("log-mel: FFT failed: {e}")))?;
            for (p, c) in power.iter_mut().zip(&spectrum) {
                // librosa stores the f64 FFT as complex64.
                let mag = numpy_abs_c64(c.re as f32, c.im as f32);
                *p = mag * mag + eps;
            }
            per_frame(t, &power);
        }
        Ok(())
    }

    /// `|STFT|² + eps` in librosa's layout, row-major [n_fft/2+1, frames].
    pub fn power_spectrogram(&self, wav: &[f32]) -> Result<Vec<f32>> {
        let frames = self.frames_of(wav)?;
        let bins = self.cfg.n_fft / 2 + 1;
        let mut out = vec![0f32; bins * frames];
        self.for_each_frame(wav, |t, power| {
            for (k, &p) in power.iter().enumerate() {
                out[k * frames + t] = p;
            }
        })?;
        Ok(out)
    }

    /// Mel energies `M @ (|STFT|² + eps)`, row-major [n_mels, frames].
    pub fn mel_spectrogram(&self, wav: &[f32]) -> Result<Vec<f32>> {
        let frames = self.frames_of(wav)?;
        let mut out = vec![0f32; self.cfg.n_mels * frames];
        self.for_each_frame(wav, |t, power| {
            for (m, band) in self.bands.iter().enumerate() {
                let sum: f64 = band
                    .weights
                    .iter()
                    .zip(&power[band.first_bin..])
                    .map(|(&w, &p)| w as f64 * p as f64)
                    .sum();
                out[m * frames + t] = sum as f32;
            }
        })?;
        Ok(out)
    }

    /// The log-mel, standardised when the configuration says so, row-major [n_mels, frames].
    pub fn log_mel(&self, wav: &[f32]) -> Result<Vec<f32>> {
        let mut mel = self.mel_spectrogram(wav)?;
        for x in mel.iter_mut() {
            let l = (*x + LOG_EPS).ln();
            *x = match self.cfg.normalize {
                Some((mean, std)) => (l - mean) / std,
                None => l,
            };
        }
        Ok(mel)
    }

    /// The log-mel as a tensor [1, n_mels, frames] (one channel; a batch of them is the
    /// [B, 1, F, T] input of XKD's audio encoder).
    pub fn forward(&self, wav: &[f32], device: &Device) -> Result<Tensor> {
        let frames = self.frames_of(wav)?;
        Tensor::from_vec(self.log_mel(wav)?, (1, self.cfg.n_mels, frames), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_matches_numpy() {
        // np.pad(np.arange(3), 5, 'reflect') = [1 0 1 2 1 | 0 1 2 | 1 0 1 2 1]
        let got: Vec<usize> = (-5..8).map(|i| reflect_index(i, 3)).collect();
        assert_eq!(got, [1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1]);
        assert_eq!(reflect_index(-4, 1), 0);
    }

    #[test]
    fn frames_and_shape() -> Result<()> {
        let lm = LogMel::new(LogMelConfig::xkd())?;
        assert_eq!(lm.num_frames(64_000), 448);
        assert_eq!(lm.num_frames(16_000), 112);
        let t = lm.forward(&vec![0.1; 16_000], &Device::Cpu)?;
        assert_eq!(t.dims(), &[1, 80, 112]);
        assert!(lm.log_mel(&[]).is_err());
        assert!(lm.log_mel(&[0.0, f32::NAN]).is_err());
        Ok(())
    }
}
