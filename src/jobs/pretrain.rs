//! XKD pre-training as a [`Job`] on the training engine, in the official order of each step:
//! forward (MAE + distillation + alignment, DINO centres updated inside), backward, DINO-style
//! per-parameter gradient clipping of the students and their heads (the MAE decoders are not
//! clipped), AdamW step (betas 0.9/0.95, biases and 1-D tensors undecayed), then the EMA update of
//! the teachers with a cosine momentum schedule. Checkpoints hold the whole net with its centres.
//!
//! This runs the quickstart's small pre-training on in-memory synthetic audio-visual batches.

use crate::checkpoint::export::write_model_folder;
use crate::data::synth::{AvBatch, SyntheticAv};
use crate::models::xkd::net::XkdNet;
use crate::nn::rng::SeededRng;
use crate::train::clip::Clipping;
use crate::train::engine::{Engine, LoopSettings, RunOptions};
use crate::train::job::{EvalOutcome, Gradients, Job, StepContext, StepOutput, TrainData};
use crate::train::optim::{AdamW, AdamWConfig};
use crate::train::optimizer::{Optimizer, OptimizerSlot};
use crate::train::param_groups::pretrain_groups;
use crate::train::schedule::{Schedule, WarmupCosine};
use crate::train::train_state::{read_model_tensors, TrainerState, MODEL_FILE};
use candle_core::{Device, Result, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainConfig {
    pub steps: usize,
    pub batch_size: usize,
    /// Peak learning rate (official: 1e-4 for a batch of 256).
    pub lr: f64,
    pub warmup_steps: usize,
    /// Official: 0.3.
    pub weight_decay: f64,
    /// EMA momentum at the start; it rises to 1.0 along a cosine (official: 0.997).
    pub ema_momentum: f64,
    /// Per-parameter gradient-norm limit (official: 0.3); 0 disables clipping.
    pub clip_grad: f64,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PretrainSummary {
    pub steps: u64,
    pub first_loss: f64,
    pub last_loss: f64,
    /// Mean total loss over the first and the last quarter of the run.
    pub early_mean_loss: f64,
    pub late_mean_loss: f64,
    pub seconds: f64,
}

/// Synthetic audio-visual batches: batch `i` of epoch `e` comes from the seed and (e, i) alone.
pub struct SyntheticAvBatches {
    pub data: SyntheticAv,
    pub batch_size: usize,
    pub batches: usize,
    /// The video tubelet, video patch and spectrogram patch the local views are rounded to.
    pub tubelet: usize,
    pub patch: usize,
    pub spec_patch: usize,
    pub seed: u64,
    pub device: Device,
}

impl TrainData for SyntheticAvBatches {
    type Batch = AvBatch;

    fn num_batches(&self) -> usize {
        self.batches
    }

    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<AvBatch>> + '_>> {
        let rng = SeededRng::new(self.seed).derive(epoch as u64);
        Ok(Box::new((start..self.batches).map(move |i| {
            let (t, p, s) = (self.tubelet, self.patch, self.spec_patch);
            let mut r = rng.derive(i as u64);
            self.data
                .batch(self.batch_size, t, p, s, &mut r, &self.device)
        })))
    }
}

/// XKD pre-training as the engine sees it.
struct Pretraining<'a> {
    net: &'a mut XkdNet,
    cfg: &'a PretrainConfig,
    momentum: Schedule,
}

impl Job for Pretraining<'_> {
    type Batch = AvBatch;

    fn name(&self) -> &str {
        "xkd-pretraining"
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(self.cfg).unwrap_or_default()
    }

    fn check_resumable(&self, saved: &serde_json::Value) -> Result<()> {
        if saved != &self.config_json() {
            candle_core::bail!("the checkpoint was pre-trained with other settings: {saved}")
        }
        Ok(())
    }

    fn training_step(
        &mut self,
        batch: AvBatch,
        _ctx: &StepContext,
        rng: &mut SeededRng,
    ) -> Result<StepOutput> {
        let samples = batch.labels.len();
        let out = self.net.forward_rng(&batch.frames, &batch.specs, rng)?;
        let logged = vec![
            ("loss", out.loss.clone()),
            ("vid_recon_loss", out.vid_recon),
            ("aud_recon_loss", out.aud_recon),
            ("recon_loss", out.recon),
            ("as2vs_align_loss", out.as2vs_align),
            ("vt2at_align_loss", out.vt2at_align),
            ("alignment_loss", out.alignment),
            ("vt2as_kd_loss", out.vt2as_kd),
            ("at2vs_kd_loss", out.at2vs_kd),
            ("cmkd_loss", out.cmkd),
        ];
        Ok(StepOutput {
            gradients: Gradients::Loss(out.loss),
            logged,
            samples,
        })
    }

    fn after_optimizer_step(&mut self, ctx: &StepContext) -> Result<Vec<(&'static str, f64)>> {
        let m = self.momentum.value(ctx.global_step, ctx.epoch);
        self.net.ema_update(m)?;
        Ok(vec![("ema_momentum", m)])
    }

    fn evaluate(&mut self, _epoch_number: usize) -> Result<Option<EvalOutcome>> {
        Ok(None)
    }

    fn save(&self, dir: &Path, state: &TrainerState) -> Result<()> {
        let mut tensors = self.net.store().tensors()?;
        let (vt2as, at2vs) = self.net.centers();
        tensors.insert("vt2as_center".into(), vt2as.clone());
        tensors.insert("at2vs_center".into(), at2vs.clone());
        let meta = BTreeMap::from([
            ("source".to_string(), "avkd XKD pre-training".to_string()),
            ("global_step".to_string(), state.global_step.to_string()),
        ]);
        let cfg = self.net.config();
        write_model_folder(dir, cfg.variant.model_type(), cfg, &tensors, &meta)
    }

    fn restore(&mut self, dir: &Path) -> Result<()> {
        let mut tensors = read_model_tensors(dir, self.net.store().device())?;
        let center = |t: &mut std::collections::HashMap<String, Tensor>, k: &str| {
            t.remove(k).ok_or_else(|| {
                candle_core::Error::Msg(format!("{}: no `{k}`", dir.join(MODEL_FILE).display()))
            })
        };
        let (vt2as, at2vs) = (
            center(&mut tensors, "vt2as_center")?,
            center(&mut tensors, "at2vs_center")?,
        );
        self.net.set_centers(vt2as, at2vs)?;
        self.net.store().insert_tensors(tensors)
    }
}

/// Pre-trains `net` on `data` (one epoch of its batches, one optimizer step each), writing
/// `last/` and `metrics.jsonl` (every loss term, lr, weight decay, EMA momentum) under `out_dir`.
pub fn pretrain_xkd(
    net: &mut XkdNet,
    data: &mut dyn TrainData<Batch = AvBatch>,
    cfg: &PretrainConfig,
    out_dir: &Path,
    progress: bool,
) -> Result<PretrainSummary> {
    let steps = data.num_batches();
    let trainable = net.trainable_vars();
    let students: Vec<Var> = trainable
        .iter()
        .filter(|(n, _)| n.contains("_student."))
        .map(|(_, v)| v.clone())
        .collect();
    let adamw = AdamW::new(
        pretrain_groups(&trainable, cfg.weight_decay),
        AdamWConfig {
            lr: cfg.lr,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
        },
    )?;
    let lr = WarmupCosine::new(cfg.lr, 0.0, steps, 1, cfg.warmup_steps, 0.0);
    let slot = OptimizerSlot::new("model", Optimizer::AdamW(adamw), Schedule::PerStep(lr));
    let clipping = match cfg.clip_grad > 0.0 {
        true => Clipping::PerParam {
            max_norm: cfg.clip_grad,
            vars: students,
        },
        false => Clipping::None,
    };
    let settings = LoopSettings {
        epochs: 1,
        accum_steps: 1,
        eval_every: 1,
        save_every_steps: None,
        log_every: 1,
        seed: cfg.seed,
    };
    let momentum = Schedule::PerStep(WarmupCosine::new(cfg.ema_momentum, 1.0, steps, 1, 0, 0.0));
    let mut job = Pretraining { net, cfg, momentum };
    let start = Instant::now();
    let opts = RunOptions {
        out_dir: out_dir.to_path_buf(),
        progress,
        ..Default::default()
    };
    let run = Engine::new(&mut job, vec![slot], clipping, settings)?.run(data, &opts)?;
    summarise(&run.metrics_path, run.steps, start.elapsed().as_secs_f64())
}

/// The loss curve's ends from `metrics.jsonl`.
fn summarise(metrics: &Path, steps: u64, seconds: f64) -> Result<PretrainSummary> {
    let text = std::fs::read_to_string(metrics)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", metrics.display())))?;
    let losses: Vec<f64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "train")
        .filter_map(|v| v["loss"].as_f64())
        .collect();
    let quarter = (losses.len() / 4).max(1);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    Ok(PretrainSummary {
        steps,
        first_loss: *losses.first().unwrap_or(&f64::NAN),
        last_loss: *losses.last().unwrap_or(&f64::NAN),
        early_mean_loss: mean(&losses[..quarter.min(losses.len())]),
        late_mean_loss: mean(&losses[losses.len().saturating_sub(quarter)..]),
        seconds,
    })
}
