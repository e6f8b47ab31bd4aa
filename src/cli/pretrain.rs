//! `avkd pretrain`: XKD / XKD-MAS / XKD-MATS pre-training on a dataset, or (`--replay`) the replay
//! of recorded official steps with a tensor-by-tensor comparison.

use crate::cli::jobs::with_sets;
use anyhow::{bail, Context, Result};
use avkd::checkpoint::safetensors_writer::{write_streaming, PendingTensor};
use avkd::data::splits::Fold;
use avkd::jobs::dataset_spec::{DatasetKind, DatasetSpec};
use avkd::jobs::pretrain::replay::replay;
use avkd::jobs::pretrain::replay_compare::compare;
use avkd::jobs::pretrain::replay_config::ReplayPlan;
use avkd::jobs::pretrain::run::{run_pretrain, PretrainRun};
use avkd::jobs::pretrain::{NetSize, PretrainConfig};
use avkd::models::xkd::net::XkdVariant;
use clap::Args;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// xkd, xkd-mas or xkd-mats
    #[arg(long)]
    pub method: Option<String>,
    /// tiny, small, base, large (the official presets) or a JSON file
    /// (`{"encoder": {...}, "decoder": {...}, "projector": {...}}`, missing keys from base).
    #[arg(long)]
    pub size: Option<String>,
    /// ucf101, ucf51, hmdb51, list, kinetics or audioset
    #[arg(long)]
    pub dataset: Option<String>,
    /// The dataset folder.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// The split lists' folder (or the Kinetics / AudioSet CSV), when not under --root.
    #[arg(long)]
    pub splits: Option<PathBuf>,
    /// `--dataset list`: a `path label` list of the videos (relative to --root).
    #[arg(long)]
    pub train_list: Option<PathBuf>,
    /// `--dataset list`: the test list the probe (`probe_every`) evaluates on.
    #[arg(long)]
    pub test_list: Option<PathBuf>,
    /// Frame rate of frame folders that carry no meta.json.
    #[arg(long)]
    pub fps: Option<f64>,
    /// Override one setting, e.g. `--set epochs=100 --set batch_size=16 --set views.frames=8`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Continue from OUT/last.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many epochs (resume later with --resume).
    #[arg(long)]
    pub stop_after_epochs: Option<usize>,
    /// Also write the backbones and the whole net under the official key names.
    #[arg(long)]
    pub export_official: bool,
    /// Print the settings that would be used, as TOML, and stop.
    #[arg(long)]
    pub print_config: bool,
    #[command(flatten)]
    pub run: crate::cli::jobs::RunArgs,
    /// Run directory (checkpoints, metrics, exports); with --replay, the output .safetensors.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Replay the recorded official steps in DIR (laid out as the pretrain_step fixture).
    #[arg(long, value_name = "DIR")]
    pub replay: Option<PathBuf>,
    /// --replay: which recording (xkd, mas or mats; the files of mas and mats are prefixed).
    #[arg(long, default_value = "xkd")]
    pub variant: String,
    /// --replay: compare with the recorded results in DIR; exit non-zero past the tolerance.
    #[arg(long, value_name = "DIR")]
    pub reference: Option<PathBuf>,
}

pub fn run(args: PretrainArgs) -> Result<()> {
    match &args.replay {
        Some(dir) => run_replay(dir, &args),
        None => run_dataset(&args),
    }
}

fn variant(method: &str) -> Result<XkdVariant> {
    Ok(match method {
        "xkd" => XkdVariant::Xkd,
        "xkd-mas" => XkdVariant::Mas,
        "xkd-mats" => XkdVariant::Mats,
        other => bail!("unknown --method `{other}`: expected xkd, xkd-mas or xkd-mats"),
    })
}

/// The official settings of the method, then --set.
fn settings(variant: XkdVariant, sets: &[String]) -> Result<PretrainConfig> {
    let cfg: PretrainConfig = with_sets(
        &PretrainConfig::official(variant),
        sets,
        "pre-training settings",
    )?;
    cfg.validate()?;
    Ok(cfg)
}

/// The videos to pre-train on (relative to the returned root), and the labelled dataset the probe
/// can use (the benchmarks and lists; not Kinetics or AudioSet CSVs); reports listed videos not
/// found.
fn videos(
    args: &PretrainArgs,
    root: &Path,
) -> Result<(PathBuf, Vec<PathBuf>, Option<DatasetSpec>)> {
    let dataset = args
        .dataset
        .as_deref()
        .context("--dataset is needed to pre-train")?;
    let need_csv = || {
        args.splits
            .clone()
            .with_context(|| format!("--dataset {dataset} needs --splits CSV"))
    };
    let list = match dataset {
        "kinetics" => Some(avkd::data::splits::kinetics(&need_csv()?, root)?),
        "audioset" => Some(avkd::data::splits::audioset(&need_csv()?, root, None)?),
        _ => None,
    };
    if let Some(list) = list {
        if !list.missing.is_empty() {
            eprintln!("{}", list.missing_summary(root));
        }
        let videos = list.samples.into_iter().map(|s| s.video).collect();
        return Ok((root.to_path_buf(), videos, None));
    }
    let kind: DatasetKind = dataset.parse()?;
    let mut spec = DatasetSpec::new(kind, root, Fold::One(1));
    spec.splits = args.splits.clone();
    spec.train_list = args.train_list.clone();
    // A plain list has no test videos unless --test-list names them: only then can it be probed.
    let probed = kind != DatasetKind::List || args.test_list.is_some();
    spec.test_list = args.test_list.clone().or_else(|| args.train_list.clone());
    spec.fps = args.fps;
    let split = spec.load()?.remove(0);
    let video_root = spec.video_root();
    let (split, missing) = split.without_missing(&video_root);
    if !missing.is_empty() {
        eprintln!(
            "{} listed videos not found under {} (left out)",
            missing.len(),
            video_root.display()
        );
    }
    let videos = split.train.into_iter().map(|s| s.video).collect();
    Ok((video_root, videos, probed.then_some(spec)))
}

fn run_dataset(args: &PretrainArgs) -> Result<()> {
    let method = args
        .method
        .as_deref()
        .context("give --replay DIR, or --method, --size, --dataset and --root to pre-train")?;
    let variant = variant(method)?;
    let cfg = settings(variant, &args.sets)?;
    if args.print_config {
        print!("{}", toml::to_string(&cfg)?);
        return Ok(());
    }
    let size = NetSize::parse(
        args.size
            .as_deref()
            .context("--size is needed to pre-train")?,
    )?;
    let root = args
        .root
        .as_deref()
        .context("--root is needed to pre-train")?;
    let (root, videos, probe_dataset) = videos(args, root)?;
    let run = PretrainRun {
        variant,
        size,
        cfg,
        root,
        videos,
        fps: args.fps,
        out: args.out.clone(),
        resume: args.resume,
        stop_after_epochs: args.stop_after_epochs,
        workers: args.run.workers,
        skip_bad: args.run.skip_bad,
        export_official: args.export_official,
        progress: true,
        probe_dataset,
    };
    let dev = avkd::util::device::parse_device(&args.run.device)?;
    let report = run_pretrain(&run, &dev).context("pre-training failed")?;
    println!(
        "pre-trained {} on {} videos: {} steps, final loss {:.4}",
        variant.model_type(),
        report.videos,
        report.summary.steps,
        report.summary.final_loss.unwrap_or(f64::NAN)
    );
    if !report.filtered.is_empty() {
        println!(
            "{} videos left out (no audio stream, or a stream under {} s): listed in {}",
            report.filtered.len(),
            run.cfg.views.min_stream_seconds,
            run.out.join("filtered_videos.json").display()
        );
    }
    for folder in &report.exports {
        println!("exported {}", folder.display());
    }
    if let Some(top1) = report.summary.best_top1 {
        println!(
            "best probe top-1 {:.2} % at epoch {} ({})",
            100.0 * top1,
            report.summary.best_epoch.unwrap_or(0),
            report.summary.best_dir.display()
        );
    }
    println!("metrics {}", report.summary.metrics_path.display());
    Ok(())
}

fn run_replay(dir: &Path, args: &PretrainArgs) -> Result<()> {
    let out = &args.out;
    let work = out.with_extension("replay-work");
    let result = replay(dir, &args.variant, &work);
    std::fs::remove_dir_all(&work).ok();
    let tensors = result.with_context(|| format!("replaying {}", dir.display()))?;
    write_tensors(out, &tensors, dir)?;
    let plan = ReplayPlan::read(dir, &args.variant)?;
    println!(
        "replayed {} recorded {} step(s) of {}: {} tensors written to {}",
        plan.steps.len(),
        args.variant,
        dir.display(),
        tensors.len(),
        out.display()
    );
    let Some(reference) = &args.reference else {
        return Ok(());
    };
    let lrs: Vec<f64> = plan.steps.iter().map(|s| s.lr).collect();
    let cmp = compare(&tensors, reference, &plan.prefix, &lrs)?;
    println!(
        "compared {} tensors of {} with the replay",
        cmp.checks.len(),
        cmp.files.join(", ")
    );
    println!(
        "{:<72} {:>12} {:>12}",
        "closest to the tolerance", "max |err|", "tolerance"
    );
    for c in cmp.worst(10) {
        match &c.problem {
            Some(p) => println!("{:<72} {p}", c.name),
            None => println!(
                "{:<72} {:>12.3e} {:>12.3e}",
                c.name, c.max_abs_err, c.tolerance
            ),
        }
    }
    let failures = cmp.failures();
    if !failures.is_empty() {
        bail!(
            "{} of {} tensors differ from the official recording past the tolerance",
            failures.len(),
            cmp.checks.len()
        )
    }
    println!("all {} tensors within tolerance", cmp.checks.len());
    Ok(())
}

fn write_tensors(
    out: &Path,
    tensors: &BTreeMap<String, candle_core::Tensor>,
    dir: &Path,
) -> Result<()> {
    let pending = tensors
        .iter()
        .map(|(name, t)| PendingTensor::from_tensor(name.clone(), t.clone(), t.dtype()))
        .collect();
    let meta = BTreeMap::from([
        ("source".to_string(), "avkd pretrain --replay".to_string()),
        ("recording".to_string(), dir.display().to_string()),
    ]);
    write_streaming(out, pending, &meta).with_context(|| format!("writing {}", out.display()))
}
