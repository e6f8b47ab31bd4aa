//! Forward passes over the prepared inputs of several videos at once: `batch` inputs per pass,
//! across video boundaries, so short videos of one window each still fill a batch. Only inputs of
//! the same shape share a pass (whole audio tracks differ in length; padding them to one length
//! would change their features), so the inputs are taken in order and cut where the shape changes.

use super::inputs::ModelInput;
use crate::models::model::{Model, ModelInputs};
use candle_core::{DType, Device, Result, Tensor};

/// A video whose inputs wait for their forward passes.
pub struct PendingVideo {
    pub key: String,
    pub inputs: Vec<ModelInput>,
    pub padded: bool,
}

/// A video's features: the mean over its windows, and each window's.
pub struct VideoFeatures {
    pub key: String,
    pub feature: Vec<f32>,
    pub windows: Vec<Vec<f32>>,
    pub padded: bool,
}

/// Gathers videos until `batch` inputs wait, then runs them.
pub struct Batcher {
    batch: usize,
    pending: Vec<PendingVideo>,
    waiting: usize,
}

impl Batcher {
    pub fn new(batch: usize) -> Self {
        Self {
            batch: batch.max(1),
            pending: Vec::new(),
            waiting: 0,
        }
    }

    pub fn push(&mut self, video: PendingVideo) {
        self.waiting += video.inputs.len();
        self.pending.push(video);
    }

    /// Whether a full batch waits.
    pub fn is_full(&self) -> bool {
        self.waiting >= self.batch
    }

    /// Runs every waiting input and returns the features of the waiting videos, in order.
    pub fn run(&mut self, model: &Model, dev: &Device) -> Result<Vec<VideoFeatures>> {
        let videos = std::mem::take(&mut self.pending);
        self.waiting = 0;
        let flat: Vec<(usize, &ModelInput)> = videos
            .iter()
            .enumerate()
            .flat_map(|(v, p)| p.inputs.iter().map(move |x| (v, x)))
            .collect();
        let mut rows: Vec<Vec<Vec<f32>>> = videos.iter().map(|_| Vec::new()).collect();
        let mut at = 0;
        while at < flat.len() {
            let shape = &flat[at].1.shape;
            let mut end = at + 1;
            while end < flat.len() && end - at < self.batch && &flat[end].1.shape == shape {
                end += 1;
            }
            let inputs: Vec<&ModelInput> = flat[at..end].iter().map(|(_, x)| *x).collect();
            for ((v, _), row) in flat[at..end].iter().zip(features(model, &inputs, dev)?) {
                rows[*v].push(row);
            }
            at = end;
        }
        Ok(videos
            .into_iter()
            .zip(rows)
            .map(|(p, windows)| VideoFeatures {
                feature: mean_rows(&windows),
                key: p.key,
                windows,
                padded: p.padded,
            })
            .collect())
    }
}

/// The model's `features` of same-shaped inputs, one row each.
pub fn features(model: &Model, inputs: &[&ModelInput], dev: &Device) -> Result<Vec<Vec<f32>>> {
    let Some(first) = inputs.first() else {
        return Ok(Vec::new());
    };
    let mut dims = vec![inputs.len()];
    dims.extend_from_slice(&first.shape);
    let mut data = Vec::with_capacity(inputs.len() * first.data.len());
    for x in inputs {
        data.extend_from_slice(&x.data);
    }
    let x = Tensor::from_vec(data, dims, dev)?;
    let mut out = model.embed(&ModelInputs {
        input: Some(x),
        ..Default::default()
    })?;
    let f = out
        .remove("features")
        .ok_or_else(|| candle_core::Error::Msg("the model gives no `features`".into()))?;
    let f = f.to_dtype(DType::F32)?;
    match f.dims() {
        [n, _] if *n == inputs.len() => f.to_vec2::<f32>(),
        d => candle_core::bail!(
            "the model's `features` have shape {d:?}; expected [{}, D]",
            inputs.len()
        ),
    }
}

/// The mean of equal-length rows, accumulated in f64 (one row comes back unchanged).
pub fn mean_rows(rows: &[Vec<f32>]) -> Vec<f32> {
    let Some(first) = rows.first() else {
        return Vec::new();
    };
    let mut sum = vec![0f64; first.len()];
    for r in rows {
        for (s, &x) in sum.iter_mut().zip(r) {
            *s += x as f64;
        }
    }
    let n = rows.len() as f64;
    sum.into_iter().map(|s| (s / n) as f32).collect()
}
