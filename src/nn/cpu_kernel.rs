//! What avkd's hand-written CPU kernels (layer norm, softmax, GELU, convolution) share: task sizing,
//! contiguity checks, and the f32/f64 dispatch.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Result};

/// Rows per rayon task: keeps tasks big enough to amortise scheduling on short rows.
pub(crate) fn rows_per_task(dim: usize) -> usize {
    (16384 / dim.max(1)).max(1)
}

/// The slice a contiguous layout covers; `op` names the kernel in the error.
pub(crate) fn contiguous<'a, T>(s: &'a [T], l: &Layout, op: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

/// Runs a kernel on one contiguous f32 or f64 storage (the two precisions avkd's kernels support).
pub(crate) fn float_op1(
    s: &CpuStorage,
    l: &Layout,
    op: &str,
    f32_kernel: impl Fn(&[f32]) -> Vec<f32>,
    f64_kernel: impl Fn(&[f64]) -> Vec<f64>,
) -> Result<CpuStorage> {
    match s {
        CpuStorage::F32(x) => Ok(CpuStorage::F32(f32_kernel(contiguous(x, l, op)?))),
        CpuStorage::F64(x) => Ok(CpuStorage::F64(f64_kernel(contiguous(x, l, op)?))),
        _ => candle_core::bail!("{op}: unsupported dtype {:?}", s.dtype()),
    }
}

/// Like [`float_op1`] for two storages of the same dtype.
pub(crate) fn float_op2(
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    op: &str,
    f32_kernel: impl Fn(&[f32], &[f32]) -> Vec<f32>,
    f64_kernel: impl Fn(&[f64], &[f64]) -> Vec<f64>,
) -> Result<CpuStorage> {
    match (s1, s2) {
        (CpuStorage::F32(a), CpuStorage::F32(b)) => Ok(CpuStorage::F32(f32_kernel(
            contiguous(a, l1, op)?,
            contiguous(b, l2, op)?,
        ))),
        (CpuStorage::F64(a), CpuStorage::F64(b)) => Ok(CpuStorage::F64(f64_kernel(
            contiguous(a, l1, op)?,
            contiguous(b, l2, op)?,
        ))),
        _ => candle_core::bail!(
            "{op}: unsupported dtypes {:?} and {:?}",
            s1.dtype(),
            s2.dtype()
        ),
    }
}

/// Like [`float_op1`] for three storages of the same dtype.
pub(crate) fn float_op3(
    (s1, l1): (&CpuStorage, &Layout),
    (s2, l2): (&CpuStorage, &Layout),
    (s3, l3): (&CpuStorage, &Layout),
    op: &str,
    f32_kernel: impl Fn(&[f32], &[f32], &[f32]) -> Vec<f32>,
    f64_kernel: impl Fn(&[f64], &[f64], &[f64]) -> Vec<f64>,
) -> Result<CpuStorage> {
    match (s1, s2, s3) {
        (CpuStorage::F32(a), CpuStorage::F32(b), CpuStorage::F32(c)) => {
            Ok(CpuStorage::F32(f32_kernel(
                contiguous(a, l1, op)?,
                contiguous(b, l2, op)?,
                contiguous(c, l3, op)?,
            )))
        }
        (CpuStorage::F64(a), CpuStorage::F64(b), CpuStorage::F64(c)) => {
            Ok(CpuStorage::F64(f64_kernel(
                contiguous(a, l1, op)?,
                contiguous(b, l2, op)?,
                contiguous(c, l3, op)?,
            )))
        }
        _ => candle_core::bail!("{op}: unsupported dtype {:?}", s1.dtype()),
    }
}
