//! `sklearn.svm.LinearSVC` (dual=True), the classifier of XKD's "linear" evaluations (xkd.md §5.2):
//! liblinear's dual coordinate descent for the L2-regularised squared-hinge loss
//! (`L2R_L2LOSS_SVC_DUAL`, Hsieh et al. 2008, Algorithm 3, with liblinear's shrinking), trained one
//! class against the rest.
//!
//! What matches liblinear: the update rule, the projected-gradient shrinking and stopping test
//! (`PGmax − PGmin <= tol`, then a final pass over all samples), `max_iter` outer iterations, the
//! intercept as an extra feature of value `intercept_scaling` that is regularised like any weight,
//! and the sign conventions (binary problems train one model whose positive class is class 1).
//! What cannot match: liblinear permutes the active samples with its own `rand()` every outer
//! iteration; here the permutation comes from a [`SeededRng`] (one derived stream per class), so the
//! path to the optimum differs. The optimum itself is unique (the dual is strictly convex), so a
//! converged fit agrees with scikit-learn up to the stopping tolerance.

use crate::nn::rng::SeededRng;
use candle_core::{DType, Device, Result, Tensor};
use rayon::prelude::*;

/// `LinearSVC(C, tol, max_iter, fit_intercept, intercept_scaling, random_state)` with
/// `loss='squared_hinge'`, `penalty='l2'`, `dual=True`, `multi_class='ovr'`, no class weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearSvcConfig {
    pub c: f64,
    pub tol: f64,
    pub max_iter: usize,
    pub fit_intercept: bool,
    pub intercept_scaling: f64,
    /// Seeds the per-iteration permutations (XKD passes `random_state=99999`).
    pub seed: u64,
}

impl Default for LinearSvcConfig {
    /// scikit-learn's defaults with XKD's seed.
    fn default() -> Self {
        Self {
            c: 1.0,
            tol: 1e-4,
            max_iter: 1000,
            fit_intercept: true,
            intercept_scaling: 1.0,
            seed: 99999,
        }
    }
}

/// A fitted one-vs-rest linear SVM.
#[derive(Debug, Clone)]
pub struct LinearSvc {
    num_classes: usize,
    num_features: usize,
    /// One weight vector per binary model (1 for two classes, `num_classes` otherwise).
    coef: Vec<Vec<f64>>,
    intercept: Vec<f64>,
    /// Outer iterations each binary model used (`max_iter` means it did not converge).
    n_iter: Vec<usize>,
    max_iter: usize,
}

/// Dense training data: f32 rows read as f64, as liblinear reads scikit-learn's float64 copy of
/// float32 features (the conversion is exact), plus the optional constant bias feature.
struct Problem<'a> {
    x: &'a [f32],
    d: usize,
    bias: Option<f64>,
}

impl Problem<'_> {
    fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.d..(i + 1) * self.d]
    }

    fn dot(&self, w: &[f64], i: usize) -> f64 {
        let mut s = 0.0;
        for (wj, &xj) in w.iter().zip(self.row(i)) {
            s += wj * xj as f64;
        }
        if let Some(b) = self.bias {
            s += w[self.d] * b;
        }
        s
    }

    fn axpy(&self, a: f64, i: usize, w: &mut [f64]) {
        for (wj, &xj) in w.iter_mut().zip(self.row(i)) {
            *wj += a * xj as f64;
        }
        if let Some(b) = self.bias {
            w[self.d] += a * b;
        }
    }

    fn sq_norm(&self, i: usize) -> f64 {
        let s: f64 = self.row(i).iter().map(|&v| v as f64 * v as f64).sum();
        s + self.bias.map_or(0.0, |b| b * b)
    }
}

/// liblinear's `solve_l2r_l1l2_svc` for the L2 loss (upper bound ∞, `D_ii = 1/(2C)`), equal costs
/// for both classes. Returns the weights (bias last) and the outer iterations used.
fn solve_l2loss_dual(
    prob: &Problem,
    positive: &[bool],
    c: f64,
    eps: f64,
    max_iter: usize,
    rng: &mut SeededRng,
) -> (Vec<f64>, usize) {
    let l = positive.len();
    let w_size = prob.d + prob.bias.is_some() as usize;
    let diag = 0.5 / c;
    let qd: Vec<f64> = (0..l).map(|i| diag + prob.sq_norm(i)).collect();
    let mut alpha = vec![0.0f64; l];
    let mut w = vec![0.0f64; w_size];
    let mut index: Vec<usize> = (0..l).collect();
    let mut active = l;
    // liblinear also tracks PGmin_old, but only to shrink samples at the upper bound C, which the L2
    // loss does not have.
    let mut pg_max_old = f64::INFINITY;
    let mut iter = 0;
    while iter < max_iter {
        let (mut pg_max_new, mut pg_min_new) = (f64::NEG_INFINITY, f64::INFINITY);
        for i in 0..active {
            let j = rng.range(i, active);
            index.swap(i, j);
        }
        let mut s = 0;
        while s < active {
            let i = index[s];
            let yi = if positive[i] { 1.0 } else { -1.0 };
            let g = prob.dot(&w, i) * yi - 1.0 + alpha[i] * diag;
            let mut pg = 0.0;
            if alpha[i] == 0.0 {
                if g > pg_max_old {
                    // Shrink: at the bound and likely to stay there.
                    active -= 1;
                    index.swap(s, active);
                    continue;
                } else if g < 0.0 {
                    pg = g;
                }
            } else {
                // The L2 loss has no upper bound, so alpha is either 0 or free.
                pg = g;
            }
            pg_max_new = pg_max_new.max(pg);
            pg_min_new = pg_min_new.min(pg);
            if pg.abs() > 1.0e-12 {
                let alpha_old = alpha[i];
                alpha[i] = (alpha[i] - g / qd[i]).max(0.0);
                prob.axpy((alpha[i] - alpha_old) * yi, i, &mut w);
            }
            s += 1;
        }
        iter += 1;
        if pg_max_new - pg_min_new <= eps {
            if active == l {
                break;
            }
            // Converged on the shrunk set: check once more on all samples.
            active = l;
            pg_max_old = f64::INFINITY;
            continue;
        }
        pg_max_old = if pg_max_new <= 0.0 {
            f64::INFINITY
        } else {
            pg_max_new
        };
    }
    (w, iter)
}

/// `[N, D]` features as a contiguous f32 vector, checked.
fn features(x: &Tensor, what: &str) -> Result<(Vec<f32>, usize, usize)> {
    let (n, d) = match x.dims() {
        &[n, d] => (n, d),
        dims => candle_core::bail!("{what}: features should be [N, D], got shape {dims:?}"),
    };
    let v = x
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    if v.iter().any(|f| !f.is_finite()) {
        candle_core::bail!("{what}: features contain NaN or infinite values")
    }
    Ok((v, n, d))
}

impl LinearSvc {
    /// Fits one-vs-rest models on `x` `[N, D]` with labels in `0..num_classes`. Every class must have
    /// at least one training sample (scikit-learn would silently drop a missing class from its
    /// outputs).
    pub fn fit(
        x: &Tensor,
        labels: &[usize],
        num_classes: usize,
        cfg: &LinearSvcConfig,
    ) -> Result<Self> {
        let (data, n, d) = features(x, "LinearSVC fit")?;
        if labels.len() != n {
            candle_core::bail!(
                "LinearSVC fit: {n} feature rows but {} labels",
                labels.len()
            )
        }
        if num_classes < 2 {
            candle_core::bail!("LinearSVC fit: needs at least 2 classes, got {num_classes}")
        }
        let valid = cfg.c > 0.0 && cfg.c.is_finite() && cfg.tol > 0.0 && cfg.max_iter > 0;
        if !valid {
            candle_core::bail!(
                "LinearSVC fit: invalid C {} / tol {} / max_iter {}",
                cfg.c,
                cfg.tol,
                cfg.max_iter
            )
        }
        let mut counts = vec![0usize; num_classes];
        for (i, &y) in labels.iter().enumerate() {
            match counts.get_mut(y) {
                Some(c) => *c += 1,
                None => candle_core::bail!(
                    "LinearSVC fit: label {y} of sample {i} out of range for {num_classes} classes"
                ),
            }
        }
        if let Some(c) = counts.iter().position(|&c| c == 0) {
            candle_core::bail!("LinearSVC fit: class {c} has no training samples")
        }
        let prob = Problem {
            x: &data,
            d,
            bias: cfg.fit_intercept.then_some(cfg.intercept_scaling),
        };
        // Binary: one model, class 1 positive (liblinear on scikit-learn's sorted labels).
        let positives: Vec<usize> = if num_classes == 2 {
            vec![1]
        } else {
            (0..num_classes).collect()
        };
        let root = SeededRng::new(cfg.seed);
        let fits: Vec<(Vec<f64>, usize)> = positives
            .par_iter()
            .map(|&k| {
                let positive: Vec<bool> = labels.iter().map(|&y| y == k).collect();
                let mut rng = root.derive(k as u64);
                solve_l2loss_dual(&prob, &positive, cfg.c, cfg.tol, cfg.max_iter, &mut rng)
            })
            .collect();
        let mut coef = Vec::with_capacity(fits.len());
        let mut intercept = Vec::with_capacity(fits.len());
        let mut n_iter = Vec::with_capacity(fits.len());
        for (mut w, it) in fits {
            // scikit-learn: intercept_ = intercept_scaling * w[bias].
            let b = if cfg.fit_intercept {
                cfg.intercept_scaling * w.pop().unwrap_or(0.0)
            } else {
                0.0
            };
            coef.push(w);
            intercept.push(b);
            n_iter.push(it);
        }
        Ok(Self {
            num_classes,
            num_features: d,
            coef,
            intercept,
            n_iter,
            max_iter: cfg.max_iter,
        })
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// `coef_`: `[1, D]` for two classes, `[C, D]` otherwise (f64).
    pub fn coef(&self) -> Result<Tensor> {
        let flat: Vec<f64> = self.coef.iter().flatten().copied().collect();
        Tensor::from_vec(flat, (self.coef.len(), self.num_features), &Device::Cpu)
    }

    /// `intercept_`: `[1]` for two classes, `[C]` otherwise (f64).
    pub fn intercept(&self) -> Result<Tensor> {
        Tensor::new(self.intercept.as_slice(), &Device::Cpu)
    }

    /// Outer iterations per binary model (scikit-learn's `n_iter_` is their maximum).
    pub fn n_iter(&self) -> &[usize] {
        &self.n_iter
    }

    /// Whether every binary model stopped before `max_iter` (scikit-learn warns otherwise).
    pub fn converged(&self) -> bool {
        self.n_iter.iter().all(|&it| it < self.max_iter)
    }

    /// scikit-learn's `decision_function` as f64 rows: `[N, C]`, or `[N, 1]` for two classes.
    pub fn raw_decision(&self, x: &Tensor) -> Result<Vec<Vec<f64>>> {
        let (data, n, d) = features(x, "LinearSVC decision_function")?;
        if d != self.num_features {
            candle_core::bail!(
                "LinearSVC decision_function: features have {d} dimensions, the model {}",
                self.num_features
            )
        }
        let rows = (0..n)
            .map(|i| {
                let row = &data[i * d..(i + 1) * d];
                self.coef
                    .iter()
                    .zip(&self.intercept)
                    .map(|(w, b)| {
                        let s: f64 = w.iter().zip(row).map(|(wj, &xj)| wj * xj as f64).sum();
                        s + b
                    })
                    .collect()
            })
            .collect();
        Ok(rows)
    }

    /// Decision values `[N, num_classes]` (f32). With two classes scikit-learn returns one column
    /// `f` (positive = class 1); here it becomes the two columns `(-f, f)`, so that the argmax and the
    /// mean over a video's clips behave as for more classes.
    pub fn decision_function(&self, x: &Tensor) -> Result<Tensor> {
        let raw = self.raw_decision(x)?;
        let n = raw.len();
        let flat: Vec<f32> = raw
            .iter()
            .flat_map(|r| {
                if self.num_classes == 2 {
                    vec![-r[0] as f32, r[0] as f32]
                } else {
                    r.iter().map(|&v| v as f32).collect()
                }
            })
            .collect();
        Tensor::from_vec(flat, (n, self.num_classes), &Device::Cpu)
    }
}

/// How the SVM's C is chosen in a sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CSelection {
    /// XKD's protocol: the best test top-1 over the C grid is reported (selection on the test set).
    TestSet,
    /// Hold out `fraction` of each class's training videos, pick C by their video-level top-1, then
    /// refit on the whole training set and report the test set once.
    HeldOut { fraction: f64, seed: u64 },
}

impl CSelection {
    /// A description for reports.
    pub fn describe(&self) -> String {
        match self {
            CSelection::TestSet => "best test top-1 over C (paper protocol, selection on the test set)".into(),
            CSelection::HeldOut { fraction, seed } => format!(
                "best held-out top-1 over C ({:.0}% of each class's training videos, seed {seed}), refit on all training data",
                100.0 * fraction
            ),
        }
    }
}

/// Clip (or sample) features with their labels and the video each belongs to.
#[derive(Debug, Clone, Copy)]
pub struct SvmData<'a> {
    pub features: &'a Tensor,
    pub labels: &'a [usize],
    pub videos: &'a [usize],
}

impl SvmData<'_> {
    fn check(&self, what: &str) -> Result<usize> {
        let n = self.features.dims().first().copied().unwrap_or(0);
        if self.labels.len() != n || self.videos.len() != n {
            candle_core::bail!(
                "{what}: {n} feature rows, {} labels and {} video ids should all be equal",
                self.labels.len(),
                self.videos.len()
            )
        }
        Ok(n)
    }
}

/// The metrics obtained with one C.
#[derive(Debug, Clone, PartialEq)]
pub struct CResult {
    pub c: f64,
    /// Video-level metrics on the selection set (the test set for [`CSelection::TestSet`]).
    pub metrics: super::video_level::ClassificationMetrics,
    pub converged: bool,
}

/// The outcome of a C sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SvmSweep {
    pub selection: CSelection,
    pub per_c: Vec<CResult>,
    pub best_c: f64,
    /// Video-level test metrics of the model with `best_c`.
    pub test: super::video_level::ClassificationMetrics,
}

/// Video-level metrics of `svm` on `data`: decision values averaged raw over each video's rows.
pub fn svm_video_metrics(
    svm: &LinearSvc,
    data: &SvmData,
) -> Result<super::video_level::ClassificationMetrics> {
    data.check("SVM evaluation")?;
    let dec = svm.decision_function(data.features)?.to_vec2::<f32>()?;
    let mut scores = super::video_level::VideoScores::new(svm.num_classes());
    for ((row, &label), &video) in dec.iter().zip(data.labels).zip(data.videos) {
        scores.add_scores(video, label, row)?;
    }
    scores.metrics()
}

fn select_rows(data: &SvmData, rows: &[usize]) -> Result<(Tensor, Vec<usize>, Vec<usize>)> {
    let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    let idx = Tensor::new(idx.as_slice(), data.features.device())?;
    Ok((
        data.features.index_select(&idx, 0)?,
        rows.iter().map(|&r| data.labels[r]).collect(),
        rows.iter().map(|&r| data.videos[r]).collect(),
    ))
}

/// Splits the training rows by video into (fit, held-out), stratified by class: each class keeps at
/// least one video for fitting.
fn held_out_split(train: &SvmData, fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        candle_core::bail!("SVM held-out selection: fraction {fraction} should be in (0, 1)")
    }
    let mut by_class: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    let mut video_label: std::collections::BTreeMap<usize, usize> = Default::default();
    for (&v, &y) in train.videos.iter().zip(train.labels) {
        if let Some(&prev) = video_label.get(&v) {
            if prev != y {
                candle_core::bail!("SVM held-out selection: video {v} has labels {prev} and {y}")
            }
        } else {
            video_label.insert(v, y);
            by_class.entry(y).or_default().push(v);
        }
    }
    let mut rng = SeededRng::new(seed);
    let mut held = std::collections::BTreeSet::new();
    for videos in by_class.values() {
        let take = ((videos.len() as f64 * fraction).round() as usize).min(videos.len() - 1);
        for p in rng.permutation(videos.len()).into_iter().take(take) {
            held.insert(videos[p]);
        }
    }
    if held.is_empty() {
        candle_core::bail!("SVM held-out selection: no video held out (too few training videos for fraction {fraction})")
    }
    Ok((0..train.videos.len()).partition(|&r| !held.contains(&train.videos[r])))
}

/// Fits one SVM per C in `cs` (with `cfg` for everything else) and picks C as `selection` says.
pub fn svm_sweep(
    train: &SvmData,
    test: &SvmData,
    num_classes: usize,
    cs: &[f64],
    cfg: &LinearSvcConfig,
    selection: CSelection,
) -> Result<SvmSweep> {
    train.check("SVM training data")?;
    test.check("SVM test data")?;
    if cs.is_empty() {
        candle_core::bail!("SVM sweep: empty list of C values")
    }
    let fit_with = |c: f64, x: &Tensor, y: &[usize]| {
        LinearSvc::fit(x, y, num_classes, &LinearSvcConfig { c, ..*cfg })
    };
    let split = match selection {
        CSelection::TestSet => None,
        CSelection::HeldOut { fraction, seed } => Some(held_out_split(train, fraction, seed)?),
    };
    let mut per_c = Vec::with_capacity(cs.len());
    let mut best: Option<(usize, super::video_level::ClassificationMetrics)> = None;
    for (i, &c) in cs.iter().enumerate() {
        let (svm, metrics) = match &split {
            None => {
                let svm = fit_with(c, train.features, train.labels)?;
                let m = svm_video_metrics(&svm, test)?;
                (svm, m)
            }
            Some((fit_rows, held_rows)) => {
                let (fx, fy, _) = select_rows(train, fit_rows)?;
                let (hx, hy, hv) = select_rows(train, held_rows)?;
                let svm = fit_with(c, &fx, &fy)?;
                let held = SvmData {
                    features: &hx,
                    labels: &hy,
                    videos: &hv,
                };
                let m = svm_video_metrics(&svm, &held)?;
                (svm, m)
            }
        };
        // Strictly greater: the first C of the grid wins ties.
        if best.as_ref().is_none_or(|(_, m)| metrics.top1 > m.top1) {
            best = Some((i, metrics.clone()));
        }
        per_c.push(CResult {
            c,
            metrics,
            converged: svm.converged(),
        });
    }
    let Some((best_i, best_metrics)) = best else {
        candle_core::bail!("SVM sweep: no C evaluated")
    };
    let best_c = cs[best_i];
    let test_metrics = match split {
        None => best_metrics,
        Some(_) => svm_video_metrics(&fit_with(best_c, train.features, train.labels)?, test)?,
    };
    Ok(SvmSweep {
        selection,
        per_c,
        best_c,
        test: test_metrics,
    })
}
