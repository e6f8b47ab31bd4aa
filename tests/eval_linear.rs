//! Linear evaluation: the LinearSVC port against scikit-learn (fixtures made by
//! scripts/make_svm_fixture.py), the C sweep, and the trained linear probe.

use avkd::eval::{
    svm_sweep, svm_video_metrics, CSelection, FeatureNorm, LinearProbe, LinearProbeConfig,
    LinearSvc, LinearSvcConfig, ProbeOptimizer, SvmData,
};
use avkd::nn::rng::SeededRng;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

fn fixture(name: &str) -> HashMap<String, Tensor> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/eval")
        .join(name);
    candle_core::safetensors::load(&path, &Device::Cpu).unwrap()
}

struct Data {
    x_train: Tensor,
    y_train: Vec<usize>,
    x_test: Tensor,
    y_test: Vec<usize>,
}

fn labels(t: &Tensor) -> Vec<usize> {
    t.to_dtype(DType::I64)
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as usize)
        .collect()
}

fn data(problem: &str) -> Data {
    let d = fixture(&format!("svm_{problem}_data.safetensors"));
    Data {
        x_train: d["x_train"].clone(),
        y_train: labels(&d["y_train"]),
        x_test: d["x_test"].clone(),
        y_test: labels(&d["y_test"]),
    }
}

fn f64s(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Largest |a - b| relative to the largest |b|.
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn accuracy(svm: &LinearSvc, x: &Tensor, y: &[usize]) -> f64 {
    let dec = svm.decision_function(x).unwrap().to_vec2::<f32>().unwrap();
    let correct = dec
        .iter()
        .zip(y)
        .filter(|(row, &label)| {
            // First maximum, as numpy's argmax.
            let best = row
                .iter()
                .enumerate()
                .fold(0, |b, (i, v)| if *v > row[b] { i } else { b });
            best == label
        })
        .count();
    correct as f64 / y.len() as f64
}

fn check_against_sklearn(problem: &str, num_classes: usize) {
    let d = data(problem);
    for c in ["0.01", "0.1", "1.0"] {
        let sk = fixture(&format!("svm_{problem}_C{c}.safetensors"));
        let cv: f64 = c.parse().unwrap();

        // Converged fits: the optimum is unique, so coef_, intercept_ and decision values agree.
        let cfg = LinearSvcConfig {
            c: cv,
            tol: 1e-10,
            max_iter: 200_000,
            ..Default::default()
        };
        let svm = LinearSvc::fit(&d.x_train, &d.y_train, num_classes, &cfg).unwrap();
        assert!(svm.converged(), "{problem} C={c}: {:?}", svm.n_iter());
        let dec: Vec<f64> = svm
            .raw_decision(&d.x_test)
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        let e_dec = rel_err(&dec, &f64s(&sk["tight.decision"]));
        let e_coef = rel_err(&f64s(&svm.coef().unwrap()), &f64s(&sk["tight.coef"]));
        let e_b = rel_err(
            &f64s(&svm.intercept().unwrap()),
            &f64s(&sk["tight.intercept"]),
        );
        println!("{problem} C={c} tight: decision {e_dec:.2e} coef {e_coef:.2e} intercept {e_b:.2e} iters {:?}", svm.n_iter());
        assert!(
            e_dec < 1e-6 && e_coef < 1e-6 && e_b < 1e-6,
            "{problem} C={c}"
        );
        let acc = accuracy(&svm, &d.x_test, &d.y_test);
        assert_eq!(acc, f64s(&sk["tight.accuracy"])[0], "{problem} C={c}");

        // XKD's setting (tol 1e-4, max_iter 1000): stopped early on another path, still close, and
        // the same accuracy.
        let cfg = LinearSvcConfig {
            c: cv,
            ..Default::default()
        };
        let svm = LinearSvc::fit(&d.x_train, &d.y_train, num_classes, &cfg).unwrap();
        let dec: Vec<f64> = svm
            .raw_decision(&d.x_test)
            .unwrap()
            .into_iter()
            .flatten()
            .collect();
        let e_dec = rel_err(&dec, &f64s(&sk["paper.decision"]));
        println!(
            "{problem} C={c} paper: decision {e_dec:.2e} iters {:?} (sklearn {})",
            svm.n_iter(),
            f64s(&sk["paper.n_iter"])[0]
        );
        // Where scikit-learn stopped at max_iter too, both are equally unconverged: looser bound.
        let sk_converged = f64s(&sk["paper.n_iter"])[0] < 1000.0;
        let bound = if sk_converged && svm.converged() {
            1e-3
        } else {
            2e-2
        };
        assert!(e_dec < bound, "{problem} C={c}: {e_dec}");
        assert_eq!(
            accuracy(&svm, &d.x_test, &d.y_test),
            f64s(&sk["paper.accuracy"])[0]
        );
    }
}

#[test]
fn linear_svc_matches_sklearn_multiclass() {
    check_against_sklearn("multi", 5);
}

#[test]
fn linear_svc_matches_sklearn_binary() {
    check_against_sklearn("binary", 2);
}

#[test]
fn svm_fit_is_deterministic_for_a_seed_and_checks_inputs() {
    let d = data("multi");
    let cfg = LinearSvcConfig {
        c: 0.1,
        ..Default::default()
    };
    let a = LinearSvc::fit(&d.x_train, &d.y_train, 5, &cfg).unwrap();
    let b = LinearSvc::fit(&d.x_train, &d.y_train, 5, &cfg).unwrap();
    assert_eq!(f64s(&a.coef().unwrap()), f64s(&b.coef().unwrap()));

    // A class without training samples, a label out of range, mismatched lengths, bad C.
    let no_four: Vec<usize> = d.y_train.iter().map(|&y| y.min(3)).collect();
    let err = LinearSvc::fit(&d.x_train, &no_four, 5, &cfg).unwrap_err();
    assert!(
        err.to_string().contains("class 4 has no training samples"),
        "{err}"
    );
    assert!(LinearSvc::fit(&d.x_train, &d.y_train, 4, &cfg).is_err());
    assert!(LinearSvc::fit(&d.x_train, &d.y_train[1..], 5, &cfg).is_err());
    assert!(LinearSvc::fit(
        &d.x_train,
        &d.y_train,
        5,
        &LinearSvcConfig { c: 0.0, ..cfg }
    )
    .is_err());
    let flat = d.x_train.flatten_all().unwrap();
    assert!(LinearSvc::fit(&flat, &d.y_train, 5, &cfg).is_err());
    let narrow = d.x_test.narrow(1, 0, 31).unwrap();
    let err = a.decision_function(&narrow).unwrap_err();
    assert!(err.to_string().contains("31"), "{err}");
}

#[test]
fn svm_sweep_paper_protocol_and_held_out_selection() {
    let d = data("multi");
    // Test rows grouped in pairs of one video each (same label within a pair is not guaranteed by
    // the fixture, so pair only rows with equal labels; others stay single-view videos).
    let mut videos = Vec::with_capacity(d.y_test.len());
    let mut next = 0;
    for i in 0..d.y_test.len() {
        if i % 2 == 1 && d.y_test[i] == d.y_test[i - 1] {
            videos.push(videos[i - 1]);
        } else {
            videos.push(next);
            next += 1;
        }
    }
    let train_videos: Vec<usize> = (0..d.y_train.len()).collect();
    let train = SvmData {
        features: &d.x_train,
        labels: &d.y_train,
        videos: &train_videos,
    };
    let test = SvmData {
        features: &d.x_test,
        labels: &d.y_test,
        videos: &videos,
    };
    let cs = [0.001, 0.01, 0.1, 1.0];
    let cfg = LinearSvcConfig::default();

    let paper = svm_sweep(&train, &test, 5, &cs, &cfg, CSelection::TestSet).unwrap();
    assert_eq!(paper.per_c.len(), 4);
    let best = paper
        .per_c
        .iter()
        .map(|r| r.metrics.top1)
        .fold(0.0, f64::max);
    // The first C reaching the best test top-1 is reported, with its test metrics.
    let first = paper.per_c.iter().find(|r| r.metrics.top1 == best).unwrap();
    assert_eq!(paper.best_c, first.c);
    assert_eq!(paper.test, first.metrics);
    assert_eq!(paper.test.num_videos, next);
    assert!(CSelection::TestSet.describe().contains("test set"));

    // Video-level = decision values averaged over a video's rows, then argmax.
    let svm = LinearSvc::fit(
        &d.x_train,
        &d.y_train,
        5,
        &LinearSvcConfig {
            c: paper.best_c,
            ..cfg
        },
    )
    .unwrap();
    let dec = svm
        .decision_function(&d.x_test)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let mut correct = 0;
    for v in 0..next {
        let rows: Vec<usize> = (0..videos.len()).filter(|&i| videos[i] == v).collect();
        let mean: Vec<f64> = (0..5)
            .map(|k| rows.iter().map(|&i| dec[i][k] as f64).sum::<f64>() / rows.len() as f64)
            .collect();
        let arg = (0..5).fold(0, |b, k| if mean[k] > mean[b] { k } else { b });
        correct += (arg == d.y_test[rows[0]]) as usize;
    }
    assert_eq!(
        svm_video_metrics(&svm, &test).unwrap().top1,
        correct as f64 / next as f64
    );

    let sel = CSelection::HeldOut {
        fraction: 0.2,
        seed: 3,
    };
    let held = svm_sweep(&train, &test, 5, &cs, &cfg, sel).unwrap();
    assert_eq!(held.selection, sel);
    // Selection metrics are on 20% of the training videos (12 per class of ~60).
    let n_held = held.per_c[0].metrics.num_videos;
    assert!((50..=70).contains(&n_held), "{n_held}");
    assert!(cs.contains(&held.best_c));
    assert_eq!(held.test.num_videos, next);
    assert!(sel.describe().contains("held-out"));

    assert!(svm_sweep(&train, &test, 5, &[], &cfg, CSelection::TestSet).is_err());
    let short = SvmData {
        videos: &videos[1..],
        ..test
    };
    assert!(svm_sweep(&train, &short, 5, &cs, &cfg, CSelection::TestSet).is_err());
}

/// Four well-separated Gaussian classes in 16 dimensions; test rows come in 2 views per video.
fn separable(n: usize, seed: u64) -> (Tensor, Vec<usize>) {
    let mut rng = SeededRng::new(seed);
    let mut centres = SeededRng::new(77);
    let centres: Vec<Vec<f64>> = (0..4)
        .map(|_| (0..16).map(|_| 4.0 * centres.normal_f64()).collect())
        .collect();
    let mut x = Vec::with_capacity(n * 16);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i / 2) % 4;
        y.push(label);
        x.extend(
            centres[label]
                .iter()
                .map(|c| (c + 0.5 * rng.normal_f64()) as f32),
        );
    }
    (Tensor::from_vec(x, (n, 16), &Device::Cpu).unwrap(), y)
}

fn probe_cfg() -> LinearProbeConfig {
    LinearProbeConfig {
        epochs: 20,
        batch_size: 32,
        lr: 0.05,
        warmup_epochs: 2,
        seed: 5,
        ..Default::default()
    }
}

#[test]
fn linear_probe_learns_a_separable_problem_deterministically() {
    let (x, y) = separable(200, 1);
    let (xt, yt) = separable(80, 2);
    let videos: Vec<usize> = (0..80).map(|i| i / 2).collect();
    let mut losses = Vec::new();
    let probe = LinearProbe::train_with_callback(&x, &y, 4, &probe_cfg(), &mut |s| {
        losses.push((s.step, s.epoch, s.loss, s.lr))
    })
    .unwrap();
    // 200 samples in batches of 32: 7 steps per epoch.
    assert_eq!(losses.len(), 20 * 7);
    assert_eq!(losses[7].1, 1);
    assert_eq!(losses[0].3, 0.0); // warmup starts at 0
    assert!(
        losses.last().unwrap().2 < 0.1 * losses[1].2,
        "{:?} -> {:?}",
        losses[1],
        losses.last()
    );
    let m = probe.evaluate(&xt, &yt, &videos).unwrap();
    assert_eq!(m.num_videos, 40);
    assert_eq!(m.top1, 1.0);
    assert_eq!(m.mean_class, 1.0);

    // Same seed, same head, bit for bit; another seed gives another head.
    let again = LinearProbe::train(&x, &y, 4, &probe_cfg()).unwrap();
    let w = |p: &LinearProbe| {
        p.head()
            .weight()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(w(&probe), w(&again));
    let other = LinearProbe::train(
        &x,
        &y,
        4,
        &LinearProbeConfig {
            seed: 6,
            ..probe_cfg()
        },
    )
    .unwrap();
    assert_ne!(w(&probe), w(&other));

    // SGD and both feature transforms also solve it.
    for (optimizer, feature_norm) in [
        (
            ProbeOptimizer::Sgd { momentum: 0.9 },
            FeatureNorm::Standardize,
        ),
        (ProbeOptimizer::AdamW, FeatureNorm::L2),
    ] {
        let cfg = LinearProbeConfig {
            optimizer,
            feature_norm,
            weight_decay: 1e-4,
            ..probe_cfg()
        };
        let p = LinearProbe::train(&x, &y, 4, &cfg).unwrap();
        assert_eq!(
            p.evaluate(&xt, &yt, &videos).unwrap().top1,
            1.0,
            "{optimizer:?} {feature_norm:?}"
        );
    }
}

#[test]
fn linear_probe_rejects_bad_inputs() {
    let (x, y) = separable(40, 1);
    let cfg = probe_cfg();
    assert!(LinearProbe::train(&x, &y[1..], 4, &cfg).is_err());
    let err = LinearProbe::train(&x, &y, 3, &cfg).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    assert!(LinearProbe::train(
        &x,
        &y,
        4,
        &LinearProbeConfig {
            batch_size: 0,
            ..cfg
        }
    )
    .is_err());
    let empty = Tensor::zeros((0, 16), DType::F32, &Device::Cpu).unwrap();
    assert!(LinearProbe::train(&empty, &[], 4, &cfg).is_err());
    let p = LinearProbe::train(&x, &y, 4, &LinearProbeConfig { epochs: 1, ..cfg }).unwrap();
    let videos: Vec<usize> = (0..40).collect();
    assert!(p.evaluate(&x, &y, &videos[1..]).is_err());
    assert!(p
        .evaluate(&x.narrow(1, 0, 8).unwrap(), &y, &videos)
        .is_err());
}
