//! The one place where training reads values back from the device.
//!
//! Every device→host copy of a training or evaluation loop goes through [`read_scalars`], which
//! stacks the values it is given into one tensor and copies that once. On a GPU each copy is a
//! synchronisation that stalls the launch queue, so loops collect their scalars as device tensors
//! and read them here every `log_every` steps; [`count`] lets a test check how often that happens.

use candle_core::{DType, Result, Tensor};
use std::cell::Cell;

thread_local! {
    static READBACKS: Cell<u64> = const { Cell::new(0) };
}

/// How many device→host reads [`read_scalars`] has made on this thread (a training loop runs on
/// one thread, so this counts its reads whatever else the process does).
pub fn count() -> u64 {
    READBACKS.with(Cell::get)
}

/// The values of `scalars` (each with one element, any float dtype) in one device→host copy.
/// f32 is used for the copy (every device has it); an f32 value widened to f64 is exact.
pub fn read_scalars(scalars: &[Tensor]) -> Result<Vec<f64>> {
    if scalars.is_empty() {
        return Ok(Vec::new());
    }
    let flat = scalars
        .iter()
        .map(|t| t.detach().flatten_all()?.to_dtype(DType::F32))
        .collect::<Result<Vec<_>>>()?;
    for (i, t) in flat.iter().enumerate() {
        if t.elem_count() != 1 {
            candle_core::bail!(
                "read_scalars: value {i} has {} elements, expected one",
                t.elem_count()
            )
        }
    }
    let values = Tensor::cat(&flat, 0)?.to_vec1::<f32>()?;
    READBACKS.with(|n| n.set(n.get() + 1));
    Ok(values.into_iter().map(f64::from).collect())
}
