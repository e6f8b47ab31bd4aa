//! 3-D convolution, which Candle lacks, built from conv2d and matmul so that it runs (and trains) on
//! every device.
//!
//! [`conv3d`] is the general form: on the CPU a native 3-D im2col + gemm (see [`super::conv2d`]);
//! elsewhere the kt temporal taps are stacked into the channel axis and one conv2d does the rest
//! ("fold"), so its gradients are conv2d's. R(2+1)D only needs the two factors of a
//! (2+1)D convolution, and keeps its activations frame-batched ([B·T, C, H, W]) so that neither needs
//! a layout change: [`spatial_conv`] (1×kh×kw) is a plain conv2d, [`temporal_conv`] (kt×1×1) gathers the
//! taps and does one batched matmul. Candle's conv1d is avoided on purpose (its weight gradient is
//! wrong for batch > 1 on the CPU).

use super::conv2d::conv2d;
use candle_core::{Result, Tensor, D};

/// Picks frames `start, start + step, ...` (`n` of them) along `dim`.
fn strided(x: &Tensor, dim: usize, start: usize, step: usize, n: usize) -> Result<Tensor> {
    if step == 1 {
        return x.narrow(dim, start, n);
    }
    let idx: Vec<u32> = (0..n).map(|j| (start + j * step) as u32).collect();
    x.index_select(&Tensor::new(idx.as_slice(), x.device())?, dim)
}

fn out_size(input: usize, k: usize, stride: usize, pad: usize, what: &str) -> Result<usize> {
    if input + 2 * pad < k || stride == 0 {
        candle_core::bail!(
            "conv3d: {what} extent {input} (padding {pad}) is smaller than the kernel {k}"
        )
    }
    Ok((input + 2 * pad - k) / stride + 1)
}

/// x [B, C, T, H, W] ⊛ w [O, C, kt, kh, kw] with stride (st, s, s) and padding (pt, p, p), no bias.
/// The spatial stride and padding must be the same along H and W (conv2d's restriction).
pub fn conv3d(x: &Tensor, w: &Tensor, stride: [usize; 3], padding: [usize; 3]) -> Result<Tensor> {
    let (b, c, t, _, _) = x.dims5()?;
    let (o, cw, kt, kh, kw) = w.dims5()?;
    if c != cw {
        candle_core::bail!(
            "conv3d: input has {c} channels, the weight {:?} expects {cw}",
            w.dims()
        )
    }
    if stride[1] != stride[2] || padding[1] != padding[2] {
        candle_core::bail!(
            "conv3d: spatial stride {stride:?} / padding {padding:?} must match along H and W"
        )
    }
    let t_out = out_size(t, kt, stride[0], padding[0], "time")?;
    if super::conv2d::fast_path(x, w) {
        return super::conv2d::conv_gemm(x, w, stride, padding);
    }
    let xp = x.pad_with_zeros(2, padding[0], padding[0])?;
    let taps = (0..kt)
        .map(|i| strided(&xp, 2, i, stride[0], t_out))
        .collect::<Result<Vec<_>>>()?;
    // [B, C, kt, T', H, W] -> [B, T', kt, C, H, W] -> [B·T', kt·C, H, W]
    let (_, _, _, h, wd) = xp.dims5()?;
    let folded = Tensor::stack(&taps, 2)?
        .permute(vec![0, 3, 2, 1, 4, 5])?
        .reshape((b * t_out, kt * c, h, wd))?;
    let wf = w.permute((0, 2, 1, 3, 4))?.reshape((o, kt * c, kh, kw))?;
    let y = conv2d(&folded, &wf, stride[1], padding[1])?;
    let (_, _, ho, wo) = y.dims4()?;
    y.reshape((b, t_out, o, ho, wo))?
        .permute((0, 2, 1, 3, 4))?
        .contiguous()
}

/// A (1, kh, kw) convolution of frame-batched activations x [B·T, C, H, W] with w [O, C, 1, kh, kw].
pub fn spatial_conv(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let (o, c, kt, kh, kw) = w.dims5()?;
    if kt != 1 {
        candle_core::bail!(
            "spatial_conv: the weight {:?} has a temporal extent",
            w.dims()
        )
    }
    conv2d(x, &w.reshape((o, c, kh, kw))?, stride, padding)
}

/// A (kt, 1, 1) convolution of frame-batched activations x [B·T, C, H, W] (B clips of `t` frames)
/// with w [O, C, kt, 1, 1]; returns [B·T', O, H, W] and T'.
pub fn temporal_conv(
    x: &Tensor,
    t: usize,
    w: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<(Tensor, usize)> {
    let (bt, c, _, _) = x.dims4()?;
    let (_, cw, kt, kh, kw) = w.dims5()?;
    if kh != 1 || kw != 1 || cw != c || t == 0 || bt % t != 0 {
        candle_core::bail!(
            "temporal_conv: weight {:?} does not fit input {:?} of {t} frames per clip",
            w.dims(),
            x.dims()
        )
    }
    let t_out = out_size(t, kt, stride, padding, "time")?;
    // When a gradient will be asked for, the CPU's 3-D im2col + gemm op, which keeps only its
    // (re-laid-out) input for backward where the tap gather keeps kt copies: the difference decides
    // whether R(2+1)D trains at batch 16 in 24 GiB. Inference keeps the gather, which needs no
    // layout copies and is faster there.
    let training = x.track_op() || w.track_op();
    if training && super::conv2d::fast_path(x, w) {
        let y = super::conv2d::conv_gemm(&from_frames(x, t)?, w, [stride, 1, 1], [padding, 0, 0])?;
        return Ok((to_frames(&y)?.0, t_out));
    }
    temporal_fold(x, t, w, stride, padding)
}

/// [`temporal_conv`] on any device: the kt taps gathered and one batched matmul.
fn temporal_fold(
    x: &Tensor,
    t: usize,
    w: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<(Tensor, usize)> {
    let (bt, c, h, wd) = x.dims4()?;
    let (o, _, kt, _, _) = w.dims5()?;
    let b = bt / t;
    let t_out = out_size(t, kt, stride, padding, "time")?;
    let xp = x
        .reshape((b, t, c, h * wd))?
        .pad_with_zeros(1, padding, padding)?;
    let taps = (0..kt)
        .map(|i| strided(&xp, 1, i, stride, t_out))
        .collect::<Result<Vec<_>>>()?;
    // [B, T', kt, C, HW] -> [B·T', kt·C, HW]; weight [O, C, kt] -> [O, kt·C] (tap-major, like the taps).
    let folded = Tensor::stack(&taps, 2)?.reshape((b * t_out, kt * c, h * wd))?;
    let wf = w
        .reshape((o, c, kt))?
        .transpose(1, 2)?
        .reshape((o, kt * c))?;
    let y = wf.broadcast_left(b * t_out)?.matmul(&folded)?;
    Ok((y.reshape((b * t_out, o, h, wd))?, t_out))
}

/// [B, C, T, H, W] -> frame-batched [B·T, C, H, W].
pub fn to_frames(x: &Tensor) -> Result<(Tensor, usize)> {
    let (b, c, t, h, w) = x.dims5()?;
    Ok((x.permute((0, 2, 1, 3, 4))?.reshape((b * t, c, h, w))?, t))
}

/// Frame-batched [B·T, C, H, W] -> [B, C, T, H, W].
pub fn from_frames(x: &Tensor, t: usize) -> Result<Tensor> {
    let (bt, c, h, w) = x.dims4()?;
    x.reshape((bt / t, t, c, h, w))?
        .permute((0, 2, 1, 3, 4))?
        .contiguous()
}

/// Mean over time and space of frame-batched activations: [B·T, C, H, W] -> [B, C]
/// (AdaptiveAvgPool3d(1) followed by the view to [B, C]).
pub fn global_avg_pool_frames(x: &Tensor, t: usize) -> Result<Tensor> {
    let (bt, c, h, w) = x.dims4()?;
    x.reshape((bt / t, t, c, h * w))?.mean(D::Minus1)?.mean(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::rng::SeededRng;
    use candle_core::{Device, Var};

    /// The CPU's im2col path of the temporal convolution and the tap gather other devices run
    /// agree in value and in both gradients.
    #[test]
    fn temporal_conv_cpu_path_matches_the_gather() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = SeededRng::new(5);
        let x = Var::from_tensor(&rng.normal((2 * 6, 4, 3, 5), 0.0, 1.0, &dev)?)?;
        let w = Var::from_tensor(&rng.normal((7, 4, 3, 1, 1), 0.0, 0.5, &dev)?)?;
        for (stride, padding) in [(1, 1), (2, 1), (2, 0)] {
            let (fast, t_fast) = temporal_conv(&x, 6, &w, stride, padding)?;
            let (fold, t_fold) = temporal_fold(&x, 6, &w, stride, padding)?;
            assert_eq!(t_fast, t_fold);
            let diff = |a: &Tensor, b: &Tensor| -> Result<f32> {
                (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
            };
            assert!(diff(&fast, &fold)? < 1e-5);
            let probe = rng.normal(fast.dims(), 0.0, 1.0, &dev)?;
            let gf = (fast * &probe)?.sum_all()?.backward()?;
            let gg = (fold * &probe)?.sum_all()?.backward()?;
            for v in [&x, &w] {
                assert!(diff(gf.get(v).unwrap(), gg.get(v).unwrap())? < 1e-4);
            }
        }
        Ok(())
    }
}
