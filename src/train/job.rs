//! What a training job tells the engine: the [`Job`] trait (the LightningModule of
//! ../DESIGN.md §8) and the [`TrainData`] it trains on.
//!
//! A job builds its modules and optimizers, turns a micro-batch into gradients (one loss for the
//! engine to differentiate, or gradients it routed itself, as CCL does) plus named values to log,
//! may edit the gradients before the optimizer steps (XKD cancels the last head layer's gradient in
//! its first epochs) and update state after it (EMA teachers), evaluates, and writes and reads its
//! model folder. Everything else — the loop, accumulation, schedules, clipping, the collective,
//! checkpoints, resume, metrics and progress — is the engine's ([`super::engine`]).

use super::train_state::TrainerState;
use crate::nn::rng::SeededRng;
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};
use std::path::Path;

/// Where one optimizer step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepContext {
    /// The epoch the step is in, from 0.
    pub epoch: usize,
    /// Optimizer steps done before this one.
    pub global_step: u64,
    pub steps_per_epoch: usize,
    /// Micro-batches in this step (fewer than `accum_steps` at the end of an epoch).
    pub micro_batches: usize,
}

/// What to differentiate for one micro-batch.
pub enum Gradients {
    /// One loss: the engine divides it by the number of micro-batches and runs backward.
    Loss(Tensor),
    /// Gradients the job routed itself (each optimizer's parameters from their own losses); the
    /// engine divides them by the number of micro-batches.
    Routed(GradStore),
}

/// One micro-batch's result.
pub struct StepOutput {
    pub gradients: Gradients,
    /// Values to log, each a one-element tensor left on the device: the engine averages them over
    /// the micro-batches of the step and reads them back only when it logs. `loss` is the headline
    /// value (the progress bar, `final_loss`); every value must stay finite.
    pub logged: Vec<(&'static str, Tensor)>,
    /// Samples in the micro-batch (for the throughput).
    pub samples: usize,
}

/// What an evaluation returns: the top-1 accuracy that picks `best/`, and anything else to log.
pub struct EvalOutcome {
    pub top1: f64,
    /// Extra fields for the `metrics.jsonl` record (an object's entries are merged into it).
    pub json: serde_json::Value,
}

/// A training job the engine runs.
pub trait Job {
    /// What the job's [`TrainData`] yields per micro-batch.
    type Batch;

    /// For logs and the progress bar ("fine-tuning").
    fn name(&self) -> &str;

    /// The job's settings, saved in every checkpoint's `trainer_state.json`.
    fn config_json(&self) -> serde_json::Value;

    /// Whether a run saved with `saved` (its [`Job::config_json`]) may continue under this job's
    /// settings; the error names the keys that differ.
    fn check_resumable(&self, saved: &serde_json::Value) -> Result<()>;

    /// Forward pass and losses of one micro-batch; `rng` is this micro-batch's own generator
    /// (derived from the seed and the position only, so a resumed run draws the same numbers).
    fn training_step(
        &mut self,
        batch: Self::Batch,
        ctx: &StepContext,
        rng: &mut SeededRng,
    ) -> Result<StepOutput>;

    /// Edits the step's gradients after they are reduced and clipped, before the optimizers step.
    fn before_optimizer_step(&mut self, _grads: &mut GradStore, _ctx: &StepContext) -> Result<()> {
        Ok(())
    }

    /// Updates made after the optimizers stepped (EMA teachers); returns scheduled values to log.
    fn after_optimizer_step(&mut self, _ctx: &StepContext) -> Result<Vec<(&'static str, f64)>> {
        Ok(Vec::new())
    }

    /// Evaluates after epoch `epoch_number` (counted from 1); `None` when the job has no
    /// evaluation.
    fn evaluate(&mut self, epoch_number: usize) -> Result<Option<EvalOutcome>>;

    /// Writes the model folder (config, weights with every buffer, preprocessing, card) into `dir`,
    /// which exists and is empty.
    fn save(&self, dir: &Path, state: &TrainerState) -> Result<()>;

    /// Loads weights and buffers from a checkpoint folder written by [`Job::save`].
    fn restore(&mut self, dir: &Path) -> Result<()>;
}

/// The batches of a job, epoch by epoch.
pub trait TrainData {
    type Batch;

    /// Micro-batches per epoch.
    fn num_batches(&self) -> usize;

    /// The batches of `epoch` from batch `start` on; the order depends only on the seed and the
    /// epoch, so a resumed run sees the same data.
    #[allow(clippy::type_complexity)]
    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<Self::Batch>> + '_>>;
}
