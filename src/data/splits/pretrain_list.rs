//! A pre-training dataset list: the listed videos found on disk, with their labels when the list
//! has any, and the listed videos that were not found, kept apart so a job can count and report
//! them (never dropped unseen).
//!
//! Listed names are looked up under the video root as a container (`<name>.<ext>`, any of
//! [`VIDEO_EXTENSIONS`]) or a frame folder (`<name>/`); a sample's `video` is the path found,
//! relative to the root, which [`crate::data::media::resolve_media`] (and so the loaders) resolve
//! as is.

use super::Sample;
use crate::data::media::VIDEO_EXTENSIONS;
use candle_core::Result;
use std::path::{Path, PathBuf};

/// One video found for a list entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PretrainSample {
    /// Relative to the video root: `abseiling/0347ZoDXyP0_000095_000105.mp4`, or a frame folder.
    pub video: PathBuf,
    /// Indices into [`PretrainList::classes`]; empty when the list has no labels.
    pub labels: Vec<usize>,
}

/// A list entry with no video on disk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MissingVideo {
    /// 1-based line of the list file.
    pub line: usize,
    /// The names looked for, relative to the video root, without extension
    /// (`abseiling/0347ZoDXyP0_000095_000105`, ...).
    pub looked_for: Vec<PathBuf>,
}

/// A parsed pre-training list.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PretrainList {
    /// What this is, for logs: "kinetics train.csv".
    pub name: String,
    /// Class names; empty when the list has no labels.
    pub classes: Vec<String>,
    pub samples: Vec<PretrainSample>,
    pub missing: Vec<MissingVideo>,
}

/// How many missing entries [`PretrainList::missing_summary`] names.
const MISSING_SHOWN: usize = 5;

impl PretrainList {
    /// Entries listed (found or not).
    pub fn listed(&self) -> usize {
        self.samples.len() + self.missing.len()
    }

    /// One line for a log: "kinetics train.csv: 3 of 240 listed videos are missing under <root>:
    /// line 4 (abseiling/x_000001_000011), ...". Empty when nothing is missing.
    pub fn missing_summary(&self, root: &Path) -> String {
        if self.missing.is_empty() {
            return String::new();
        }
        let shown: Vec<String> = self
            .missing
            .iter()
            .take(MISSING_SHOWN)
            .map(|m| {
                let first = m.looked_for.first().map(|p| p.display().to_string());
                format!("line {} ({})", m.line, first.unwrap_or_default())
            })
            .collect();
        format!(
            "{}: {} of {} listed videos are missing under {} (no video file or frame folder): {}{}",
            self.name,
            self.missing.len(),
            self.listed(),
            root.display(),
            shown.join(", "),
            if self.missing.len() > MISSING_SHOWN {
                ", ..."
            } else {
                ""
            }
        )
    }

    /// The samples as single-label [`Sample`]s (for the jobs that take a [`super::Split`]): an
    /// error naming the first video that has no label or more than one.
    pub fn single_label_samples(&self) -> Result<Vec<Sample>> {
        self.samples
            .iter()
            .map(|s| match s.labels.as_slice() {
                [label] => Ok(Sample {
                    video: s.video.clone(),
                    label: *label,
                }),
                other => Err(candle_core::Error::Msg(format!(
                    "{}: {} has {} labels, expected exactly one",
                    self.name,
                    s.video.display(),
                    other.len()
                ))),
            })
            .collect()
    }
}

/// The first of `names` (relative, without extension) that exists under `root` as a container
/// with one of [`VIDEO_EXTENSIONS`] or as a frame folder, relative to `root`. Names are tried in
/// order, each as a folder first. Folders that do not exist are skipped with one check.
pub(super) fn find_listed(root: &Path, names: &[PathBuf]) -> Option<PathBuf> {
    for name in names {
        let parent = name.parent().unwrap_or(Path::new(""));
        let dir = root.join(parent);
        if !dir.is_dir() {
            continue;
        }
        let file_name = name.file_name()?.to_str()?;
        if dir.join(file_name).is_dir() {
            return Some(name.clone());
        }
        for ext in VIDEO_EXTENSIONS {
            let with_ext = format!("{file_name}.{ext}");
            if dir.join(&with_ext).is_file() {
                return Some(parent.join(with_ext));
            }
        }
    }
    None
}

/// The distinct names, sorted (XKD's Kinetics loader orders its classes by
/// `sorted(os.listdir(root))`).
pub(super) fn sorted_classes<'a>(labels: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut classes: Vec<String> = labels.map(str::to_string).collect();
    classes.sort();
    classes.dedup();
    classes
}
