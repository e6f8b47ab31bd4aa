//! The `avkd` command line: parses arguments and calls the library.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Candle allocates a fresh buffer for every op's output. The system allocator (and mimalloc with its
/// defaults) hands large freed buffers back to the OS, so every big tensor paid its page faults anew:
/// a ViT-B training step ran 30-40 % slower and varied by as much. mimalloc with purging disabled
/// keeps freed memory for reuse, like PyTorch's caching allocator.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` (index 15 in mimalloc v2 and v3): -1 = never return freed memory to the OS.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn keep_freed_memory() {
    // SAFETY: setting an option is a plain store into mimalloc's option table.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

#[derive(Parser)]
#[command(
    name = "avkd",
    version,
    about = "Audio-visual video representation learning (XKD, CCL) on Candle"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pre-train a small XKD net on generated audio-visual clips, probe and export its students.
    Quickstart {
        #[arg(long, default_value = "runs/quickstart")]
        out: PathBuf,
        #[arg(long, default_value_t = 400)]
        steps: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// cpu, cuda[:N] or metal[:N]
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// What a checkpoint holds: tensors (names, dtypes, shapes), parameter count, metadata and the
    /// scalar entries of PyTorch checkpoints. For .pth/.pth.tar (zip or legacy), .safetensors and
    /// avkd model folders; no tensor data is loaded.
    Inspect {
        file: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Time hot paths (for side-by-side runs with PyTorch: scripts/bench_vs_torch.py).
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// The ViT-B video encoder at 32x112x112: forward, forward+backward, one fine-tune step.
    Vit {
        #[arg(long, default_value = "1,4", value_delimiter = ',')]
        batches: Vec<usize>,
        #[arg(long, default_value_t = 3)]
        iters: usize,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Audio: XKD's log-mel of 4 s, decoding (and resampling to 16 kHz) of an MP3 (for
    /// scripts/bench_audio_vs_librosa.py).
    Audio {
        #[arg(long, default_value = "tests/fixtures/media/tone1k_10s_44k_stereo.mp3")]
        mp3: PathBuf,
        #[arg(long, default_value_t = 20)]
        iters: usize,
        #[arg(long)]
        json: bool,
    },
    /// CCL: R(2+1)D-18 on [B, 3, 16, 112, 112] forward and forward+backward, a 3x3x3 Conv3d.
    Ccl {
        #[arg(long, default_value_t = 8)]
        batch: usize,
        #[arg(long, default_value_t = 3)]
        iters: usize,
        #[arg(long, default_value = "cpu")]
        device: String,
        #[arg(long)]
        json: bool,
    },
}

/// Writes to stdout; a closed pipe (`avkd inspect x | head`) ends the output quietly.
fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn main() -> Result<()> {
    keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            // symphonia logs every file it opens at info level.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,symphonia=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Quickstart {
            out,
            steps,
            seed,
            device,
        } => {
            let dev = avkd::device::parse_device(&device)?;
            let r = avkd::quickstart::run(&out, steps, seed, &dev).context("quickstart failed")?;
            let s = &r.summary;
            println!("XKD pretraining: {} steps in {:.1} s; total loss {:.4} -> {:.4} (mean of first/last quarter {:.4} -> {:.4})", s.steps, s.seconds, s.first_loss, s.last_loss, s.early_mean_loss, s.late_mean_loss);
            println!("video-student probe (nearest centroid, 8 classes, chance {:.1} %): {:.1} % at init -> {:.1} % after pretraining", 100.0 * r.chance, 100.0 * r.probe_before, 100.0 * r.probe_after);
            println!("exported students: {0}/video_student, {0}/audio_student (config.json + model.safetensors); the reloaded video student scores {1:.1} %", r.out_dir.display(), 100.0 * r.probe_reloaded);
            println!("metrics: {}", r.metrics.display());
            if (r.probe_reloaded - r.probe_after).abs() > 1e-9 {
                anyhow::bail!(
                    "the reloaded export does not reproduce the probe ({} vs {})",
                    r.probe_reloaded,
                    r.probe_after
                );
            }
        }
        Command::Inspect { file, json } => {
            let info = avkd::checkpoint::inspect::inspect(&file)?;
            if json {
                emit(&format!("{}\n", serde_json::to_string_pretty(&info)?))?;
            } else {
                emit(&info.to_string())?;
            }
        }
        Command::Bench { what } => {
            let (timings, json) = match what {
                BenchWhat::Vit {
                    batches,
                    iters,
                    device,
                    json,
                } => (
                    avkd::bench::vit_b_video(
                        &batches,
                        iters,
                        &avkd::device::parse_device(&device)?,
                    )?,
                    json,
                ),
                BenchWhat::Audio { mp3, iters, json } => (avkd::bench::audio(&mp3, iters)?, json),
                BenchWhat::Ccl {
                    batch,
                    iters,
                    device,
                    json,
                } => (
                    avkd::bench::ccl(batch, iters, &avkd::device::parse_device(&device)?)?,
                    json,
                ),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&timings)?);
            } else {
                for t in timings {
                    println!(
                        "{:28} median {:9.4} s  min {:9.4} s  ({} iters)",
                        t.name, t.median_s, t.min_s, t.iters
                    );
                }
            }
        }
    }
    Ok(())
}
