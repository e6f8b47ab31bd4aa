//! Video-level accuracy from several views (clips × crops) per video, as XKD, CCL and MMAction2
//! report it: the per-view softmax scores are averaged over a video's views and the mean decides the
//! video's prediction (xkd.md §5.0, ccl.md §5.1). SVM decision values are averaged raw instead.
//!
//! Ties are broken towards the lower class index (`torch.argmax` returns the first maximum; CPU
//! `torch.topk` does not document its tie order, and exact ties of averaged softmax scores only occur
//! with degenerate logits). Clip-level accuracy (CCL's per-epoch validation) is the same computation
//! with every clip registered as its own video.

use candle_core::{DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a video's accumulated scores are: softmax probabilities or raw scores. The two must not be
/// mixed for one video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScoreKind {
    Softmax,
    Raw,
}

#[derive(Debug, Clone)]
struct VideoEntry {
    label: usize,
    /// Sum over views, in f64 so that the order of accumulation barely matters.
    sum: Vec<f64>,
    views: usize,
    kind: ScoreKind,
}

/// Scores accumulated per video over any number of calls.
#[derive(Debug, Clone)]
pub struct VideoScores {
    num_classes: usize,
    videos: BTreeMap<usize, VideoEntry>,
}

/// One video's prediction: its label and the `k` best classes with their mean scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoPrediction {
    pub video: usize,
    pub label: usize,
    pub topk: Vec<(usize, f32)>,
}

/// Video-level accuracies (fractions in [0, 1], not percentages).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    pub top1: f64,
    /// Top-5, or top-`C` when there are fewer than 5 classes.
    pub top5: f64,
    /// Mean over the classes present in the test set of the per-class top-1 recall.
    pub mean_class: f64,
    pub num_videos: usize,
    /// Top-1 recall per class; `None` for classes with no test video.
    pub per_class: Vec<Option<f64>>,
    /// `confusion[label][predicted]` counts of top-1 predictions.
    pub confusion: Vec<Vec<u32>>,
}

/// Class indices sorted by decreasing score; equal scores keep the lower index first.
fn ranked(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // A stable sort on the score alone keeps ties in index order.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

impl VideoScores {
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            videos: BTreeMap::new(),
        }
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Number of videos seen so far.
    pub fn len(&self) -> usize {
        self.videos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.videos.is_empty()
    }

    /// Adds the logits of one or more views of `video`: `[V, C]` (or `[C]` for one view). Each view
    /// goes through a softmax and the probabilities are accumulated, so the video's score is the
    /// mean of the per-view softmax, as the papers compute it.
    pub fn add_logits(&mut self, video: usize, label: usize, logits: &Tensor) -> Result<()> {
        let logits = match logits.rank() {
            1 => logits.unsqueeze(0)?,
            2 => logits.clone(),
            _ => candle_core::bail!(
                "video {video}: logits should be [views, {}], got shape {:?}",
                self.num_classes,
                logits.dims()
            ),
        };
        let (views, classes) = logits.dims2()?;
        if classes != self.num_classes || views == 0 {
            candle_core::bail!(
                "video {video}: logits should be [views >= 1, {}], got shape {:?}",
                self.num_classes,
                logits.dims()
            )
        }
        let logits = logits.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let probs = candle_nn::ops::softmax_last_dim(&logits)?.to_vec2::<f32>()?;
        let rows = logits.to_vec2::<f32>()?;
        if rows.iter().flatten().any(|v| !v.is_finite()) {
            candle_core::bail!("video {video}: logits contain NaN or infinite values")
        }
        let entry = self.entry(video, label, ScoreKind::Softmax)?;
        for row in &probs {
            for (s, &p) in entry.sum.iter_mut().zip(row) {
                *s += p as f64;
            }
        }
        entry.views += views;
        Ok(())
    }

    /// Adds one view's final scores (e.g. SVM decision values), averaged raw with the video's other
    /// views.
    pub fn add_scores(&mut self, video: usize, label: usize, scores: &[f32]) -> Result<()> {
        if scores.len() != self.num_classes {
            candle_core::bail!(
                "video {video}: expected {} scores, got {}",
                self.num_classes,
                scores.len()
            )
        }
        if scores.iter().any(|v| !v.is_finite()) {
            candle_core::bail!("video {video}: scores contain NaN or infinite values")
        }
        let entry = self.entry(video, label, ScoreKind::Raw)?;
        for (s, &v) in entry.sum.iter_mut().zip(scores) {
            *s += v as f64;
        }
        entry.views += 1;
        Ok(())
    }

    /// The entry of `video`, created on first use; checks the label and score kind against earlier
    /// calls.
    fn entry(&mut self, video: usize, label: usize, kind: ScoreKind) -> Result<&mut VideoEntry> {
        let n = self.num_classes;
        if n == 0 {
            candle_core::bail!("VideoScores: no classes (num_classes = 0)")
        }
        if label >= n {
            candle_core::bail!("video {video}: label {label} out of range for {n} classes")
        }
        let entry = self.videos.entry(video).or_insert_with(|| VideoEntry {
            label,
            sum: vec![0.0; n],
            views: 0,
            kind,
        });
        if entry.label != label {
            candle_core::bail!(
                "video {video}: label {label} differs from the label {} given with its earlier views",
                entry.label
            )
        }
        if entry.kind != kind {
            candle_core::bail!("video {video}: logits and raw scores mixed for one video")
        }
        Ok(entry)
    }

    fn mean_scores(entry: &VideoEntry) -> Vec<f64> {
        let v = entry.views as f64;
        entry.sum.iter().map(|s| s / v).collect()
    }

    /// Video-level top-1, top-5, mean-class accuracy, per-class recall and confusion matrix.
    /// Fails when no video has been added.
    pub fn metrics(&self) -> Result<ClassificationMetrics> {
        let n = self.num_classes;
        if self.videos.is_empty() {
            candle_core::bail!("video-level metrics: no videos were scored")
        }
        let k5 = n.min(5);
        let mut confusion = vec![vec![0u32; n]; n];
        let (mut top1, mut top5) = (0usize, 0usize);
        for entry in self.videos.values() {
            let order = ranked(&Self::mean_scores(entry));
            confusion[entry.label][order[0]] += 1;
            top1 += (order[0] == entry.label) as usize;
            top5 += order[..k5].contains(&entry.label) as usize;
        }
        let per_class: Vec<Option<f64>> = confusion
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let total: u32 = row.iter().sum();
                (total > 0).then(|| row[c] as f64 / total as f64)
            })
            .collect();
        let present: Vec<f64> = per_class.iter().flatten().copied().collect();
        let num_videos = self.videos.len();
        Ok(ClassificationMetrics {
            top1: top1 as f64 / num_videos as f64,
            top5: top5 as f64 / num_videos as f64,
            mean_class: present.iter().sum::<f64>() / present.len() as f64,
            num_videos,
            per_class,
            confusion,
        })
    }

    /// The `k` (at most `C`) best classes of every video with their mean scores, by video id.
    pub fn predictions(&self, k: usize) -> Vec<VideoPrediction> {
        self.videos
            .iter()
            .map(|(&video, entry)| {
                let mean = Self::mean_scores(entry);
                let topk = ranked(&mean)
                    .into_iter()
                    .take(k.min(self.num_classes))
                    .map(|c| (c, mean[c] as f32))
                    .collect();
                VideoPrediction {
                    video,
                    label: entry.label,
                    topk,
                }
            })
            .collect()
    }
}
