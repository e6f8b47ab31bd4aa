//! Clips per second through the parallel loader: decode the clip's frames, resize the short side
//! to 112 (PIL bilinear), centre-crop 112 and normalise — for XKD clips (32 frames at 8 fps from a
//! random 4-s window) and CCL clips (16 consecutive frames), from frame folders and, with the
//! `ffmpeg` feature, from `.avi` files. scripts/bench_loader_vs_pyav.py does the same in Python
//! (PIL, PyAV, decord) on the same files. The full training transform (RandAugment, random resized
//! crop, flip, erasing) is timed too, and XKD's pre-training views (video and audio) of a sample.

use crate::data::av_views::{load_av_views, AvViews};
use crate::data::clip_sampling::ClipSampling;
use crate::data::loader::{LoadFn, Loader, LoaderConfig};
use crate::data::mel::{LogMel, LogMelConfig};
use crate::data::pretrain_views::PretrainViews;
use crate::data::synth_dataset::{
    synth_videos, write_synth_dataset, SynthDatasetConfig, SYNTH_VIDEO_DIR,
};
use crate::data::transforms::{ClipArray, Normalization, ResizeKind, TestAugment, TrainAugment};
use crate::data::video_source::VideoSource;
use crate::models::config::{IMAGENET_MEAN, IMAGENET_STD};
use crate::nn::rng::SeededRng;
use candle_core::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct LoaderTiming {
    pub name: String,
    pub clips_per_s: f64,
    pub clips: usize,
    pub workers: usize,
}

/// The benchmark's videos: 24 of 6 s at 25 fps, 240x240 (UCF101 is 320x240), as frame folders.
pub fn bench_dataset_config() -> SynthDatasetConfig {
    SynthDatasetConfig {
        classes: 4,
        train_per_class: 6,
        test_per_class: 1,
        frames: 150,
        size: 240,
        ..SynthDatasetConfig::default()
    }
}

/// Writes the benchmark dataset into `dir` unless it is there; with the `ffmpeg` feature, also an
/// `.avi` (MPEG-4 part 2 + MP3, as UCF101's Xvid) beside each frame folder.
pub fn prepare(dir: &Path) -> Result<()> {
    if !dir.join(SYNTH_VIDEO_DIR).is_dir() {
        write_synth_dataset(dir, &bench_dataset_config())?;
    }
    #[cfg(feature = "ffmpeg")]
    crate::data::synth_avi::write_avi_files(dir, false)?;
    Ok(())
}

/// Frame folders (`folders = true`) or `.avi` files of the benchmark dataset.
fn list(dir: &Path, folders: bool) -> Result<Vec<PathBuf>> {
    let is_avi = |p: &PathBuf| p.extension().is_some_and(|e| e == "avi");
    Ok(synth_videos(dir)?
        .into_iter()
        .filter(|p| if folders { p.is_dir() } else { is_avi(p) })
        .collect())
}

fn clips_per_s(
    name: &str,
    videos: &[PathBuf],
    sampling: ClipSampling,
    train: Option<TrainAugment>,
    workers: usize,
    rounds: usize,
) -> Result<LoaderTiming> {
    let norm = Normalization {
        mean: IMAGENET_MEAN.map(|v| v as f32),
        std: IMAGENET_STD.map(|v| v as f32),
    };
    let test = TestAugment {
        short_side: 112,
        crop: 112,
        crops: 1,
        resize: ResizeKind::PilBilinear,
    };
    let items: Arc<Vec<PathBuf>> = Arc::new(videos.to_vec());
    let n = items.len() * rounds;
    let load = Arc::new(move |i: usize, rng: &mut SeededRng| -> Result<ClipArray> {
        let path = &items[i % items.len()];
        let video = VideoSource::open(Path::new(""), path, None)?;
        let indices = sampling.train_indices(video.num_frames(), video.fps()?, rng)?;
        let frames = video.read(&indices)?;
        match &train {
            Some(aug) => aug.apply(&frames, &norm, rng),
            None => test
                .apply(&frames, &norm)?
                .pop()
                .ok_or_else(|| candle_core::Error::Msg("no view".into())),
        }
    });
    time_loader(name, videos.len(), n, workers, load)
}

/// Clips per second of `load` over `n` items on `workers` threads, after a warm-up pass over the
/// first `warm` items (the page cache).
fn time_loader<T: Send + 'static>(
    name: &str,
    warm: usize,
    n: usize,
    workers: usize,
    load: LoadFn<T>,
) -> Result<LoaderTiming> {
    let loader = Loader::new(
        n,
        LoaderConfig {
            batch_size: 1,
            workers,
            prefetch_batches: 2 * workers.max(1),
            shuffle: false,
            drop_last: false,
            seed: 0,
            ..LoaderConfig::default()
        },
        load,
    );
    for b in loader.epoch(0, 0).take(warm) {
        b?;
    }
    let start = Instant::now();
    let mut clips = 0;
    for b in loader.epoch(1, 0) {
        clips += b?.items.len();
    }
    Ok(LoaderTiming {
        name: name.to_string(),
        clips_per_s: clips as f64 / start.elapsed().as_secs_f64(),
        clips,
        workers,
    })
}

/// XKD's pre-training views of a sample (global 32×112² + 80×448, one local 8×96² + 80×112 with
/// the official augmentations, audio decoded from the WAV) per second.
fn pretrain_views_per_s(videos: &[PathBuf], workers: usize, rounds: usize) -> Result<LoaderTiming> {
    let views = PretrainViews::xkd();
    let logmel = Arc::new(LogMel::new(LogMelConfig::xkd())?);
    let items: Arc<Vec<PathBuf>> = Arc::new(videos.to_vec());
    let n = items.len() * rounds;
    let load = Arc::new(move |i: usize, rng: &mut SeededRng| -> Result<AvViews> {
        let path = &items[i % items.len()];
        load_av_views(Path::new(""), path, &views, &logmel, None, rng)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    });
    time_loader(
        "xkd pretrain views frames+wav",
        videos.len(),
        n,
        workers,
        load,
    )
}

/// Times the loader on the dataset in `dir` (made if absent) with `workers` threads.
pub fn loader(dir: &Path, workers: usize, rounds: usize) -> Result<Vec<LoaderTiming>> {
    prepare(dir)?;
    let (xkd, ccl) = (ClipSampling::xkd(), ClipSampling::ccl_test());
    let mut sources = vec![("frames", list(dir, true)?)];
    let avis = list(dir, false)?;
    if !avis.is_empty() && cfg!(feature = "ffmpeg") {
        sources.push(("avi", avis));
    }
    let mut out = Vec::new();
    for (source, videos) in &sources {
        for (kind, sampling) in [("xkd 32x112", xkd), ("ccl 16x112", ccl)] {
            let name = format!("{kind} {source} decode+resize");
            out.push(clips_per_s(&name, videos, sampling, None, workers, rounds)?);
        }
        let name = format!("xkd 32x112 {source} full train transform");
        let aug = Some(TrainAugment::xkd_finetune(112));
        out.push(clips_per_s(&name, videos, xkd, aug, workers, rounds)?);
    }
    out.push(pretrain_views_per_s(&sources[0].1, workers, rounds)?);
    Ok(out)
}
