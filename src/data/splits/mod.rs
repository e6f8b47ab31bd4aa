//! Train/test splits of the action-recognition benchmarks: which videos, which labels, which fold.
//!
//! - UCF101: `classInd.txt`, `trainlist0N.txt`, `testlist0N.txt` ([`ucf101()`]);
//! - UCF51: CCL's benchmark, the 51 UCF101 classes that carry audio ([`ucf51()`]);
//! - HMDB51: the 153 files `<class>_test_splitN.txt` ([`hmdb51()`]);
//! - plain `path label` lists ([`plain_list()`]);
//! - for pre-training, Kinetics' CSV lists ([`kinetics()`]) and AudioSet's segment lists
//!   ([`audioset()`]), as a [`PretrainList`] (labels optional, missing videos listed apart).
//!
//! Every parser gives the same [`Split`]: class names, and train and test samples whose video paths
//! are relative to the video root (`<Class>/<video>.avi`, as the lists write them). What exists on
//! disk for a sample (the video file, or a folder of frames) is [`crate::data::media`]'s business;
//! [`Split::missing_videos`] uses it to list what is absent.

mod audioset;
mod csv;
mod hmdb51;
mod kinetics;
mod list_file;
mod plain;
mod pretrain_list;
mod ucf101;

pub use audioset::audioset;
pub use hmdb51::{hmdb51, hmdb51_classes};
pub use kinetics::kinetics;
pub use plain::plain_list;
pub use pretrain_list::{MissingVideo, PretrainList, PretrainSample};
pub use ucf101::{read_class_index, ucf101, ucf51, UCF51_CLASSES};

use crate::data::media::resolve_media;
use candle_core::Result;
use list_file::msg;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One labelled video.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// Relative to the video root, as the split list writes it (`ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi`).
    pub video: PathBuf,
    /// 0-based index into [`Split::classes`].
    pub label: usize,
}

/// The train and test samples of one fold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Split {
    /// What this is, for logs and reports: "ucf101 fold 1".
    pub name: String,
    /// 1, 2 or 3 for the benchmarks' folds; `None` for a plain list.
    pub fold: Option<u8>,
    pub classes: Vec<String>,
    pub train: Vec<Sample>,
    pub test: Vec<Sample>,
}

/// Which of the three official folds to use: one, or all three for per-fold evaluation and the mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    One(u8),
    All,
}

impl Fold {
    /// The fold numbers this stands for, each checked to be 1, 2 or 3.
    pub fn numbers(self) -> Result<Vec<u8>> {
        match self {
            Fold::All => Ok(vec![1, 2, 3]),
            Fold::One(n @ 1..=3) => Ok(vec![n]),
            Fold::One(n) => Err(msg(format!("fold must be 1, 2, 3 or all, found {n}"))),
        }
    }
}

impl FromStr for Fold {
    type Err = candle_core::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(Fold::All),
            "1" => Ok(Fold::One(1)),
            "2" => Ok(Fold::One(2)),
            "3" => Ok(Fold::One(3)),
            other => Err(msg(format!("fold must be 1, 2, 3 or all, found `{other}`"))),
        }
    }
}

impl fmt::Display for Fold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fold::One(n) => write!(f, "{n}"),
            Fold::All => f.write_str("all"),
        }
    }
}

/// The benchmarks with official split files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitFormat {
    Ucf101,
    Ucf51,
    Hmdb51,
}

impl FromStr for SplitFormat {
    type Err = candle_core::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ucf101" => Ok(SplitFormat::Ucf101),
            "ucf51" => Ok(SplitFormat::Ucf51),
            "hmdb51" => Ok(SplitFormat::Hmdb51),
            other => Err(msg(format!(
                "unknown dataset `{other}`: expected ucf101, ucf51 or hmdb51"
            ))),
        }
    }
}

/// The splits of `fold` (one, or all three in order) from the folder holding the split files
/// (`ucfTrainTestlist/` for UCF101 and UCF51, `testTrainMulti_7030_splits/` for HMDB51).
pub fn load_folds(format: SplitFormat, split_dir: &Path, fold: Fold) -> Result<Vec<Split>> {
    fold.numbers()?
        .into_iter()
        .map(|n| match format {
            SplitFormat::Ucf101 => ucf101(split_dir, n),
            SplitFormat::Ucf51 => ucf51(split_dir, n),
            SplitFormat::Hmdb51 => hmdb51(split_dir, n),
        })
        .collect()
}

/// How many missing videos an error message names before it just counts.
const MISSING_SHOWN: usize = 5;

impl Split {
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Train then test samples.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.train.iter().chain(self.test.iter())
    }

    /// The split limited to the named classes, relabelled 0.. in the order of `keep`. Every name
    /// must be one of this split's classes.
    pub fn restrict_classes(&self, keep: &[&str], name: &str) -> Result<Split> {
        let mut new_label = vec![None; self.classes.len()];
        for (new, wanted) in keep.iter().enumerate() {
            let old = self
                .classes
                .iter()
                .position(|c| c == wanted)
                .ok_or_else(|| {
                    msg(format!(
                        "{}: has no class `{wanted}` (it has {} classes)",
                        self.name,
                        self.classes.len()
                    ))
                })?;
            new_label[old] = Some(new);
        }
        let relabel = |samples: &[Sample]| -> Vec<Sample> {
            samples
                .iter()
                .filter_map(|s| {
                    new_label[s.label].map(|label| Sample {
                        video: s.video.clone(),
                        label,
                    })
                })
                .collect()
        };
        Ok(Split {
            name: name.to_string(),
            fold: self.fold,
            classes: keep.iter().map(|c| c.to_string()).collect(),
            train: relabel(&self.train),
            test: relabel(&self.test),
        })
    }

    /// The listed videos (train, then test) for which nothing usable exists under `video_root`:
    /// neither the video file nor a folder of frames (see [`resolve_media`]).
    pub fn missing_videos(&self, video_root: &Path) -> Vec<PathBuf> {
        self.samples()
            .filter(|s| resolve_media(video_root, &s.video).is_none())
            .map(|s| s.video.clone())
            .collect()
    }

    /// An error naming the missing videos (the first few, and how many in all) unless every listed
    /// video is found under `video_root`.
    pub fn require_videos(&self, video_root: &Path) -> Result<()> {
        let missing = self.missing_videos(video_root);
        if missing.is_empty() {
            return Ok(());
        }
        let shown: Vec<String> = missing
            .iter()
            .take(MISSING_SHOWN)
            .map(|p| p.display().to_string())
            .collect();
        Err(msg(format!(
            "{}: {} of {} listed videos are missing under {} (neither a video file nor a frame folder): {}{}",
            self.name,
            missing.len(),
            self.train.len() + self.test.len(),
            video_root.display(),
            shown.join(", "),
            if missing.len() > MISSING_SHOWN { ", ..." } else { "" }
        )))
    }

    /// The split without the samples missing under `video_root`, and the videos dropped (CCL's loader
    /// also skips missing videos rather than failing).
    pub fn without_missing(&self, video_root: &Path) -> (Split, Vec<PathBuf>) {
        let missing = self.missing_videos(video_root);
        let gone: std::collections::HashSet<&PathBuf> = missing.iter().collect();
        let keep = |s: &&Sample| !gone.contains(&s.video);
        let split = Split {
            name: self.name.clone(),
            fold: self.fold,
            classes: self.classes.clone(),
            train: self.train.iter().filter(keep).cloned().collect(),
            test: self.test.iter().filter(keep).cloned().collect(),
        };
        (split, missing)
    }
}
