//! The seeded random number generator that everything random in avkd draws from.
//!
//! Candle cannot seed its CPU generator, so initialisation, MAE masks, drop-path, augmentations and
//! data order all draw from this ChaCha stream instead: a run is reproducible from its seed, and the
//! stream position can be saved in a checkpoint and restored on resume.

use candle_core::{Device, Result, Shape, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Where a [`SeededRng`] is in its stream: enough to resume it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RngState {
    pub seed: u64,
    pub word_pos: u128,
}

#[derive(Debug, Clone)]
pub struct SeededRng {
    seed: u64,
    rng: ChaCha8Rng,
}

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub fn state(&self) -> RngState {
        RngState {
            seed: self.seed,
            word_pos: self.rng.get_word_pos(),
        }
    }

    pub fn from_state(state: RngState) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(state.seed);
        rng.set_word_pos(state.word_pos);
        Self {
            seed: state.seed,
            rng,
        }
    }

    /// An independent generator for a named purpose (e.g. one per data worker), derived from this
    /// one's seed so that it does not depend on how much of this stream was used.
    pub fn derive(&self, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(stream);
        let seed = rng.random::<u64>();
        Self::new(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.rng.random()
    }

    /// Uniform in [0, 1).
    pub fn uniform_f64(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// Uniform integer in [lo, hi).
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        self.rng.random_range(lo..hi)
    }

    pub fn normal_f64(&mut self) -> f64 {
        StandardNormal.sample(&mut self.rng)
    }

    pub fn uniform_vec(&mut self, n: usize, lo: f64, up: f64) -> Vec<f32> {
        (0..n)
            .map(|_| (lo + (up - lo) * self.rng.random::<f64>()) as f32)
            .collect()
    }

    pub fn normal_vec(&mut self, n: usize, mean: f64, std: f64) -> Vec<f32> {
        (0..n)
            .map(|_| (mean + std * self.normal_f64()) as f32)
            .collect()
    }

    /// Normal(mean, std) truncated to [lo, hi] by rejection, as timm's `trunc_normal_` (whose bounds
    /// are absolute values, not multiples of std).
    pub fn trunc_normal_vec(
        &mut self,
        n: usize,
        mean: f64,
        std: f64,
        lo: f64,
        hi: f64,
    ) -> Vec<f32> {
        (0..n)
            .map(|_| loop {
                let v = mean + std * self.normal_f64();
                if (lo..=hi).contains(&v) {
                    break v as f32;
                }
            })
            .collect()
    }

    pub fn uniform<S: Into<Shape>>(
        &mut self,
        shape: S,
        lo: f64,
        up: f64,
        dev: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        Tensor::from_vec(self.uniform_vec(shape.elem_count(), lo, up), shape, dev)
    }

    pub fn normal<S: Into<Shape>>(
        &mut self,
        shape: S,
        mean: f64,
        std: f64,
        dev: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        Tensor::from_vec(self.normal_vec(shape.elem_count(), mean, std), shape, dev)
    }

    /// A random permutation of 0..n (Fisher-Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.rng.random_range(0..=i);
            v.swap(i, j);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip_resumes_the_stream() {
        let mut a = SeededRng::new(7);
        a.uniform_vec(13, 0., 1.);
        let saved = a.state();
        let x = a.uniform_vec(5, 0., 1.);
        let mut b = SeededRng::from_state(saved);
        assert_eq!(x, b.uniform_vec(5, 0., 1.));
    }

    #[test]
    fn derived_streams_differ_and_repeat() {
        let r = SeededRng::new(1);
        let mut a = r.derive(1);
        let mut b = r.derive(2);
        let mut a2 = SeededRng::new(1).derive(1);
        let va = a.uniform_vec(4, 0., 1.);
        assert_ne!(va, b.uniform_vec(4, 0., 1.));
        assert_eq!(va, a2.uniform_vec(4, 0., 1.));
    }

    #[test]
    fn trunc_normal_stays_in_bounds() {
        let mut r = SeededRng::new(3);
        let v = r.trunc_normal_vec(10_000, 0., 1., -0.5, 0.5);
        assert!(v.iter().all(|x| (-0.5..=0.5).contains(&(*x as f64))));
    }
}
