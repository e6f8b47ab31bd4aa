//! 2-D convolution (no bias, square stride and padding) with a fast CPU path for both directions.
//!
//! candle's CPU conv2d computes the input gradient with a direct transposed-convolution loop, which
//! ran at ~19 GFLOP/s against ~128 for its gemm on the same machine, and made conv training 3-5x
//! slower than PyTorch. Here every direction is im2col/col2im plus one gemm over a chunk of images:
//! y = W · cols(x), dW = Σ g · cols(x)ᵀ, dx = col2im(Wᵀ · g). Chunks bound the column buffer's memory.
//! Other devices use candle's conv2d (cuDNN/Metal kernels) unchanged.

use super::cpu_kernel::contiguous;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Column-buffer budget per chunk (f32 elements): 8M = 32 MiB.
const COLS_BUDGET: usize = 8 << 20;

/// x [N, C, H, W] ⊛ w [O, C, kh, kw] -> [N, O, OH, OW].
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let (_, c, h, wd) = x.dims4()?;
    let (_, cw, kh, kw) = w.dims4()?;
    if c != cw || h + 2 * padding < kh || wd + 2 * padding < kw || stride == 0 {
        candle_core::bail!(
            "conv2d: input {:?} does not fit weight {:?} (stride {stride}, padding {padding})",
            x.dims(),
            w.dims()
        )
    }
    if matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 && w.dtype() == DType::F32 {
        x.contiguous()?.apply_op2(
            &w.contiguous()?,
            Conv2dOp {
                geom: None,
                stride,
                padding,
            },
        )
    } else {
        x.conv2d(w, padding, stride, 1, 1)
    }
}

/// The sizes of one convolution.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    stride: usize,
    padding: usize,
}

impl Geometry {
    fn new(x: &[usize], w: &[usize], stride: usize, padding: usize) -> Self {
        let (oh, ow) = (
            (x[2] + 2 * padding - w[2]) / stride + 1,
            (x[3] + 2 * padding - w[3]) / stride + 1,
        );
        Self {
            n: x[0],
            c: x[1],
            h: x[2],
            w: x[3],
            o: w[0],
            kh: w[2],
            kw: w[3],
            oh,
            ow,
            stride,
            padding,
        }
    }
    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
    fn p(&self) -> usize {
        self.oh * self.ow
    }
    /// Images per chunk so that the column buffer stays within budget.
    fn chunk(&self) -> usize {
        (COLS_BUDGET / (self.k() * self.p()).max(1)).clamp(1, self.n.max(1))
    }
}

/// cols [K, m·P] for images n0..n0+m: row (c, i, j), column (image, oy, ox).
fn im2col(x: &[f32], g: &Geometry, n0: usize, m: usize, cols: &mut [f32]) {
    let (p, mp) = (g.p(), m * g.p());
    cols.par_chunks_mut(mp).enumerate().for_each(|(row, out)| {
        let (c, i, j) = (row / (g.kh * g.kw), (row / g.kw) % g.kh, row % g.kw);
        for img in 0..m {
            let plane = &x[((n0 + img) * g.c + c) * g.h * g.w..][..g.h * g.w];
            for oy in 0..g.oh {
                let y = (oy * g.stride + i) as isize - g.padding as isize;
                let dst = &mut out[img * p + oy * g.ow..][..g.ow];
                if y < 0 || y >= g.h as isize {
                    dst.fill(0.0);
                    continue;
                }
                let src = &plane[y as usize * g.w..][..g.w];
                for (ox, d) in dst.iter_mut().enumerate() {
                    let xx = (ox * g.stride + j) as isize - g.padding as isize;
                    *d = if xx < 0 || xx >= g.w as isize {
                        0.0
                    } else {
                        src[xx as usize]
                    };
                }
            }
        }
    });
}

/// dx[images n0..n0+m] += col2im(dcols), parallel over channels (each owns its planes).
fn col2im(dcols: &[f32], g: &Geometry, n0: usize, m: usize, dx: &mut [f32]) {
    let (p, mp, hw) = (g.p(), m * g.p(), g.h * g.w);
    let chunk = &mut dx[n0 * g.c * hw..(n0 + m) * g.c * hw];
    // Planes of one channel across images are strided by C·H·W: split per image, then per channel.
    let mut planes: Vec<(usize, usize, &mut [f32])> = Vec::with_capacity(m * g.c);
    for (img, per_image) in chunk.chunks_mut(g.c * hw).enumerate() {
        for (c, plane) in per_image.chunks_mut(hw).enumerate() {
            planes.push((img, c, plane));
        }
    }
    planes.into_par_iter().for_each(|(img, c, plane)| {
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &dcols[((c * g.kh + i) * g.kw + j) * mp + img * p..][..p];
                for oy in 0..g.oh {
                    let y = (oy * g.stride + i) as isize - g.padding as isize;
                    if y < 0 || y >= g.h as isize {
                        continue;
                    }
                    let dst = &mut plane[y as usize * g.w..][..g.w];
                    for (ox, v) in row[oy * g.ow..][..g.ow].iter().enumerate() {
                        let xx = (ox * g.stride + j) as isize - g.padding as isize;
                        if xx >= 0 && xx < g.w as isize {
                            dst[xx as usize] += v;
                        }
                    }
                }
            }
        }
    });
}

/// dst [m, n] (row-major) = alpha·dst + lhs [m, k] · rhs [k, n], with explicit (row, col) strides.
#[allow(clippy::too_many_arguments)]
fn gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: &[f32],
    rhs_rs: isize,
    rhs_cs: isize,
) {
    let threads = candle_core::utils::get_num_threads();
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the slices hold the [m,k], [k,n] and [m,n] matrices the strides describe.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
}

fn forward(x: &[f32], w: &[f32], g: &Geometry) -> Vec<f32> {
    let (k, p, chunk) = (g.k(), g.p(), g.chunk());
    let mut y = vec![0f32; g.n * g.o * p];
    let mut cols = vec![0f32; k * chunk * p];
    let mut tmp = vec![0f32; g.o * chunk * p];
    for n0 in (0..g.n).step_by(chunk) {
        let m = chunk.min(g.n - n0);
        let mp = m * p;
        im2col(x, g, n0, m, &mut cols[..k * mp]);
        gemm_f32(
            g.o,
            mp,
            k,
            &mut tmp[..g.o * mp],
            false,
            w,
            k as isize,
            1,
            &cols[..k * mp],
            mp as isize,
            1,
        );
        // [O, m·P] -> [m, O, P]
        y[n0 * g.o * p..(n0 + m) * g.o * p]
            .par_chunks_mut(g.o * p)
            .enumerate()
            .for_each(|(img, out)| {
                for o in 0..g.o {
                    out[o * p..(o + 1) * p].copy_from_slice(&tmp[o * mp + img * p..][..p]);
                }
            });
    }
    y
}

/// [m, O, P] slice of g -> [O, m·P].
fn gather_grad(gy: &[f32], g: &Geometry, n0: usize, m: usize, out: &mut [f32]) {
    let (p, mp) = (g.p(), m * g.p());
    out.par_chunks_mut(mp).enumerate().for_each(|(o, row)| {
        for img in 0..m {
            row[img * p..(img + 1) * p].copy_from_slice(&gy[((n0 + img) * g.o + o) * p..][..p]);
        }
    });
}

fn backward_weight(x: &[f32], gy: &[f32], g: &Geometry) -> Vec<f32> {
    let (k, p, chunk) = (g.k(), g.p(), g.chunk());
    let mut dw = vec![0f32; g.o * k];
    let mut cols = vec![0f32; k * chunk * p];
    let mut gm = vec![0f32; g.o * chunk * p];
    for (step, n0) in (0..g.n).step_by(chunk).enumerate() {
        let m = chunk.min(g.n - n0);
        let mp = m * p;
        im2col(x, g, n0, m, &mut cols[..k * mp]);
        gather_grad(gy, g, n0, m, &mut gm[..g.o * mp]);
        // dW [O, K] += g [O, mP] · colsᵀ [mP, K]
        gemm_f32(
            g.o,
            k,
            mp,
            &mut dw,
            step > 0,
            &gm[..g.o * mp],
            mp as isize,
            1,
            &cols[..k * mp],
            1,
            mp as isize,
        );
    }
    dw
}

fn backward_input(gy: &[f32], w: &[f32], g: &Geometry) -> Vec<f32> {
    let (k, p, chunk) = (g.k(), g.p(), g.chunk());
    let mut dx = vec![0f32; g.n * g.c * g.h * g.w];
    let mut dcols = vec![0f32; k * chunk * p];
    let mut gm = vec![0f32; g.o * chunk * p];
    for n0 in (0..g.n).step_by(chunk) {
        let m = chunk.min(g.n - n0);
        let mp = m * p;
        gather_grad(gy, g, n0, m, &mut gm[..g.o * mp]);
        // dcols [K, mP] = Wᵀ [K, O] · g [O, mP]
        gemm_f32(
            k,
            mp,
            g.o,
            &mut dcols[..k * mp],
            false,
            w,
            1,
            k as isize,
            &gm[..g.o * mp],
            mp as isize,
            1,
        );
        col2im(&dcols[..k * mp], g, n0, m, &mut dx);
    }
    dx
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match s {
        CpuStorage::F32(v) => contiguous(v, l, "conv2d"),
        _ => candle_core::bail!("conv2d: unsupported dtype {:?}", s.dtype()),
    }
}

/// Forward (`geom: None`) and, reused with the geometry of the forward, the two gradient ops.
struct Conv2dOp {
    geom: Option<Geometry>,
    stride: usize,
    padding: usize,
}

impl candle_core::CustomOp2 for Conv2dOp {
    fn name(&self) -> &'static str {
        "avkd-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = Geometry::new(l1.dims(), l2.dims(), self.stride, self.padding);
        let y = forward(f32_slice(s1, l1)?, f32_slice(s2, l2)?, &g);
        Ok((CpuStorage::F32(y), Shape::from((g.n, g.o, g.oh, g.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = Geometry::new(x.dims(), w.dims(), self.stride, self.padding);
        let grad = grad.contiguous()?;
        let dx = grad.apply_op2_no_bwd(
            w,
            &Conv2dGrad {
                geom: g,
                input: true,
            },
        )?;
        let dw = x.apply_op2_no_bwd(
            &grad,
            &Conv2dGrad {
                geom: g,
                input: false,
            },
        )?;
        let _ = self.geom;
        Ok((Some(dx), Some(dw)))
    }
}

/// `input`: (grad, w) -> dx; otherwise (x, grad) -> dW.
struct Conv2dGrad {
    geom: Geometry,
    input: bool,
}

impl candle_core::CustomOp2 for Conv2dGrad {
    fn name(&self) -> &'static str {
        "avkd-conv2d-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.geom;
        let (a, b) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        if self.input {
            Ok((
                CpuStorage::F32(backward_input(a, b, g)),
                Shape::from((g.n, g.c, g.h, g.w)),
            ))
        } else {
            Ok((
                CpuStorage::F32(backward_weight(a, b, g)),
                Shape::from((g.o, g.c, g.kh, g.kw)),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    /// Same values and gradients as candle's conv2d, across strides, paddings and kernel shapes (odd
    /// sizes with stride 2 are checked against finite differences in tests/nn_layers.rs: candle's own
    /// input gradient has the wrong shape there).
    #[test]
    fn matches_candle_conv2d() -> Result<()> {
        let mut rng = crate::nn::rng::SeededRng::new(8);
        let dev = Device::Cpu;
        for (shape, wshape, s, p) in [
            ((3, 4, 9, 8), (5, 4, 3, 3), 1, 1),
            ((2, 3, 11, 11), (4, 3, 7, 7), 2, 3),
            ((4, 6, 6, 6), (3, 6, 1, 1), 2, 0),
            ((2, 2, 5, 5), (3, 2, 3, 1), 1, 0),
        ] {
            let x = Var::from_tensor(&rng.normal(shape, 0., 1., &dev)?)?;
            let w = Var::from_tensor(&rng.normal(wshape, 0., 1., &dev)?)?;
            let ours = conv2d(&x, &w, s, p)?;
            let theirs = x.conv2d(&w, p, s, 1, 1)?;
            let d = (&ours - &theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(d < 1e-4, "forward differs by {d} for {shape:?} {wshape:?}");
            let probe = rng.normal(ours.dims().to_vec(), 0., 1., &dev)?;
            let g1 = (ours * &probe)?.sum_all()?.backward()?;
            let g2 = (theirs * &probe)?.sum_all()?.backward()?;
            for v in [&x, &w] {
                let d = (g1.get(v).unwrap() - g2.get(v).unwrap())?
                    .abs()?
                    .max_all()?
                    .to_scalar::<f32>()?;
                assert!(d < 1e-3, "gradient differs by {d} for {shape:?} {wshape:?}");
            }
        }
        Ok(())
    }
}
