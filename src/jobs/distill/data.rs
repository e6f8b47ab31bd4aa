//! Distillation batches: random training clips of the labelled videos (the official sampling and
//! augmentation of the student's recipe) through the parallel, deterministic loader, each with
//! its label and, when the method uses audio, the video's audio-teacher feature.
//!
//! A video without a feature gets a zero vector, as the official loader does (a missing `.npy` or
//! a video without audio); the audio terms leave such rows out, while the video cross-entropy
//! still counts them.

use crate::data::clip_dataset::ClipDataset;
use crate::data::loader::{Loader, LoaderConfig};
use crate::data::teacher_features::TeacherFeatures;
use crate::data::transforms::ClipArray;
use crate::jobs::skipped::{train_clip_loader, TrainFailures};
use crate::train::job::TrainData;
use candle_core::{Device, Result, Tensor};

/// One micro-batch.
#[derive(Debug, Clone)]
pub struct DistillBatch {
    /// [B, 3, T, H, W], normalised as the student expects.
    pub clips: Tensor,
    /// [B] u32 class indices.
    pub labels: Tensor,
    /// [B, D] audio-teacher features (zero rows: no audio); `None` when the method uses no audio.
    pub audio: Option<Tensor>,
}

/// Every training video's audio feature, by sample index (`None`: no feature, a zero row).
pub struct AudioTable {
    pub dim: usize,
    pub rows: Vec<Option<Vec<f32>>>,
}

impl AudioTable {
    /// Looks every sample's video up in `features`; logs how many have none.
    pub fn new(features: &TeacherFeatures, data: &ClipDataset) -> Self {
        let rows: Vec<Option<Vec<f32>>> = data
            .samples()
            .iter()
            .map(|s| features.get(&s.video).map(<[f32]>::to_vec))
            .collect();
        let missing = rows.iter().filter(|r| r.is_none()).count();
        if missing > 0 {
            tracing::warn!(
                missing,
                videos = rows.len(),
                "training videos without an audio-teacher feature train with a zero vector (no audio), as the official loader"
            );
        }
        Self {
            dim: features.dim(),
            rows,
        }
    }

    /// The features of `indices` as [B, D], zero rows for missing ones.
    fn batch(&self, indices: &[usize], dev: &Device) -> Result<Tensor> {
        let mut data = vec![0f32; indices.len() * self.dim];
        for (row, &i) in indices.iter().enumerate() {
            if let Some(Some(f)) = self.rows.get(i) {
                data[row * self.dim..(row + 1) * self.dim].copy_from_slice(f);
            }
        }
        Tensor::from_vec(data, (indices.len(), self.dim), dev)
    }
}

/// The distillation batches of a training set.
pub struct DistillBatches {
    loader: Loader<(ClipArray, usize)>,
    audio: Option<AudioTable>,
    device: Device,
    failures: TrainFailures,
}

impl DistillBatches {
    pub fn new(
        data: ClipDataset,
        audio: Option<AudioTable>,
        cfg: LoaderConfig,
        device: Device,
    ) -> Self {
        let (loader, failures) = train_clip_loader(data, cfg);
        Self {
            loader,
            audio,
            device,
            failures,
        }
    }

    /// Videos that failed to load so far (left out with `--skip-bad`).
    pub fn failures(&self) -> TrainFailures {
        self.failures.clone()
    }
}

impl TrainData for DistillBatches {
    type Batch = DistillBatch;

    fn num_batches(&self) -> usize {
        self.loader.num_batches()
    }

    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<DistillBatch>> + '_>> {
        let dev = self.device.clone();
        let audio = self.audio.as_ref();
        Ok(Box::new(self.loader.epoch(epoch, start).map(
            move |batch| -> Result<DistillBatch> {
                let batch = batch?;
                let (clips, labels): (Vec<ClipArray>, Vec<usize>) = batch.items.into_iter().unzip();
                let labels: Vec<u32> = labels.into_iter().map(|l| l as u32).collect();
                let n = labels.len();
                Ok(DistillBatch {
                    clips: ClipArray::stack(&clips, &dev)?,
                    labels: Tensor::from_vec(labels, n, &dev)?,
                    audio: audio.map(|a| a.batch(&batch.indices, &dev)).transpose()?,
                })
            },
        )))
    }
}
