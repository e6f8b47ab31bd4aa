//! `avkd bench`: timings of the hot paths, printed as a table or JSON.

use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum BenchWhat {
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
    /// The clip transforms on one thread, ms per clip: XKD train (32x240x320 -> 224 with
    /// RandAugment and erasing), XKD test (3 crops of 224), CCL train and test (112).
    Augment {
        #[arg(long, default_value_t = 5)]
        iters: usize,
        #[arg(long)]
        json: bool,
    },
    /// The data loader: clips/s decoding + resizing XKD (32x112) and CCL (16x112) clips from frame
    /// folders (and .avi with the `ffmpeg` feature), and the full training transform (for
    /// scripts/bench_loader_vs_pyav.py, which times PIL/PyAV/decord on the same files).
    Loader {
        /// Where the benchmark's videos are (written there if absent).
        #[arg(long, default_value = "runs/bench-loader-data")]
        data: PathBuf,
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Passes over the 24 videos.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        #[arg(long)]
        json: bool,
    },
    /// One XKD pre-training step of the official ViT-B configuration (forward, backward,
    /// clipping, AdamW, EMA) per batch size (for scripts/bench_pretrain_vs_torch.py).
    Pretrain {
        #[arg(long, default_value = "2,8", value_delimiter = ',')]
        batches: Vec<usize>,
        #[arg(long, default_value_t = 3)]
        iters: usize,
        #[arg(long, default_value = "cpu")]
        device: String,
        #[arg(long)]
        json: bool,
    },
    /// One CCL-AI distillation step of the official configuration (student, online ResNet-34
    /// teacher, heads, routed gradients, three SGD steps) (for scripts/bench_distill_vs_torch.py).
    Distill {
        #[arg(long, default_value_t = 16)]
        batch: usize,
        #[arg(long, default_value_t = 3)]
        iters: usize,
        #[arg(long, default_value = "cpu")]
        device: String,
        #[arg(long)]
        json: bool,
    },
    /// Feature extraction with CCL's audio teacher, PANNs Cnn14_emb512 at full size (random
    /// weights): the model alone on random 32 kHz waveforms, and `avkd extract` end to end on
    /// synthetic clips that long, in videos/s (for scripts/bench_extract_vs_torch.py).
    Extract {
        #[arg(long, default_value_t = 8)]
        videos: usize,
        /// Seconds of audio per video.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long, default_value = "1,4", value_delimiter = ',')]
        batches: Vec<usize>,
        /// Where the synthetic clips and the random model folder go (written there if absent).
        #[arg(long, default_value = "runs/bench-extract-data")]
        data: PathBuf,
        /// Decoding threads of the end-to-end run.
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Skip the end-to-end `avkd extract` rows.
        #[arg(long)]
        model_only: bool,
        #[arg(long, default_value = "cpu")]
        device: String,
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

pub fn run(what: BenchWhat) -> Result<()> {
    let (timings, json) = match what {
        BenchWhat::Vit {
            batches,
            iters,
            device,
            json,
        } => (
            avkd::bench::vit_b_video(&batches, iters, &avkd::util::device::parse_device(&device)?)?,
            json,
        ),
        BenchWhat::Augment { iters, json } => {
            let timings = avkd::data::transforms::bench::bench_transforms(iters)?;
            if json {
                let map: std::collections::BTreeMap<_, _> = timings.into_iter().collect();
                println!("{}", serde_json::to_string_pretty(&map)?);
            } else {
                for (name, ms) in timings {
                    println!("{name:44} {ms:8.1} ms/clip");
                }
            }
            return Ok(());
        }
        BenchWhat::Audio { mp3, iters, json } => (avkd::bench::audio(&mp3, iters)?, json),
        BenchWhat::Loader {
            data,
            workers,
            rounds,
            json,
        } => {
            let timings = avkd::bench::loader::loader(&data, workers, rounds)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&timings)?);
            } else {
                for t in timings {
                    println!(
                        "{:44} {:8.1} clips/s  ({} clips, {} threads)",
                        t.name, t.clips_per_s, t.clips, t.workers
                    );
                }
            }
            return Ok(());
        }
        BenchWhat::Extract {
            videos,
            seconds,
            batches,
            data,
            workers,
            model_only,
            device,
            json,
        } => {
            let dev = avkd::util::device::parse_device(&device)?;
            let mut rows = Vec::new();
            for &b in &batches {
                rows.push(avkd::bench::extract::cnn14_forward(
                    videos, seconds, b, &dev,
                )?);
                if !model_only {
                    rows.push(avkd::bench::extract::extract_pipeline(
                        &data, videos, seconds, b, workers, &dev,
                    )?);
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                for r in rows {
                    println!(
                        "{:28} {:7.3} videos/s  ({} videos of {} s, {:.2} s)",
                        r.name, r.videos_per_s, r.videos, r.seconds_per_video, r.wall_s
                    );
                }
            }
            return Ok(());
        }
        BenchWhat::Pretrain {
            batches,
            iters,
            device,
            json,
        } => (
            avkd::bench::pretrain::pretrain_step(
                &batches,
                iters,
                &avkd::util::device::parse_device(&device)?,
            )?,
            json,
        ),
        BenchWhat::Distill {
            batch,
            iters,
            device,
            json,
        } => (
            vec![avkd::bench::distill::distill_step(
                batch,
                iters,
                &avkd::util::device::parse_device(&device)?,
            )?],
            json,
        ),
        BenchWhat::Ccl {
            batch,
            iters,
            device,
            json,
        } => (
            avkd::bench::ccl(batch, iters, &avkd::util::device::parse_device(&device)?)?,
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
    Ok(())
}
