//! The command line of the dataset jobs: `finetune`, `eval`, `linear`, `predict`.

use anyhow::{Context, Result};
use avkd::data::splits::Fold;
use avkd::eval::linear_probe::LinearProbeConfig;
use avkd::eval::linear_svm::{CSelection, LinearSvcConfig};
use avkd::hub::resolve::resolve_model;
use avkd::jobs::dataset_spec::{DatasetKind, DatasetSpec};
use avkd::jobs::evaluate::{evaluate_folder, EvalOptions};
use avkd::jobs::finetune::config::FinetuneConfig;
use avkd::jobs::finetune::{run_finetune, FinetuneJob};
use avkd::jobs::linear::{run_linear, LinearClassifier, LinearJob};
use avkd::models::folder::ModelFolder;
use clap::Args;
use std::path::PathBuf;

/// Which videos, under which folder, which folds.
#[derive(Args, Debug, Clone)]
pub struct DatasetArgs {
    /// ucf101, ucf51 (CCL's 51 UCF101 classes with audio), hmdb51, or list
    #[arg(long)]
    pub dataset: DatasetKind,
    /// The dataset folder: the official video and split folders side by side (UCF-101/ +
    /// ucfTrainTestlist/, hmdb51/ + testTrainMulti_7030_splits/), as `avkd synth` writes too.
    #[arg(long)]
    pub root: PathBuf,
    /// The split lists' folder, when not under --root.
    #[arg(long)]
    pub splits: Option<PathBuf>,
    /// The video folder, when not under --root.
    #[arg(long)]
    pub videos: Option<PathBuf>,
    /// 1, 2, 3 or all (per-fold results and their mean ± std)
    #[arg(long, default_value = "1")]
    pub fold: Fold,
    /// `--dataset list`: `path label` lists (paths relative to --root).
    #[arg(long)]
    pub train_list: Option<PathBuf>,
    #[arg(long)]
    pub test_list: Option<PathBuf>,
    /// `--dataset list`: class names, one per line (optional).
    #[arg(long)]
    pub class_list: Option<PathBuf>,
    /// Frame rate of frame folders that carry no meta.json.
    #[arg(long)]
    pub fps: Option<f64>,
}

impl DatasetArgs {
    pub(crate) fn spec(&self) -> DatasetSpec {
        DatasetSpec {
            kind: self.dataset,
            root: self.root.clone(),
            splits: self.splits.clone(),
            videos: self.videos.clone(),
            fold: self.fold,
            train_list: self.train_list.clone(),
            test_list: self.test_list.clone(),
            class_list: self.class_list.clone(),
            fps: self.fps,
        }
    }
}

/// Where an evaluation report goes.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    pub json: bool,
}

impl ReportArgs {
    fn emit(&self, report: &avkd::eval::report::EvalReport) -> Result<()> {
        if let Some(path) = &self.report {
            report.write_json_atomic(path)?;
        }
        if self.json {
            println!("{}", report.to_json()?);
        } else {
            println!("{report}");
        }
        Ok(())
    }
}

/// How a job runs.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Decoding threads.
    #[arg(long, default_value_t = default_workers())]
    pub workers: usize,
    /// Count and report unreadable or missing videos instead of stopping at the first.
    #[arg(long)]
    pub skip_bad: bool,
    /// cpu, cuda[:N] or metal[:N]
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Crop size (XKD fine-tunes its 112-px students at 224); default: the model's.
    #[arg(long)]
    pub crop: Option<usize>,
}

fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

#[derive(Args, Debug)]
pub struct FinetuneArgs {
    /// A model folder, hub:owner/name[@rev], or a zoo name: an XKD video student or a CCL R(2+1)D.
    #[arg(long)]
    pub model: String,
    #[command(flatten)]
    pub data: DatasetArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// A TOML file of settings (`preset = "xkd-ucf101"` then overrides; see examples/finetune.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The preset to start from when no --config is given (default: from the model and dataset:
    /// xkd-ucf101, xkd-hmdb51 or ccl-ucf51).
    #[arg(long)]
    pub preset: Option<String>,
    /// Override one setting, e.g. `--set epochs=20 --set optimizer.weight_decay=0.01 --set mixup=false`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    #[arg(short, long, default_value = "runs/finetune")]
    pub out: PathBuf,
    /// Continue each fold from its `last/` checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// Stop each fold after this many epochs (resume later with --resume).
    #[arg(long)]
    pub stop_after_epochs: Option<usize>,
    /// Test clips per video (XKD: 3).
    #[arg(long)]
    pub test_clips: Option<usize>,
    /// Views per forward pass at evaluation.
    #[arg(long, default_value_t = 9)]
    pub eval_batch: usize,
    /// Print the settings that would be used, as TOML, and stop.
    #[arg(long)]
    pub print_config: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A fine-tuned classifier: a model folder (e.g. runs/finetune/fold1/best), hub:… or zoo name.
    #[arg(long)]
    pub model: String,
    #[command(flatten)]
    pub data: DatasetArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Test clips per video (XKD: 3).
    #[arg(long)]
    pub test_clips: Option<usize>,
    /// Views per forward pass.
    #[arg(long, default_value_t = 9)]
    pub eval_batch: usize,
    #[command(flatten)]
    pub output: ReportArgs,
}

#[derive(Args, Debug)]
pub struct LinearArgs {
    /// A student (or any video model with pooled features).
    #[arg(long)]
    pub model: String,
    #[command(flatten)]
    pub data: DatasetArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// The papers' protocol: a linear SVM (LinearSVC), C swept, decision values averaged per video.
    #[arg(long)]
    pub svm: bool,
    /// SVM: the C values to try.
    #[arg(long, value_delimiter = ',', default_value = "0.001,0.01,0.1,1")]
    pub svm_c: Vec<f64>,
    /// SVM: choose C on this fraction of the training videos instead of on the test set (which is
    /// what the papers report).
    #[arg(long)]
    pub held_out: Option<f64>,
    /// Random clips per training video (XKD's SVM: 25).
    #[arg(long, default_value_t = 25)]
    pub train_clips: usize,
    /// Clips per test video.
    #[arg(long, default_value_t = 3)]
    pub test_clips: usize,
    /// Linear head: epochs, learning rate, batch size.
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub output: ReportArgs,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// A fine-tuned classifier.
    #[arg(long)]
    pub model: String,
    /// A video file, or a folder of its frames.
    pub video: PathBuf,
    /// Frame rate of frame folders that carry no meta.json.
    #[arg(long)]
    pub fps: Option<f64>,
    /// How many classes to show.
    #[arg(short, long, default_value_t = 5)]
    pub topk: usize,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    #[arg(long)]
    pub json: bool,
}

/// Applies `--set KEY=VALUE` overrides to a settings table; dotted keys reach nested tables.
pub fn apply_sets(table: &mut toml::Table, sets: &[String]) -> Result<()> {
    for set in sets {
        let (key, value) = set
            .split_once('=')
            .with_context(|| format!("--set {set}: expected KEY=VALUE"))?;
        // A TOML value (`3`, `0.1`, `false`, `[0.9, 0.99]`, `"text"`), or a bare word as a string.
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        let mut node = &mut *table;
        let parts: Vec<&str> = key.trim().split('.').collect();
        for part in &parts[..parts.len() - 1] {
            node = node
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .with_context(|| format!("--set {set}: `{part}` is not a table"))?;
        }
        node.insert(parts[parts.len() - 1].to_string(), value);
    }
    Ok(())
}

/// `base` with `--set KEY=VALUE` overrides applied (`what` names the settings in errors).
pub fn with_sets<T: serde::Serialize + serde::de::DeserializeOwned>(
    base: &T,
    sets: &[String],
    what: &str,
) -> Result<T> {
    let mut table = toml::Table::try_from(base)?;
    apply_sets(&mut table, sets)?;
    toml::to_string(&table)
        .map_err(anyhow::Error::from)
        .and_then(|t| toml::from_str(&t).map_err(anyhow::Error::from))
        .with_context(|| what.to_string())
}

/// The fine-tuning settings: --config or the preset the model and dataset imply, then --set.
fn finetune_config(args: &FinetuneArgs, folder: &ModelFolder) -> Result<FinetuneConfig> {
    let mut table: toml::Table = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => toml::Table::new(),
    };
    if !table.contains_key("preset") {
        let preset = match &args.preset {
            Some(p) => p.clone(),
            None if folder.preprocessor.fps.is_none() => "ccl-ucf51".to_string(),
            None if args.data.dataset == DatasetKind::Hmdb51 => "xkd-hmdb51".to_string(),
            None => "xkd-ucf101".to_string(),
        };
        table.insert("preset".into(), toml::Value::String(preset));
    }
    apply_sets(&mut table, &args.sets)?;
    let text = toml::to_string(&table)?;
    FinetuneConfig::from_toml_str(&text).context("fine-tuning settings")
}

pub fn finetune(args: FinetuneArgs) -> Result<()> {
    let dir = resolve_model(&args.model)?;
    let folder = ModelFolder::open(&dir)?;
    let config = finetune_config(&args, &folder)?;
    if args.print_config {
        print!("{}", config.to_toml_string()?);
        return Ok(());
    }
    let dev = avkd::util::device::parse_device(&args.run.device)?;
    let job = FinetuneJob {
        model: dir,
        dataset: args.data.spec(),
        config,
        out: args.out.clone(),
        resume: args.resume,
        stop_after_epochs: args.stop_after_epochs,
        workers: args.run.workers,
        skip_bad: args.run.skip_bad,
        crop: args.run.crop,
        test_clips: args.test_clips,
        eval_views_per_batch: args.eval_batch,
    };
    let (report, runs) = run_finetune(&job, &dev).context("fine-tuning failed")?;
    println!("{report}");
    for r in &runs {
        println!(
            "fold {}: {} (best top-1 {:.2} % at epoch {}), curves {}",
            r.fold,
            r.out_dir.display(),
            100.0 * r.summary.best_top1.unwrap_or(0.0),
            r.summary.best_epoch.unwrap_or(0),
            r.curves
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "-".into())
        );
    }
    println!("report: {}", args.out.join("eval_report.json").display());
    Ok(())
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let folder = ModelFolder::open(&resolve_model(&args.model)?)?;
    let dev = avkd::util::device::parse_device(&args.run.device)?;
    let opts = EvalOptions {
        views_per_batch: args.eval_batch,
        workers: args.run.workers,
        skip_bad: args.run.skip_bad,
        crop: args.run.crop,
        test_clips: args.test_clips,
    };
    let report = evaluate_folder(&folder, &args.data.spec(), &opts, &dev)?;
    args.output.emit(&report)
}

pub fn linear(args: LinearArgs) -> Result<()> {
    let folder = ModelFolder::open(&resolve_model(&args.model)?)?;
    let dev = avkd::util::device::parse_device(&args.run.device)?;
    let classifier = if args.svm {
        LinearClassifier::Svm {
            cs: args.svm_c.clone(),
            selection: match args.held_out {
                Some(fraction) => CSelection::HeldOut {
                    fraction,
                    seed: args.seed,
                },
                None => CSelection::TestSet,
            },
            cfg: LinearSvcConfig::default(),
        }
    } else {
        LinearClassifier::Head(LinearProbeConfig {
            epochs: args.epochs,
            lr: args.lr,
            batch_size: args.batch_size,
            warmup_epochs: (args.epochs / 10).min(10),
            seed: args.seed,
            ..LinearProbeConfig::default()
        })
    };
    let job = LinearJob {
        dataset: args.data.spec(),
        classifier,
        train_clips: args.train_clips,
        test_clips: args.test_clips,
        crop: args.run.crop,
        workers: args.run.workers,
        skip_bad: args.run.skip_bad,
        seed: args.seed,
    };
    let report = run_linear(&folder, &job, &dev)?;
    args.output.emit(&report)
}

pub fn predict(args: PredictArgs) -> Result<()> {
    let folder = ModelFolder::open(&resolve_model(&args.model)?)?;
    let dev = avkd::util::device::parse_device(&args.device)?;
    let preds = avkd::jobs::predict::predict(
        &folder,
        &args.video,
        args.fps,
        args.topk,
        &EvalOptions::default(),
        &dev,
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&preds)?);
    } else {
        for p in preds {
            println!("{:6.2} %  {}", 100.0 * p.score, p.label);
        }
    }
    Ok(())
}
