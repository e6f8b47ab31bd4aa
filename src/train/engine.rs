//! The training engine: one loop for every job (fine-tuning, XKD pre-training, CCL distillation).
//!
//! One optimizer step: each optimizer slot takes its scheduled lr (and weight decay); for each of
//! up to `accum_steps` micro-batches the job's [`Job::training_step`] gives gradients (a loss the
//! engine divides by the number of micro-batches in the step and differentiates, or gradients the
//! job routed itself, divided the same way), summed over the micro-batches; the collective reduces
//! them; clipping; the job's gradient edits; every optimizer steps; the job's after-step updates.
//! The last step of an epoch may hold fewer micro-batches.
//!
//! Exact resume rests on three things: every random draw of step `s` comes from
//! `SeededRng::new(seed).derive(s)` (micro-batch `k` from `.derive(k)` of that), never from a stream
//! carried between steps; the data order depends only on (seed, epoch) through [`TrainData`]; and
//! checkpoints hold the weights (with every buffer), the optimizer moments and the (epoch, batch,
//! step) position. `last/` is written at the end of every epoch and every `save_every_steps`
//! steps, `best/` when an evaluation improves the top-1; both atomically ([`super::train_state`]).
//!
//! Logged values stay on the device until a record is written: they are read back, all at once,
//! every `log_every` steps and before every checkpoint ([`super::readback`]).
//!
//! Where the next layers plug in: gradients are made in one place ([`super::step_sum`], where
//! loss scaling for f16 belongs), reduced over the world by the [`Collective`] before
//! clipping, and only rank 0 writes checkpoints and metrics.

use super::clip::Clipping;
use super::collective::{Collective, SingleProcess};
use super::job::{Job, StepContext, TrainData};
use super::metrics::{truncate_metrics, MetricsWriter};
use super::optimizer::OptimizerSlot;
use super::readback::read_scalars;
use super::step_sum::{StepMeans, StepSum};
use super::train_state::{
    prefixed, read_checkpoint, recover_checkpoint, unprefixed, write_checkpoint, OptimizerPosition,
    TrainerState,
};
use crate::nn::rng::SeededRng;
use candle_core::{bail, Device, Result, Tensor, Var};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How long and how the loop runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopSettings {
    pub epochs: usize,
    /// Micro-batches whose gradients are summed into one optimizer step.
    pub accum_steps: usize,
    /// Evaluate every this many epochs (and after the last one).
    pub eval_every: usize,
    /// Also write `last/` every this many optimizer steps.
    pub save_every_steps: Option<usize>,
    /// Read logged values back every this many steps (records are still one per step).
    pub log_every: usize,
    pub seed: u64,
}

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
    /// Draw a progress bar (only ever on a terminal).
    pub progress: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunSummary {
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

/// A step's record waiting for its device values.
struct PendingRecord {
    record: serde_json::Value,
    names: Vec<&'static str>,
    values: Vec<Tensor>,
}

/// What one run carries from step to step.
struct Run {
    state: TrainerState,
    base_rng: SeededRng,
    metrics: Option<MetricsWriter>,
    progress: indicatif::ProgressBar,
    pending: Vec<PendingRecord>,
    last_dir: PathBuf,
    best_dir: PathBuf,
    metrics_path: PathBuf,
    steps_per_epoch: usize,
    epochs_run: usize,
}

impl Run {
    fn summary(&self) -> RunSummary {
        RunSummary {
            epochs_run: self.epochs_run,
            steps: self.state.global_step,
            final_loss: self.state.last_loss,
            best_top1: self.state.best_top1,
            best_epoch: self.state.best_epoch,
            last_dir: self.last_dir.clone(),
            best_dir: self.best_dir.clone(),
            metrics_path: self.metrics_path.clone(),
        }
    }

    fn write_record(&mut self, record: &serde_json::Value) -> Result<()> {
        match &mut self.metrics {
            Some(m) => m.write(record).map_err(|e| io_msg(&self.metrics_path, e)),
            None => Ok(()),
        }
    }
}

fn io_msg(path: &Path, e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{}: {e}", path.display()))
}

/// The engine of one job: its optimizers, clipping, loop settings and collective.
pub struct Engine<'j, J: Job> {
    job: &'j mut J,
    slots: Vec<OptimizerSlot>,
    clipping: Clipping,
    settings: LoopSettings,
    collective: Box<dyn Collective>,
    /// Every parameter of every slot.
    vars: Vec<Var>,
}

impl<'j, J: Job> Engine<'j, J> {
    pub fn new(
        job: &'j mut J,
        slots: Vec<OptimizerSlot>,
        clipping: Clipping,
        settings: LoopSettings,
    ) -> Result<Self> {
        if settings.epochs == 0 || settings.accum_steps == 0 {
            bail!("training: epochs and accum_steps must be at least 1")
        }
        if settings.eval_every == 0 || settings.log_every == 0 {
            bail!("training: eval_every and log_every must be at least 1")
        }
        if slots.is_empty() {
            bail!("training: the job gave no optimizer")
        }
        let mut vars: Vec<Var> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for slot in &slots {
            for var in slot.optimizer.vars() {
                if !seen.insert(var.id()) {
                    bail!(
                        "training: optimizer `{}` shares a parameter with another optimizer",
                        slot.name
                    )
                }
                vars.push(var);
            }
        }
        Ok(Self {
            job,
            slots,
            clipping,
            settings,
            collective: Box::new(SingleProcess),
            vars,
        })
    }

    /// The same engine over another collective (data parallelism).
    pub fn with_collective(mut self, collective: Box<dyn Collective>) -> Self {
        self.collective = collective;
        self
    }

    fn positions(&self) -> Vec<OptimizerPosition> {
        self.slots
            .iter()
            .map(|s| OptimizerPosition {
                name: s.name.clone(),
                kind: s.optimizer.kind().to_string(),
                steps: s.optimizer.step_count(),
            })
            .collect()
    }

    fn fresh_state(&self, batches_per_epoch: usize) -> TrainerState {
        TrainerState {
            avkd_version: env!("CARGO_PKG_VERSION").to_string(),
            job: self.job.name().to_string(),
            epoch: 0,
            batch_in_epoch: 0,
            global_step: 0,
            batches_per_epoch,
            best_top1: None,
            best_epoch: None,
            last_loss: None,
            config: self.job.config_json(),
            seed: self.settings.seed,
            train_rng: SeededRng::new(self.settings.seed).state(),
            optimizers: self.positions(),
        }
    }

    /// Trains on `data` as the settings say; see the module documentation. Writes `last/`,
    /// `best/` and `metrics.jsonl` under `opts.out_dir`.
    pub fn run(
        &mut self,
        data: &mut dyn TrainData<Batch = J::Batch>,
        opts: &RunOptions,
    ) -> Result<RunSummary> {
        let nb = data.num_batches();
        if nb == 0 {
            bail!("{}: the training data has no batches", self.job.name())
        }
        let mut run = self.start(nb, opts)?;
        while run.state.epoch < self.settings.epochs {
            if self.train_epoch(&mut run, data, nb, opts)? {
                return Ok(run.summary());
            }
            self.end_epoch(&mut run)?;
            if opts.stop_after_epochs.is_some_and(|n| run.epochs_run >= n) {
                break;
            }
        }
        run.progress.finish();
        Ok(run.summary())
    }

    /// The run's state, fresh or read from the checkpoint to resume, with its metrics file and
    /// progress bar.
    fn start(&mut self, nb: usize, opts: &RunOptions) -> Result<Run> {
        let metrics_path = opts.out_dir.join("metrics.jsonl");
        let (last_dir, best_dir) = (opts.out_dir.join("last"), opts.out_dir.join("best"));
        if self.collective.is_main() {
            recover_checkpoint(&last_dir)?;
            recover_checkpoint(&best_dir)?;
        }
        let mut state = self.fresh_state(nb);
        if let Some(dir) = &opts.resume_from {
            state = self.resume(dir, nb)?;
            if self.collective.is_main() {
                truncate_metrics(&metrics_path, state.global_step, state.epoch)?;
            }
        }
        let metrics = match self.collective.is_main() {
            true => {
                Some(MetricsWriter::append(&metrics_path).map_err(|e| io_msg(&metrics_path, e))?)
            }
            false => None,
        };
        let steps_per_epoch = nb.div_ceil(self.settings.accum_steps);
        let progress = if opts.progress && self.collective.is_main() {
            crate::util::progress::progress_bar(
                (self.settings.epochs * steps_per_epoch) as u64,
                self.job.name(),
            )
        } else {
            indicatif::ProgressBar::hidden()
        };
        progress.set_position(state.global_step);
        Ok(Run {
            base_rng: SeededRng::from_state(state.train_rng),
            state,
            metrics,
            progress,
            pending: Vec::new(),
            last_dir,
            best_dir,
            metrics_path,
            steps_per_epoch,
            epochs_run: 0,
        })
    }

    /// Restores the job's weights and every optimizer from `dir`; returns the saved state.
    fn resume(&mut self, dir: &Path, nb: usize) -> Result<TrainerState> {
        let ck = read_checkpoint(dir, &Device::Cpu)?;
        let ctx =
            |e: candle_core::Error| candle_core::Error::Msg(format!("{}: {e}", dir.display()));
        if ck.state.job != self.job.name() {
            bail!(
                "{}: a `{}` checkpoint, not `{}`",
                dir.display(),
                ck.state.job,
                self.job.name()
            )
        }
        self.job.check_resumable(&ck.state.config).map_err(ctx)?;
        if ck.state.batches_per_epoch != nb {
            bail!(
                "{}: the checkpoint was trained with {} batches per epoch, this data has {nb}",
                dir.display(),
                ck.state.batches_per_epoch
            )
        }
        let expected = self.positions();
        let same_optimizers = expected.len() == ck.state.optimizers.len()
            && expected
                .iter()
                .zip(&ck.state.optimizers)
                .all(|(a, b)| a.name == b.name && a.kind == b.kind);
        if !same_optimizers {
            let names = |p: &[OptimizerPosition]| {
                p.iter()
                    .map(|o| format!("{} ({})", o.name, o.kind))
                    .collect::<Vec<_>>()
            };
            bail!(
                "{}: the checkpoint's optimizers are {:?}, this run has {:?}",
                dir.display(),
                names(&ck.state.optimizers),
                names(&expected)
            )
        }
        self.job.restore(dir)?;
        for (slot, saved) in self.slots.iter_mut().zip(&ck.state.optimizers) {
            let tensors = unprefixed(&slot.name, &ck.optimizer);
            slot.optimizer
                .load_state(&tensors, saved.steps)
                .map_err(ctx)?;
        }
        tracing::info!(
            epoch = ck.state.epoch,
            batch = ck.state.batch_in_epoch,
            step = ck.state.global_step,
            "resuming from {}",
            dir.display()
        );
        Ok(TrainerState {
            avkd_version: env!("CARGO_PKG_VERSION").to_string(),
            config: self.job.config_json(),
            ..ck.state
        })
    }

    /// The rest of the current epoch; `true` when the run stopped on `stop_after_steps`.
    fn train_epoch(
        &mut self,
        run: &mut Run,
        data: &mut dyn TrainData<Batch = J::Batch>,
        nb: usize,
        opts: &RunOptions,
    ) -> Result<bool> {
        let mut batches = data.epoch(run.state.epoch, run.state.batch_in_epoch)?;
        while run.state.batch_in_epoch < nb {
            self.optimizer_step(run, &mut batches, nb)?;
            let step = run.state.global_step;
            if step.is_multiple_of(self.settings.log_every as u64) {
                self.flush_logs(run)?;
            }
            let mid_epoch = run.state.batch_in_epoch < nb;
            let due = self
                .settings
                .save_every_steps
                .is_some_and(|n| step.is_multiple_of(n as u64));
            if mid_epoch && due {
                let dir = run.last_dir.clone();
                self.save(run, &dir)?;
                tracing::info!(step, "saved {}", dir.display());
            }
            if opts.stop_after_steps == Some(step) {
                self.flush_logs(run)?;
                run.progress.abandon();
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Sets every slot's scheduled values for the step of `ctx`, and records them.
    fn schedule_slots(&mut self, ctx: &StepContext, record: &mut serde_json::Value) -> Result<()> {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let (lr, wd) = slot.schedule(ctx.global_step, ctx.epoch)?;
            let key = |what: &str| match i {
                0 => what.to_string(),
                _ => format!("{what}_{}", slot.name),
            };
            record[key("lr")] = lr.into();
            if let Some(wd) = wd {
                record[key("weight_decay")] = wd.into();
            }
        }
        Ok(())
    }

    /// One optimizer step over up to `accum_steps` micro-batches.
    fn optimizer_step(
        &mut self,
        run: &mut Run,
        batches: &mut dyn Iterator<Item = Result<J::Batch>>,
        nb: usize,
    ) -> Result<()> {
        let started = Instant::now();
        let (epoch, global_step, first) = (
            run.state.epoch,
            run.state.global_step,
            run.state.batch_in_epoch,
        );
        let micro = self.settings.accum_steps.min(nb - first);
        let ctx = StepContext {
            epoch,
            global_step,
            steps_per_epoch: run.steps_per_epoch,
            micro_batches: micro,
        };
        let mut record = serde_json::json!({
            "kind": "train", "epoch": epoch + 1, "step": global_step + 1,
        });
        self.schedule_slots(&ctx, &mut record)?;
        let step_rng = run.base_rng.derive(global_step);
        let mut sum = StepSum::new(micro);
        for k in 0..micro {
            let Some(batch) = batches.next() else {
                bail!(
                    "epoch {}: the data ended at batch {} of {nb}",
                    epoch + 1,
                    first + k
                )
            };
            let mut rng = step_rng.derive(k as u64);
            let out = self.job.training_step(batch?, &ctx, &mut rng)?;
            sum.add(out, &self.vars)?;
        }
        let StepMeans {
            mut grads,
            names,
            values,
            samples,
        } = sum.finish()?;
        self.collective.reduce_gradients(&self.vars, &mut grads)?;
        if let Some(norm) = self.clipping.apply(&mut grads)? {
            record["grad_norm"] = norm.into();
        }
        self.job.before_optimizer_step(&mut grads, &ctx)?;
        for slot in &mut self.slots {
            slot.optimizer.step(&grads)?;
        }
        for (name, value) in self.job.after_optimizer_step(&ctx)? {
            record[name] = value.into();
        }
        let seconds = started.elapsed().as_secs_f64().max(1e-9);
        record["samples_per_s"] = (samples as f64 / seconds).into();
        run.pending.push(PendingRecord {
            record,
            names,
            values,
        });
        run.state.global_step += 1;
        run.state.batch_in_epoch += micro;
        run.state.optimizers = self.positions();
        run.progress.inc(1);
        Ok(())
    }

    /// Reads the pending records' values back (one copy), checks they are finite, writes them.
    fn flush_logs(&mut self, run: &mut Run) -> Result<()> {
        if run.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut run.pending);
        let all: Vec<Tensor> = pending.iter().flat_map(|p| p.values.clone()).collect();
        let mut values = read_scalars(&all)?.into_iter();
        for p in pending {
            let mut record = p.record;
            let step = record["step"].as_u64().unwrap_or_default();
            for name in p.names {
                let v = values.next().unwrap_or(f64::NAN);
                if !v.is_finite() {
                    bail!("{} diverged at step {step}: {name} is {v}", self.job.name())
                }
                record[name] = v.into();
                if name == "loss" {
                    run.state.last_loss = Some(v);
                }
            }
            run.write_record(&record)?;
            tracing::debug!(step, record = %record, "{} step", self.job.name());
        }
        let epoch = run.state.epoch + 1;
        if let Some(loss) = run.state.last_loss {
            run.progress.set_message(format!(
                "epoch {epoch}/{} loss {loss:.4}",
                self.settings.epochs
            ));
        }
        Ok(())
    }

    /// Writes a checkpoint of the current state to `dir` (rank 0 only).
    fn save(&mut self, run: &mut Run, dir: &Path) -> Result<()> {
        self.flush_logs(run)?;
        if !self.collective.is_main() {
            return Ok(());
        }
        let mut optimizer = HashMap::new();
        for slot in &self.slots {
            optimizer.extend(prefixed(&slot.name, slot.optimizer.state_tensors()?));
        }
        let job = &*self.job;
        write_checkpoint(dir, &run.state, &optimizer, |tmp| job.save(tmp, &run.state))
    }

    /// Closes an epoch: evaluation when due, `best/` when it improved, `last/`.
    fn end_epoch(&mut self, run: &mut Run) -> Result<()> {
        self.flush_logs(run)?;
        run.state.epoch += 1;
        run.state.batch_in_epoch = 0;
        run.epochs_run += 1;
        let epoch_number = run.state.epoch;
        let due = epoch_number.is_multiple_of(self.settings.eval_every)
            || epoch_number == self.settings.epochs;
        let mut improved = false;
        if due {
            if let Some(outcome) = self.job.evaluate(epoch_number)? {
                let mut record = serde_json::json!({"kind": "eval", "epoch": epoch_number});
                if let serde_json::Value::Object(extra) = &outcome.json {
                    for (k, v) in extra {
                        record[k] = v.clone();
                    }
                } else if !outcome.json.is_null() {
                    record["result"] = outcome.json.clone();
                }
                record["top1"] = outcome.top1.into();
                run.write_record(&record)?;
                tracing::info!(epoch = epoch_number, result = %outcome.json, "evaluation");
                if run.state.best_top1.is_none_or(|b| outcome.top1 > b) {
                    run.state.best_top1 = Some(outcome.top1);
                    run.state.best_epoch = Some(epoch_number);
                    improved = true;
                }
            }
        }
        if improved {
            let dir = run.best_dir.clone();
            self.save(run, &dir)?;
        }
        let dir = run.last_dir.clone();
        self.save(run, &dir)
    }
}
