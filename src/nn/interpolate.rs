//! Positional-embedding resampling exactly as XKD does it, as separable interpolation matrices
//! (exact and differentiable: the resampled embedding is one matmul of a fixed matrix with the
//! learned one).
//!
//! Video: `F.interpolate(mode='trilinear', align_corners=False, scale_factor=s)` with XKD's scale
//! s = (n + 0.1) / N per axis. PyTorch maps output to input coordinates with the *given* scale
//! (src = (dst + 0.5) / s - 0.5, clamped at 0), not out/in. Its CPU and CUDA kernels disagree when an
//! axis keeps its size (8 -> 8 frames in the 224-px fine-tune): the CPU kernel copies such an axis, the
//! CUDA kernel copies only when all three axes keep their size and otherwise resamples every axis.
//! The published models were fine-tuned on GPUs, so [`AxisRule::Cuda`] is the default.
//!
//! Audio: `mode='bicubic'` (A = -0.75, border-clamped taps) along time only.

use candle_core::{Result, Tensor};

/// Which PyTorch kernel's treatment of size-preserving axes to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AxisRule {
    /// CUDA `upsample_trilinear3d`: copy only if every axis keeps its size, else resample all axes.
    #[default]
    Cuda,
    /// CPU kernel: copy each axis whose size is unchanged, whatever its scale factor.
    Cpu,
}

/// PyTorch's output size for a scale factor: floor(in * scale) in double precision.
pub fn scaled_size(input: usize, scale: f64) -> usize {
    (input as f64 * scale).floor() as usize
}

/// Linear interpolation weights [out x in] with PyTorch's align_corners=False rule for a given scale.
pub fn linear_weights(input: usize, output: usize, scale: f64, copy: bool) -> Vec<f32> {
    let mut w = vec![0f32; output * input];
    if copy {
        for i in 0..output.min(input) {
            w[i * input + i] = 1.0;
        }
        return w;
    }
    // PyTorch computes the ratio in double, then the coordinates in the tensor's (float) precision.
    let ratio = (1.0 / scale) as f32;
    for dst in 0..output {
        let src = (ratio * (dst as f32 + 0.5) - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(input - 1);
        let lambda1 = (src - i0 as f32).clamp(0.0, 1.0);
        let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
        w[dst * input + i0] += 1.0 - lambda1;
        w[dst * input + i1] += lambda1;
    }
    w
}

/// Bicubic (A = -0.75) interpolation weights [out x in], align_corners=False, given scale.
pub fn cubic_weights(input: usize, output: usize, scale: f64) -> Vec<f32> {
    const A: f32 = -0.75;
    let conv1 = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let conv2 = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let ratio = (1.0 / scale) as f32;
    let mut w = vec![0f32; output * input];
    for dst in 0..output {
        let src = ratio * (dst as f32 + 0.5) - 0.5;
        let idx = (src.floor() as i64).min(input as i64 - 1);
        let t = (src - idx as f32).clamp(0.0, 1.0);
        let coeffs = [conv2(t + 1.0), conv1(t), conv1(1.0 - t), conv2(2.0 - t)];
        for (j, c) in coeffs.iter().enumerate() {
            let i = (idx - 1 + j as i64).clamp(0, input as i64 - 1) as usize;
            w[dst * input + i] += c;
        }
    }
    w
}

/// Kronecker product of row-major matrices a [ra x ca] and b [rb x cb].
fn kron(a: &[f32], ra: usize, ca: usize, b: &[f32], rb: usize, cb: usize) -> Vec<f32> {
    let mut out = vec![0f32; ra * rb * ca * cb];
    let cols = ca * cb;
    for i in 0..ra {
        for j in 0..ca {
            let av = a[i * ca + j];
            if av == 0.0 {
                continue;
            }
            for k in 0..rb {
                for l in 0..cb {
                    out[(i * rb + k) * cols + j * cb + l] = av * b[k * cb + l];
                }
            }
        }
    }
    out
}

/// Resamples the patch part of a positional embedding [1, 1 + Nt*Nh*Nw, D] (CLS first) from the grid
/// `grid` with per-axis `scale`; returns the embedding for the new grid and the grid's size.
pub fn resample_trilinear(
    pos: &Tensor,
    grid: [usize; 3],
    scale: [f64; 3],
    rule: AxisRule,
) -> Result<(Tensor, [usize; 3])> {
    let out: [usize; 3] = std::array::from_fn(|i| scaled_size(grid[i], scale[i]));
    if out.contains(&0) {
        candle_core::bail!("positional embedding grid {grid:?} scaled by {scale:?} is empty")
    }
    let all_same = out == grid;
    let mats: Vec<Vec<f32>> = (0..3)
        .map(|i| {
            let copy = match rule {
                AxisRule::Cpu => out[i] == grid[i],
                AxisRule::Cuda => all_same,
            };
            linear_weights(grid[i], out[i], scale[i], copy)
        })
        .collect();
    let th = kron(&mats[0], out[0], grid[0], &mats[1], out[1], grid[1]);
    let m = kron(
        &th,
        out[0] * out[1],
        grid[0] * grid[1],
        &mats[2],
        out[2],
        grid[2],
    );
    Ok((
        apply_to_patches(pos, m, out.iter().product(), grid.iter().product())?,
        out,
    ))
}

/// Resamples an audio positional embedding [1, 1 + Nf*Nt, D] along time only (bicubic).
pub fn resample_bicubic_time(
    pos: &Tensor,
    grid: [usize; 2],
    scale_t: f64,
) -> Result<(Tensor, [usize; 2])> {
    let out_t = scaled_size(grid[1], scale_t);
    if out_t == 0 {
        candle_core::bail!(
            "positional embedding time grid {} scaled by {scale_t} is empty",
            grid[1]
        )
    }
    let eye: Vec<f32> = (0..grid[0] * grid[0])
        .map(|i| if i % (grid[0] + 1) == 0 { 1.0 } else { 0.0 })
        .collect();
    let m = kron(
        &eye,
        grid[0],
        grid[0],
        &cubic_weights(grid[1], out_t, scale_t),
        out_t,
        grid[1],
    );
    Ok((
        apply_to_patches(pos, m, grid[0] * out_t, grid[0] * grid[1])?,
        [grid[0], out_t],
    ))
}

fn apply_to_patches(pos: &Tensor, m: Vec<f32>, n_out: usize, n_in: usize) -> Result<Tensor> {
    let (one, n, d) = pos.dims3()?;
    if one != 1 || n != n_in + 1 {
        candle_core::bail!(
            "positional embedding of shape {:?} does not hold 1 + {n_in} tokens",
            pos.dims()
        )
    }
    let m = Tensor::from_vec(m, (n_out, n_in), pos.device())?.to_dtype(pos.dtype())?;
    let patches = m.matmul(&pos.narrow(1, 1, n_in)?.reshape((n_in, d))?)?;
    Tensor::cat(&[&pos.narrow(1, 0, 1)?, &patches.unsqueeze(0)?], 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_scale_is_identity() {
        let w = cubic_weights(5, 5, 1.0);
        for i in 0..5 {
            for j in 0..5 {
                assert!((w[i * 5 + j] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn linear_rows_sum_to_one() {
        for (i, o, s) in [(7, 14, 14.1 / 7.0), (8, 8, 8.1 / 8.0), (3, 2, 0.7)] {
            let w = linear_weights(i, o, s, false);
            for r in 0..o {
                let sum: f32 = w[r * i..(r + 1) * i].iter().sum();
                assert!((sum - 1.0).abs() < 1e-6);
            }
        }
    }
}
