//! `avkd finetune`: a student fine-tuned on every fold asked for, the paper's way — random clips
//! with the paper's augmentation through the parallel loader, the method's optimiser and schedule,
//! video-level multi-view evaluation every few epochs — then one report over the folds.
//!
//! Each fold writes `<out>/fold<N>/{last,best}/` (model folders with trainer state),
//! `metrics.jsonl` and `curves.svg`; the report over folds is `<out>/eval_report.json`.

use super::dataset_spec::DatasetSpec;
use super::evaluate::{evaluate_views, view_protocol, EvalOptions};
use crate::data::clip_dataset::{ClipDataset, ClipRecipe};
use crate::data::loader::{BadSample, Loader, LoaderConfig};
use crate::data::splits::Split;
use crate::data::transforms::mixup::Mixup;
use crate::data::transforms::ClipArray;
use crate::eval::report::{EvalReport, FoldResult};
use crate::eval::video_level::ClassificationMetrics;
use crate::models::folder::ModelFolder;
use crate::nn::param_store::ParamStore;
use crate::nn::rng::SeededRng;
use crate::train::finetune::{
    finetune, Batch, EvalOutcome, FinetuneSummary, RunOptions, TrainBatches,
};
use crate::train::finetune_config::FinetuneConfig;
use crate::train::finetune_model::{FinetuneModel, FinetuneModelOptions};
use crate::train::plot::plot_metrics;
use candle_core::{DType, Device, Result, Tensor};
use std::path::PathBuf;
use std::sync::Arc;

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
    pub curves: Option<PathBuf>,
}

/// The batches of a [`Loader`] over training clips, stacked onto a device.
struct LoaderBatches {
    loader: Loader<(ClipArray, usize)>,
    device: Device,
}

impl TrainBatches for LoaderBatches {
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
    let mut recipe =
        ClipRecipe::for_model(&folder.preprocessor, crop, job.test_clips, job.dataset.fps)?;
    job.config.augment.apply_to(&mut recipe.train);
    let splits = job.dataset.load()?;
    let mut runs = Vec::new();
    for split in &splits {
        runs.push(run_fold(job, &folder, split, &recipe, crop, dev)?);
    }
    let folds = runs
        .iter()
        .map(|r| FoldResult {
            fold: r.fold,
            metrics: r.last.clone(),
        })
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
    let video_root = job.dataset.video_root();
    let (train_split, missing) = split.without_missing(&video_root);
    if !missing.is_empty() {
        if !job.skip_bad {
            split.require_videos(&video_root)?;
        }
        tracing::warn!(
            count = missing.len(),
            first = %missing[0].display(),
            "listed videos missing on disk are left out (--skip-bad)"
        );
    }
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

    let bad_sample = BadSample::skip_if(job.skip_bad);
    let train_data = Arc::new(ClipDataset::new(
        &video_root,
        train_split.train.clone(),
        recipe.clone(),
    ));
    let mut batches = LoaderBatches {
        loader: Loader::new(
            train_data.len(),
            LoaderConfig {
                batch_size: cfg.batch_size,
                workers: job.workers,
                prefetch_batches: 2,
                shuffle: true,
                drop_last: false,
                seed: cfg.seed,
                bad_sample,
            },
            Arc::new(move |i, rng: &mut SeededRng| train_data.train_clip(i, rng)),
        ),
        device: dev.clone(),
    };
    let test_data = ClipDataset::new(&video_root, train_split.test.clone(), recipe.clone());
    let eval_opts = EvalOptions {
        views_per_batch: job.eval_views_per_batch,
        workers: job.workers,
        skip_bad: job.skip_bad,
        crop,
        test_clips: job.test_clips,
    };
    let mut last: Option<ClassificationMetrics> = None;
    let mut evaluate = |m: &FinetuneModel, epoch_number: usize| -> Result<EvalOutcome> {
        let logits = |x: &Tensor| m.logits_t(x, None);
        let run = evaluate_views(
            &logits,
            &test_data,
            num_classes,
            &eval_opts,
            dev,
            &format!("eval epoch {epoch_number}"),
        )?;
        let mt = &run.metrics;
        let json = serde_json::json!({
            "top1": mt.top1, "top5": mt.top5, "mean_class": mt.mean_class,
            "videos": mt.num_videos, "skipped": run.skipped.count, "eval_seconds": run.seconds,
        });
        let top1 = mt.top1;
        last = Some(run.metrics);
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
        Some(m) => m,
        // A resumed run that had nothing left to train still reports its model.
        None => {
            let logits = |x: &Tensor| model.logits_t(x, None);
            evaluate_views(&logits, &test_data, num_classes, &eval_opts, dev, "eval")?.metrics
        }
    };
    Ok(FoldRun {
        fold,
        out_dir,
        summary,
        last,
        curves,
    })
}
