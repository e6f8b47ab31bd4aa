//! The layers avkd adds to Candle for the 3-D CNNs, checked against direct references and against
//! central finite differences (f64): Conv3d (general and the (2+1)D factors), max pooling (2-D, 3-D),
//! adaptive average pooling, and training-mode BatchNorm with PyTorch's running-statistic update.

mod common;

use avkd::nn::batch_norm::BatchNorm;
use avkd::nn::conv3d::{conv3d, from_frames, spatial_conv, temporal_conv, to_frames};
use avkd::nn::param_store::ParamStore;
use avkd::nn::pool::{adaptive_avg_pool, max_pool};
use avkd::nn::rng::SeededRng;
use candle_core::{DType, Device, Result, Tensor, Var};

fn randn(rng: &mut SeededRng, shape: &[usize]) -> Tensor {
    rng.normal(shape.to_vec(), 0.0, 1.0, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
}

/// Checks d(sum(f(vars) * probe))/d var against central differences at `samples` coordinates of
/// each variable.
fn check_gradients(
    vars: &[&Var],
    f: impl Fn() -> Result<Tensor>,
    samples: usize,
    rng: &mut SeededRng,
) {
    let y = f().unwrap();
    let probe = randn(rng, y.dims());
    let loss = |y: Tensor| {
        (y * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let grads = (f().unwrap() * &probe)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (vi, var) in vars.iter().enumerate() {
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("variable {vi} got no gradient"))
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let base = var.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for s in 0..samples {
            let i = (s * 7919 + vi * 31) % base.len();
            let h = 1e-5;
            let mut plus = base.clone();
            plus[i] += h;
            var.set(&Tensor::from_vec(plus, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let lp = loss(f().unwrap());
            let mut minus = base.clone();
            minus[i] -= h;
            var.set(&Tensor::from_vec(minus, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let lm = loss(f().unwrap());
            var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let fd = (lp - lm) / (2.0 * h);
            let err = (g[i] - fd).abs() / fd.abs().max(1e-3);
            assert!(
                err < 1e-6,
                "variable {vi}, element {i}: autograd {} vs finite difference {fd}",
                g[i]
            );
        }
    }
}

/// Direct 7-loop 3-D convolution.
fn naive_conv3d(x: &Tensor, w: &Tensor, s: [usize; 3], p: [usize; 3]) -> Vec<f64> {
    let (b, c, t, h, wd) = x.dims5().unwrap();
    let (o, _, kt, kh, kw) = w.dims5().unwrap();
    let xv = x.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let wv = w.flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let out = |n: usize, k: usize, s: usize, p: usize| (n + 2 * p - k) / s + 1;
    let (to, ho, wo) = (
        out(t, kt, s[0], p[0]),
        out(h, kh, s[1], p[1]),
        out(wd, kw, s[2], p[2]),
    );
    let mut y = vec![0.0; b * o * to * ho * wo];
    for bi in 0..b {
        for oi in 0..o {
            for (ti, hi, wi) in (0..to)
                .flat_map(|ti| (0..ho).flat_map(move |hi| (0..wo).map(move |wi| (ti, hi, wi))))
            {
                let mut acc = 0.0;
                for ci in 0..c {
                    for (a, bb, cc) in (0..kt).flat_map(|a| {
                        (0..kh).flat_map(move |bb| (0..kw).map(move |cc| (a, bb, cc)))
                    }) {
                        let (tt, hh, ww) = (
                            (ti * s[0] + a) as isize - p[0] as isize,
                            (hi * s[1] + bb) as isize - p[1] as isize,
                            (wi * s[2] + cc) as isize - p[2] as isize,
                        );
                        if tt < 0
                            || hh < 0
                            || ww < 0
                            || tt >= t as isize
                            || hh >= h as isize
                            || ww >= wd as isize
                        {
                            continue;
                        }
                        acc += xv[(((bi * c + ci) * t + tt as usize) * h + hh as usize) * wd
                            + ww as usize]
                            * wv[(((oi * c + ci) * kt + a) * kh + bb) * kw + cc];
                    }
                }
                y[(((bi * o + oi) * to + ti) * ho + hi) * wo + wi] = acc;
            }
        }
    }
    y
}

#[test]
fn conv3d_matches_direct_convolution_and_finite_differences() {
    let mut rng = SeededRng::new(1);
    for (s, p) in [
        ([1, 1, 1], [1, 1, 1]),
        ([2, 2, 2], [1, 0, 0]),
        ([1, 2, 2], [0, 1, 1]),
    ] {
        let x = Var::from_tensor(&randn(&mut rng, &[2, 3, 5, 6, 6])).unwrap();
        let w = Var::from_tensor(&randn(&mut rng, &[4, 3, 3, 3, 3])).unwrap();
        let y = conv3d(&x, &w, s, p).unwrap();
        let want = naive_conv3d(&x, &w, s, p);
        let got = y.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        assert_eq!(got.len(), want.len());
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-12, "stride {s:?} padding {p:?}: max error {err}");
        check_gradients(&[&x, &w], || conv3d(&x, &w, s, p), 6, &mut rng);
    }
}

#[test]
fn conv2d_gradients_match_finite_differences_with_odd_sizes_and_strides() {
    let mut rng = SeededRng::new(6);
    for (xs, ws, s, p) in [
        ([2, 3, 7, 5], [4, 3, 3, 3], 2, 1),
        ([1, 2, 9, 9], [3, 2, 7, 7], 2, 3),
        ([3, 4, 5, 7], [2, 4, 1, 1], 2, 0),
    ] {
        // f32 kernel: check in f32 with a step and tolerance to match.
        let x = Var::from_tensor(&randn(&mut rng, &xs).to_dtype(DType::F32).unwrap()).unwrap();
        let w = Var::from_tensor(&randn(&mut rng, &ws).to_dtype(DType::F32).unwrap()).unwrap();
        let y = avkd::nn::conv2d::conv2d(&x, &w, s, p).unwrap();
        let probe = randn(&mut rng, y.dims()).to_dtype(DType::F32).unwrap();
        let grads = (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        for var in [&x, &w] {
            let g = grads.get(var).unwrap();
            assert_eq!(g.dims(), var.dims());
            let g = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let base = var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for k in 0..5 {
                let i = (k * 7919) % base.len();
                let eval = |d: f32| {
                    let mut v = base.clone();
                    v[i] += d;
                    var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                        .unwrap();
                    let l = (avkd::nn::conv2d::conv2d(&x, &w, s, p).unwrap() * &probe)
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap();
                    var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap())
                        .unwrap();
                    l as f64
                };
                let fd = (eval(1e-2) - eval(-1e-2)) / 2e-2;
                assert!(
                    (g[i] as f64 - fd).abs() < 1e-2 * (1.0 + fd.abs()),
                    "element {i}: autograd {} vs finite difference {fd}",
                    g[i]
                );
            }
        }
    }
}

#[test]
fn native_f32_conv3d_matches_the_f64_path_in_value_and_gradient() {
    // f32 on the CPU takes the native 3-D im2col/gemm kernels; f64 takes the fold through conv2d,
    // which the finite-difference test above validates.
    let mut rng = SeededRng::new(7);
    for (xs, ws, s, p) in [
        ([2, 3, 5, 6, 7], [4, 3, 3, 3, 3], [1, 1, 1], [1, 1, 1]),
        ([1, 2, 7, 9, 9], [3, 2, 3, 5, 5], [2, 2, 2], [1, 2, 2]),
        ([2, 4, 4, 5, 5], [2, 4, 1, 1, 1], [2, 2, 2], [0, 0, 0]),
    ] {
        let x64 = Var::from_tensor(&randn(&mut rng, &xs)).unwrap();
        let w64 = Var::from_tensor(&randn(&mut rng, &ws)).unwrap();
        let x32 = Var::from_tensor(&x64.to_dtype(DType::F32).unwrap()).unwrap();
        let w32 = Var::from_tensor(&w64.to_dtype(DType::F32).unwrap()).unwrap();
        let y64 = conv3d(&x64, &w64, s, p).unwrap();
        let y32 = conv3d(&x32, &w32, s, p).unwrap();
        let probe = randn(&mut rng, y64.dims());
        assert!(common::max_abs_diff(&y32, &y64) < 1e-4 * (1.0 + common::max_abs(&y64)));
        let g64 = (y64 * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g32 = (y32 * probe.to_dtype(DType::F32).unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (a, b) in [(&x32, &x64), (&w32, &w64)] {
            let (ga, gb) = (g32.get(a).unwrap(), g64.get(b).unwrap());
            assert_eq!(ga.dims(), gb.dims());
            assert!(
                common::max_abs_diff(ga, gb) < 1e-4 * (1.0 + common::max_abs(gb)),
                "gradient mismatch for {xs:?} {ws:?}"
            );
        }
    }
}

#[test]
fn factorised_convs_equal_conv3d_and_have_correct_gradients() {
    let mut rng = SeededRng::new(2);
    let x = Var::from_tensor(&randn(&mut rng, &[2, 3, 6, 7, 7])).unwrap();
    let ws = Var::from_tensor(&randn(&mut rng, &[5, 3, 1, 3, 3])).unwrap();
    let wt = Var::from_tensor(&randn(&mut rng, &[4, 5, 3, 1, 1])).unwrap();
    let factorised = || -> Result<Tensor> {
        let (f, t) = to_frames(&x)?;
        let s = spatial_conv(&f, &ws, 2, 1)?;
        let (y, t) = temporal_conv(&s, t, &wt, 2, 1)?;
        from_frames(&y, t)
    };
    let direct = conv3d(
        &conv3d(&x, &ws, [1, 2, 2], [0, 1, 1]).unwrap(),
        &wt,
        [2, 1, 1],
        [1, 0, 0],
    )
    .unwrap();
    assert!(common::max_abs_diff(&factorised().unwrap(), &direct) < 1e-12);
    check_gradients(&[&x, &ws, &wt], factorised, 6, &mut rng);
}

#[test]
fn max_pool_picks_the_first_maximum_and_routes_its_gradient() {
    let mut rng = SeededRng::new(3);
    // 2-D, ResNet's stem pool, against finite differences (random inputs have no ties).
    let x = Var::from_tensor(&randn(&mut rng, &[2, 2, 7, 8])).unwrap();
    let y = max_pool(&x, &[3, 3], &[2, 2], &[1, 1]).unwrap();
    assert_eq!(y.dims(), &[2, 2, 4, 4]);
    check_gradients(
        &[&x],
        || max_pool(&x, &[3, 3], &[2, 2], &[1, 1]),
        8,
        &mut rng,
    );
    // 3-D.
    let x3 = Var::from_tensor(&randn(&mut rng, &[1, 2, 4, 5, 5])).unwrap();
    assert_eq!(
        max_pool(&x3, &[1, 2, 2], &[1, 2, 2], &[0, 0, 0])
            .unwrap()
            .dims(),
        &[1, 2, 4, 2, 2]
    );
    check_gradients(
        &[&x3],
        || max_pool(&x3, &[3, 3, 3], &[2, 2, 2], &[1, 1, 1]),
        8,
        &mut rng,
    );
    // Ties (common after ReLU): PyTorch gives the whole gradient to the first maximum of the window.
    let ties =
        Var::from_tensor(&Tensor::zeros((1, 1, 2, 2), DType::F64, &Device::Cpu).unwrap()).unwrap();
    let g = max_pool(&ties, &[2, 2], &[2, 2], &[0, 0])
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert_eq!(
        g.get(&ties)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap(),
        vec![1.0, 0.0, 0.0, 0.0]
    );
}

#[test]
fn adaptive_avg_pool_uses_pytorch_windows() {
    let x = Tensor::arange(0f64, 10.0, &Device::Cpu)
        .unwrap()
        .reshape((1, 1, 10))
        .unwrap();
    // PyTorch's AdaptiveAvgPool1d(4) on 0..10: windows [0,3) [2,5) [5,8) [7,10).
    let y = adaptive_avg_pool(&x, &[4])
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert_eq!(y, vec![1.0, 3.0, 6.0, 8.0]);
    let mut rng = SeededRng::new(4);
    let v = Var::from_tensor(&randn(&mut rng, &[2, 3, 4, 5, 6])).unwrap();
    assert_eq!(
        adaptive_avg_pool(&v, &[1, 1, 1]).unwrap().dims(),
        &[2, 3, 1, 1, 1]
    );
    check_gradients(&[&v], || adaptive_avg_pool(&v, &[2, 3, 4]), 8, &mut rng);
}

#[test]
fn batch_norm_training_mode_gradients_and_running_statistics() {
    let mut rng = SeededRng::new(5);
    let store = ParamStore::new(0, DType::F64, &Device::Cpu);
    let bn = BatchNorm::default_config(3, store.builder()).unwrap();
    store
        .get("weight")
        .unwrap()
        .set(&randn(&mut rng, &[3]))
        .unwrap();
    store
        .get("bias")
        .unwrap()
        .set(&randn(&mut rng, &[3]))
        .unwrap();
    let x = Var::from_tensor(&randn(&mut rng, &[4, 3, 2, 3, 3]).affine(2.0, 1.0).unwrap()).unwrap();
    let y = bn.forward_t(&x, true).unwrap();
    // Running stats: 0.9 * init + 0.1 * batch (unbiased variance), as PyTorch.
    let xs = x.transpose(0, 1).unwrap().flatten_from(1).unwrap();
    let n = xs.dim(1).unwrap() as f64;
    let mean = xs.mean(1).unwrap();
    let var_unbiased = (xs
        .broadcast_sub(&mean.unsqueeze(1).unwrap())
        .unwrap()
        .sqr()
        .unwrap()
        .sum(1)
        .unwrap()
        / (n - 1.0))
        .unwrap();
    common::assert_close(
        "running_mean",
        bn.running_mean(),
        &(mean * 0.1).unwrap(),
        1e-12,
    );
    common::assert_close(
        "running_var",
        bn.running_var(),
        &((var_unbiased * 0.1).unwrap() + 0.9).unwrap(),
        1e-12,
    );
    assert_eq!(y.dims(), x.dims());
    let (w, b) = (store.get("weight").unwrap(), store.get("bias").unwrap());
    check_gradients(&[&x, &w, &b], || bn.forward_t(&x, true), 6, &mut rng);
}
