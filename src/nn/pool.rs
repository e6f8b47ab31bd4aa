//! Pooling with PyTorch's gradients.
//!
//! Candle's `max_pool2d` backward scales the gradient by 1/k² and its `maximum`/`max` backward send
//! the gradient to every tied input. Here max pooling takes the index of the first maximum of each
//! window (PyTorch's choice) and gathers it, so exactly that input receives the gradient.
//! Adaptive average pooling uses PyTorch's window bounds (floor(i·n/m), ceil((i+1)·n/m)).

use candle_core::{Result, Tensor, D};

/// Max pooling over the trailing `k.len()` axes of `x` (2 for [N, C, H, W], 3 for [N, C, T, H, W])
/// with the given kernel, stride and padding (padding is -inf, as PyTorch).
pub fn max_pool(x: &Tensor, k: &[usize], stride: &[usize], padding: &[usize]) -> Result<Tensor> {
    let nd = k.len();
    let rank = x.rank();
    if nd == 0 || stride.len() != nd || padding.len() != nd || rank < nd + 1 {
        candle_core::bail!(
            "max_pool: kernel {k:?}, stride {stride:?}, padding {padding:?} do not fit input {:?}",
            x.dims()
        )
    }
    let mut xp = x.clone();
    let mut out_dims = Vec::with_capacity(nd);
    for i in 0..nd {
        let dim = rank - nd + i;
        let n = x.dim(dim)?;
        if padding[i] * 2 > k[i] || n + 2 * padding[i] < k[i] || stride[i] == 0 {
            candle_core::bail!(
                "max_pool: kernel {k:?} with padding {padding:?} does not fit input {:?}",
                x.dims()
            )
        }
        if padding[i] > 0 {
            let mut shape = xp.dims().to_vec();
            shape[dim] = padding[i];
            let pad = Tensor::full(f32::NEG_INFINITY, shape, x.device())?.to_dtype(x.dtype())?;
            xp = Tensor::cat(&[&pad, &xp, &pad], dim)?;
        }
        out_dims.push((n + 2 * padding[i] - k[i]) / stride[i] + 1);
    }
    // One strided view per kernel offset, stacked on a new last axis in row-major window order.
    let mut views = vec![xp];
    for i in 0..nd {
        let dim = rank - nd + i;
        let mut next = Vec::with_capacity(views.len() * k[i]);
        for v in &views {
            for o in 0..k[i] {
                let idx: Vec<u32> = (0..out_dims[i])
                    .map(|j| (o + j * stride[i]) as u32)
                    .collect();
                next.push(v.index_select(&Tensor::new(idx.as_slice(), x.device())?, dim)?);
            }
        }
        views = next;
    }
    let windows = Tensor::stack(&views, rank)?;
    let first_max = windows.argmax_keepdim(D::Minus1)?;
    windows.gather(&first_max, rank)?.squeeze(rank)
}

/// Adaptive average pooling of the trailing `out.len()` axes to the sizes `out`.
pub fn adaptive_avg_pool(x: &Tensor, out: &[usize]) -> Result<Tensor> {
    let rank = x.rank();
    if out.is_empty() || out.len() >= rank || out.contains(&0) {
        candle_core::bail!(
            "adaptive_avg_pool: output size {out:?} does not fit input {:?}",
            x.dims()
        )
    }
    let mut y = x.clone();
    for (i, &m) in out.iter().enumerate() {
        let dim = rank - out.len() + i;
        let n = y.dim(dim)?;
        let cells = (0..m)
            .map(|j| {
                let (start, end) = (j * n / m, ((j + 1) * n).div_ceil(m));
                y.narrow(dim, start, end - start)?.mean_keepdim(dim)
            })
            .collect::<Result<Vec<_>>>()?;
        y = Tensor::cat(&cells, dim)?;
    }
    Ok(y)
}
