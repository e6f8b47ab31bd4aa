//! Synthetic audio-visual clips with class-dependent motion and sound, generated in memory: enough
//! structure for XKD's objectives to learn from, with no dataset on disk.
//!
//! Class k of K: a square of random colour, starting at a random place, moves across the frames in
//! direction 2πk/K, so only the motion tells the class; the spectrogram holds a tone band at a
//! class-dependent mel bin pulsing at a class-dependent rate, so both modalities carry the class, as
//! cross-modal distillation assumes.

use crate::nn::rng::SeededRng;
use candle_core::{Device, Result, Tensor};

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
        let angle = std::f64::consts::TAU * class as f64 / self.num_classes as f64;
        let (dx, dy) = (angle.cos(), angle.sin());
        let side = (s / 4).max(2);
        let (x0, y0) = (rng.uniform_f64() * s as f64, rng.uniform_f64() * s as f64);
        let colour = [
            rng.uniform_f64() as f32,
            rng.uniform_f64() as f32,
            rng.uniform_f64() as f32,
        ];
        let mut video = vec![0f32; 3 * t * s * s];
        for ti in 0..t {
            let cx = (x0 + dx * ti as f64 * s as f64 / t as f64).rem_euclid(s as f64) as usize;
            let cy = (y0 + dy * ti as f64 * s as f64 / t as f64).rem_euclid(s as f64) as usize;
            for c in 0..3 {
                for y in 0..s {
                    for x in 0..s {
                        let inside = (y + s - cy) % s < side && (x + s - cx) % s < side;
                        let v = if inside { 2.0 * colour[c] } else { -0.5 }
                            + 0.1 * rng.normal_f64() as f32;
                        video[((c * t + ti) * s + y) * s + x] = v;
                    }
                }
            }
        }
        let band = (class + 1) * f / (self.num_classes + 1);
        let mut spec = vec![0f32; f * n];
        for fi in 0..f {
            for ti in 0..n {
                let pulse = 0.5
                    + 0.5
                        * (std::f64::consts::TAU * (1.0 + class as f64) * ti as f64 / n as f64)
                            .cos();
                let tone = if fi.abs_diff(band) <= 1 {
                    2.0 * pulse
                } else {
                    0.0
                };
                spec[fi * n + ti] = (tone - 0.3 + 0.2 * rng.normal_f64()) as f32;
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
