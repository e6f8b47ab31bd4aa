//! `avkd quickstart`: the whole job a user comes for, offline, on a CPU, in a few minutes —
//!
//! 1. synthesise a small action dataset in UCF101's layout (JPEG frame folders + WAV);
//! 2. obtain a student: download the XKD Kinetics-400 video student when the Hub answers (or the
//!    `--student` given), otherwise pre-train a small XKD net briefly with the XKD objective;
//! 3. fine-tune it on fold 1 with XKD's recipe (AdamW + layer-wise lr decay, warmup + cosine,
//!    RandAugment, random erasing, mixup/cutmix, label smoothing) through the parallel loader;
//! 4. evaluate it video-level (3 clips x 3 crops, softmax averaged);
//! 5. export the fine-tuned classifier as safetensors with its config and preprocessing, reload the
//!    export, and check that it reproduces the evaluation exactly.

mod small_student;

pub use small_student::SmallStudent;

use crate::checkpoint::export::{export_model, Layout};
use crate::data::splits::Fold;
use crate::data::synth_dataset::{write_synth_dataset, SynthDatasetConfig, SynthDatasetSummary};
use crate::eval::report::EvalReport;
use crate::jobs::dataset_spec::{DatasetKind, DatasetSpec};
use crate::jobs::evaluate::{evaluate_folder, EvalOptions};
use crate::jobs::finetune::config::FinetuneConfig;
use crate::jobs::finetune::{run_finetune, FinetuneJob, FoldRun};
use crate::models::folder::ModelFolder;
use candle_core::{DType, Device, Result};
use small_student::pretrain_small_student;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The zoo entry tried first.
pub const DEFAULT_STUDENT: &str = "xkd-k400-video-student";

/// Fine-tuning epochs of the small student pre-trained here (about 15 s on 2 cores).
pub const SMALL_STUDENT_EPOCHS: usize = 20;

/// Fine-tuning epochs of a downloaded or given student: a ViT-B step on a 32 x 64 x 64 clip takes ~0.8 s on 2
/// CPU cores, so 2 epochs of the 128 training clips (~4 min) keep the quickstart within minutes.
pub const DOWNLOADED_STUDENT_EPOCHS: usize = 2;

#[derive(Debug, Clone)]
pub struct QuickstartOptions {
    pub out: PathBuf,
    /// A model spec to fine-tune; `None`: the default student from the Hub, else pre-train one.
    pub student: Option<String>,
    /// Never try the Hub; pre-train the small student.
    pub offline: bool,
    pub pretrain_steps: usize,
    /// `None`: [`SMALL_STUDENT_EPOCHS`] for the student pre-trained here,
    /// [`DOWNLOADED_STUDENT_EPOCHS`] for any other.
    pub finetune_epochs: Option<usize>,
    pub seed: u64,
    pub workers: usize,
}

/// Where the student came from.
pub enum StudentSource {
    /// `--student` (a folder, a Hub repo or a zoo name), resolved to the local folder `dir`.
    Given {
        spec: String,
        dir: PathBuf,
    },
    /// The zoo's default student, downloaded from the Hub into the cache snapshot `dir`.
    Downloaded {
        spec: String,
        dir: PathBuf,
    },
    Pretrained(Box<SmallStudent>),
}

impl StudentSource {
    /// The student's model folder.
    pub fn dir(&self) -> &Path {
        match self {
            Self::Given { dir, .. } | Self::Downloaded { dir, .. } => dir,
            Self::Pretrained(s) => &s.video_student,
        }
    }
}

/// Why the quickstart pre-trained its own student rather than fine-tuning the Hub's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PretrainReason {
    /// `--offline`: the Hub was never tried.
    Offline,
    /// The Hub did not give [`DEFAULT_STUDENT`]: its error, as text.
    HubFailed(String),
}

impl std::fmt::Display for PretrainReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Offline => f.write_str("--offline was given"),
            Self::HubFailed(e) => write!(f, "the Hub did not give {DEFAULT_STUDENT} ({e})"),
        }
    }
}

pub struct QuickstartReport {
    pub dataset: SynthDatasetSummary,
    pub student: StudentSource,
    /// Why the student was pre-trained here; `None` when it was given or downloaded.
    pub pretrained_because: Option<PretrainReason>,
    pub finetune: FoldRun,
    pub report: EvalReport,
    pub export_dir: PathBuf,
    /// The evaluation of the reloaded export (equal to `report` or the run fails).
    pub reloaded: EvalReport,
    pub seconds: f64,
}

fn obtain_student(
    opts: &QuickstartOptions,
    dev: &Device,
) -> Result<(StudentSource, Option<PretrainReason>)> {
    if let Some(spec) = &opts.student {
        let dir = crate::hub::resolve::resolve_model(spec)?;
        let given = StudentSource::Given {
            spec: spec.clone(),
            dir,
        };
        return Ok((given, None));
    }
    let reason = if opts.offline {
        PretrainReason::Offline
    } else {
        match crate::hub::resolve::resolve_model(DEFAULT_STUDENT) {
            Ok(dir) => {
                let downloaded = StudentSource::Downloaded {
                    spec: DEFAULT_STUDENT.to_string(),
                    dir,
                };
                return Ok((downloaded, None));
            }
            Err(e) => PretrainReason::HubFailed(e.to_string()),
        }
    };
    tracing::info!("{reason}; pre-training a small XKD student instead");
    let small = pretrain_small_student(
        &opts.out.join("pretrain"),
        opts.pretrain_steps,
        opts.seed,
        dev,
    )?;
    Ok((StudentSource::Pretrained(Box::new(small)), Some(reason)))
}

pub fn run(opts: &QuickstartOptions, dev: &Device) -> Result<QuickstartReport> {
    let start = Instant::now();
    let data_dir = opts.out.join("data");
    let dataset = write_synth_dataset(
        &data_dir,
        &SynthDatasetConfig {
            train_per_class: 16,
            seed: opts.seed,
            ..SynthDatasetConfig::default()
        },
    )?;
    tracing::info!("{dataset}");
    let (student, pretrained_because) = obtain_student(opts, dev)?;
    // A student from elsewhere (a ViT-B at 112 px) is fine-tuned at the synthetic frames' size and
    // evaluated once at the end (each evaluation of 32 videos x 9 views costs a ViT-B about a
    // minute).
    let pretrained_here = matches!(student, StudentSource::Pretrained(_));
    let default_epochs = if pretrained_here {
        SMALL_STUDENT_EPOCHS
    } else {
        DOWNLOADED_STUDENT_EPOCHS
    };
    let epochs = opts.finetune_epochs.unwrap_or(default_epochs);
    let mut config = FinetuneConfig::xkd_synthetic(epochs, opts.seed);
    let crop = if pretrained_here {
        None
    } else {
        config.eval_every = epochs;
        Some(64)
    };
    let spec = DatasetSpec::new(DatasetKind::Ucf101, &data_dir, Fold::One(1));
    let job = FinetuneJob {
        model: student.dir().to_path_buf(),
        dataset: spec.clone(),
        config,
        out: opts.out.join("finetune"),
        resume: false,
        stop_after_epochs: None,
        workers: opts.workers,
        skip_bad: false,
        crop,
        test_clips: None,
        eval_views_per_batch: 9,
    };
    let (report, mut runs) = run_finetune(&job, dev)?;
    let finetune = runs
        .pop()
        .ok_or_else(|| candle_core::Error::Msg("fine-tuning ran no fold".into()))?;

    let export_dir = opts.out.join("export");
    let last = ModelFolder::open(&finetune.out_dir.join("last"))?;
    export_model(&last, &export_dir, Layout::Avkd, DType::F32)?;
    let reloaded = evaluate_folder(
        &ModelFolder::open(&export_dir)?,
        &spec,
        &EvalOptions {
            workers: opts.workers,
            crop,
            ..EvalOptions::default()
        },
        dev,
    )?;
    check_same(&report, &reloaded, &export_dir)?;
    Ok(QuickstartReport {
        dataset,
        student,
        pretrained_because,
        finetune,
        report,
        export_dir,
        reloaded,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The export must reproduce the fine-tuned model's evaluation exactly (same data, same numbers).
fn check_same(a: &EvalReport, b: &EvalReport, export: &Path) -> Result<()> {
    let (ma, mb) = (&a.folds[0].metrics, &b.folds[0].metrics);
    if ma.top1 != mb.top1 || ma.top5 != mb.top5 || ma.confusion != mb.confusion {
        candle_core::bail!(
            "the reloaded export {} does not reproduce the evaluation: top-1 {} vs {}",
            export.display(),
            mb.top1,
            ma.top1
        )
    }
    Ok(())
}
