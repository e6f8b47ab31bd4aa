//! Layer normalisation that carries gradients.
//!
//! candle 0.11's fused `layer_norm` (and `LayerNorm::forward` on contiguous input) record no backward
//! op, so parameters before them silently get no gradient. Here the CPU path is a fused kernel with an
//! analytic backward, and other devices use composite candle ops, which are differentiable.

use super::cpu_kernel::{float_op2, float_op3, rows_per_task};
use candle_core::{CpuStorage, DType, Device, Layout, Module, Result, Shape, Tensor, D};
use candle_nn::VarBuilder;
use num_traits::Float;
use rayon::prelude::*;

#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    dim: usize,
    eps: f64,
}

impl LayerNorm {
    /// `nn.LayerNorm(dim, eps)` with affine weight (init 1) and bias (init 0).
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get_with_hints(dim, "weight", candle_nn::Init::Const(1.))?;
        let bias = vb.get_with_hints(dim, "bias", candle_nn::Init::Const(0.))?;
        Ok(Self {
            weight: Some(weight),
            bias: Some(bias),
            dim,
            eps,
        })
    }

    /// `nn.LayerNorm(dim, eps, elementwise_affine=False)`.
    pub fn no_affine(dim: usize, eps: f64) -> Self {
        Self {
            weight: None,
            bias: None,
            dim,
            eps,
        }
    }

    pub fn weight(&self) -> Option<&Tensor> {
        self.weight.as_ref()
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.dim(D::Minus1)? != self.dim {
            candle_core::bail!(
                "layer norm over {} features got input of shape {:?}",
                self.dim,
                x.dims()
            )
        }
        layer_norm(x, self.weight.as_ref(), self.bias.as_ref(), self.eps)
    }
}

/// Normalises over the last dimension, then applies the optional affine transform.
pub fn layer_norm(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let fused = matches!(x.device(), Device::Cpu) && matches!(x.dtype(), DType::F32 | DType::F64);
    if !fused {
        return layer_norm_composite(x, weight, bias, eps);
    }
    let dim = x.dim(D::Minus1)?;
    let affine = weight.is_some() || bias.is_some();
    let w = match weight {
        Some(w) => w.clone(),
        None => Tensor::ones(dim, x.dtype(), x.device())?,
    };
    let b = match bias {
        Some(b) => b.clone(),
        None => Tensor::zeros(dim, x.dtype(), x.device())?,
    };
    x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &b.contiguous()?,
        LayerNormOp { eps, affine },
    )
}

fn layer_norm_composite(
    x: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let in_dtype = x.dtype();
    let x = match in_dtype {
        DType::F16 | DType::BF16 => x.to_dtype(DType::F32)?,
        _ => x.clone(),
    };
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let mut y = centred
        .broadcast_div(&(var + eps)?.sqrt()?)?
        .to_dtype(in_dtype)?;
    if let Some(w) = weight {
        y = y.broadcast_mul(w)?;
    }
    if let Some(b) = bias {
        y = y.broadcast_add(b)?;
    }
    Ok(y)
}

/// `F.normalize(x, dim=-1)`: x / max(‖x‖, 1e-12), written as x / sqrt(max(‖x‖², 1e-24)) so that an
/// all-zero row gets a zero gradient rather than sqrt's 0/0.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.maximum(1e-24)?.sqrt()?;
    x.broadcast_div(&norm)
}

struct LayerNormOp {
    eps: f64,
    affine: bool,
}

/// Row statistics (mean, 1/std) of a contiguous row.
fn row_stats<T: Float>(row: &[T], eps: f64) -> (T, T) {
    let n = T::from(row.len()).unwrap();
    let mean = row.iter().fold(T::zero(), |a, &v| a + v) / n;
    let var = row
        .iter()
        .fold(T::zero(), |a, &v| a + (v - mean) * (v - mean))
        / n;
    (mean, T::one() / (var + T::from(eps).unwrap()).sqrt())
}

fn ln_forward<T: Float + Send + Sync>(x: &[T], w: &[T], b: &[T], eps: f64) -> Vec<T> {
    let d = w.len();
    let mut out = vec![T::zero(); x.len()];
    out.par_chunks_mut(d * rows_per_task(d))
        .zip(x.par_chunks(d * rows_per_task(d)))
        .for_each(|(o, xi)| {
            for (orow, xrow) in o.chunks_mut(d).zip(xi.chunks(d)) {
                let (mean, rstd) = row_stats(xrow, eps);
                for j in 0..d {
                    orow[j] = (xrow[j] - mean) * rstd * w[j] + b[j];
                }
            }
        });
    out
}

/// dL/dx of layer norm: rstd * (gw - mean(gw) - xhat * mean(gw * xhat)) with gw = g * w.
fn ln_backward_input<T: Float + Send + Sync>(x: &[T], w: &[T], g: &[T], eps: f64) -> Vec<T> {
    let d = w.len();
    let n = T::from(d).unwrap();
    let mut out = vec![T::zero(); x.len()];
    let chunk = d * rows_per_task(d);
    out.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .zip(g.par_chunks(chunk))
        .for_each(|((o, xi), gi)| {
            for ((orow, xrow), grow) in o.chunks_mut(d).zip(xi.chunks(d)).zip(gi.chunks(d)) {
                let (mean, rstd) = row_stats(xrow, eps);
                let (mut sum_gw, mut sum_gwx) = (T::zero(), T::zero());
                for j in 0..d {
                    let gw = grow[j] * w[j];
                    sum_gw = sum_gw + gw;
                    sum_gwx = sum_gwx + gw * (xrow[j] - mean) * rstd;
                }
                let (mean_gw, mean_gwx) = (sum_gw / n, sum_gwx / n);
                for j in 0..d {
                    let xhat = (xrow[j] - mean) * rstd;
                    orow[j] = rstd * (grow[j] * w[j] - mean_gw - xhat * mean_gwx);
                }
            }
        });
    out
}

/// (sum over rows of g * xhat, sum over rows of g): the weight and bias gradients, in one pass.
fn ln_backward_affine<T: Float + Send + Sync>(x: &[T], g: &[T], d: usize, eps: f64) -> Vec<T> {
    let chunk = d * rows_per_task(d);
    x.par_chunks(chunk)
        .zip(g.par_chunks(chunk))
        .map(|(xi, gi)| {
            let mut acc = vec![T::zero(); 2 * d];
            for (xrow, grow) in xi.chunks(d).zip(gi.chunks(d)) {
                let (mean, rstd) = row_stats(xrow, eps);
                for j in 0..d {
                    acc[j] = acc[j] + grow[j] * (xrow[j] - mean) * rstd;
                    acc[d + j] = acc[d + j] + grow[j];
                }
            }
            acc
        })
        .reduce(
            || vec![T::zero(); 2 * d],
            |a, b| a.iter().zip(&b).map(|(x, y)| *x + *y).collect(),
        )
}

impl candle_core::CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "avkd-layer-norm"
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
        let eps = self.eps;
        let out = float_op3(
            (s1, l1),
            (s2, l2),
            (s3, l3),
            "layer norm",
            |x, w, b| ln_forward(x, w, b, eps),
            |x, w, b| ln_forward(x, w, b, eps),
        )?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = x.apply_op3_no_bwd(w, &grad, &LayerNormInputGrad { eps: self.eps })?;
        if !self.affine {
            return Ok((Some(dx), None, None));
        }
        let d = w.elem_count();
        let dwb = x.apply_op2_no_bwd(
            &grad,
            &LayerNormAffineGrad {
                eps: self.eps,
                dim: d,
            },
        )?;
        Ok((
            Some(dx),
            Some(dwb.narrow(0, 0, d)?),
            Some(dwb.narrow(0, d, d)?),
        ))
    }
}

struct LayerNormInputGrad {
    eps: f64,
}

impl candle_core::CustomOp3 for LayerNormInputGrad {
    fn name(&self) -> &'static str {
        "avkd-layer-norm-input-grad"
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
        let eps = self.eps;
        let out = float_op3(
            (s1, l1),
            (s2, l2),
            (s3, l3),
            "layer norm backward",
            |x, w, g| ln_backward_input(x, w, g, eps),
            |x, w, g| ln_backward_input(x, w, g, eps),
        )?;
        Ok((out, l1.shape().clone()))
    }
}

struct LayerNormAffineGrad {
    eps: f64,
    dim: usize,
}

impl candle_core::CustomOp2 for LayerNormAffineGrad {
    fn name(&self) -> &'static str {
        "avkd-layer-norm-affine-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (eps, dim) = (self.eps, self.dim);
        let out = float_op2(
            (s1, l1),
            (s2, l2),
            "layer norm backward",
            |x, g| ln_backward_affine(x, g, dim, eps),
            |x, g| ln_backward_affine(x, g, dim, eps),
        )?;
        Ok((out, Shape::from(2 * self.dim)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    /// The fused CPU op and the composite path agree in value and in every gradient.
    #[test]
    fn fused_matches_composite_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = crate::nn::rng::SeededRng::new(11);
        let x = Var::from_tensor(
            &rng.normal((3, 5, 7), 0.5, 2.0, &dev)?
                .to_dtype(DType::F64)?,
        )?;
        let w = Var::from_tensor(&rng.normal(7, 1.0, 0.3, &dev)?.to_dtype(DType::F64)?)?;
        let b = Var::from_tensor(&rng.normal(7, 0.0, 0.3, &dev)?.to_dtype(DType::F64)?)?;
        let probe = rng
            .normal((3, 5, 7), 0.0, 1.0, &dev)?
            .to_dtype(DType::F64)?;
        let fused = layer_norm(&x, Some(&w), Some(&b), 1e-5)?;
        let comp = layer_norm_composite(&x, Some(&w), Some(&b), 1e-5)?;
        let diff = (&fused - &comp)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(diff < 1e-12, "forward differs by {diff}");
        let gf = (fused * &probe)?.sum_all()?.backward()?;
        let gc = (comp * &probe)?.sum_all()?.backward()?;
        for v in [&x, &w, &b] {
            let d = (gf.get(v).unwrap() - gc.get(v).unwrap())?
                .abs()?
                .max_all()?
                .to_scalar::<f64>()?;
            assert!(d < 1e-10, "gradient differs by {d}");
        }
        Ok(())
    }

    #[test]
    fn no_affine_normalises_rows() -> Result<()> {
        let x = Tensor::new(&[[1f32, 2., 3., 4.], [10., 10., 10., 14.]], &Device::Cpu)?;
        let y = LayerNorm::no_affine(4, 1e-5).forward(&x)?;
        let mean = y.mean_keepdim(1)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(mean < 1e-6);
        Ok(())
    }
}
