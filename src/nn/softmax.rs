//! Softmax over the last dimension that carries gradients.
//!
//! candle 0.11's fused `softmax_last_dim` records no backward op. On CPU this is a fused kernel with
//! the analytic backward dx = y * (g - sum(g * y)); elsewhere it is candle's composite (differentiable)
//! softmax.

use super::cpu_kernel::{float_op1, float_op2, rows_per_task};
use candle_core::{CpuStorage, DType, Device, Layout, Result, Shape, Tensor, D};
use num_traits::Float;
use rayon::prelude::*;

pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let fused = matches!(x.device(), Device::Cpu) && matches!(x.dtype(), DType::F32 | DType::F64);
    if fused {
        x.contiguous()?.apply_op1(SoftmaxOp)
    } else {
        candle_nn::ops::softmax(x, D::Minus1)
    }
}

/// log-softmax over the last dimension (composite, differentiable, numerically stable).
pub fn log_softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::log_softmax(x, D::Minus1)
}

fn softmax_rows<T: Float + Send + Sync>(x: &[T], d: usize) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    let chunk = d * rows_per_task(d);
    out.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(o, xi)| {
            for (orow, xrow) in o.chunks_mut(d).zip(xi.chunks(d)) {
                let max = xrow.iter().fold(T::neg_infinity(), |a, &v| a.max(v));
                let mut sum = T::zero();
                for (ov, &xv) in orow.iter_mut().zip(xrow) {
                    *ov = (xv - max).exp();
                    sum = sum + *ov;
                }
                let inv = T::one() / sum;
                orow.iter_mut().for_each(|v| *v = *v * inv);
            }
        });
    out
}

fn softmax_grad_rows<T: Float + Send + Sync>(y: &[T], g: &[T], d: usize) -> Vec<T> {
    let mut out = vec![T::zero(); y.len()];
    let chunk = d * rows_per_task(d);
    out.par_chunks_mut(chunk)
        .zip(y.par_chunks(chunk))
        .zip(g.par_chunks(chunk))
        .for_each(|((o, yi), gi)| {
            for ((orow, yrow), grow) in o.chunks_mut(d).zip(yi.chunks(d)).zip(gi.chunks(d)) {
                let dot = yrow
                    .iter()
                    .zip(grow)
                    .fold(T::zero(), |a, (&y, &g)| a + y * g);
                for j in 0..d {
                    orow[j] = yrow[j] * (grow[j] - dot);
                }
            }
        });
    out
}

struct SoftmaxOp;

impl candle_core::CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "avkd-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = *l.dims().last().unwrap_or(&1);
        let out = float_op1(
            s,
            l,
            "softmax",
            |x| softmax_rows(x, d),
            |x| softmax_rows(x, d),
        )?;
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(y.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxGrad)?))
    }
}

struct SoftmaxGrad;

impl candle_core::CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "avkd-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = *l1.dims().last().unwrap_or(&1);
        let out = float_op2(
            (s1, l1),
            (s2, l2),
            "softmax backward",
            |y, g| softmax_grad_rows(y, g, d),
            |y, g| softmax_grad_rows(y, g, d),
        )?;
        Ok((out, l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn fused_matches_composite_forward_and_backward() -> Result<()> {
        let mut rng = crate::nn::rng::SeededRng::new(2);
        let x = Var::from_tensor(
            &rng.normal((2, 3, 9), 0.0, 3.0, &Device::Cpu)?
                .to_dtype(DType::F64)?,
        )?;
        let probe = rng
            .normal((2, 3, 9), 0.0, 1.0, &Device::Cpu)?
            .to_dtype(DType::F64)?;
        let fused = softmax_last_dim(&x)?;
        let comp = candle_nn::ops::softmax(&x, D::Minus1)?;
        let diff = (&fused - &comp)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(diff < 1e-14);
        let gf = (fused * &probe)?.sum_all()?.backward()?;
        let gc = (comp * &probe)?.sum_all()?.backward()?;
        let d = (gf.get(&x).unwrap() - gc.get(&x).unwrap())?
            .abs()?
            .max_all()?
            .to_scalar::<f64>()?;
        assert!(d < 1e-12, "gradient differs by {d}");
        Ok(())
    }
}
