//! Turning a storage's raw bytes and a tensor's view of it (shape, stride) into a candle tensor.

use super::pickle::StorageDtype;
use candle_core::{DType, Device, Result, Tensor};

/// Strides of a C-contiguous tensor of this shape (size-1 dimensions may have any stride).
pub(super) fn is_row_major(shape: &[usize], stride: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

/// Copies the elements of a strided view (relative to the start of `raw`) into row-major order.
/// The caller has checked that every index lies inside `raw`.
pub(super) fn gather(raw: &[u8], shape: &[usize], stride: &[usize], es: usize) -> Vec<u8> {
    let numel: usize = shape.iter().product();
    let mut out = Vec::with_capacity(numel * es);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..numel {
        let off: usize = index.iter().zip(stride).map(|(i, s)| i * s).sum::<usize>() * es;
        if let Some(bytes) = raw.get(off..off + es) {
            out.extend_from_slice(bytes);
        }
        // Advance the multi-index, last dimension fastest.
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

/// Builds a CPU tensor from little-endian row-major bytes.
pub(super) fn to_tensor(data: &[u8], dtype: StorageDtype, shape: &[usize]) -> Result<Tensor> {
    let dev = &Device::Cpu;
    let widen = |f: &dyn Fn(&[u8]) -> i64| -> Result<Tensor> {
        let v: Vec<i64> = data.chunks_exact(dtype.size()).map(f).collect();
        Tensor::from_vec(v, shape, dev)
    };
    match dtype {
        StorageDtype::F32 => Tensor::from_raw_buffer(data, DType::F32, shape, dev),
        StorageDtype::F16 => Tensor::from_raw_buffer(data, DType::F16, shape, dev),
        StorageDtype::BF16 => Tensor::from_raw_buffer(data, DType::BF16, shape, dev),
        StorageDtype::F64 => Tensor::from_raw_buffer(data, DType::F64, shape, dev),
        StorageDtype::I64 => Tensor::from_raw_buffer(data, DType::I64, shape, dev),
        StorageDtype::U8 => Tensor::from_raw_buffer(data, DType::U8, shape, dev),
        StorageDtype::I32 => widen(&|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64),
        StorageDtype::I16 => widen(&|b| i16::from_le_bytes([b[0], b[1]]) as i64),
        StorageDtype::I8 => widen(&|b| b[0] as i8 as i64),
        StorageDtype::Bool => {
            let v: Vec<u8> = data.iter().map(|&b| (b != 0) as u8).collect();
            Tensor::from_vec(v, shape, dev)
        }
    }
}
