//! Training-mode BatchNorm as one fused CPU op with an analytic backward.
//!
//! The composite form (centre, square, scale, shift) keeps three or four full-size tensors per
//! layer alive until backward; in R(2+1)D, whose (2+1)D convolutions each hold a BatchNorm over
//! their wide intermediate activations, that made a training step at CCL's batch of 16 need more
//! than 24 GiB. Here the forward keeps only its output (the input is kept by the layer before),
//! and the backward recomputes the normalised input from the input and the batch statistics:
//! dx = w·rstd·(g − mean(g) − x̂·mean(g·x̂)), dw = Σ g·x̂, db = Σ g (per channel).
//!
//! Inputs are viewed as [B, C, S] (S: every axis after the channels); statistics are over B and S,
//! accumulated in f64.

use super::cpu_kernel::{float_op1, float_op3};
use candle_core::{CpuStorage, Layout, Result, Shape, Tensor};
use num_traits::Float;
use rayon::prelude::*;

/// [B, C, S] sizes of an input.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    c: usize,
    s: usize,
}

impl Dims {
    fn of(shape: &[usize]) -> Self {
        Self {
            b: shape[0],
            c: shape[1],
            s: shape[2..].iter().product(),
        }
    }

    fn count(&self) -> f64 {
        (self.b * self.s) as f64
    }
}

/// Per channel, Σ over B and S of `f(channel, x, g)` pairs: two sums at once.
fn channel_sums<T: Float + Send + Sync>(
    x: &[T],
    g: Option<&[T]>,
    d: Dims,
    f: impl Fn(usize, f64, f64) -> (f64, f64) + Sync,
) -> Vec<(f64, f64)> {
    (0..d.c)
        .into_par_iter()
        .map(|ch| {
            let mut acc = (0.0, 0.0);
            for bi in 0..d.b {
                let at = (bi * d.c + ch) * d.s;
                for i in at..at + d.s {
                    let gi = g.map_or(0.0, |g| g[i].to_f64().unwrap_or(0.0));
                    let (u, v) = f(ch, x[i].to_f64().unwrap_or(0.0), gi);
                    acc.0 += u;
                    acc.1 += v;
                }
            }
            acc
        })
        .collect()
}

/// The batch mean and biased variance of each channel, as [2, C] (means first).
fn batch_stats<T: Float + Send + Sync>(x: &[T], d: Dims) -> Vec<T> {
    let n = d.count();
    let means: Vec<f64> = channel_sums(x, None, d, |_, v, _| (v, 0.0))
        .into_iter()
        .map(|(s, _)| s / n)
        .collect();
    // Two passes (mean, then squared deviations), as PyTorch, for accuracy.
    let vars = channel_sums(x, None, d, |ch, v, _| ((v - means[ch]).powi(2), 0.0));
    let mut out: Vec<T> = means.iter().map(|&m| T::from(m).unwrap()).collect();
    out.extend(vars.into_iter().map(|(s, _)| T::from(s / n).unwrap()));
    out
}

/// Each row (one sample's one channel, S values) of `out` from the same row of `x` (and `g`).
fn per_row<T: Float + Send + Sync>(
    x: &[T],
    g: Option<&[T]>,
    d: Dims,
    f: impl Fn(usize, T, T) -> T + Sync,
) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(d.s).enumerate().for_each(|(row, o)| {
        let ch = row % d.c;
        let at = row * d.s;
        for (i, slot) in o.iter_mut().enumerate() {
            *slot = f(ch, x[at + i], g.map_or(T::zero(), |g| g[at + i]));
        }
    });
    out
}

/// Per-channel mean and 1/sqrt(var + eps) from a [2, C] statistics slice.
fn mean_rstd<T: Float>(stats: &[T], c: usize, eps: f64) -> (Vec<T>, Vec<T>) {
    let mean = stats[..c].to_vec();
    let rstd = stats[c..]
        .iter()
        .map(|&v| T::from(1.0 / (v.to_f64().unwrap_or(0.0) + eps).sqrt()).unwrap())
        .collect();
    (mean, rstd)
}

/// The batch statistics of `x` ([B, C, ...], contiguous, CPU f32/f64) as [2, C]: means, then
/// biased variances. No gradient.
pub fn batch_statistics(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&StatsOp)
}

/// Normalises `x` with its batch statistics `stats` ([2, C] from [`batch_statistics`]) and applies
/// `affine` ([2, C]: weight, then bias); differentiable in `x` and `affine`.
pub fn batch_norm_train(x: &Tensor, affine: &Tensor, stats: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op3(
        &affine.contiguous()?,
        &stats.detach().contiguous()?,
        BatchNormTrainOp { eps },
    )
}

struct StatsOp;

impl candle_core::CustomOp1 for StatsOp {
    fn name(&self) -> &'static str {
        "avkd-batch-norm-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = Dims::of(l.dims());
        let out = float_op1(
            s,
            l,
            "batch norm statistics",
            |x| batch_stats(x, d),
            |x| batch_stats(x, d),
        )?;
        Ok((out, Shape::from((2, d.c))))
    }
}

struct BatchNormTrainOp {
    eps: f64,
}

fn forward<T: Float + Send + Sync>(x: &[T], wb: &[T], stats: &[T], d: Dims, eps: f64) -> Vec<T> {
    let (mean, rstd) = mean_rstd(stats, d.c, eps);
    let (w, b) = wb.split_at(d.c);
    per_row(x, None, d, |ch, v, _| {
        (v - mean[ch]) * rstd[ch] * w[ch] + b[ch]
    })
}

impl candle_core::CustomOp3 for BatchNormTrainOp {
    fn name(&self) -> &'static str {
        "avkd-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (d, eps) = (Dims::of(l1.dims()), self.eps);
        let out = float_op3(
            (s1, l1),
            (s2, l2),
            (s3, l3),
            "batch norm",
            |x, wb, st| forward(x, wb, st, d, eps),
            |x, wb, st| forward(x, wb, st, d, eps),
        )?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        affine: &Tensor,
        stats: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        // [2, C]: Σ g·x̂, then Σ g — the weight and bias gradients.
        let sums = x.apply_op3_no_bwd(&grad, stats, &AffineGradOp { eps: self.eps })?;
        let small = Tensor::cat(&[affine.narrow(0, 0, 1)?, sums.clone(), stats.clone()], 0)?;
        let dx = grad.apply_op3_no_bwd(x, &small, &InputGradOp { eps: self.eps })?;
        Ok((Some(dx), Some(sums), None))
    }
}

/// Σ g·x̂ and Σ g per channel, as [2, C].
struct AffineGradOp {
    eps: f64,
}

fn affine_grad<T: Float + Send + Sync>(x: &[T], g: &[T], stats: &[T], d: Dims, eps: f64) -> Vec<T> {
    let (mean, rstd) = mean_rstd(stats, d.c, eps);
    let mean: Vec<f64> = mean.iter().map(|m| m.to_f64().unwrap_or(0.0)).collect();
    let rstd: Vec<f64> = rstd.iter().map(|r| r.to_f64().unwrap_or(0.0)).collect();
    let sums = channel_sums(x, Some(g), d, |ch, v, gi| {
        (gi * (v - mean[ch]) * rstd[ch], gi)
    });
    let mut out: Vec<T> = sums.iter().map(|s| T::from(s.0).unwrap()).collect();
    out.extend(sums.iter().map(|s| T::from(s.1).unwrap()));
    out
}

impl candle_core::CustomOp3 for AffineGradOp {
    fn name(&self) -> &'static str {
        "avkd-batch-norm-affine-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (d, eps) = (Dims::of(l1.dims()), self.eps);
        let out = float_op3(
            (s1, l1),
            (s2, l2),
            (s3, l3),
            "batch norm backward",
            |x, g, st| affine_grad(x, g, st, d, eps),
            |x, g, st| affine_grad(x, g, st, d, eps),
        )?;
        Ok((out, Shape::from((2, d.c))))
    }
}

/// dx from g and x, with [w; Σ g·x̂; Σ g; mean; var] ([5, C]) as the third input.
struct InputGradOp {
    eps: f64,
}

fn input_grad<T: Float + Send + Sync>(g: &[T], x: &[T], small: &[T], d: Dims, eps: f64) -> Vec<T> {
    let c = d.c;
    let (mean, rstd) = mean_rstd(&small[3 * c..], c, eps);
    let n = T::from(d.count()).unwrap();
    let (w, sum_gx, sum_g) = (&small[..c], &small[c..2 * c], &small[2 * c..3 * c]);
    per_row(x, Some(g), d, |ch, v, gi| {
        let xhat = (v - mean[ch]) * rstd[ch];
        w[ch] * rstd[ch] * (gi - sum_g[ch] / n - xhat * sum_gx[ch] / n)
    })
}

impl candle_core::CustomOp3 for InputGradOp {
    fn name(&self) -> &'static str {
        "avkd-batch-norm-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (d, eps) = (Dims::of(l1.dims()), self.eps);
        let out = float_op3(
            (s1, l1),
            (s2, l2),
            (s3, l3),
            "batch norm backward",
            |g, x, small| input_grad(g, x, small, d, eps),
            |g, x, small| input_grad(g, x, small, d, eps),
        )?;
        Ok((out, l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::rng::SeededRng;
    use candle_core::{DType, Device, Var, D};

    /// The composite training-mode batch norm, written out.
    fn composite(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
        let (bs, c) = (x.dim(0)?, x.dim(1)?);
        let flat = x.reshape((bs, c, ()))?;
        let n = (flat.elem_count() / c) as f64;
        let mean = (flat.sum(D::Minus1)?.sum(0)? / n)?.reshape((1, c, 1))?;
        let centred = flat.broadcast_sub(&mean)?;
        let var = (centred.sqr()?.sum(D::Minus1)?.sum(0)? / n)?.reshape((1, c, 1))?;
        let y = centred
            .broadcast_div(&(var + eps)?.sqrt()?)?
            .broadcast_mul(&w.reshape((1, c, 1))?)?
            .broadcast_add(&b.reshape((1, c, 1))?)?;
        y.reshape(x.dims())
    }

    /// Value and every gradient of the fused op equal the composite form's (f64).
    #[test]
    fn fused_matches_composite_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = SeededRng::new(3);
        let f64_of = |t: Tensor| t.to_dtype(DType::F64);
        let x = Var::from_tensor(&f64_of(rng.normal((4, 3, 5, 6), 0.7, 2.0, &dev)?)?)?;
        let w = Var::from_tensor(&f64_of(rng.normal(3, 1.0, 0.3, &dev)?)?)?;
        let b = Var::from_tensor(&f64_of(rng.normal(3, 0.0, 0.3, &dev)?)?)?;
        let probe = f64_of(rng.normal((4, 3, 5, 6), 0.0, 1.0, &dev)?)?;
        let stats = batch_statistics(&x)?;
        let affine = Tensor::stack(&[w.as_tensor(), b.as_tensor()], 0)?;
        let fused = batch_norm_train(&x, &affine, &stats, 1e-5)?;
        let comp = composite(&x, &w, &b, 1e-5)?;
        let diff = |a: &Tensor, b: &Tensor| -> Result<f64> {
            (a - b)?.abs()?.max_all()?.to_scalar::<f64>()
        };
        assert!(diff(&fused, &comp)? < 1e-12);
        let gf = (fused * &probe)?.sum_all()?.backward()?;
        let gc = (comp * &probe)?.sum_all()?.backward()?;
        for (name, v) in [("x", &x), ("weight", &w), ("bias", &b)] {
            let d = diff(gf.get(v).unwrap(), gc.get(v).unwrap())?;
            assert!(d < 1e-10, "{name}: gradients differ by {d}");
        }
        // Statistics: the batch mean and the biased variance per channel.
        let var = stats.get(1)?.to_vec1::<f64>()?;
        assert!(var.iter().all(|v| *v > 0.0));
        Ok(())
    }
}
