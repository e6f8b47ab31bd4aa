//! `avkd quickstart`: the whole job on a built-in default (see `avkd::jobs::quickstart`).

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct QuickstartArgs {
    #[arg(long, default_value = "runs/quickstart")]
    pub out: PathBuf,
    /// The student to fine-tune (folder, hub:owner/name or zoo name); default: the zoo's XKD
    /// Kinetics-400 video student when the Hub answers, else a small one pre-trained here.
    #[arg(long)]
    pub student: Option<String>,
    /// Do not try the Hub: pre-train the small student.
    #[arg(long)]
    pub offline: bool,
    #[arg(long, default_value_t = 300)]
    pub pretrain_steps: usize,
    /// Fine-tuning epochs (default: 20 for the small student pre-trained here, 2 for a downloaded
    /// ViT-B, whose steps cost ~0.8 s per clip on 2 CPU cores).
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Decoding threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// cpu, cuda[:N] or metal[:N]
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: QuickstartArgs) -> Result<()> {
    let dev = avkd::util::device::parse_device(&args.device)?;
    let opts = avkd::jobs::quickstart::QuickstartOptions {
        out: args.out,
        student: args.student,
        offline: args.offline,
        pretrain_steps: args.pretrain_steps,
        finetune_epochs: args.epochs,
        seed: args.seed,
        workers: args.workers,
    };
    let r = avkd::jobs::quickstart::run(&opts, &dev).context("quickstart failed")?;
    print_report(&r);
    Ok(())
}

fn print_report(r: &avkd::jobs::quickstart::QuickstartReport) {
    use avkd::jobs::quickstart::StudentSource;
    println!("1. dataset: {}", r.dataset);
    match &r.student {
        StudentSource::Given { spec, dir } => {
            println!("2. student: {spec} (given) -> {}", dir.display())
        }
        StudentSource::Downloaded { spec, dir } => {
            println!("2. student: downloaded {spec} -> {}", dir.display())
        }
        StudentSource::Pretrained(s) => {
            let p = &s.summary;
            let because = r
                .pretrained_because
                .as_ref()
                .map_or_else(|| "no student was given".to_string(), |b| b.to_string());
            println!(
                "2. student: {because}, so a small XKD net was pre-trained here: {} steps in {:.1} s, loss {:.3} -> {:.3}; nearest-centroid probe {:.1} % -> {:.1} % (chance {:.1} %) -> {}",
                p.steps, p.seconds, p.early_mean_loss, p.late_mean_loss,
                100.0 * s.probe_before, 100.0 * s.probe_after, 100.0 * s.chance,
                s.video_student.display()
            )
        }
    }
    let f = &r.finetune;
    println!(
        "3. fine-tuned: {} epochs, {} steps -> {} (last/, best/, metrics.jsonl{})",
        f.summary.epochs_run,
        f.summary.steps,
        f.out_dir.display(),
        if f.curves.is_some() {
            ", curves.svg"
        } else {
            ""
        }
    );
    let m = &r.report.folds[0].metrics;
    println!(
        "4. video-level evaluation ({} test videos, {} views each): top-1 {:.1} %, top-5 {:.1} %, mean-class {:.1} % (chance {:.1} %)",
        m.num_videos,
        r.report.protocol.clips.unwrap_or(0) * r.report.protocol.crops,
        100.0 * m.top1,
        100.0 * m.top5,
        100.0 * m.mean_class,
        100.0 / m.per_class.len().max(1) as f64
    );
    println!(
        "5. exported {} (config.json, model.safetensors, preprocessor_config.json); reloaded, it gives the same evaluation (top-1 {:.1} %)",
        r.export_dir.display(),
        100.0 * r.reloaded.folds[0].metrics.top1
    );
    println!("done in {:.0} s", r.seconds);
}
