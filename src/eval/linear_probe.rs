//! Linear evaluation with a trained head on frozen features (XKD's Kinetics-400 "linear" protocol,
//! xkd.md §5.3): `engine.utils.Classifier` with defaults, i.e. one Linear layer with the official
//! orthogonal init and zero bias, cross-entropy, AdamW (or SGD) with a per-iteration warmup + cosine
//! learning rate, then video-level accuracy with the softmax averaged over each video's views.
//!
//! Features are used as given by default (XKD neither normalises nor standardises them); optional
//! standardisation (statistics of the training features, population std) or L2 normalisation apply
//! to train and test alike. Training is deterministic for a seed: the head init and the per-epoch
//! shuffles come from [`SeededRng`] streams.

use super::video_level::{ClassificationMetrics, VideoScores};
use crate::nn::init::orthogonal;
use crate::nn::linear::Linear;
use crate::nn::param_store::ParamStore;
use crate::nn::rng::SeededRng;
use crate::train::optim::{AdamW, AdamWConfig, ParamGroup};
use crate::train::schedule::WarmupCosine;
use crate::train::sgd::{Sgd, SgdConfig};
use candle_core::backprop::GradStore;
use candle_core::{DType, Module, Result, Tensor, D};
use candle_nn::Init;

/// The optimiser of the head.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProbeOptimizer {
    /// `torch.optim.AdamW` with betas (0.9, 0.999), eps 1e-8 (XKD).
    AdamW,
    /// `torch.optim.SGD` with this momentum, no dampening, no Nesterov.
    Sgd { momentum: f64 },
}

/// A transformation applied to every feature vector before the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureNorm {
    /// Features as they are (XKD).
    None,
    /// `(x - mean) / std` per dimension with the training set's mean and population std (a constant
    /// dimension is left unscaled), as `sklearn.preprocessing.StandardScaler`.
    Standardize,
    /// `x / max(||x||_2, 1e-12)`, as `F.normalize`.
    L2,
}

/// Hyper-parameters of linear-probe training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearProbeConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate (after warmup).
    pub lr: f64,
    /// The cosine decays towards this value.
    pub final_lr: f64,
    /// Linear warmup from 0, in epochs (applied per iteration).
    pub warmup_epochs: usize,
    /// Decoupled (AdamW) or L2 (SGD) weight decay on the weight matrix; the bias is not decayed
    /// (XKD's rule: no decay for 1-D parameters).
    pub weight_decay: f64,
    pub optimizer: ProbeOptimizer,
    pub feature_norm: FeatureNorm,
    pub seed: u64,
}

impl Default for LinearProbeConfig {
    /// XKD's Kinetics-400 linear setting (AdamW, lr 0.01, 10 warmup epochs, cosine to 0, no weight
    /// decay, 100 epochs) with the effective batch of 1024.
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 1024,
            lr: 0.01,
            final_lr: 0.0,
            warmup_epochs: 10,
            weight_decay: 0.0,
            optimizer: ProbeOptimizer::AdamW,
            feature_norm: FeatureNorm::None,
            seed: 0,
        }
    }
}

/// One optimisation step, reported to the training callback (e.g. for `metrics.jsonl`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeStep {
    /// 0-based iteration over all epochs.
    pub step: usize,
    /// 0-based epoch.
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
}

enum Optimizer {
    AdamW(AdamW),
    Sgd(Sgd),
}

impl Optimizer {
    fn step(&mut self, lr: f64, grads: &GradStore) -> Result<()> {
        match self {
            Optimizer::AdamW(o) => {
                o.set_learning_rate(lr);
                o.step(grads)
            }
            Optimizer::Sgd(o) => {
                o.set_learning_rate(lr);
                o.step(grads)
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Transform {
    None,
    Standardize { mean: Tensor, std: Tensor },
    L2,
}

impl Transform {
    fn fit(norm: FeatureNorm, x: &Tensor) -> Result<Self> {
        Ok(match norm {
            FeatureNorm::None => Transform::None,
            FeatureNorm::L2 => Transform::L2,
            FeatureNorm::Standardize => {
                let mean = x.mean_keepdim(0)?;
                let var = x.broadcast_sub(&mean)?.sqr()?.mean_keepdim(0)?;
                let std = var.sqrt()?;
                // StandardScaler leaves constant dimensions unscaled.
                let ones = std.ones_like()?;
                let std = std.eq(0.0)?.where_cond(&ones, &std)?;
                Transform::Standardize { mean, std }
            }
        })
    }

    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Transform::None => Ok(x.clone()),
            Transform::Standardize { mean, std } => x.broadcast_sub(mean)?.broadcast_div(std),
            Transform::L2 => {
                let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.maximum(1e-12)?;
                x.broadcast_div(&norm)
            }
        }
    }
}

/// A linear head trained on frozen features.
#[derive(Debug, Clone)]
pub struct LinearProbe {
    head: Linear,
    transform: Transform,
    num_classes: usize,
}

/// Checks `[N, D]` features and labels, returning the features as contiguous f32.
fn check_inputs(x: &Tensor, labels: &[usize], num_classes: usize, what: &str) -> Result<Tensor> {
    let n = match x.dims() {
        &[n, d] if n > 0 && d > 0 => n,
        dims => candle_core::bail!("{what}: features should be a non-empty [N, D], got {dims:?}"),
    };
    if labels.len() != n {
        candle_core::bail!("{what}: {n} feature rows but {} labels", labels.len())
    }
    if let Some((i, &y)) = labels.iter().enumerate().find(|(_, &y)| y >= num_classes) {
        candle_core::bail!("{what}: label {y} of sample {i} out of range for {num_classes} classes")
    }
    x.to_dtype(DType::F32)?.contiguous()
}

impl LinearProbe {
    /// Trains a head on `features` `[N, D]` with `labels` in `0..num_classes`.
    pub fn train(
        features: &Tensor,
        labels: &[usize],
        num_classes: usize,
        cfg: &LinearProbeConfig,
    ) -> Result<Self> {
        Self::train_with_callback(features, labels, num_classes, cfg, &mut |_| {})
    }

    /// [`LinearProbe::train`], calling `on_step` after every optimisation step.
    pub fn train_with_callback(
        features: &Tensor,
        labels: &[usize],
        num_classes: usize,
        cfg: &LinearProbeConfig,
        on_step: &mut dyn FnMut(&ProbeStep),
    ) -> Result<Self> {
        if num_classes == 0 || cfg.epochs == 0 || cfg.batch_size == 0 {
            candle_core::bail!(
                "linear probe: num_classes {num_classes}, epochs {} and batch_size {} must be positive",
                cfg.epochs,
                cfg.batch_size
            )
        }
        let x = check_inputs(features, labels, num_classes, "linear probe training")?;
        let (n, d) = x.dims2()?;
        let dev = x.device().clone();
        let transform = Transform::fit(cfg.feature_norm, &x)?;
        let x = transform.apply(&x)?;
        let targets: Vec<u32> = labels.iter().map(|&y| y as u32).collect();
        let targets = Tensor::new(targets.as_slice(), &dev)?;

        let store = ParamStore::new(cfg.seed, DType::F32, &dev);
        let head = Linear::new(
            d,
            num_classes,
            true,
            orthogonal(1.0),
            Init::Const(0.),
            store.builder().pp("head"),
        )?;
        let (decay, no_decay): (Vec<_>, Vec<_>) = store
            .named_vars()
            .into_iter()
            .partition(|(_, v)| v.rank() > 1);
        let groups = vec![
            ParamGroup::new("decay", decay, cfg.weight_decay),
            ParamGroup::new("no_decay", no_decay, 0.0),
        ];
        let mut opt = match cfg.optimizer {
            ProbeOptimizer::AdamW => Optimizer::AdamW(AdamW::new(
                groups,
                AdamWConfig {
                    lr: cfg.lr,
                    ..AdamWConfig::default()
                },
            )?),
            ProbeOptimizer::Sgd { momentum } => Optimizer::Sgd(Sgd::new(
                groups,
                SgdConfig {
                    lr: cfg.lr,
                    momentum,
                    ..SgdConfig::default()
                },
            )?),
        };
        let iters_per_epoch = n.div_ceil(cfg.batch_size);
        let schedule = WarmupCosine::new(
            cfg.lr,
            cfg.final_lr,
            cfg.epochs,
            iters_per_epoch,
            cfg.warmup_epochs,
            0.0,
        );
        // A stream of its own, so the shuffles do not depend on how many numbers the init drew.
        let mut shuffle = SeededRng::new(cfg.seed).derive(0x5348_5546);
        let mut step = 0;
        for epoch in 0..cfg.epochs {
            let order: Vec<u32> = shuffle
                .permutation(n)
                .into_iter()
                .map(|i| i as u32)
                .collect();
            // Every sample once per epoch; the last batch may be smaller (no drop_last).
            for batch in order.chunks(cfg.batch_size) {
                let idx = Tensor::new(batch, &dev)?;
                let logits = head.forward(&x.index_select(&idx, 0)?)?;
                let loss =
                    candle_nn::loss::cross_entropy(&logits, &targets.index_select(&idx, 0)?)?;
                let grads = loss.backward()?;
                let lr = schedule.value(step);
                opt.step(lr, &grads)?;
                let loss = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                if !loss.is_finite() {
                    candle_core::bail!(
                        "linear probe: loss became {loss} at step {step} (epoch {epoch})"
                    )
                }
                on_step(&ProbeStep {
                    step,
                    epoch,
                    loss,
                    lr,
                });
                step += 1;
            }
        }
        Ok(Self {
            head,
            transform,
            num_classes,
        })
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The trained head (weight `[C, D]`, bias `[C]`), acting on transformed features.
    pub fn head(&self) -> &Linear {
        &self.head
    }

    /// Logits `[N, C]` of features `[N, D]` (the training-time feature transform is applied).
    pub fn logits(&self, features: &Tensor) -> Result<Tensor> {
        let x = features.to_dtype(DType::F32)?;
        self.head.forward(&self.transform.apply(&x)?)
    }

    /// Video-level metrics on test features: row `i` is one view of video `videos[i]` with label
    /// `labels[i]`; the softmax is averaged over each video's views.
    pub fn evaluate(
        &self,
        features: &Tensor,
        labels: &[usize],
        videos: &[usize],
    ) -> Result<ClassificationMetrics> {
        let x = check_inputs(
            features,
            labels,
            self.num_classes,
            "linear probe evaluation",
        )?;
        if videos.len() != labels.len() {
            candle_core::bail!(
                "linear probe evaluation: {} labels but {} video ids",
                labels.len(),
                videos.len()
            )
        }
        let logits = self.logits(&x)?;
        let mut scores = VideoScores::new(self.num_classes);
        for (i, (&label, &video)) in labels.iter().zip(videos).enumerate() {
            scores.add_logits(video, label, &logits.narrow(0, i, 1)?)?;
        }
        scores.metrics()
    }
}
