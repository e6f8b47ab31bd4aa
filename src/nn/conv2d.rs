//! 2-D and 3-D convolution (no bias) with a fast CPU path for both directions.
//!
//! candle's CPU conv2d computes the input gradient with a direct transposed-convolution loop, which
//! ran at ~19 GFLOP/s against ~128 for its gemm on the same machine, and made conv training 3-5x
//! slower than PyTorch. Here every direction is im2col/col2im plus one gemm over a chunk of images:
//! y = W · cols(x), dW = Σ g · cols(x)ᵀ, dx = col2im(Wᵀ · g). Chunks bound the column buffer's memory.
//! The kernels are written for 3-D volumes ([N, C, T, H, W]); a 2-D convolution is the T = 1 case.
//! Other devices use candle's conv2d (cuDNN/Metal kernels) unchanged.

use super::cpu_kernel::contiguous;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Column-buffer budget per tile (f32 elements): 32M = 128 MiB, whatever the input's size.
const COLS_BUDGET: usize = 32 << 20;

/// x [N, C, H, W] ⊛ w [O, C, kh, kw] -> [N, O, OH, OW].
pub fn conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let (o, cw, kh, kw) = w.dims4()?;
    if c != cw || h + 2 * padding < kh || wd + 2 * padding < kw || stride == 0 {
        candle_core::bail!(
            "conv2d: input {:?} does not fit weight {:?} (stride {stride}, padding {padding})",
            x.dims(),
            w.dims()
        )
    }
    if !fast_path(x, w) {
        return x.conv2d(w, padding, stride, 1, 1);
    }
    let y = conv_gemm(
        &x.reshape((n, c, 1, h, wd))?,
        &w.reshape((o, c, 1, kh, kw))?,
        [1, stride, stride],
        [0, padding, padding],
    )?;
    let (_, _, _, oh, ow) = y.dims5()?;
    y.reshape((n, o, oh, ow))
}

/// Whether the im2col/gemm CPU kernels apply (f32 on the CPU).
pub fn fast_path(x: &Tensor, w: &Tensor) -> bool {
    matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 && w.dtype() == DType::F32
}

/// x [N, C, T, H, W] ⊛ w [O, C, kt, kh, kw] with per-axis stride and padding, on the CPU (f32).
pub fn conv_gemm(
    x: &Tensor,
    w: &Tensor,
    stride: [usize; 3],
    padding: [usize; 3],
) -> Result<Tensor> {
    let g = Geometry::new(x.dims(), w.dims(), stride, padding)?;
    x.contiguous()?
        .apply_op2(&w.contiguous()?, ConvOp { geom: g })
}

/// The sizes of one convolution (2-D convolutions have T = kt = 1).
#[derive(Debug, Clone, Copy)]
struct Geometry {
    n: usize,
    c: usize,
    t: usize,
    h: usize,
    w: usize,
    o: usize,
    k: [usize; 3],
    out: [usize; 3],
    stride: [usize; 3],
    pad: [usize; 3],
}

impl Geometry {
    fn new(x: &[usize], w: &[usize], stride: [usize; 3], pad: [usize; 3]) -> Result<Self> {
        if x.len() != 5 || w.len() != 5 || x[1] != w[1] {
            candle_core::bail!("conv: input {x:?} does not fit weight {w:?}")
        }
        let mut out = [0; 3];
        for i in 0..3 {
            if stride[i] == 0 || x[i + 2] + 2 * pad[i] < w[i + 2] {
                candle_core::bail!("conv: input {x:?} does not fit weight {w:?} (stride {stride:?}, padding {pad:?})")
            }
            out[i] = (x[i + 2] + 2 * pad[i] - w[i + 2]) / stride[i] + 1;
        }
        Ok(Self {
            n: x[0],
            c: x[1],
            t: x[2],
            h: x[3],
            w: x[4],
            o: w[0],
            k: [w[2], w[3], w[4]],
            out,
            stride,
            pad,
        })
    }
    fn kernel_volume(&self) -> usize {
        self.k.iter().product()
    }
    /// Rows of the column matrix: C·kt·kh·kw.
    fn rows(&self) -> usize {
        self.c * self.kernel_volume()
    }
    /// Output positions per image: T'·H'·W'.
    fn p(&self) -> usize {
        self.out.iter().product()
    }
    fn volume(&self) -> usize {
        self.t * self.h * self.w
    }
    /// Output positions per output frame: H'·W'.
    fn frame(&self) -> usize {
        self.out[1] * self.out[2]
    }
    /// Work units whose column buffers stay within budget: several whole images when an image is
    /// small, else ranges of output frames of one image.
    fn tiles(&self) -> Vec<Tile> {
        let per_frame = self.rows() * self.frame();
        let frames = (COLS_BUDGET / per_frame.max(1)).max(1);
        if frames >= self.out[0] {
            let images = (frames / self.out[0]).clamp(1, self.n.max(1));
            (0..self.n)
                .step_by(images)
                .map(|n0| Tile {
                    n0,
                    m: images.min(self.n - n0),
                    f0: 0,
                    frames: self.out[0],
                })
                .collect()
        } else {
            (0..self.n)
                .flat_map(|n0| {
                    (0..self.out[0]).step_by(frames).map(move |f0| Tile {
                        n0,
                        m: 1,
                        f0,
                        frames: frames.min(self.out[0] - f0),
                    })
                })
                .collect()
        }
    }
    /// Columns of a tile (its share of the [rows, columns] matrix).
    fn tile_cols(&self, t: &Tile) -> usize {
        t.m * t.frames * self.frame()
    }
    /// Input coordinate of output position `o` and kernel tap `k` along axis `axis`, if inside.
    fn source(&self, axis: usize, o: usize, k: usize, size: usize) -> Option<usize> {
        let v = (o * self.stride[axis] + k) as isize - self.pad[axis] as isize;
        (v >= 0 && v < size as isize).then_some(v as usize)
    }
}

/// Images `n0..n0+m`, output frames `f0..f0+frames` of each: the unit the kernels work on.
#[derive(Debug, Clone, Copy)]
struct Tile {
    n0: usize,
    m: usize,
    f0: usize,
    frames: usize,
}

/// cols [rows, tile columns]: row (c, a, i, j), column (image, output frame, oy, ox) of the tile.
fn im2col(x: &[f32], g: &Geometry, tile: &Tile, cols: &mut [f32]) {
    let ([kt, kh, kw], [_, oh, ow]) = (g.k, g.out);
    let (per_image, cols_n) = (tile.frames * g.frame(), g.tile_cols(tile));
    cols.par_chunks_mut(cols_n)
        .enumerate()
        .for_each(|(row, out)| {
            let (c, a, i, j) = (
                row / (kt * kh * kw),
                (row / (kh * kw)) % kt,
                (row / kw) % kh,
                row % kw,
            );
            for img in 0..tile.m {
                let vol = &x[((tile.n0 + img) * g.c + c) * g.volume()..][..g.volume()];
                for (lt, tt) in (tile.f0..tile.f0 + tile.frames).enumerate() {
                    let frame = g.source(0, tt, a, g.t);
                    for oy in 0..oh {
                        let dst = &mut out[img * per_image + (lt * oh + oy) * ow..][..ow];
                        let (Some(f), Some(y)) = (frame, g.source(1, oy, i, g.h)) else {
                            dst.fill(0.0);
                            continue;
                        };
                        let src = &vol[(f * g.h + y) * g.w..][..g.w];
                        for (ox, d) in dst.iter_mut().enumerate() {
                            *d = g.source(2, ox, j, g.w).map_or(0.0, |xx| src[xx]);
                        }
                    }
                }
            }
        });
}

/// dx += col2im(dcols) for a tile, parallel over (image, channel) volumes.
fn col2im(dcols: &[f32], g: &Geometry, tile: &Tile, dx: &mut [f32]) {
    let (vol, [kt, kh, kw], [_, oh, ow]) = (g.volume(), g.k, g.out);
    let (per_image, cols_n) = (tile.frames * g.frame(), g.tile_cols(tile));
    dx[tile.n0 * g.c * vol..(tile.n0 + tile.m) * g.c * vol]
        .par_chunks_mut(vol)
        .enumerate()
        .for_each(|(idx, plane)| {
            let (img, c) = (idx / g.c, idx % g.c);
            for (a, i, j) in
                (0..kt).flat_map(|a| (0..kh).flat_map(move |i| (0..kw).map(move |j| (a, i, j))))
            {
                let row = &dcols[(((c * kt + a) * kh + i) * kw + j) * cols_n + img * per_image..]
                    [..per_image];
                for (lt, tt) in (tile.f0..tile.f0 + tile.frames).enumerate() {
                    let Some(f) = g.source(0, tt, a, g.t) else {
                        continue;
                    };
                    for oy in 0..oh {
                        let Some(y) = g.source(1, oy, i, g.h) else {
                            continue;
                        };
                        let dst = &mut plane[(f * g.h + y) * g.w..][..g.w];
                        for (ox, v) in row[(lt * oh + oy) * ow..][..ow].iter().enumerate() {
                            if let Some(xx) = g.source(2, ox, j, g.w) {
                                dst[xx] += v;
                            }
                        }
                    }
                }
            }
        });
}

/// dst [m, n] (row-major) = (accumulate ? dst : 0) + lhs [m, k] · rhs [k, n], with explicit
/// (row, column) strides.
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
            parallelism(),
        );
    }
}

fn parallelism() -> gemm::Parallelism {
    let threads = candle_core::utils::get_num_threads();
    if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

fn forward(x: &[f32], w: &[f32], g: &Geometry) -> Vec<f32> {
    let (k, p, tiles) = (g.rows(), g.p(), g.tiles());
    let mut y = vec![0f32; g.n * g.o * p];
    let mut cols = vec![0f32; k * tiles.iter().map(|t| g.tile_cols(t)).max().unwrap_or(0)];
    for tile in &tiles {
        let (nc, per_image) = (g.tile_cols(tile), tile.frames * g.frame());
        im2col(x, g, tile, &mut cols[..k * nc]);
        // Per image, yᵀ [positions, O] = colsᵀ · Wᵀ, written through strides straight into y [O, P]:
        // the large dimension (positions) is the gemm's rows.
        for img in 0..tile.m {
            let dst = &mut y[(tile.n0 + img) * g.o * p + tile.f0 * g.frame()..];
            // SAFETY: dst holds O rows of stride P from this tile's first position; cols is
            // [K, nc] (row stride nc); w is [O, K].
            unsafe {
                gemm::gemm(
                    per_image,
                    g.o,
                    k,
                    dst.as_mut_ptr(),
                    p as isize,
                    1,
                    false,
                    cols[img * per_image..].as_ptr(),
                    nc as isize,
                    1,
                    w.as_ptr(),
                    k as isize,
                    1,
                    1.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    parallelism(),
                );
            }
        }
    }
    y
}

/// The tile's slice of the output gradient [m, O, P] -> [O, tile columns].
fn gather_grad(gy: &[f32], g: &Geometry, tile: &Tile, out: &mut [f32]) {
    let (p, nc, per_image) = (g.p(), g.tile_cols(tile), tile.frames * g.frame());
    out.par_chunks_mut(nc).enumerate().for_each(|(o, row)| {
        for img in 0..tile.m {
            let src = &gy[((tile.n0 + img) * g.o + o) * p + tile.f0 * g.frame()..][..per_image];
            row[img * per_image..(img + 1) * per_image].copy_from_slice(src);
        }
    });
}

fn backward_weight(x: &[f32], gy: &[f32], g: &Geometry) -> Vec<f32> {
    let (k, tiles) = (g.rows(), g.tiles());
    let max_cols = tiles.iter().map(|t| g.tile_cols(t)).max().unwrap_or(0);
    let mut dw = vec![0f32; g.o * k];
    let (mut cols, mut gm) = (vec![0f32; k * max_cols], vec![0f32; g.o * max_cols]);
    for (step, tile) in tiles.iter().enumerate() {
        let nc = g.tile_cols(tile);
        im2col(x, g, tile, &mut cols[..k * nc]);
        gather_grad(gy, g, tile, &mut gm[..g.o * nc]);
        // dW [O, K] += g [O, nc] · colsᵀ [nc, K]
        gemm_f32(
            g.o,
            k,
            nc,
            &mut dw,
            step > 0,
            &gm[..g.o * nc],
            nc as isize,
            1,
            &cols[..k * nc],
            1,
            nc as isize,
        );
    }
    dw
}

fn backward_input(gy: &[f32], w: &[f32], g: &Geometry) -> Vec<f32> {
    let (k, tiles) = (g.rows(), g.tiles());
    let max_cols = tiles.iter().map(|t| g.tile_cols(t)).max().unwrap_or(0);
    let mut dx = vec![0f32; g.n * g.c * g.volume()];
    let (mut dcols, mut gm) = (vec![0f32; k * max_cols], vec![0f32; g.o * max_cols]);
    for tile in &tiles {
        let nc = g.tile_cols(tile);
        gather_grad(gy, g, tile, &mut gm[..g.o * nc]);
        // dcols [K, nc] = Wᵀ [K, O] · g [O, nc]
        gemm_f32(
            k,
            nc,
            g.o,
            &mut dcols[..k * nc],
            false,
            w,
            1,
            k as isize,
            &gm[..g.o * nc],
            nc as isize,
            1,
        );
        col2im(&dcols[..k * nc], g, tile, &mut dx);
    }
    dx
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match s {
        CpuStorage::F32(v) => contiguous(v, l, "conv"),
        _ => candle_core::bail!("conv: unsupported dtype {:?}", s.dtype()),
    }
}

struct ConvOp {
    geom: Geometry,
}

impl candle_core::CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        "avkd-conv"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = &self.geom;
        let y = forward(f32_slice(s1, l1)?, f32_slice(s2, l2)?, g);
        Ok((
            CpuStorage::F32(y),
            Shape::from(vec![g.n, g.o, g.out[0], g.out[1], g.out[2]]),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = grad.apply_op2_no_bwd(
            w,
            &ConvGrad {
                geom: self.geom,
                input: true,
            },
        )?;
        let dw = x.apply_op2_no_bwd(
            &grad,
            &ConvGrad {
                geom: self.geom,
                input: false,
            },
        )?;
        Ok((Some(dx), Some(dw)))
    }
}

/// `input`: (grad, w) -> dx; otherwise (x, grad) -> dW.
struct ConvGrad {
    geom: Geometry,
    input: bool,
}

impl candle_core::CustomOp2 for ConvGrad {
    fn name(&self) -> &'static str {
        "avkd-conv-grad"
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
                Shape::from(vec![g.n, g.c, g.t, g.h, g.w]),
            ))
        } else {
            Ok((
                CpuStorage::F32(backward_weight(a, b, g)),
                Shape::from(vec![g.o, g.c, g.k[0], g.k[1], g.k[2]]),
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
