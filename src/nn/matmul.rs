//! a · bᵀ as one op, for Linear layers (x · Wᵀ) and attention scores (q · kᵀ).
//!
//! Written with candle's ops, `a.matmul(&b.t())` records a transpose node: its backward produces the
//! gradient of b transposed and adds it into a zero buffer element by element (a strided add), once
//! per weight per step. This op reads b transposed inside the gemm and returns both gradients in
//! their own layouts: da = g · b, db = gᵀ · a. Every backend's own matmul does the work.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, Layout, MetalStorage, Result, Shape, Tensor};

/// a [..., m, k] · b [..., n, k]ᵀ -> [..., m, n]; the leading (batch) dimensions must be equal.
pub fn matmul_nt(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (ad, bd) = (a.dims(), b.dims());
    let r = ad.len();
    if r < 2 || bd.len() != r || ad[..r - 2] != bd[..r - 2] || ad[r - 1] != bd[r - 1] {
        candle_core::bail!("matmul_nt: cannot multiply {ad:?} by the transpose of {bd:?}")
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, MatmulNt)
}

struct MatmulNt;

/// (batch, m, n, k) of a batched matmul, as Candle's storage `matmul` takes it.
type BatchMnk = (usize, usize, usize, usize);

impl MatmulNt {
    /// (batch, m, n, k), the transposed layout of b, and the output shape.
    fn plan(l1: &Layout, l2: &Layout) -> Result<(BatchMnk, Layout, Shape)> {
        let (ad, bd) = (l1.dims(), l2.dims());
        let r = ad.len();
        let (m, k, n) = (ad[r - 2], ad[r - 1], bd[r - 2]);
        let batch: usize = ad[..r - 2].iter().product();
        let mut out = ad[..r - 2].to_vec();
        out.extend([m, n]);
        Ok((
            (batch, m, n, k),
            l2.transpose(r - 2, r - 1)?,
            Shape::from(out),
        ))
    }
}

impl candle_core::CustomOp2 for MatmulNt {
    fn name(&self) -> &'static str {
        "avkd-matmul-nt"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (bmnk, l2t, shape) = Self::plan(l1, l2)?;
        Ok((s1.matmul(s2, bmnk, l1, &l2t)?, shape))
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (bmnk, l2t, shape) = Self::plan(l1, l2)?;
        Ok((s1.matmul(s2, bmnk, l1, &l2t)?, shape))
    }

    fn metal_fwd(
        &self,
        s1: &MetalStorage,
        l1: &Layout,
        s2: &MetalStorage,
        l2: &Layout,
    ) -> Result<(MetalStorage, Shape)> {
        let (bmnk, l2t, shape) = Self::plan(l1, l2)?;
        Ok((s1.matmul(s2, bmnk, l1, &l2t)?, shape))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let r = grad.rank();
        let da = grad.matmul(b)?;
        let db = grad.transpose(r - 2, r - 1)?.matmul(a)?;
        Ok((Some(da), Some(db)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    #[test]
    fn matches_matmul_with_transpose_in_value_and_gradient() -> Result<()> {
        let mut rng = crate::nn::rng::SeededRng::new(5);
        let dev = Device::Cpu;
        for (ashape, bshape) in [
            (vec![7, 5], vec![3, 5]),
            (vec![2, 3, 4, 6], vec![2, 3, 5, 6]),
        ] {
            let a = Var::from_tensor(
                &rng.normal(ashape.clone(), 0., 1., &dev)?
                    .to_dtype(DType::F64)?,
            )?;
            let b = Var::from_tensor(
                &rng.normal(bshape.clone(), 0., 1., &dev)?
                    .to_dtype(DType::F64)?,
            )?;
            let ours = matmul_nt(&a, &b)?;
            let r = b.rank();
            let theirs = a.matmul(&b.transpose(r - 2, r - 1)?)?;
            assert!((&ours - &theirs)?.abs()?.max_all()?.to_scalar::<f64>()? < 1e-12);
            let probe = rng
                .normal(ours.dims().to_vec(), 0., 1., &dev)?
                .to_dtype(DType::F64)?;
            let g1 = (ours * &probe)?.sum_all()?.backward()?;
            let g2 = (theirs * &probe)?.sum_all()?.backward()?;
            for v in [&a, &b] {
                let d = (g1.get(v).unwrap() - g2.get(v).unwrap())?
                    .abs()?
                    .max_all()?
                    .to_scalar::<f64>()?;
                assert!(d < 1e-12, "gradient differs by {d}");
            }
        }
        Ok(())
    }
}
