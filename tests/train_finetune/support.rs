//! Helpers of tests/train_finetune.rs: in-memory synthetic clips as `TrainData`, a test-only
//! mix function, tiny starting models and the run-and-compare harness of the resume tests.
#![allow(dead_code)]

use avkd::data::synth::SyntheticAv;
use avkd::jobs::finetune::config::{FinetuneConfig, ScheduleConfig};
use avkd::jobs::finetune::model::{FinetuneModel, FinetuneModelOptions};
use avkd::jobs::finetune::training::{
    finetune, Batch, EvalOutcome, FinetuneSummary, MixFn, RunOptions, TrainData,
};
use avkd::models::ccl::r2plus1d::{R2Plus1d, R2Plus1dConfig};
use avkd::models::config::ModelConfig;
use avkd::models::xkd::net::XkdConfig;
use avkd::models::xkd::VideoViT;
use avkd::nn::param_store::ParamStore;
use avkd::nn::rng::SeededRng;
use avkd::objectives::smoothing::one_hot_smoothed;
use avkd::train::train_state::TrainerState;
use candle_core::{DType, Device, Result, Tensor};
use rand::SeedableRng;
use rand_distr::Distribution;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const FRAMES: usize = 8;
pub const SIZE: usize = 32;

/// In-memory clips of the synthetic moving-square classes (the motion direction is the class).
pub struct SynthClips {
    pub clips: Vec<Vec<f32>>,
    pub labels: Vec<usize>,
    pub batch: usize,
    pub seed: u64,
}

impl SynthClips {
    pub fn new(n: usize, classes: usize, batch: usize, seed: u64) -> Self {
        let gen = SyntheticAv {
            num_classes: classes,
            frames: FRAMES,
            size: SIZE,
            mel_bins: 8,
            spec_frames: 16,
        };
        let mut rng = SeededRng::new(seed);
        let labels: Vec<usize> = (0..n).map(|i| i % classes).collect();
        let clips = labels.iter().map(|&c| gen.sample(c, &mut rng).0).collect();
        Self {
            clips,
            labels,
            batch,
            seed,
        }
    }

    pub fn tensor(&self, idx: &[usize]) -> Result<Tensor> {
        let data: Vec<f32> = idx.iter().flat_map(|&i| self.clips[i].clone()).collect();
        Tensor::from_vec(data, (idx.len(), 3, FRAMES, SIZE, SIZE), &Device::Cpu)
    }
}

impl TrainData for SynthClips {
    type Batch = Batch;

    fn num_batches(&self) -> usize {
        self.clips.len().div_ceil(self.batch)
    }

    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<Batch>> + '_>> {
        let order = SeededRng::new(self.seed)
            .derive(epoch as u64)
            .permutation(self.clips.len());
        let chunks: Vec<Vec<usize>> = order.chunks(self.batch).map(|c| c.to_vec()).collect();
        Ok(Box::new(chunks.into_iter().skip(start).map(move |idx| {
            Ok(Batch {
                clips: self.tensor(&idx)?,
                labels: idx.iter().map(|&i| self.labels[i]).collect(),
            })
        })))
    }
}

/// TEST-ONLY mix function: a convex combination of the batch with its reverse, λ ~ Beta(α, α),
/// smoothed one-hot targets mixed the same way (timm's mixup in "batch" mode without cutmix).
pub fn test_mixup(
    classes: usize,
) -> impl Fn(&Tensor, &[usize], &mut SeededRng) -> Result<(Tensor, Tensor)> {
    move |x, labels, rng| {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(rng.next_u64());
        let beta =
            rand_distr::Beta::new(0.8, 0.8).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let lam: f64 = beta.sample(&mut r);
        let b = labels.len();
        let rev: Vec<u32> = (0..b as u32).rev().collect();
        let rev_t = Tensor::new(rev.as_slice(), x.device())?;
        let flipped = x.index_select(&rev_t, 0)?;
        let mixed = ((x * lam)? + (flipped * (1.0 - lam))?)?;
        let flipped_labels: Vec<usize> = labels.iter().rev().copied().collect();
        let y1 = one_hot_smoothed(labels, classes, 0.1, x.device())?;
        let y2 = one_hot_smoothed(&flipped_labels, classes, 0.1, x.device())?;
        Ok((mixed, ((y1 * lam)? + (y2 * (1.0 - lam))?)?))
    }
}

/// Top-1 of the model in evaluation mode on held-out clips.
pub fn eval_top1(model: &FinetuneModel, data: &SynthClips) -> Result<EvalOutcome> {
    let idx: Vec<usize> = (0..data.clips.len()).collect();
    let logits = model.logits_t(&data.tensor(&idx)?, None)?;
    let pred = logits.argmax(1)?.to_vec1::<u32>()?;
    let hits = pred
        .iter()
        .zip(&data.labels)
        .filter(|(p, y)| **p as usize == **y)
        .count();
    let top1 = hits as f64 / data.labels.len() as f64;
    Ok(EvalOutcome {
        top1,
        json: serde_json::json!({"clips": data.labels.len()}),
    })
}

/// A "pretrained" XKD video student: a freshly initialised small encoder's tensors.
pub fn vit_start() -> Result<(ModelConfig, HashMap<String, Tensor>)> {
    let cfg = XkdConfig::tiny_synthetic().video;
    let src = ParamStore::new(7, DType::F32, &Device::Cpu);
    VideoViT::new(&cfg, src.builder())?;
    Ok((ModelConfig::XkdVideo(cfg), src.tensors()?))
}

pub fn r21d_config(classes: usize) -> R2Plus1dConfig {
    R2Plus1dConfig {
        depth: 18,
        widths: [4, 8, 8, 8],
        in_channels: 3,
        num_classes: classes,
    }
}

/// A CCL student with a different class count, so the classifier is replaced.
pub fn r21d_start() -> Result<(ModelConfig, HashMap<String, Tensor>)> {
    let cfg = r21d_config(7);
    let src = ParamStore::new(8, DType::F32, &Device::Cpu);
    R2Plus1d::new(&cfg, src.builder())?;
    Ok((ModelConfig::CclR2Plus1d(cfg), src.tensors()?))
}

pub fn build(
    start: &(ModelConfig, HashMap<String, Tensor>),
    cfg: &FinetuneConfig,
    classes: usize,
) -> Result<(FinetuneModel, ParamStore)> {
    let store = ParamStore::new(cfg.seed, DType::F32, &Device::Cpu);
    let opts = FinetuneModelOptions::from_config(cfg, classes, None);
    let model = FinetuneModel::from_config(&start.0, start.1.clone(), &opts, &store)?;
    Ok((model, store))
}

pub fn vit_config() -> FinetuneConfig {
    let mut cfg = FinetuneConfig::xkd_ucf101();
    cfg.epochs = 3;
    cfg.batch_size = 4;
    cfg.accum_steps = 2;
    cfg.base_lr = 1e-3;
    cfg.warmup_epochs = 1;
    cfg.layer_decay = 0.75;
    cfg.drop_path = 0.2;
    cfg.head_dropout = 0.5;
    cfg.clip_grad = Some(1.0);
    cfg.eval_every = 1;
    cfg.seed = 3;
    cfg
}

pub fn r21d_config_ft() -> FinetuneConfig {
    let mut cfg = FinetuneConfig::ccl_ucf51();
    cfg.epochs = 3;
    cfg.batch_size = 4;
    cfg.accum_steps = 2;
    cfg.base_lr = 0.05;
    cfg.label_smoothing = 0.1;
    cfg.schedule = ScheduleConfig::Multistep {
        milestones: vec![1, 2],
        gamma: 0.5,
    };
    cfg
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("avkd-ft-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub struct Setup {
    pub start: (ModelConfig, HashMap<String, Tensor>),
    pub cfg: FinetuneConfig,
    pub classes: usize,
    pub mixup: bool,
}

/// Runs `s` into `out` (resuming from `out/last` when `resume`), with fresh data and a freshly
/// built model, as a new process would.
pub fn run(
    s: &Setup,
    out: &Path,
    resume: bool,
    opts: RunOptions,
) -> Result<(FinetuneSummary, ParamStore)> {
    let (model, store) = build(&s.start, &s.cfg, s.classes)?;
    let mut train = SynthClips::new(20, s.classes, s.cfg.batch_size, 11);
    let held_out = SynthClips::new(12, s.classes, 12, 12);
    let mix_fn = test_mixup(s.classes);
    let mix: Option<MixFn> = if s.mixup { Some(&mix_fn) } else { None };
    let mut eval = |m: &FinetuneModel, _epoch: usize| eval_top1(m, &held_out);
    let opts = RunOptions {
        out_dir: out.to_path_buf(),
        resume_from: resume.then(|| out.join("last")),
        ..opts
    };
    let summary = finetune(&model, &store, &s.cfg, &mut train, mix, &mut eval, &opts)?;
    Ok((summary, store))
}

pub fn metrics_without_timing(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("samples_per_s");
            v
        })
        .collect()
}

pub fn assert_same_tensors(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: tensor count");
    for (k, x) in a {
        let y = &b[k];
        let xv = x
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let yv = y
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let same = xv.iter().zip(&yv).all(|(p, q)| p.to_bits() == q.to_bits());
        assert!(same, "{what}: `{k}` differs");
    }
}

pub fn load(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

pub fn trainer_state(dir: &Path) -> TrainerState {
    serde_json::from_str(&std::fs::read_to_string(dir.join("trainer_state.json")).unwrap()).unwrap()
}

/// Uninterrupted vs interrupted (`stop`) then resumed: weights, BN statistics, optimizer moments,
/// trainer state and every metric record equal bit for bit.
pub fn check_resume(s: &Setup, name: &str, stop: RunOptions, expect_mid_epoch: bool) -> Result<()> {
    let full = temp_dir(&format!("{name}-full"));
    let cut = temp_dir(&format!("{name}-cut"));
    let (a, store_a) = run(s, &full, false, RunOptions::default())?;
    let (_, _) = run(s, &cut, false, stop)?;
    let st = trainer_state(&cut.join("last"));
    assert_eq!(
        st.batch_in_epoch != 0,
        expect_mid_epoch,
        "{name}: checkpoint position {st:?}"
    );
    let (b, store_b) = run(s, &cut, true, RunOptions::default())?;
    assert_eq!(a.steps, b.steps);
    assert_eq!(a.final_loss, b.final_loss);
    assert_eq!((a.best_top1, a.best_epoch), (b.best_top1, b.best_epoch));
    assert_same_tensors(&store_a.tensors()?, &store_b.tensors()?, "weights");
    for f in ["model.safetensors", "optimizer.safetensors"] {
        assert_same_tensors(
            &load(&full.join("last").join(f)),
            &load(&cut.join("last").join(f)),
            f,
        );
    }
    assert_eq!(
        trainer_state(&full.join("last")),
        trainer_state(&cut.join("last"))
    );
    let (ma, mb) = (
        metrics_without_timing(&full.join("metrics.jsonl")),
        metrics_without_timing(&cut.join("metrics.jsonl")),
    );
    assert_eq!(ma.len(), s.cfg.epochs * 3 + s.cfg.epochs);
    assert_eq!(ma, mb, "{name}: metrics differ");
    std::fs::remove_dir_all(&full).ok();
    std::fs::remove_dir_all(&cut).ok();
    Ok(())
}
