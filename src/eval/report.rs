//! Evaluation reports: per-fold video-level metrics, their mean and (population) standard deviation,
//! as JSON and as a table in the style of MMAction2's logs.

use super::video_level::ClassificationMetrics;
use candle_core::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// How the numbers were obtained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    /// Temporal clips per test video; `None` when it follows the video's length (CCL: every
    /// non-overlapping window).
    pub clips: Option<usize>,
    /// Spatial crops per clip.
    pub crops: usize,
    /// Side of the square network input, in pixels.
    pub input_size: usize,
    /// `finetune`, `linear` (trained linear head) or `svm`.
    pub classifier: String,
    /// How the views of a video are combined, e.g. `mean_softmax` or `mean_decision`.
    pub aggregation: String,
    /// How a hyper-parameter (the SVM's C) was chosen, e.g. `test_set (paper protocol)`; `None` when
    /// nothing was selected.
    #[serde(default)]
    pub selection: Option<String>,
    /// Anything else worth recording (C grid, epochs, ...).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The videos of a fold left out because they could not be read (`--skip-bad`), with why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SkippedVideos {
    /// Test videos the evaluation went without (its accuracies are over the others).
    pub test: usize,
    /// Training videos left out of training.
    pub train: usize,
    /// `video: error` of the first skipped test videos.
    pub test_videos: Vec<String>,
    /// `video: error` of the first skipped training videos.
    pub train_videos: Vec<String>,
}

/// The metrics of one split (fold) of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldResult {
    pub fold: u8,
    pub metrics: ClassificationMetrics,
    /// Videos skipped in all (test and training), 0 when none was.
    #[serde(default)]
    pub skipped: usize,
    #[serde(default)]
    pub skipped_videos: SkippedVideos,
}

impl FoldResult {
    /// A fold that skipped nothing.
    pub fn new(fold: u8, metrics: ClassificationMetrics) -> Self {
        Self::with_skipped(fold, metrics, SkippedVideos::default())
    }

    pub fn with_skipped(fold: u8, metrics: ClassificationMetrics, skipped: SkippedVideos) -> Self {
        Self {
            fold,
            metrics,
            skipped: skipped.test + skipped.train,
            skipped_videos: skipped,
        }
    }

    /// Whether its accuracies leave test videos out.
    pub fn evaluation_incomplete(&self) -> bool {
        self.skipped_videos.test > 0
    }
}

/// Top-1, top-5 and mean-class accuracy (fractions).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub top1: f64,
    pub top5: f64,
    pub mean_class: f64,
}

/// Results over folds, with their mean and standard deviation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub model: String,
    pub dataset: String,
    pub protocol: Protocol,
    pub folds: Vec<FoldResult>,
    pub mean: Summary,
    /// Population standard deviation over folds (divided by the number of folds).
    pub std: Summary,
    /// Delta degrees of freedom of `std`: always 0.
    pub std_ddof: u8,
}

/// Mean and population standard deviation (ddof 0).
fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

impl EvalReport {
    /// Builds a report and computes the mean ± std over `folds` (at least one, distinct fold
    /// numbers).
    pub fn new(
        model: impl Into<String>,
        dataset: impl Into<String>,
        protocol: Protocol,
        folds: Vec<FoldResult>,
    ) -> Result<Self> {
        if folds.is_empty() {
            candle_core::bail!("evaluation report: no folds")
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &folds {
            if !seen.insert(f.fold) {
                candle_core::bail!("evaluation report: fold {} appears twice", f.fold)
            }
        }
        let column = |get: fn(&ClassificationMetrics) -> f64| {
            mean_std(&folds.iter().map(|f| get(&f.metrics)).collect::<Vec<_>>())
        };
        let (top1, top5, mean_class) = (
            column(|m| m.top1),
            column(|m| m.top5),
            column(|m| m.mean_class),
        );
        Ok(Self {
            model: model.into(),
            dataset: dataset.into(),
            protocol,
            folds,
            mean: Summary {
                top1: top1.0,
                top5: top5.0,
                mean_class: mean_class.0,
            },
            std: Summary {
                top1: top1.1,
                top5: top5.1,
                mean_class: mean_class.1,
            },
            std_ddof: 0,
        })
    }

    /// Pretty-printed JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| candle_core::Error::Msg(format!("evaluation report to JSON: {e}")))
    }

    /// Writes the JSON report to `path` atomically (temporary file + rename).
    pub fn write_json_atomic(&self, path: &Path) -> Result<()> {
        let mut json = self.to_json()?;
        json.push('\n');
        crate::util::atomic::write_atomic(path, json.as_bytes())
    }

    /// Reads a report written by [`EvalReport::write_json_atomic`].
    pub fn read_json(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            candle_core::Error::Msg(format!("reading evaluation report {}: {e}", path.display()))
        })?;
        serde_json::from_str(&text).map_err(|e| {
            candle_core::Error::Msg(format!("parsing evaluation report {}: {e}", path.display()))
        })
    }
}

impl EvalReport {
    /// One line per fold that skipped videos; `*` marks folds evaluated without some test videos.
    fn write_skipped(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in self.folds.iter().filter(|r| r.skipped > 0) {
            let s = &r.skipped_videos;
            let mark = if r.evaluation_incomplete() { "*" } else { " " };
            write!(
                f,
                "\n{mark} fold {}: {} unreadable test and {} training videos skipped",
                r.fold, s.test, s.train
            )?;
            let listed: Vec<&str> = s
                .test_videos
                .iter()
                .chain(&s.train_videos)
                .map(String::as_str)
                .collect();
            if !listed.is_empty() {
                write!(f, " ({})", listed.join("; "))?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for EvalReport {
    /// A table with one row per fold and, over several folds, a `mean ± std` row; accuracies in
    /// percent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.protocol;
        writeln!(f, "{} on {}", self.model, self.dataset)?;
        write!(
            f,
            "protocol: {} · {} clips × {} crops · {} px · {}",
            p.classifier,
            p.clips
                .map(|c| c.to_string())
                .unwrap_or_else(|| "all".to_string()),
            p.crops,
            p.input_size,
            p.aggregation
        )?;
        if let Some(sel) = &p.selection {
            write!(f, " · selection: {sel}")?;
        }
        writeln!(f)?;
        write!(
            f,
            "{:<6} {:>8} {:>17} {:>17} {:>17}",
            "fold", "videos", "top1_acc", "top5_acc", "mean_class_acc"
        )?;
        for r in &self.folds {
            let m = &r.metrics;
            let mark = if r.evaluation_incomplete() { "*" } else { "" };
            write!(
                f,
                "\n{:<6} {:>8} {:>17.2} {:>17.2} {:>17.2}",
                format!("{}{mark}", r.fold),
                m.num_videos,
                100.0 * m.top1,
                100.0 * m.top5,
                100.0 * m.mean_class
            )?;
        }
        self.write_skipped(f)?;
        // With one fold the mean is that fold: no summary rows.
        if self.folds.len() < 2 {
            return Ok(());
        }
        let pm = |mean: f64, std: f64| format!("{:.2} ± {:.2}", 100.0 * mean, 100.0 * std);
        write!(
            f,
            "\n{:<6} {:>8} {:>17} {:>17} {:>17}",
            "mean",
            "",
            pm(self.mean.top1, self.std.top1),
            pm(self.mean.top5, self.std.top5),
            pm(self.mean.mean_class, self.std.mean_class)
        )?;
        write!(f, "\n(std over {} folds, ddof 0)", self.folds.len())
    }
}
