//! `avkd extract`: teacher features of any avkd model over a dataset's videos, into a feature store.

use super::jobs::DatasetArgs;
use anyhow::{Context, Result};
use avkd::hub::resolve::resolve_model;
use avkd::jobs::extract::{run_extract, ExtractJob, DEFAULT_SHARD_SIZE};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ExtractArgs {
    /// Any avkd model: a folder, hub:owner/name[@rev], or a zoo name (e.g. a PANNs Cnn14 converted
    /// with `avkd convert Cnn14_emb512_mAP=0.420.pth`, CCL's audio teacher).
    #[arg(long)]
    pub model: String,
    #[command(flatten)]
    pub data: DatasetArgs,
    /// The feature store to write: shard-NNNNN.safetensors + index.json. Rerunning into it skips
    /// the videos it already holds.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Audio and image models: cut each video into windows of this many seconds and average their
    /// features (default: the whole audio track, the centre frame; XKD's audio ViT: its own clip
    /// length).
    #[arg(long)]
    pub window_seconds: Option<f64>,
    /// Also store each window's feature as `<key>#windows` [W, D].
    #[arg(long)]
    pub per_window: bool,
    /// Decoding threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Inputs (windows, views, frames) per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Record unreadable or missing videos under `failed` in the index instead of stopping.
    #[arg(long)]
    pub skip_bad: bool,
    /// cpu, cuda[:N] or metal[:N]
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Videos per shard.
    #[arg(long, default_value_t = DEFAULT_SHARD_SIZE)]
    pub shard_size: usize,
    /// Stop after this many videos (run again to continue).
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ExtractArgs) -> Result<()> {
    let model_dir = resolve_model(&args.model)?;
    let dev = avkd::util::device::parse_device(&args.device)?;
    let job = ExtractJob {
        model: args.model.clone(),
        model_dir,
        dataset: args.data.spec(),
        out: args.out.clone(),
        window_seconds: args.window_seconds,
        per_window: args.per_window,
        workers: args.workers,
        batch: args.batch,
        skip_bad: args.skip_bad,
        shard_size: args.shard_size,
        stop_after: args.stop_after,
    };
    let s = run_extract(&job, &dev).context("feature extraction failed")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!(
            "{}: {} features computed ({} already there, {} without audio, {} failed{}) in {:.1} s, \
             {:.2} videos/s; dim {}; {}",
            s.out.display(),
            s.extracted,
            s.already,
            s.no_audio,
            s.failed,
            if s.remaining > 0 {
                format!(", {} left: run again to continue", s.remaining)
            } else {
                String::new()
            },
            s.seconds,
            s.videos_per_s,
            s.dim,
            s.segmenting
        );
    }
    Ok(())
}
