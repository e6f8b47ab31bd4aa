//! The supervised fine-tuning loop (XKD's `video_finetune.py`, CCL's supervised stage) with exact
//! resume.
//!
//! One optimizer step: the scheduled lr (× each group's `lr_scale`), then for each of up to
//! `accum_steps` micro-batches a training-mode forward, the loss (soft-target CE after the mix
//! function, label-smoothed CE otherwise) divided by the number of micro-batches in the step, and a
//! backward whose gradients are summed; then optional global-norm clipping and the AdamW/SGD step.
//! The last step of an epoch may hold fewer micro-batches (its loss is divided by that number).
//!
//! Exact resume rests on three things: every random draw of step `s` comes from
//! `SeededRng::new(seed).derive(s)` (micro-batch `k` from `.derive(k)` of that), never from a stream
//! carried between steps; the data order depends only on (seed, epoch) through [`TrainBatches`];
//! and checkpoints hold the weights (with BatchNorm running statistics), the optimizer moments and
//! the (epoch, batch, step) position.

use super::clip::clip_grad_norm;
use super::finetune_config::FinetuneConfig;
use super::finetune_model::FinetuneModel;
use super::finetune_optim::Optimizer;
pub use super::finetune_optim::{group_learning_rates, scheduled_lr, steps_per_epoch};
use super::metrics::MetricsWriter;
use super::train_state::{read_checkpoint, write_checkpoint, CheckpointContents, TrainerState};
use crate::nn::param_store::ParamStore;
use crate::nn::rng::SeededRng;
use crate::objectives::smoothing::{label_smoothing_ce, soft_target_ce};
use candle_core::backprop::GradStore;
use candle_core::{bail, Result, Tensor, Var, D};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One training batch: clips [B, 3, T, H, W] and their labels.
pub struct Batch {
    pub clips: Tensor,
    pub labels: Vec<usize>,
}

/// The training data, epoch by epoch.
pub trait TrainBatches {
    /// Batches per epoch.
    fn num_batches(&self) -> usize;
    /// The batches of `epoch`, from batch `start` on (the order depends only on seed and epoch, so
    /// a resumed run sees the same data).
    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<Batch>> + '_>>;
}

/// Mixup/cutmix: returns (mixed clips, soft targets [B, classes]); the CLI plugs in timm-style
/// Mixup from `data::transforms::mixup`.
pub type MixFn<'a> = &'a dyn Fn(&Tensor, &[usize], &mut SeededRng) -> Result<(Tensor, Tensor)>;

/// What an evaluation returns: the top-1 accuracy that picks `best/`, and anything else to log.
pub struct EvalOutcome {
    pub top1: f64,
    /// Extra fields for the `metrics.jsonl` record (an object's entries are merged into it).
    pub json: serde_json::Value,
}

/// The evaluation callback, called with the model and the number (counted from 1) of the epoch
/// just finished.
pub type EvalFn<'a> = &'a mut dyn FnMut(&FinetuneModel, usize) -> Result<EvalOutcome>;

/// Where a run writes, and how far it goes.
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

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FinetuneSummary {
    /// Epochs completed by this call.
    pub epochs_run: usize,
    /// Optimizer steps done in total (including those before a resume).
    pub steps: u64,
    pub final_loss: Option<f64>,
    pub best_top1: Option<f64>,
    /// Counted from 1.
    pub best_epoch: Option<usize>,
    pub last_dir: PathBuf,
    pub best_dir: PathBuf,
    pub metrics_path: PathBuf,
}

/// Adds the gradients of `vars` in `more` into `acc`.
fn add_grads(acc: &mut GradStore, more: GradStore, vars: &[Var]) -> Result<()> {
    for var in vars {
        if let Some(g) = more.get(var) {
            let sum = match acc.get(var) {
                Some(a) => (a + g)?,
                None => g.clone(),
            };
            acc.insert(var, sum);
        }
    }
    Ok(())
}

/// Puts checkpoint weights into the store after checking that the names match exactly.
fn restore_weights(store: &ParamStore, tensors: HashMap<String, Tensor>, dir: &Path) -> Result<()> {
    let have: BTreeSet<String> = store.named_vars().into_iter().map(|(n, _)| n).collect();
    let got: BTreeSet<String> = tensors.keys().cloned().collect();
    let missing: Vec<_> = have.difference(&got).take(5).collect();
    let extra: Vec<_> = got.difference(&have).take(5).collect();
    if !missing.is_empty() || !extra.is_empty() {
        bail!(
            "{}: the checkpoint does not fit the model (missing {missing:?}, unexpected {extra:?})",
            dir.display()
        )
    }
    store
        .insert_tensors(tensors)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", dir.display())))
}

/// Drops the records a resumed run will write again: train steps after `step`, evaluations after
/// `epochs_done` completed epochs.
fn truncate_metrics(path: &Path, step: u64, epochs_done: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let mut kept = String::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        let drop = match v["kind"].as_str() {
            Some("train") => v["step"].as_u64().is_some_and(|s| s > step),
            Some("eval") => v["epoch"].as_u64().is_some_and(|e| e > epochs_done as u64),
            _ => false,
        };
        if !drop {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    crate::util::atomic::write_atomic(path, kept.as_bytes())
}

fn io_msg(path: &Path, e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{}: {e}", path.display()))
}

/// Fraction of rows whose arg-max is the label.
fn accuracy(logits: &Tensor, labels: &[usize]) -> Result<f64> {
    let pred = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let hits = pred
        .iter()
        .zip(labels)
        .filter(|(p, y)| **p as usize == **y)
        .count();
    Ok(hits as f64 / labels.len().max(1) as f64)
}

/// Trains `model` (built in `store`) on `data` as `cfg` says, evaluating with `eval`; see the module
/// documentation. Writes `last/`, `best/` and `metrics.jsonl` under `opts.out_dir`.
pub fn finetune(
    model: &FinetuneModel,
    store: &ParamStore,
    cfg: &FinetuneConfig,
    data: &mut dyn TrainBatches,
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
    let nb = data.num_batches();
    if nb == 0 {
        bail!("fine-tuning: the training data has no batches")
    }
    let spe = steps_per_epoch(cfg, nb);
    let groups = model.param_groups(store, cfg)?;
    let vars: Vec<Var> = groups
        .iter()
        .flat_map(|g| g.vars.iter().map(|(_, v)| v.clone()))
        .collect();
    let mut opt = Optimizer::new(cfg, groups)?;
    let base_rng = SeededRng::new(cfg.seed);
    let dev = store.device().clone();
    let last_dir = opts.out_dir.join("last");
    let best_dir = opts.out_dir.join("best");
    let metrics_path = opts.out_dir.join("metrics.jsonl");

    let mut state = TrainerState {
        avkd_version: env!("CARGO_PKG_VERSION").to_string(),
        epoch: 0,
        batch_in_epoch: 0,
        global_step: 0,
        batches_per_epoch: nb,
        best_top1: None,
        best_epoch: None,
        last_loss: None,
        config: cfg.clone(),
        seed: cfg.seed,
        train_rng: base_rng.state(),
        optimizer: opt.name().to_string(),
        optimizer_steps: 0,
    };
    if let Some(dir) = &opts.resume_from {
        let ck = read_checkpoint(dir, &dev)?;
        let ctx =
            |e: candle_core::Error| candle_core::Error::Msg(format!("{}: {e}", dir.display()));
        cfg.check_resumable_from(&ck.state.config).map_err(ctx)?;
        if ck.state.batches_per_epoch != nb {
            bail!(
                "{}: the checkpoint was trained with {} batches per epoch, this data has {nb}",
                dir.display(),
                ck.state.batches_per_epoch
            )
        }
        if ck.state.optimizer != opt.name() {
            bail!(
                "{}: the checkpoint's optimizer is {}",
                dir.display(),
                ck.state.optimizer
            )
        }
        restore_weights(store, ck.model, dir)?;
        opt.load_state(&ck.optimizer, ck.state.optimizer_steps)
            .map_err(ctx)?;
        state = TrainerState {
            avkd_version: env!("CARGO_PKG_VERSION").to_string(),
            config: cfg.clone(),
            ..ck.state
        };
        truncate_metrics(&metrics_path, state.global_step, state.epoch)?;
        tracing::info!(
            epoch = state.epoch,
            batch = state.batch_in_epoch,
            step = state.global_step,
            "resuming from {}",
            dir.display()
        );
    }
    let mut metrics = MetricsWriter::append(&metrics_path).map_err(|e| io_msg(&metrics_path, e))?;
    let progress = if opts.progress {
        crate::util::progress::progress_bar((cfg.epochs * spe) as u64, "fine-tuning")
    } else {
        indicatif::ProgressBar::hidden()
    };
    progress.set_position(state.global_step);

    let save = |dir: &Path, state: &TrainerState, opt: &Optimizer| -> Result<()> {
        write_checkpoint(
            dir,
            &CheckpointContents {
                model,
                store,
                state,
                optimizer: opt.state_tensors()?,
                id2label: opts.id2label.clone(),
                image_size: opts.image_size,
            },
        )
    };
    let summary = |state: &TrainerState, epochs_run| FinetuneSummary {
        epochs_run,
        steps: state.global_step,
        final_loss: state.last_loss,
        best_top1: state.best_top1,
        best_epoch: state.best_epoch,
        last_dir: last_dir.clone(),
        best_dir: best_dir.clone(),
        metrics_path: metrics_path.clone(),
    };
    let mut epochs_run = 0;
    while state.epoch < cfg.epochs {
        let epoch = state.epoch;
        // What users see (metrics.jsonl, logs, trainer_state.json) counts epochs from 1.
        let epoch_number = epoch + 1;
        let mut batches = data.epoch(epoch, state.batch_in_epoch)?;
        while state.batch_in_epoch < nb {
            let started = Instant::now();
            let micro = cfg.accum_steps.min(nb - state.batch_in_epoch);
            let lr = scheduled_lr(cfg, spe, state.global_step, epoch);
            opt.set_learning_rate(lr);
            let step_rng = base_rng.derive(state.global_step);
            let mut grads: Option<GradStore> = None;
            let (mut loss_sum, mut acc_sum, mut samples) = (0f64, 0f64, 0usize);
            for k in 0..micro {
                let batch = match batches.next() {
                    Some(b) => b?,
                    None => bail!(
                        "epoch {epoch}: the data ended at batch {} of {nb}",
                        state.batch_in_epoch + k
                    ),
                };
                if batch.clips.dim(0)? != batch.labels.len() {
                    bail!(
                        "a batch has {} clips but {} labels",
                        batch.clips.dim(0)?,
                        batch.labels.len()
                    )
                }
                let mut rng = step_rng.derive(k as u64);
                let clips = batch.clips.to_device(&dev)?;
                let (logits, loss) = match mix {
                    Some(f) => {
                        let (mixed, target) = f(&clips, &batch.labels, &mut rng)?;
                        let logits = model.logits_t(&mixed, Some(&mut rng))?;
                        let loss = soft_target_ce(&logits, &target.to_device(&dev)?)?;
                        (logits, loss)
                    }
                    None => {
                        let logits = model.logits_t(&clips, Some(&mut rng))?;
                        let y: Vec<u32> = batch.labels.iter().map(|&l| l as u32).collect();
                        let y = Tensor::from_vec(y, batch.labels.len(), &dev)?;
                        let loss = label_smoothing_ce(&logits, &y, cfg.label_smoothing)?;
                        (logits, loss)
                    }
                };
                let value = loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
                if !value.is_finite() {
                    bail!(
                        "fine-tuning diverged at step {}: loss is {value}",
                        state.global_step
                    )
                }
                loss_sum += value;
                acc_sum += accuracy(&logits, &batch.labels)?;
                samples += batch.labels.len();
                let g = loss.affine(1.0 / micro as f64, 0.0)?.backward()?;
                match &mut grads {
                    Some(acc) => add_grads(acc, g, &vars)?,
                    None => grads = Some(g),
                }
            }
            let Some(mut grads) = grads else {
                bail!("internal: an optimizer step without micro-batches")
            };
            let grad_norm = match cfg.clip_grad {
                Some(max) => Some(clip_grad_norm(&vars, &mut grads, max)?),
                None => None,
            };
            opt.step(&grads)?;
            state.global_step += 1;
            state.optimizer_steps = opt.step_count();
            state.batch_in_epoch += micro;
            let loss = loss_sum / micro as f64;
            state.last_loss = Some(loss);
            let mut record = serde_json::json!({
                "kind": "train", "epoch": epoch_number, "step": state.global_step, "loss": loss, "lr": lr,
                "samples_per_s": samples as f64 / started.elapsed().as_secs_f64().max(1e-9),
            });
            if mix.is_none() {
                record["accuracy"] = (acc_sum / micro as f64).into();
            }
            if let Some(n) = grad_norm {
                record["grad_norm"] = n.into();
            }
            metrics
                .write(&record)
                .map_err(|e| io_msg(&metrics_path, e))?;
            tracing::debug!(
                epoch = epoch_number,
                step = state.global_step,
                loss,
                lr,
                "fine-tune step"
            );
            progress.set_message(format!(
                "epoch {epoch_number}/{} loss {loss:.4}",
                cfg.epochs
            ));
            progress.inc(1);

            let mid_epoch = state.batch_in_epoch < nb;
            if mid_epoch
                && cfg
                    .save_every_steps
                    .is_some_and(|n| state.global_step.is_multiple_of(n as u64))
            {
                save(&last_dir, &state, &opt)?;
                tracing::info!(step = state.global_step, "saved {}", last_dir.display());
            }
            if opts.stop_after_steps == Some(state.global_step) {
                progress.abandon();
                return Ok(summary(&state, epochs_run));
            }
        }
        drop(batches);

        state.epoch += 1;
        state.batch_in_epoch = 0;
        epochs_run += 1;
        let mut improved = false;
        if epoch_number.is_multiple_of(cfg.eval_every) || epoch_number == cfg.epochs {
            let outcome = eval(model, epoch_number)?;
            let mut record = serde_json::json!({"kind": "eval", "epoch": epoch_number});
            if let serde_json::Value::Object(extra) = &outcome.json {
                for (k, v) in extra {
                    record[k] = v.clone();
                }
            } else if !outcome.json.is_null() {
                record["result"] = outcome.json.clone();
            }
            record["top1"] = outcome.top1.into();
            metrics
                .write(&record)
                .map_err(|e| io_msg(&metrics_path, e))?;
            tracing::info!(epoch = epoch_number, result = %outcome.json, "evaluation");
            if state.best_top1.is_none_or(|b| outcome.top1 > b) {
                state.best_top1 = Some(outcome.top1);
                state.best_epoch = Some(epoch_number);
                improved = true;
            }
        }
        if improved {
            save(&best_dir, &state, &opt)?;
        }
        save(&last_dir, &state, &opt)?;
        if opts.stop_after_epochs.is_some_and(|n| state.epoch >= n) {
            break;
        }
    }
    progress.finish();
    Ok(summary(&state, epochs_run))
}
