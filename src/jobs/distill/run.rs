//! A whole distillation run on a dataset (`avkd distill --method ... --dataset ...`): the student,
//! the teachers and the heads; the training clips with their audio features; video-level
//! evaluation of the student every few epochs (every non-overlapping 16-frame window, softmax
//! averaged, as the official test); checkpoints and resume through the engine; then the outputs:
//! `OUT/student/` (an avkd model folder), `OUT/audio_head/`, `OUT/image_head/`, `OUT/eval_report.json`
//! (fine-tuning's format), `metrics.jsonl`, `curves.svg`, and on request the official names under
//! `OUT/official/`.

use super::config::{DistillConfig, DistillMethod};
use super::data::{AudioTable, DistillBatches};
use super::job::{DistillEvalFn, Distillation};
use super::nets::{image_teacher, DistillNets, StudentStart};
use crate::data::clip_dataset::{ClipDataset, ClipRecipe};
use crate::data::loader::{BadSample, LoaderConfig};
use crate::data::splits::Split;
use crate::data::teacher_features::TeacherFeatures;
use crate::eval::report::{EvalReport, FoldResult, SkippedVideos};
use crate::jobs::clip_recipe::recipe_for_model;
use crate::jobs::dataset_spec::DatasetSpec;
use crate::jobs::evaluate::{evaluate_views, skipped_list, view_protocol, EvalOptions, EvalRun};
use crate::jobs::skipped::{add_train_failures, present_videos};
use crate::models::ccl::r2plus1d::R2Plus1d;
use crate::models::config::{ModelConfig, PreprocessorConfig};
use crate::models::folder::ModelFolder;
use crate::train::engine::{RunOptions, RunSummary};
use crate::train::job::{EvalOutcome, TrainData};
use crate::train::train_state::recover_checkpoint;
use candle_core::{bail, Device, Result, Tensor};
use std::path::PathBuf;

/// What a distillation run needs.
pub struct DistillRun {
    pub method: DistillMethod,
    pub cfg: DistillConfig,
    pub dataset: DatasetSpec,
    pub student: StudentStart,
    /// The image teacher's model folder (CCL-I, CCL-AI).
    pub image_teacher: Option<PathBuf>,
    /// An avkd feature store or the official release folder (CCL-A, CCL-AI).
    pub audio_features: Option<PathBuf>,
    pub out: PathBuf,
    pub resume: bool,
    pub stop_after_epochs: Option<usize>,
    pub workers: usize,
    pub skip_bad: bool,
    pub export_official: bool,
    pub progress: bool,
}

/// What a run did.
pub struct DistillReport {
    pub summary: RunSummary,
    pub report: EvalReport,
    pub student_dir: PathBuf,
    pub curves: Option<PathBuf>,
    /// `OUT/official/` with `--export-official`.
    pub official: Option<PathBuf>,
}

/// The one split a run trains on, without the videos missing on disk (refused unless `skip_bad`).
fn training_split(run: &DistillRun) -> Result<(Split, SkippedVideos)> {
    let mut splits = run.dataset.load()?;
    if splits.len() != 1 {
        bail!(
            "distillation trains on one split; pass --fold 1 (the official protocol), 2 or 3, not all {}",
            splits.len()
        )
    }
    present_videos(&splits.remove(0), &run.dataset.video_root(), run.skip_bad)
}

/// The student's preprocessing and clip recipe for `cfg` (16 consecutive frames, 112², Kinetics
/// statistics; every window at test).
fn student_recipe(
    nets: &DistillNets,
    cfg: &DistillConfig,
    fps: Option<f64>,
) -> Result<(PreprocessorConfig, ClipRecipe)> {
    let mut pre =
        PreprocessorConfig::for_model(&ModelConfig::CclR2Plus1d(nets.student.config().clone()));
    pre.num_frames = Some(cfg.frames);
    pre.crop_size = Some(cfg.crop);
    pre.resize_short_side = Some(cfg.crop);
    let mut recipe = recipe_for_model(&pre, Some(cfg.crop), None, fps)?;
    cfg.augment.apply_to(&mut recipe.train);
    Ok((pre, recipe))
}

/// The audio features when the method uses them.
fn audio_features(run: &DistillRun) -> Result<Option<TeacherFeatures>> {
    match (&run.audio_features, run.method.uses_audio()) {
        (Some(path), true) => {
            let features = TeacherFeatures::open(path)?;
            tracing::info!("audio teacher: {}", features.describe());
            Ok(Some(features))
        }
        (None, true) => bail!(
            "--method {} needs --audio-features (a folder written by `avkd extract`, or the official audiocnn14embed512_features release)",
            run.method.name()
        ),
        (Some(_), false) => {
            tracing::warn!("--method {} uses no audio; --audio-features is ignored", run.method.name());
            Ok(None)
        }
        (None, false) => Ok(None),
    }
}

fn build_nets(
    run: &DistillRun,
    num_classes: usize,
    audio_dim: Option<usize>,
    dev: &Device,
) -> Result<DistillNets> {
    let teacher = match (&run.image_teacher, run.method.uses_image()) {
        (Some(dir), true) => Some(image_teacher(&ModelFolder::open(dir)?, dev)?),
        (None, true) => bail!(
            "--method {} needs --image-teacher (a ResNet model folder, hub: repo or zoo name, e.g. resnet34-imagenet1k-v1)",
            run.method.name()
        ),
        (_, false) => None,
    };
    DistillNets::new(
        run.method,
        &run.student,
        num_classes,
        teacher,
        audio_dim,
        run.cfg.seed,
        dev,
    )
}

/// Runs (or resumes) a distillation and writes its outputs.
pub fn run_distill(run: &DistillRun, dev: &Device) -> Result<DistillReport> {
    run.cfg.validate()?;
    let (split, mut skipped) = training_split(run)?;
    if split.train.is_empty() || split.test.is_empty() {
        bail!(
            "{}: distillation needs training and test videos ({} and {} found)",
            split.name,
            split.train.len(),
            split.test.len()
        )
    }
    let features = audio_features(run)?;
    let nets = build_nets(
        run,
        split.num_classes(),
        features.as_ref().map(|f| f.dim()),
        dev,
    )?;
    let (pre, recipe) = student_recipe(&nets, &run.cfg, run.dataset.fps)?;
    tracing::info!(
        method = run.method.name(),
        split = %split.name,
        train = split.train.len(),
        test = split.test.len(),
        student_params = nets.student_store.num_params(),
        "distilling"
    );
    let root = run.dataset.video_root();
    let train_data = ClipDataset::new(&root, split.train.clone(), recipe.clone());
    let audio = features.as_ref().map(|f| AudioTable::new(f, &train_data));
    let loader = LoaderConfig {
        batch_size: run.cfg.batch_size,
        workers: run.workers,
        prefetch_batches: 2,
        shuffle: true,
        drop_last: run.cfg.drop_last,
        seed: run.cfg.seed,
        bad_sample: BadSample::skip_if(run.skip_bad),
    };
    let mut batches = DistillBatches::new(train_data, audio, loader, dev.clone());
    if batches.num_batches() == 0 {
        bail!(
            "{} training videos make no batch of {} with drop_last = true",
            split.train.len(),
            run.cfg.batch_size
        )
    }
    let test_data = ClipDataset::new(&root, split.test.clone(), recipe.clone());
    let eval_opts = EvalOptions {
        views_per_batch: run.cfg.eval_batch,
        workers: run.workers,
        skip_bad: run.skip_bad,
        crop: Some(run.cfg.crop),
        test_clips: None,
    };
    let num_classes = split.num_classes();
    let evaluate = |student: &R2Plus1d, label: &str| -> Result<EvalRun> {
        let logits = |x: &Tensor| Ok(student.forward_t(x, false)?.logits);
        evaluate_views(&logits, &test_data, num_classes, &eval_opts, dev, label)
    };
    let mut last: Option<EvalRun> = None;
    let eval_fn: DistillEvalFn = Box::new(|student, epoch| {
        let run = evaluate(student, &format!("eval epoch {epoch}"))?;
        let m = &run.metrics;
        let json = serde_json::json!({
            "top1": m.top1, "top5": m.top5, "mean_class": m.mean_class,
            "videos": m.num_videos, "skipped": run.skipped.count, "eval_seconds": run.seconds,
        });
        let top1 = m.top1;
        last = Some(run);
        Ok(EvalOutcome { top1, json })
    });
    let settings = serde_json::json!({
        "method": run.method.name(),
        "config": serde_json::to_value(&run.cfg).map_err(|e| candle_core::Error::Msg(e.to_string()))?,
    });
    let id2label = Some(split.classes.iter().cloned().enumerate().collect());
    let weight = run.cfg.video_loss_weight(run.method);
    let mut job = Distillation::new(nets, weight, settings, pre, id2label).with_eval(eval_fn);
    let summary = super::distill(&mut job, &mut batches, &run.cfg, &engine_options(run)?)?;
    let student_dir = run.out.join("student");
    let source = format!(
        "avkd {} distillation ({} steps)",
        run.method.name(),
        summary.steps
    );
    job.write_folders(&student_dir, &run.out, &source)?;
    let official = match run.export_official {
        true => {
            let steps_per_epoch = batches.num_batches().div_ceil(run.cfg.accum_steps).max(1);
            let epochs = (summary.steps / steps_per_epoch as u64) as usize;
            Some(super::official::write_official(
                &job,
                &run.out.join("official"),
                epochs,
            )?)
        }
        false => None,
    };
    let student = job.into_nets().student;
    let last = match last {
        Some(run) => run,
        // A resumed run with nothing left to train still reports its student.
        None => evaluate(&student, "eval")?,
    };
    skipped.test += last.skipped.count;
    skipped
        .test_videos
        .extend(skipped_list(&last.skipped, test_data.samples()));
    add_train_failures(&mut skipped, &batches.failures(), &split);
    let report = EvalReport::new(
        student_dir.display().to_string(),
        run.dataset.kind.name(),
        view_protocol(&recipe, run.method.name()),
        vec![FoldResult::with_skipped(
            split.fold.unwrap_or(0),
            last.metrics,
            skipped,
        )],
    )?;
    report.write_json_atomic(&run.out.join("eval_report.json"))?;
    let curves = match crate::train::plot::plot_metrics(
        &summary.metrics_path,
        &run.out.join("curves.svg"),
    ) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!("could not draw the distillation curves: {e}");
            None
        }
    };
    Ok(DistillReport {
        summary,
        report,
        student_dir,
        curves,
        official,
    })
}

/// Resume from `OUT/last` when asked and it exists.
fn engine_options(run: &DistillRun) -> Result<RunOptions> {
    let last = run.out.join("last");
    // A run killed while replacing `last/` may have left only its aside copy.
    recover_checkpoint(&last)?;
    let resume_from = (run.resume && last.join("trainer_state.json").is_file()).then_some(last);
    if run.resume && resume_from.is_none() {
        tracing::info!(dir = %run.out.display(), "nothing to resume; starting from the beginning");
    }
    Ok(RunOptions {
        out_dir: run.out.clone(),
        resume_from,
        stop_after_epochs: run.stop_after_epochs,
        progress: run.progress,
        ..Default::default()
    })
}
