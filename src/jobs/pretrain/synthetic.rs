//! Pre-training on in-memory synthetic audio-visual batches (the quickstart's small run): batches
//! from [`SyntheticAv`], and the loss curve's ends as a summary.

use super::{pretrain, PretrainBatch, PretrainConfig};
use crate::data::synth::SyntheticAv;
use crate::models::xkd::net::XkdNet;
use crate::nn::rng::SeededRng;
use crate::train::engine::RunOptions;
use crate::train::job::TrainData;
use candle_core::{Device, Result};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// Synthetic audio-visual batches: batch `i` of epoch `e` comes from the seed and the batch's
/// position in the run (`e * batches + i`) alone.
pub struct SyntheticAvBatches {
    pub data: SyntheticAv,
    pub batch_size: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// The video tubelet, video patch and spectrogram patch the local views are rounded to.
    pub tubelet: usize,
    pub patch: usize,
    pub spec_patch: usize,
    pub seed: u64,
    pub device: Device,
}

impl TrainData for SyntheticAvBatches {
    type Batch = PretrainBatch;

    fn num_batches(&self) -> usize {
        self.batches
    }

    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<PretrainBatch>> + '_>> {
        let rng = SeededRng::new(self.seed).derive(0);
        let first = epoch * self.batches;
        Ok(Box::new((start..self.batches).map(move |i| {
            let (t, p, s) = (self.tubelet, self.patch, self.spec_patch);
            let mut r = rng.derive((first + i) as u64);
            let batch = self
                .data
                .batch(self.batch_size, t, p, s, &mut r, &self.device)?;
            Ok(batch.into())
        })))
    }
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

/// Pre-trains `net` on synthetic batches, writing `last/` and `metrics.jsonl` under `out_dir`.
pub fn pretrain_synthetic(
    net: &mut XkdNet,
    data: &mut SyntheticAvBatches,
    cfg: &PretrainConfig,
    out_dir: &Path,
    progress: bool,
) -> Result<PretrainSummary> {
    let start = Instant::now();
    let opts = RunOptions {
        out_dir: out_dir.to_path_buf(),
        progress,
        ..Default::default()
    };
    let run = pretrain(net, data, cfg, &opts, None)?;
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
