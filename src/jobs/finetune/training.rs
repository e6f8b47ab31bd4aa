//! Supervised fine-tuning (XKD's `video_finetune.py`, CCL's supervised stage) as a [`Job`] on the
//! training engine ([`crate::train::engine`]), which owns the loop, accumulation, clipping, checkpoints and
//! exact resume.
//!
//! One micro-batch: a training-mode forward, then the soft-target cross-entropy after the mix
//! function (mixup/cutmix), or the label-smoothed cross-entropy without one. The optimizer is AdamW
//! (layer-wise lr groups) or SGD, with a per-step warmup + cosine or a per-epoch multi-step lr.

use super::config::FinetuneConfig;
use super::model::FinetuneModel;
use super::optim::{build_optimizer, lr_schedule};
pub use super::optim::{group_learning_rates, scheduled_lr, steps_per_epoch};
use crate::checkpoint::export::{write_folder_descriptions, write_safetensors};
use crate::checkpoint::model_card::CardSource;
use crate::nn::param_store::ParamStore;
use crate::nn::rng::SeededRng;
use crate::objectives::smoothing::{label_smoothing_ce, soft_target_ce};
use crate::train::clip::Clipping;
use crate::train::engine::{Engine, LoopSettings, RunSummary};
pub use crate::train::job::{EvalOutcome, TrainData};
use crate::train::job::{Gradients, Job, StepContext, StepOutput};
use crate::train::optimizer::OptimizerSlot;
use crate::train::train_state::{restore_store, TrainerState, MODEL_FILE};
use candle_core::{bail, DType, Result, Tensor, Var, D};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One training batch: clips [B, 3, T, H, W] and their labels.
pub struct Batch {
    pub clips: Tensor,
    pub labels: Vec<usize>,
}

/// Mixup/cutmix: returns (mixed clips, soft targets [B, classes]); the CLI plugs in timm-style
/// Mixup from `data::transforms::mixup`.
pub type MixFn<'a> = &'a dyn Fn(&Tensor, &[usize], &mut SeededRng) -> Result<(Tensor, Tensor)>;

/// The evaluation callback, called with the model and the number (counted from 1) of the epoch
/// just finished.
pub type EvalFn<'a> = &'a mut dyn FnMut(&FinetuneModel, usize) -> Result<EvalOutcome>;

/// Where a fine-tuning run writes, how far it goes, and what its checkpoints say of the model.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `last/`, `best/` and `metrics.jsonl` go here.
    pub out_dir: PathBuf,
    /// A checkpoint folder to continue from (usually `out_dir/last`).
    pub resume_from: Option<PathBuf>,
    /// Stop once this many epochs (counted from the start of the run) are done and saved.
    pub stop_after_epochs: Option<usize>,
    /// Stop right after this optimizer step *without* saving, as a crash would (tests).
    pub stop_after_steps: Option<u64>,
    /// Class names for the checkpoints' `config.json`.
    pub id2label: Option<BTreeMap<usize, String>>,
    /// Training crop size, for the checkpoints' `preprocessor_config.json`.
    pub image_size: Option<usize>,
    /// Draw a progress bar (only ever on a terminal).
    pub progress: bool,
}

impl RunOptions {
    fn engine_options(&self) -> crate::train::engine::RunOptions {
        crate::train::engine::RunOptions {
            out_dir: self.out_dir.clone(),
            resume_from: self.resume_from.clone(),
            stop_after_epochs: self.stop_after_epochs,
            stop_after_steps: self.stop_after_steps,
            progress: self.progress,
        }
    }
}

/// What a fine-tuning run reports.
pub type FinetuneSummary = RunSummary;

/// Fine-tuning as the engine sees it.
struct Finetuning<'a> {
    model: &'a FinetuneModel,
    store: &'a ParamStore,
    cfg: &'a FinetuneConfig,
    mix: Option<MixFn<'a>>,
    eval: EvalFn<'a>,
    id2label: Option<BTreeMap<usize, String>>,
    image_size: Option<usize>,
}

/// Fraction of rows whose arg-max is the label, as a device scalar.
fn accuracy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    logits
        .argmax(D::Minus1)?
        .eq(labels)?
        .to_dtype(DType::F32)?
        .mean_all()
}

impl Job for Finetuning<'_> {
    type Batch = Batch;

    fn name(&self) -> &str {
        "fine-tuning"
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(self.cfg).unwrap_or_default()
    }

    fn check_resumable(&self, saved: &serde_json::Value) -> Result<()> {
        let saved: FinetuneConfig = serde_json::from_value(saved.clone())
            .map_err(|e| candle_core::Error::Msg(format!("not a fine-tuning config: {e}")))?;
        self.cfg.check_resumable_from(&saved)
    }

    fn training_step(
        &mut self,
        batch: Batch,
        _ctx: &StepContext,
        rng: &mut SeededRng,
    ) -> Result<StepOutput> {
        let b = batch.labels.len();
        if batch.clips.dim(0)? != b {
            bail!("a batch has {} clips but {b} labels", batch.clips.dim(0)?)
        }
        let dev = self.store.device();
        let clips = batch.clips.to_device(dev)?;
        let mut logged = Vec::with_capacity(2);
        let loss = match self.mix {
            Some(mix) => {
                let (mixed, target) = mix(&clips, &batch.labels, rng)?;
                let logits = self.model.logits_t(&mixed, Some(rng))?;
                soft_target_ce(&logits, &target.to_device(dev)?)?
            }
            None => {
                let logits = self.model.logits_t(&clips, Some(rng))?;
                let y: Vec<u32> = batch.labels.iter().map(|&l| l as u32).collect();
                let y = Tensor::from_vec(y, b, dev)?;
                logged.push(("accuracy", accuracy(&logits, &y)?));
                label_smoothing_ce(&logits, &y, self.cfg.label_smoothing)?
            }
        };
        logged.insert(0, ("loss", loss.clone()));
        Ok(StepOutput {
            gradients: Gradients::Loss(loss),
            logged,
            samples: b,
        })
    }

    fn evaluate(&mut self, epoch_number: usize) -> Result<Option<EvalOutcome>> {
        (self.eval)(self.model, epoch_number).map(Some)
    }

    fn save(&self, dir: &Path, state: &TrainerState) -> Result<()> {
        let tensors = self.store.tensors()?;
        let config = self.model.config(self.id2label.clone());
        let meta = BTreeMap::from([
            (
                "model_type".to_string(),
                config.model.model_type().to_string(),
            ),
            ("source_file".to_string(), "avkd fine-tuning".to_string()),
            ("epoch".to_string(), state.epoch.to_string()),
            ("global_step".to_string(), state.global_step.to_string()),
        ]);
        write_safetensors(&dir.join(MODEL_FILE), &tensors, &meta)?;
        let source = CardSource {
            file: format!(
                "avkd fine-tuning, epoch {} step {}",
                state.epoch, state.global_step
            ),
            sha256: String::new(),
            parameters: tensors.values().map(|t| t.elem_count()).sum(),
            tensors: tensors.len(),
            initialised: Vec::new(),
        };
        write_folder_descriptions(
            dir,
            &config,
            &self.model.preprocessor(self.image_size),
            &source,
        )
    }

    fn restore(&mut self, dir: &Path) -> Result<()> {
        restore_store(self.store, dir)
    }
}

/// Trains `model` (built in `store`) on `data` as `cfg` says, evaluating with `eval`; see the module
/// documentation. Writes `last/`, `best/` and `metrics.jsonl` under `opts.out_dir`.
pub fn finetune(
    model: &FinetuneModel,
    store: &ParamStore,
    cfg: &FinetuneConfig,
    data: &mut dyn TrainData<Batch = Batch>,
    mix: Option<MixFn>,
    eval: EvalFn,
    opts: &RunOptions,
) -> Result<FinetuneSummary> {
    cfg.validate()?;
    if cfg.mixup.is_some() != mix.is_some() {
        bail!(
            "the config {} a [mixup] section but {} mix function was given",
            if cfg.mixup.is_some() { "has" } else { "has no" },
            if mix.is_some() { "a" } else { "no" }
        )
    }
    let groups = model.param_groups(store, cfg)?;
    let vars: Vec<Var> = groups
        .iter()
        .flat_map(|g| g.vars.iter().map(|(_, v)| v.clone()))
        .collect();
    let spe = steps_per_epoch(cfg, data.num_batches());
    let slot = OptimizerSlot::new(
        "model",
        build_optimizer(cfg, groups)?,
        lr_schedule(cfg, spe),
    );
    let clipping = match cfg.clip_grad {
        Some(max_norm) => Clipping::GlobalNorm { max_norm, vars },
        None => Clipping::None,
    };
    let settings = LoopSettings {
        epochs: cfg.epochs,
        accum_steps: cfg.accum_steps,
        eval_every: cfg.eval_every,
        save_every_steps: cfg.save_every_steps,
        log_every: cfg.log_every,
        seed: cfg.seed,
    };
    let mut job = Finetuning {
        model,
        store,
        cfg,
        mix,
        eval,
        id2label: opts.id2label.clone(),
        image_size: opts.image_size,
    };
    Engine::new(&mut job, vec![slot], clipping, settings)?.run(data, &opts.engine_options())
}
