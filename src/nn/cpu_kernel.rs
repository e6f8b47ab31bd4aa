//! What avkd's hand-written CPU kernels (layer norm, softmax) share.

use candle_core::{Layout, Result};

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
