//! `avkd extract`: one feature per video (and, with `per_window`, one per window) of any avkd model
//! over every video of a dataset's splits, written as a feature store (`data::feature_store`).
//!
//! Its first use is CCL's audio teacher: PANNs Cnn14_emb512 (`features` = ReLU(fc1), 512 values)
//! on each video's audio track at 32 kHz, which the CCL authors only released precomputed, with an
//! unknown segmenting policy: the whole track by default, fixed windows averaged as an option, and
//! the store's index says which (ccl.md §2.3, §6.4).
//!
//! Videos are decoded on `workers` threads by the ordered, deterministic loader, the forwards are
//! batched across videos on the calling thread, and the store is written shard by shard, so a run
//! stopped at any point resumes by running it again.

mod batcher;
mod inputs;

pub use batcher::{features, mean_rows};
pub use inputs::{InputPlan, ModelInput, Prepared};

use super::dataset_spec::DatasetSpec;
use crate::data::feature_store::{FeatureIndex, FeatureSource, FeatureStoreWriter};
use crate::data::loader::{BadSample, Loader, LoaderConfig};
use crate::models::folder::ModelFolder;
use crate::models::model::Model;
use crate::util::progress::progress_bar;
use batcher::{Batcher, PendingVideo};
use candle_core::{Device, Result};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Videos per shard by default: a few hundred 512-d features are a few hundred kB.
pub const DEFAULT_SHARD_SIZE: usize = 256;

/// One extraction run.
#[derive(Debug, Clone)]
pub struct ExtractJob {
    /// The model reference as given (`--model`), recorded in the index.
    pub model: String,
    /// Its resolved folder.
    pub model_dir: PathBuf,
    pub dataset: DatasetSpec,
    /// The feature store to write (or resume).
    pub out: PathBuf,
    /// Audio and image models: windows of this length, averaged, instead of the whole track
    /// (centre frame). Spectrogram models default to their own clip length.
    pub window_seconds: Option<f64>,
    /// Also store each window's feature (`<key>#windows`, [W, D]).
    pub per_window: bool,
    /// Decoding threads.
    pub workers: usize,
    /// Inputs (windows, views, frames) per forward pass.
    pub batch: usize,
    /// Record unreadable videos under `failed` instead of stopping at the first.
    pub skip_bad: bool,
    pub shard_size: usize,
    /// Stop after this many videos (the rest on a rerun).
    pub stop_after: Option<usize>,
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExtractSummary {
    pub out: PathBuf,
    /// Videos of the dataset's splits.
    pub listed: usize,
    /// Already in the store (skipped).
    pub already: usize,
    /// Features computed in this run.
    pub extracted: usize,
    pub no_audio: usize,
    pub failed: usize,
    /// Left for a later run (`stop_after`).
    pub remaining: usize,
    /// The whole run, loading and hashing the model included.
    pub seconds: f64,
    /// Videos (extracted, without audio or failed) per second of the extraction itself: decoding,
    /// forwards and writing, as the progress bar shows it.
    pub videos_per_s: f64,
    pub dim: usize,
    pub segmenting: String,
}

/// The store key of a listed video: its path relative to the video root without the extension,
/// `/`-separated (`ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01`).
pub fn video_key(video: &Path) -> String {
    video
        .with_extension("")
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every video of the spec's splits (train and test of each fold), one per key, sorted by key.
pub fn dataset_videos(spec: &DatasetSpec) -> Result<Vec<(String, PathBuf)>> {
    let mut videos = BTreeMap::new();
    for split in spec.load()? {
        for sample in split.train.iter().chain(&split.test) {
            videos
                .entry(video_key(&sample.video))
                .or_insert_with(|| sample.video.clone());
        }
    }
    Ok(videos.into_iter().collect())
}

/// The dataset as the command line gave it, for the index.
fn dataset_json(spec: &DatasetSpec) -> serde_json::Value {
    serde_json::json!({
        "kind": spec.kind.name(),
        "root": spec.root,
        "splits": spec.splits,
        "video_root": spec.video_root(),
        "fold": spec.fold.to_string(),
        "train_list": spec.train_list,
        "test_list": spec.test_list,
        "class_list": spec.class_list,
        "fps": spec.fps,
    })
}

/// The feature dimension, from one forward pass of a zero input.
fn feature_dim(model: &Model, plan: &InputPlan, dev: &Device) -> Result<usize> {
    let probe = plan.probe_input()?;
    let rows = features(model, &[&probe], dev)?;
    Ok(rows.first().map_or(0, Vec::len))
}

/// What made the features, as the index records it.
fn feature_source(
    job: &ExtractJob,
    folder: &ModelFolder,
    plan: &InputPlan,
    dim: usize,
) -> Result<FeatureSource> {
    let weights = folder.weights_path();
    let model_sha256 = crate::util::hash::sha256_hex(&weights)
        .map_err(|e| candle_core::Error::Msg(format!("hashing {}: {e}", weights.display())))?;
    Ok(FeatureSource {
        model: job.model.clone(),
        model_type: folder.config.model.model_type().to_string(),
        model_sha256,
        modality: plan.modality().to_string(),
        dim,
        segmenting: plan.segmenting().clone(),
        segmenting_text: plan.segmenting().describe(),
        reduce: "mean".into(),
        per_window: job.per_window,
        sample_rate: plan.sample_rate(),
        padding: plan.padding(),
    })
}

/// Runs `job` on `dev`: resumes the store at `job.out` (or starts it), extracts every video not
/// in it yet, and returns what was done. The store's index is the full record.
pub fn run_extract(job: &ExtractJob, dev: &Device) -> Result<ExtractSummary> {
    let start = Instant::now();
    let folder = ModelFolder::open(&job.model_dir)?;
    let model = folder.load(dev)?;
    let listed = dataset_videos(&job.dataset)?;
    let root = job.dataset.video_root();
    // The plan for the dimension probe needs no videos; the real one gets the ones to do.
    let probe_plan = InputPlan::new(
        &folder,
        &root,
        Vec::new(),
        job.window_seconds,
        job.dataset.fps,
    )?;
    let dim = feature_dim(&model, &probe_plan, dev)?;
    let source = feature_source(job, &folder, &probe_plan, dim)?;
    let segmenting = source.segmenting_text.clone();
    let mut writer =
        FeatureStoreWriter::open(&job.out, source, dataset_json(&job.dataset), job.shard_size)?;
    let mut todo: Vec<(String, PathBuf)> = listed
        .iter()
        .filter(|(key, _)| !writer.index().is_done(key))
        .cloned()
        .collect();
    let already = listed.len() - todo.len();
    let remaining = job.stop_after.map_or(0, |n| todo.len().saturating_sub(n));
    todo.truncate(todo.len() - remaining);
    tracing::info!(
        model = %job.model,
        model_type = folder.config.model.model_type(),
        dim,
        "extract: {} videos listed, {already} already in {}, {} to extract now{}; {segmenting}",
        listed.len(),
        job.out.display(),
        todo.len(),
        if remaining > 0 { format!(", {remaining} left for a later run") } else { String::new() },
    );
    let plan = InputPlan::new(
        &folder,
        &root,
        todo.iter().map(|(_, v)| v.clone()).collect(),
        job.window_seconds,
        job.dataset.fps,
    )?;
    let extracting = Instant::now();
    let counts = match extract_videos(job, &model, plan, &todo, &mut writer, dev) {
        Ok(c) => c,
        Err(e) => {
            // Keep what was computed before the error (a forward or a write that failed).
            if let Err(f) = writer.flush() {
                tracing::warn!("writing the features extracted before the error: {f}");
            }
            return Err(e);
        }
    };
    let index = writer.finish()?;
    let rate = todo.len() as f64 / extracting.elapsed().as_secs_f64().max(1e-9);
    let seconds = start.elapsed().as_secs_f64();
    let summary = ExtractSummary {
        out: job.out.clone(),
        listed: listed.len(),
        already,
        extracted: counts.extracted,
        no_audio: counts.no_audio,
        failed: counts.failed,
        remaining,
        seconds,
        videos_per_s: rate,
        dim,
        segmenting,
    };
    log_summary(&summary, &index);
    Ok(summary)
}

#[derive(Default)]
struct Counts {
    extracted: usize,
    no_audio: usize,
    failed: usize,
}

/// Decodes `todo` on the workers, runs the forwards in batches and adds every result to `writer`.
/// On a fatal error the features already computed are written first, so a rerun keeps them.
fn extract_videos(
    job: &ExtractJob,
    model: &Model,
    plan: InputPlan,
    todo: &[(String, PathBuf)],
    writer: &mut FeatureStoreWriter,
    dev: &Device,
) -> Result<Counts> {
    let plan = Arc::new(plan);
    let loader = Loader::new(
        todo.len(),
        LoaderConfig {
            batch_size: 1,
            workers: job.workers,
            prefetch_batches: 2 * job.workers.max(1),
            shuffle: false,
            drop_last: false,
            seed: 0,
            // Errors travel inside the items, so every failure is recorded, not only the first few.
            bad_sample: BadSample::Fail,
        },
        Arc::new(move |i, _rng| Ok(plan.prepare(i).map_err(|e| e.to_string()))),
    );
    let bar = progress_bar(todo.len() as u64, "extract");
    let mut batcher = Batcher::new(job.batch);
    let mut counts = Counts::default();
    let store = |batcher: &mut Batcher, writer: &mut FeatureStoreWriter, counts: &mut Counts| {
        for v in batcher.run(model, dev)? {
            let windows = job.per_window.then_some(v.windows);
            writer.add(&v.key, v.feature, windows, v.padded)?;
            counts.extracted += 1;
            bar.inc(1);
        }
        Ok::<(), candle_core::Error>(())
    };
    for batch in loader.epoch(0, 0) {
        let batch = batch?;
        for (i, item) in batch.indices.iter().zip(batch.items) {
            let (key, video) = &todo[*i];
            match item {
                Ok(Prepared::Inputs { inputs, padded }) => batcher.push(PendingVideo {
                    key: key.clone(),
                    inputs,
                    padded,
                }),
                Ok(Prepared::NoAudio(why)) => {
                    tracing::debug!("{key}: no audio ({why})");
                    writer.add_no_audio(key);
                    counts.no_audio += 1;
                    bar.inc(1);
                }
                Err(e) if job.skip_bad => {
                    tracing::warn!("{}: skipped: {e}", video.display());
                    writer.add_failed(key, &e);
                    counts.failed += 1;
                    bar.inc(1);
                }
                Err(e) => {
                    store(&mut batcher, writer, &mut counts)?;
                    writer.flush()?;
                    candle_core::bail!(
                        "{}: {e} (the {} features extracted so far are in {}; pass --skip-bad to \
                         record unreadable videos and go on)",
                        video.display(),
                        writer.index().videos.len(),
                        writer.dir().display()
                    )
                }
            }
            if batcher.is_full() {
                store(&mut batcher, writer, &mut counts)?;
            }
        }
    }
    store(&mut batcher, writer, &mut counts)?;
    bar.finish_and_clear();
    Ok(counts)
}

fn log_summary(s: &ExtractSummary, index: &FeatureIndex) {
    tracing::info!(
        "extract: {} features computed in {:.1} s ({:.2} videos/s), {} without audio, {} failed, \
         {} already there; the store holds {} features, {} without audio, {} failed",
        s.extracted,
        s.seconds,
        s.videos_per_s,
        s.no_audio,
        s.failed,
        s.already,
        index.videos.len(),
        index.no_audio.len(),
        index.failed.len()
    );
}
