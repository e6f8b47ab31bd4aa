//! Video-level evaluation as the papers report it: every test view of a video through the model,
//! the softmax averaged over views, top-1 / top-5 / mean-class accuracy per fold, and the mean and
//! spread over folds.

use super::clip_recipe::recipe_for_model;
use super::dataset_spec::DatasetSpec;
use crate::data::clip_dataset::{ClipDataset, ClipRecipe};
use crate::data::loader::{BadSample, Loader, LoaderConfig, Skipped};
use crate::data::splits::Sample;
use crate::data::transforms::ClipArray;
use crate::eval::report::{EvalReport, FoldResult, Protocol, SkippedVideos};
use crate::eval::video_level::{ClassificationMetrics, VideoScores};
use crate::models::folder::ModelFolder;
use crate::models::model::Model;
use crate::util::progress::progress_bar;
use candle_core::{Device, Result, Tensor};
use std::sync::Arc;
use std::time::Instant;

/// How an evaluation runs (not what it computes).
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Views per forward pass (memory bound).
    pub views_per_batch: usize,
    /// Decoding threads.
    pub workers: usize,
    /// Count and report unreadable videos instead of stopping at the first.
    pub skip_bad: bool,
    /// Override the crop size of the model's preprocessing (XKD fine-tunes at 224).
    pub crop: Option<usize>,
    /// Override the number of test clips (XKD: 3).
    pub test_clips: Option<usize>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            views_per_batch: 9,
            workers: 2,
            skip_bad: false,
            crop: None,
            test_clips: None,
        }
    }
}

/// The outcome of one evaluation pass over a test set.
pub struct EvalRun {
    pub metrics: ClassificationMetrics,
    pub scores: VideoScores,
    /// Unreadable videos that were skipped (with `skip_bad`), with why.
    pub skipped: Skipped,
    pub seconds: f64,
}

/// Runs `logits` over every test view of every video of `data` and scores them per video.
pub fn evaluate_views(
    logits: &dyn Fn(&Tensor) -> Result<Tensor>,
    data: &ClipDataset,
    num_classes: usize,
    opts: &EvalOptions,
    dev: &Device,
    label: &str,
) -> Result<EvalRun> {
    let start = Instant::now();
    let shared = Arc::new(data.clone());
    let loader = Loader::new(
        data.len(),
        LoaderConfig {
            batch_size: 1,
            workers: opts.workers,
            prefetch_batches: 2 * opts.workers.max(1),
            shuffle: false,
            drop_last: false,
            seed: 0,
            bad_sample: BadSample::skip_if(opts.skip_bad),
        },
        Arc::new(move |i, _rng| shared.test_views(i)),
    );
    let mut scores = VideoScores::new(num_classes);
    let bar = progress_bar(data.len() as u64, label);
    let mut epoch = loader.epoch(0, 0);
    let mut done = 0usize;
    for batch in epoch.by_ref() {
        let batch = batch?;
        for (video, (views, label)) in batch.indices.iter().zip(batch.items) {
            let per_video = score_views(logits, &views, opts.views_per_batch.max(1), dev)?;
            scores.add_logits(*video, label, &per_video)?;
            done += 1;
            bar.set_position(done as u64);
        }
    }
    bar.finish_and_clear();
    let skipped = epoch.skipped().clone();
    if skipped.count > 0 {
        tracing::warn!("{}", skipped.summary());
    }
    Ok(EvalRun {
        metrics: scores.metrics()?,
        scores,
        skipped,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// `video: error` for each of the first skipped samples of `samples` (the loader keeps the first
/// [`Skipped::KEPT`] with their errors; the count says how many there were in all).
pub fn skipped_list(skipped: &Skipped, samples: &[Sample]) -> Vec<String> {
    skipped
        .first
        .iter()
        .map(|(i, e)| match samples.get(*i) {
            Some(s) => format!("{}: {e}", s.video.display()),
            None => format!("#{i}: {e}"),
        })
        .collect()
}

/// Logits [V, C] of one video's views, `chunk` views per forward pass.
fn score_views(
    logits: &dyn Fn(&Tensor) -> Result<Tensor>,
    views: &[ClipArray],
    chunk: usize,
    dev: &Device,
) -> Result<Tensor> {
    let parts = views
        .chunks(chunk)
        .map(|c| logits(&ClipArray::stack(c, dev)?))
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&parts, 0)
}

/// The logits function of a loaded classifier (an XKD fine-tuned ViT or a CCL R(2+1)D).
pub fn classifier_logits(model: &Model) -> Result<impl Fn(&Tensor) -> Result<Tensor> + '_> {
    match model {
        Model::XkdVideoClassifier(_) | Model::CclR2Plus1d(_) => {}
        _ => candle_core::bail!(
            "evaluation needs a video classifier (xkd-video-classifier or ccl-r2plus1d); \
             fine-tune a student first (`avkd finetune`), or use `avkd linear` for frozen features"
        ),
    }
    Ok(move |x: &Tensor| model.clip_output(x, "logits"))
}

/// `avkd eval`: a classifier folder on every fold asked for, and the report.
pub fn evaluate_folder(
    folder: &ModelFolder,
    spec: &DatasetSpec,
    opts: &EvalOptions,
    dev: &Device,
) -> Result<EvalReport> {
    let model = folder.load(dev)?;
    let logits = classifier_logits(&model)?;
    let recipe = recipe_for_model(&folder.preprocessor, opts.crop, opts.test_clips, spec.fps)?;
    let mut folds = Vec::new();
    for split in spec.load()? {
        check_classes(folder, &split.classes)?;
        let data = ClipDataset::new(&spec.video_root(), split.test.clone(), recipe.clone());
        let run = evaluate_views(
            &logits,
            &data,
            split.num_classes(),
            opts,
            dev,
            &format!("eval {}", split.name),
        )?;
        tracing::info!(
            split = %split.name,
            top1 = run.metrics.top1,
            top5 = run.metrics.top5,
            seconds = run.seconds,
            "evaluated"
        );
        let skipped = SkippedVideos {
            test: run.skipped.count,
            test_videos: skipped_list(&run.skipped, data.samples()),
            ..Default::default()
        };
        folds.push(FoldResult::with_skipped(
            split.fold.unwrap_or(0),
            run.metrics,
            skipped,
        ));
    }
    EvalReport::new(
        folder.dir.display().to_string(),
        spec.kind.name(),
        view_protocol(&recipe, "finetune"),
        folds,
    )
}

/// The protocol of a multi-view softmax evaluation with `recipe`.
pub fn view_protocol(recipe: &ClipRecipe, classifier: &str) -> Protocol {
    let (clips, crops) = recipe.views_per_video();
    Protocol {
        clips,
        crops,
        input_size: recipe.test.crop,
        classifier: classifier.to_string(),
        aggregation: "mean_softmax".to_string(),
        selection: None,
        extra: [(
            "frames".to_string(),
            serde_json::json!(recipe.sampling.frames()),
        )]
        .into_iter()
        .collect(),
    }
}

/// A classifier's class names (id2label) must be the split's, in order.
fn check_classes(folder: &ModelFolder, classes: &[String]) -> Result<()> {
    let Some(id2label) = &folder.config.id2label else {
        return Ok(());
    };
    if id2label.len() != classes.len() {
        candle_core::bail!(
            "{}: the model has {} classes, the dataset {}",
            folder.dir.display(),
            id2label.len(),
            classes.len()
        )
    }
    for (i, name) in classes.iter().enumerate() {
        if id2label.get(&i) != Some(name) {
            candle_core::bail!(
                "{}: class {i} is `{}` in the model and `{name}` in the dataset",
                folder.dir.display(),
                id2label.get(&i).map(String::as_str).unwrap_or("?")
            )
        }
    }
    Ok(())
}
