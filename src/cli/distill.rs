//! `avkd distill`: CCL-A, CCL-I or CCL-AI distillation of an R(2+1)D student on a labelled dataset.

use crate::cli::jobs::{with_sets, DatasetArgs, RunArgs};
use anyhow::{Context, Result};
use avkd::hub::resolve::resolve_model;
use avkd::jobs::distill::run::{run_distill, DistillRun};
use avkd::jobs::distill::{DistillConfig, DistillMethod, StudentStart};
use avkd::models::ccl::r2plus1d::R2Plus1dConfig;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct DistillArgs {
    /// ccl-a (audio teacher), ccl-i (image teacher) or ccl-ai (both)
    #[arg(long)]
    pub method: String,
    #[command(flatten)]
    pub data: DatasetArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Where the student starts: a model folder, hub:owner/name[@rev] or zoo name (its classifier
    /// replaced when the class count differs), or a JSON architecture for a student from scratch
    /// (`{"model_type": "ccl-r2plus1d", "depth": 18, "widths": [64, 128, 256, 512]}`). Default: the
    /// official R(2+1)D-18 from scratch.
    #[arg(long)]
    pub student: Option<String>,
    /// The image teacher (CCL-I, CCL-AI): a ResNet model folder, hub: repo or zoo name, e.g. one
    /// converted from torchvision's resnet34-b627a593.pth with `avkd convert`.
    #[arg(long)]
    pub image_teacher: Option<String>,
    /// The audio-teacher features (CCL-A, CCL-AI): a folder written by `avkd extract`, or the
    /// official release (`audiocnn14embed512_features/<Class>/<video>.npy`, or its parent).
    #[arg(long)]
    pub audio_features: Option<PathBuf>,
    /// Override one setting, e.g. `--set epochs=100 --set batch_size=8 --set eval_every=10`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    #[arg(short, long, default_value = "runs/distill")]
    pub out: PathBuf,
    /// Continue from OUT/last.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many epochs (resume later with --resume).
    #[arg(long)]
    pub stop_after_epochs: Option<usize>,
    /// Also write the student and heads under CCL's own key names (OUT/official/save_N*.safetensors).
    #[arg(long)]
    pub export_official: bool,
    /// Print the settings that would be used, as TOML, and stop.
    #[arg(long)]
    pub print_config: bool,
}

/// The settings: the official recipe, then --set.
fn settings(sets: &[String]) -> Result<DistillConfig> {
    let cfg: DistillConfig = with_sets(&DistillConfig::default(), sets, "distillation settings")?;
    cfg.validate()?;
    Ok(cfg)
}

/// `--student`: a JSON architecture file, or any model reference.
fn student(reference: Option<&str>) -> Result<StudentStart> {
    let Some(reference) = reference else {
        return Ok(StudentStart::Scratch(R2Plus1dConfig::official(18, 0)));
    };
    let path = Path::new(reference);
    if path.is_file() {
        return Ok(StudentStart::open(path)?);
    }
    Ok(StudentStart::open(&resolve_model(reference)?)?)
}

pub fn run(args: DistillArgs) -> Result<()> {
    let method = DistillMethod::parse(&args.method)?;
    let mut cfg = settings(&args.sets)?;
    if let Some(crop) = args.run.crop {
        cfg.crop = crop;
    }
    if args.print_config {
        print!("{}", toml::to_string(&cfg)?);
        return Ok(());
    }
    let image_teacher = match (&args.image_teacher, method.uses_image()) {
        (Some(m), true) => Some(resolve_model(m)?),
        (Some(_), false) => {
            tracing::warn!(
                "--method {} uses no image teacher; --image-teacher is ignored",
                method.name()
            );
            None
        }
        (None, _) => None,
    };
    let run = DistillRun {
        method,
        cfg,
        dataset: args.data.spec(),
        student: student(args.student.as_deref())?,
        image_teacher,
        audio_features: args.audio_features.clone(),
        out: args.out.clone(),
        resume: args.resume,
        stop_after_epochs: args.stop_after_epochs,
        workers: args.run.workers,
        skip_bad: args.run.skip_bad,
        export_official: args.export_official,
        progress: true,
    };
    let dev = avkd::util::device::parse_device(&args.run.device)?;
    let report = run_distill(&run, &dev).context("distillation failed")?;
    println!("{}", report.report);
    let s = &report.summary;
    println!(
        "{} steps, final video loss {:.4}; student {}",
        s.steps,
        s.final_loss.unwrap_or(f64::NAN),
        report.student_dir.display()
    );
    if let Some(top1) = s.best_top1 {
        println!(
            "best top-1 {:.2} % at epoch {} ({})",
            100.0 * top1,
            s.best_epoch.unwrap_or(0),
            s.best_dir.display()
        );
    }
    if let Some(dir) = &report.official {
        println!("official names: {}", dir.display());
    }
    if let Some(curves) = &report.curves {
        println!("curves {}", curves.display());
    }
    println!("report: {}", args.out.join("eval_report.json").display());
    Ok(())
}
