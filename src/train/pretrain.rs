//! XKD pretraining, in the official order of each step: forward (MAE + distillation + alignment),
//! backward, DINO-style per-parameter gradient clipping of the students and their heads (the MAE
//! decoders are not clipped), AdamW step (betas 0.9/0.95, biases and 1-D tensors undecayed), then the
//! EMA update of the teachers with a cosine momentum schedule.

use super::clip::clip_per_param;
use super::metrics::MetricsWriter;
use super::optim::{AdamW, AdamWConfig};
use super::param_groups::pretrain_groups;
use super::schedule::WarmupCosine;
use crate::data::synth::AvBatch;
use crate::models::xkd::net::XkdNet;
use crate::nn::rng::SeededRng;
use candle_core::{Result, Var};
use serde::{Deserialize, Serialize};
use std::time::Instant;

#[derive(Debug, Clone, Serialize, Deserialize)]
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
    pub steps: usize,
    pub first_loss: f32,
    pub last_loss: f32,
    /// Mean total loss over the first and the last quarter of the run.
    pub early_mean_loss: f32,
    pub late_mean_loss: f32,
    pub seconds: f64,
}

/// Runs `cfg.steps` XKD pretraining steps on batches from `next_batch`, logging every step to
/// `metrics` and `progress`.
pub fn pretrain_xkd(
    net: &mut XkdNet,
    mut next_batch: impl FnMut(&mut SeededRng) -> Result<AvBatch>,
    cfg: &PretrainConfig,
    metrics: &mut MetricsWriter,
    progress: &indicatif::ProgressBar,
) -> Result<PretrainSummary> {
    let trainable = net.trainable_vars();
    let clipped: Vec<Var> = trainable
        .iter()
        .filter(|(n, _)| n.contains("_student."))
        .map(|(_, v)| v.clone())
        .collect();
    let mut opt = AdamW::new(
        pretrain_groups(&trainable, cfg.weight_decay),
        AdamWConfig {
            lr: cfg.lr,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
        },
    )?;
    let lr = WarmupCosine::new(cfg.lr, 0.0, cfg.steps, 1, cfg.warmup_steps, 0.0);
    let momentum = WarmupCosine::new(cfg.ema_momentum, 1.0, cfg.steps, 1, 0, 0.0);
    let mut rng = SeededRng::new(cfg.seed);
    let start = Instant::now();
    let mut losses = Vec::with_capacity(cfg.steps);
    for step in 0..cfg.steps {
        let batch = next_batch(&mut rng)?;
        let out = net.forward_rng(&batch.frames, &batch.specs, &mut rng)?;
        let mut grads = out.loss.backward()?;
        if cfg.clip_grad > 0.0 {
            clip_per_param(&clipped, &mut grads, cfg.clip_grad)?;
        }
        opt.set_learning_rate(lr.value(step));
        opt.step(&grads)?;
        net.ema_update(momentum.value(step))?;

        let scalars = out.scalars()?;
        let loss = scalars
            .iter()
            .find(|(k, _)| *k == "loss")
            .map(|(_, v)| *v)
            .unwrap_or(f32::NAN);
        if !loss.is_finite() {
            candle_core::bail!("pretraining diverged at step {step}: loss is {loss}")
        }
        losses.push(loss);
        let mut record = serde_json::json!({
            "step": step + 1, "lr": lr.value(step), "ema_momentum": momentum.value(step),
            "seconds": start.elapsed().as_secs_f64(),
        });
        for (k, v) in scalars {
            record[k] = v.into();
        }
        metrics.write(&record).map_err(|e| {
            candle_core::Error::Msg(format!("writing {}: {e}", metrics.path().display()))
        })?;
        tracing::debug!(step = step + 1, loss, "pretrain step");
        progress.set_message(format!("loss {loss:.4}"));
        progress.inc(1);
    }
    let quarter = (losses.len() / 4).max(1);
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
    Ok(PretrainSummary {
        steps: cfg.steps,
        first_loss: *losses.first().unwrap_or(&f32::NAN),
        last_loss: *losses.last().unwrap_or(&f32::NAN),
        early_mean_loss: mean(&losses[..quarter.min(losses.len())]),
        late_mean_loss: mean(&losses[losses.len().saturating_sub(quarter)..]),
        seconds: start.elapsed().as_secs_f64(),
    })
}
