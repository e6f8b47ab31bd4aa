//! Synthetic audio-visual clips with class-dependent motion and sound, generated in memory: enough
//! structure for XKD's objectives to learn from, with no dataset on disk.
//!
//! Class k of K: a square of random colour, starting at a random place, moves across the frames in
//! direction 2πk/K, so only the motion tells the class; the spectrogram holds a tone band at a
//! class-dependent mel bin pulsing at a class-dependent rate, so both modalities carry the class, as
//! cross-modal distillation assumes.
//!
//! [`MovingSquare`] and [`Tone`] are that class signature; [`super::synth_dataset`] writes the same
//! signature to disk as JPEG frames and WAV audio.

use crate::nn::rng::SeededRng;
use candle_core::{Device, Result, Tensor};

/// The visual half of a class's signature: a square of random colour, starting at a random place,
/// moving in direction 2πk/K and crossing the frame once per clip (wrapping around the edges).
#[derive(Debug, Clone, PartialEq)]
pub struct MovingSquare {
    /// Top-left corner at frame 0, in pixels.
    pub origin: (f64, f64),
    /// Unit vector of the motion (x right, y down).
    pub direction: (f64, f64),
    pub side: usize,
    /// RGB in [0, 1).
    pub colour: [f32; 3],
    size: usize,
    frames: usize,
}

impl MovingSquare {
    /// Draws the start (2 uniform draws) and then the colour (3) of one clip of `class`.
    pub fn random(
        class: usize,
        num_classes: usize,
        size: usize,
        frames: usize,
        rng: &mut SeededRng,
    ) -> Self {
        let angle = std::f64::consts::TAU * class as f64 / num_classes as f64;
        let (x0, y0) = (
            rng.uniform_f64() * size as f64,
            rng.uniform_f64() * size as f64,
        );
        let colour = [
            rng.uniform_f64() as f32,
            rng.uniform_f64() as f32,
            rng.uniform_f64() as f32,
        ];
        Self {
            origin: (x0, y0),
            direction: (angle.cos(), angle.sin()),
            side: (size / 4).max(2),
            colour,
            size,
            frames,
        }
    }

    /// The square moved by `(dx, dy)` pixels: another clip of the same scene.
    pub fn shifted(&self, dx: f64, dy: f64) -> Self {
        Self {
            origin: (self.origin.0 + dx, self.origin.1 + dy),
            ..self.clone()
        }
    }

    /// Top-left corner at frame `ti`, wrapped into the frame.
    pub fn corner(&self, ti: usize) -> (usize, usize) {
        let (s, t) = (self.size as f64, self.frames as f64);
        let (x0, y0) = self.origin;
        let (dx, dy) = self.direction;
        (
            (x0 + dx * ti as f64 * s / t).rem_euclid(s) as usize,
            (y0 + dy * ti as f64 * s / t).rem_euclid(s) as usize,
        )
    }

    /// Whether pixel (x, y) lies in the square whose corner is `corner`, wrapping around the edges.
    pub fn covers(&self, corner: (usize, usize), x: usize, y: usize) -> bool {
        let s = self.size;
        (y + s - corner.1) % s < self.side && (x + s - corner.0) % s < self.side
    }
}

/// The audible half of a class's signature: a tone at a class-dependent pitch whose loudness pulses
/// 1 + k times per clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tone {
    pub class: usize,
    pub num_classes: usize,
}

impl Tone {
    /// The mel bin of `bins` the tone sits on: (k + 1) / (K + 1) of the way up.
    pub fn band(&self, bins: usize) -> usize {
        (self.class + 1) * bins / (self.num_classes + 1)
    }

    /// Loudness in [0, 1] at step `i` of `n` over the clip.
    pub fn envelope(&self, i: usize, n: usize) -> f64 {
        0.5 + 0.5 * (std::f64::consts::TAU * (1.0 + self.class as f64) * i as f64 / n as f64).cos()
    }

    /// The frequency that lands on the centre of mel bin [`Self::band`] of a `mel_bins`-bin Slaney
    /// mel filterbank from 0 Hz to `sample_rate / 2` (librosa's default, which XKD uses), so a
    /// waveform of this tone shows the same band as the generated spectrograms.
    pub fn frequency_hz(&self, sample_rate: u32, mel_bins: usize) -> f64 {
        let top = hz_to_mel_slaney(sample_rate as f64 / 2.0);
        // librosa places n_mels + 2 equally spaced mel points; filter b peaks at point b + 1.
        let mel = top * (self.band(mel_bins) + 1) as f64 / (mel_bins + 1) as f64;
        mel_to_hz_slaney(mel)
    }
}

/// Slaney's mel scale (librosa `htk=False`): linear below 1 kHz, logarithmic above.
fn hz_to_mel_slaney(hz: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

fn mel_to_hz_slaney(mel: f64) -> f64 {
    let (f_sp, min_log_hz) = (200.0 / 3.0, 1000.0);
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        mel * f_sp
    }
}

#[derive(Debug, Clone)]
pub struct SyntheticAv {
    pub num_classes: usize,
    pub frames: usize,
    pub size: usize,
    pub mel_bins: usize,
    pub spec_frames: usize,
}

/// One batch of both modalities, with views as XKD's pretraining pipeline makes them.
#[derive(Debug, Clone)]
pub struct AvBatch {
    /// [global [B, 3, T, H, W], local [B, 3, T_l, H_l, W_l]]
    pub frames: Vec<Tensor>,
    /// [global [B, 1, F, S], local [B, 1, F, S_l]]
    pub specs: Vec<Tensor>,
    pub labels: Vec<usize>,
}

impl SyntheticAv {
    /// One clip [3, T, H, W] and its spectrogram [1, F, S], both roughly standardised.
    pub fn sample(&self, class: usize, rng: &mut SeededRng) -> (Vec<f32>, Vec<f32>) {
        let (t, s, f, n) = (self.frames, self.size, self.mel_bins, self.spec_frames);
        let square = MovingSquare::random(class, self.num_classes, s, t, rng);
        let mut video = vec![0f32; 3 * t * s * s];
        for ti in 0..t {
            let corner = square.corner(ti);
            for c in 0..3 {
                for y in 0..s {
                    for x in 0..s {
                        let v = if square.covers(corner, x, y) {
                            2.0 * square.colour[c]
                        } else {
                            -0.5
                        } + 0.1 * rng.normal_f64() as f32;
                        video[((c * t + ti) * s + y) * s + x] = v;
                    }
                }
            }
        }
        let tone = Tone {
            class,
            num_classes: self.num_classes,
        };
        let band = tone.band(f);
        let mut spec = vec![0f32; f * n];
        for fi in 0..f {
            for ti in 0..n {
                let level = if fi.abs_diff(band) <= 1 {
                    2.0 * tone.envelope(ti, n)
                } else {
                    0.0
                };
                spec[fi * n + ti] = (level - 0.3 + 0.2 * rng.normal_f64()) as f32;
            }
        }
        (video, spec)
    }

    /// A batch of random classes with one global and one local view per modality: the local video
    /// view is a random window of half the frames and a random 3/4-size crop (rounded to `patch` and
    /// `tubelet`), the local spectrogram a random quarter of the time axis (rounded to `spec_patch`).
    pub fn batch(
        &self,
        b: usize,
        tubelet: usize,
        patch: usize,
        spec_patch: usize,
        rng: &mut SeededRng,
        dev: &Device,
    ) -> Result<AvBatch> {
        let (t, s, f, n) = (self.frames, self.size, self.mel_bins, self.spec_frames);
        let mut videos = Vec::with_capacity(b * 3 * t * s * s);
        let mut specs = Vec::with_capacity(b * f * n);
        let mut labels = Vec::with_capacity(b);
        for _ in 0..b {
            let class = rng.range(0, self.num_classes);
            let (v, a) = self.sample(class, rng);
            videos.extend(v);
            specs.extend(a);
            labels.push(class);
        }
        let global_v = Tensor::from_vec(videos, (b, 3, t, s, s), dev)?;
        let global_a = Tensor::from_vec(specs, (b, 1, f, n), dev)?;
        let round = |x: usize, m: usize| (x / m).max(1) * m;
        let (lt, ls, ln) = (
            round(t / 2, tubelet),
            round(s * 3 / 4, patch),
            round(n / 4, spec_patch),
        );
        let (t0, y0, x0, a0) = (
            rng.range(0, t - lt + 1),
            rng.range(0, s - ls + 1),
            rng.range(0, s - ls + 1),
            rng.range(0, n - ln + 1),
        );
        let local_v = global_v
            .narrow(2, t0, lt)?
            .narrow(3, y0, ls)?
            .narrow(4, x0, ls)?
            .contiguous()?;
        let local_a = global_a.narrow(3, a0, ln)?.contiguous()?;
        Ok(AvBatch {
            frames: vec![global_v, local_v],
            specs: vec![global_a, local_a],
            labels,
        })
    }
}
