//! The videos a job leaves out, for its report: those missing on disk (refused unless
//! `--skip-bad`) and those that failed to load while training.

use crate::data::clip_dataset::ClipDataset;
use crate::data::loader::{Loader, LoaderConfig, Skipped};
use crate::data::splits::Split;
use crate::data::transforms::ClipArray;
use crate::eval::report::SkippedVideos;
use crate::nn::rng::SeededRng;
use candle_core::Result;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The training videos that failed to load, by sample index, with why (shared with the loader's
/// threads).
pub type TrainFailures = Arc<Mutex<BTreeMap<usize, String>>>;

/// `split` without the videos missing under `video_root` — an error naming them unless
/// `skip_bad` — and what was left out, as test and training counts.
pub fn present_videos(
    split: &Split,
    video_root: &Path,
    skip_bad: bool,
) -> Result<(Split, SkippedVideos)> {
    let (present, missing) = split.without_missing(video_root);
    let mut skipped = SkippedVideos::default();
    if missing.is_empty() {
        return Ok((present, skipped));
    }
    if !skip_bad {
        split.require_videos(video_root)?;
    }
    tracing::warn!(
        count = missing.len(),
        first = %missing[0].display(),
        "listed videos missing on disk are left out (--skip-bad)"
    );
    for video in &missing {
        let line = format!("{}: missing", video.display());
        if split.test.iter().any(|s| &s.video == video) {
            skipped.test += 1;
            skipped.test_videos.push(line);
        } else {
            skipped.train += 1;
            skipped.train_videos.push(line);
        }
    }
    Ok((present, skipped))
}

/// Adds the training videos of `split` that failed to load to `skipped`.
pub fn add_train_failures(skipped: &mut SkippedVideos, failures: &TrainFailures, split: &Split) {
    let failed = failures.lock().unwrap_or_else(|p| p.into_inner());
    skipped.train += failed.len();
    skipped.train_videos.extend(
        failed
            .iter()
            .take(Skipped::KEPT)
            .map(|(&i, e)| format!("{}: {e}", split.train[i].video.display())),
    );
}

/// A loader of random training clips of `data`, and the record of the videos that fail to load
/// (with `BadSample::Skip` they leave their batch; the record says which and why).
pub fn train_clip_loader(
    data: ClipDataset,
    cfg: LoaderConfig,
) -> (Loader<(ClipArray, usize)>, TrainFailures) {
    let data = Arc::new(data);
    let failures: TrainFailures = Arc::default();
    let record = failures.clone();
    let loader = Loader::new(
        data.len(),
        cfg,
        Arc::new(move |i, rng: &mut SeededRng| {
            data.train_clip(i, rng).inspect_err(|e| {
                let mut failed = record.lock().unwrap_or_else(|p| p.into_inner());
                failed.insert(i, e.to_string());
            })
        }),
    );
    (loader, failures)
}
