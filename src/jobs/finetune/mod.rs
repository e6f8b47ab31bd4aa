//! `avkd finetune`: a student fine-tuned on every fold asked for, the paper's way — random clips
//! with the paper's augmentation through the parallel loader, the method's optimiser and schedule,
//! video-level multi-view evaluation every few epochs — then one report over the folds.
//!
//! Each fold writes `<out>/fold<N>/{last,best}/` (model folders with trainer state),
//! `metrics.jsonl` and `curves.svg`; the report over folds is `<out>/eval_report.json`.

pub mod augment;
pub mod config;
pub mod model;
pub mod optim;
pub mod training;

use super::clip_recipe::recipe_for_model;
use super::dataset_spec::DatasetSpec;
use super::evaluate::{evaluate_views, skipped_list, view_protocol, EvalOptions};
use super::skipped::{add_train_failures, present_videos, train_clip_loader, TrainFailures};
use crate::data::clip_dataset::{ClipDataset, ClipRecipe};
use crate::data::loader::{BadSample, Loader, LoaderConfig};
use crate::data::splits::Split;
use crate::data::transforms::mixup::Mixup;
use crate::data::transforms::ClipArray;
use crate::eval::report::{EvalReport, FoldResult, SkippedVideos};
use crate::eval::video_level::ClassificationMetrics;
use crate::jobs::finetune::config::FinetuneConfig;
use crate::jobs::finetune::model::{FinetuneModel, FinetuneModelOptions};
use crate::jobs::finetune::training::{
    finetune, Batch, EvalOutcome, FinetuneSummary, RunOptions, TrainData,
};
use crate::models::folder::ModelFolder;
use crate::nn::param_store::ParamStore;
use crate::nn::rng::SeededRng;
use crate::train::plot::plot_metrics;
use crate::train::train_state::recover_checkpoint;
use candle_core::{DType, Device, Result, Tensor};
use std::path::PathBuf;

/// Everything `avkd finetune` needs.
#[derive(Debug, Clone)]
pub struct FinetuneJob {
    /// The starting model folder (a student, or a classifier to continue).
    pub model: PathBuf,
    pub dataset: DatasetSpec,
    pub config: FinetuneConfig,
    pub out: PathBuf,
    /// Continue each fold from `<out>/fold<N>/last` when it exists.
    pub resume: bool,
    /// Stop each fold after this many epochs (to continue later with `resume`).
    pub stop_after_epochs: Option<usize>,
    /// Decoding threads.
    pub workers: usize,
    pub skip_bad: bool,
    /// Training and test crop (XKD: 224; default: the model's).
    pub crop: Option<usize>,
    /// Test clips per video (XKD: 3).
    pub test_clips: Option<usize>,
    /// Views per forward pass at evaluation.
    pub eval_views_per_batch: usize,
}

/// One fold's outcome.
pub struct FoldRun {
    pub fold: u8,
    pub out_dir: PathBuf,
    pub summary: FinetuneSummary,
    /// The video-level metrics of the final evaluation (the last epoch's model).
    pub last: ClassificationMetrics,
    /// Videos left out (`--skip-bad`): missing or unreadable, in training and in the final
    /// evaluation.
    pub skipped: SkippedVideos,
    pub curves: Option<PathBuf>,
}

/// The batches of a [`Loader`] over training clips, stacked onto a device.
struct LoaderBatches {
    loader: Loader<(ClipArray, usize)>,
    device: Device,
}

impl TrainData for LoaderBatches {
    type Batch = Batch;

    fn num_batches(&self) -> usize {
        self.loader.num_batches()
    }

    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<Batch>> + '_>> {
        let dev = self.device.clone();
        Ok(Box::new(self.loader.epoch(epoch, start).map(
            move |batch| -> Result<Batch> {
                let (clips, labels): (Vec<ClipArray>, Vec<usize>) =
                    batch?.items.into_iter().unzip();
                Ok(Batch {
                    clips: ClipArray::stack(&clips, &dev)?,
                    labels,
                })
            },
        )))
    }
}

/// Fine-tunes and evaluates on every fold of `job.dataset`; returns the report over folds.
pub fn run_finetune(job: &FinetuneJob, dev: &Device) -> Result<(EvalReport, Vec<FoldRun>)> {
    job.config.validate()?;
    let folder = ModelFolder::open(&job.model)?;
    let crop = job.crop.or(folder.preprocessor.crop_size);
    let mut recipe = recipe_for_model(&folder.preprocessor, crop, job.test_clips, job.dataset.fps)?;
    job.config.augment.apply_to(&mut recipe.train);
    let splits = job.dataset.load()?;
    let mut runs = Vec::new();
    for split in &splits {
        runs.push(run_fold(job, &folder, split, &recipe, crop, dev)?);
    }
    let folds = runs
        .iter()
        .map(|r| FoldResult::with_skipped(r.fold, r.last.clone(), r.skipped.clone()))
        .collect();
    let report = EvalReport::new(
        job.model.display().to_string(),
        job.dataset.kind.name(),
        view_protocol(&recipe, "finetune"),
        folds,
    )?;
    report.write_json_atomic(&job.out.join("eval_report.json"))?;
    Ok((report, runs))
}

/// The training batches of a fold through the parallel loader; failures are recorded.
fn train_batches(
    job: &FinetuneJob,
    train: &Split,
    recipe: &ClipRecipe,
    dev: &Device,
) -> Result<(LoaderBatches, TrainFailures)> {
    let cfg = &job.config;
    let data = ClipDataset::new(
        &job.dataset.video_root(),
        train.train.clone(),
        recipe.clone(),
    );
    let (loader, failures) = train_clip_loader(
        data,
        LoaderConfig {
            batch_size: cfg.batch_size,
            workers: job.workers,
            prefetch_batches: 2,
            shuffle: true,
            drop_last: cfg.drop_last,
            seed: cfg.seed,
            bad_sample: BadSample::skip_if(job.skip_bad),
        },
    );
    if loader.num_batches() == 0 {
        candle_core::bail!(
            "{}: {} training videos make no batch of {}{}",
            train.name,
            loader.len(),
            cfg.batch_size,
            if cfg.drop_last {
                " with drop_last = true (set --set drop_last=false or a smaller batch_size)"
            } else {
                ""
            }
        )
    }
    let batches = LoaderBatches {
        loader,
        device: dev.clone(),
    };
    Ok((batches, failures))
}

fn run_fold(
    job: &FinetuneJob,
    folder: &ModelFolder,
    split: &Split,
    recipe: &ClipRecipe,
    crop: Option<usize>,
    dev: &Device,
) -> Result<FoldRun> {
    let cfg = &job.config;
    let fold = split.fold.unwrap_or(0);
    let out_dir = job.out.join(match split.fold {
        Some(n) => format!("fold{n}"),
        None => "list".to_string(),
    });
    let (train_split, mut skipped) =
        present_videos(split, &job.dataset.video_root(), job.skip_bad)?;
    let num_classes = split.num_classes();
    let store = ParamStore::new(cfg.seed, DType::F32, dev);
    let model = FinetuneModel::from_model_folder(
        folder,
        &FinetuneModelOptions::from_config(cfg, num_classes, crop),
        &store,
    )?;
    tracing::info!(
        split = %split.name,
        train = train_split.train.len(),
        test = train_split.test.len(),
        params = store.num_params(),
        "fine-tuning"
    );
    let (mut batches, train_failures) = train_batches(job, &train_split, recipe, dev)?;
    let test_data = ClipDataset::new(
        &job.dataset.video_root(),
        train_split.test.clone(),
        recipe.clone(),
    );
    let eval_opts = EvalOptions {
        views_per_batch: job.eval_views_per_batch,
        workers: job.workers,
        skip_bad: job.skip_bad,
        crop,
        test_clips: job.test_clips,
    };
    let mut last = None;
    let mut evaluate = |m: &FinetuneModel, epoch_number: usize| -> Result<EvalOutcome> {
        let logits = |x: &Tensor| m.logits_t(x, None);
        let label = format!("eval epoch {epoch_number}");
        let run = evaluate_views(&logits, &test_data, num_classes, &eval_opts, dev, &label)?;
        let mt = &run.metrics;
        let json = serde_json::json!({
            "top1": mt.top1, "top5": mt.top5, "mean_class": mt.mean_class,
            "videos": mt.num_videos, "skipped": run.skipped.count, "eval_seconds": run.seconds,
        });
        let top1 = mt.top1;
        last = Some(run);
        Ok(EvalOutcome { top1, json })
    };
    let mixup = cfg.mixup.as_ref().map(|m| Mixup {
        mixup_alpha: m.mixup_alpha,
        cutmix_alpha: m.cutmix_alpha,
        prob: m.prob,
        switch_prob: m.switch_prob,
        label_smoothing: cfg.label_smoothing,
        ..Mixup::xkd_ucf101(num_classes)
    });
    let mix_fn = mixup
        .as_ref()
        .map(|m| move |x: &Tensor, labels: &[usize], rng: &mut SeededRng| m.apply(x, labels, rng));
    let last_dir = out_dir.join("last");
    // A run killed while replacing `last/` may have left only its aside copy.
    recover_checkpoint(&last_dir)?;
    let resume_from =
        (job.resume && last_dir.join("trainer_state.json").is_file()).then_some(last_dir);
    if job.resume && resume_from.is_none() {
        tracing::info!(dir = %out_dir.display(), "nothing to resume; starting from the beginning");
    }
    let opts = RunOptions {
        out_dir: out_dir.clone(),
        resume_from,
        stop_after_epochs: job.stop_after_epochs,
        stop_after_steps: None,
        id2label: Some(split.classes.iter().cloned().enumerate().collect()),
        image_size: crop,
        progress: true,
    };
    let summary = finetune(
        &model,
        &store,
        cfg,
        &mut batches,
        mix_fn.as_ref().map(|f| f as _),
        &mut evaluate,
        &opts,
    )?;
    let curves = match plot_metrics(&summary.metrics_path, &out_dir.join("curves.svg")) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!("could not draw the curves: {e}");
            None
        }
    };
    let last = match last {
        Some(run) => run,
        // A resumed run that had nothing left to train still reports its model.
        None => {
            let logits = |x: &Tensor| model.logits_t(x, None);
            evaluate_views(&logits, &test_data, num_classes, &eval_opts, dev, "eval")?
        }
    };
    skipped.test += last.skipped.count;
    skipped
        .test_videos
        .extend(skipped_list(&last.skipped, test_data.samples()));
    add_train_failures(&mut skipped, &train_failures, &train_split);
    Ok(FoldRun {
        fold,
        out_dir,
        summary,
        last: last.metrics,
        skipped,
        curves,
    })
}
