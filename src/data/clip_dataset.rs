//! A labelled video dataset as the trainers and evaluators see it: listed samples under a video
//! root, a clip sampler, and the train or test transforms with the model's normalisation.
//!
//! Training draws one random clip per video per epoch (both papers); testing returns every view of
//! a video, clip-major (clip 0 crop 0, clip 0 crop 1, ...), so the caller can average the softmax
//! over views as the papers report video-level accuracy.

use super::clip_sampling::{CclTest, ClipSampling};
use super::splits::Sample;
use super::transforms::{ClipArray, Normalization, TestAugment, TrainAugment};
use super::video_source::VideoSource;
use crate::nn::rng::SeededRng;
use candle_core::Result;
use std::path::{Path, PathBuf};

/// How clips are made from videos: which frames, which transforms, which normalisation.
#[derive(Debug, Clone)]
pub struct ClipRecipe {
    pub sampling: ClipSampling,
    pub train: TrainAugment,
    pub test: TestAugment,
    pub norm: Normalization,
    /// The frame rate of frame folders without `meta.json` (`--fps`). `None`: such folders are
    /// refused where the rate matters (XKD's sampling), never given an assumed one.
    pub fps: Option<f64>,
}

impl ClipRecipe {
    /// The source frame rate to sample `video` with. XKD resamples to its own rate, so it needs the
    /// video's: an error naming the video when it states none and the recipe has none. CCL takes
    /// consecutive frames, which no rate changes.
    pub fn source_fps(&self, video: &VideoSource) -> Result<f64> {
        match self.sampling {
            ClipSampling::Xkd { .. } => video.fps(),
            ClipSampling::Ccl { .. } => Ok(video.fps().unwrap_or(1.0)),
        }
    }

    /// Test clips per video (`None`: every window, so it depends on the video's length) and
    /// crops per clip.
    pub fn views_per_video(&self) -> (Option<usize>, usize) {
        let clips = match self.sampling {
            ClipSampling::Xkd { clips, .. } => Some(clips),
            ClipSampling::Ccl {
                clips: CclTest::EvenCrop { clips },
                ..
            } => Some(clips),
            ClipSampling::Ccl {
                clips: CclTest::Sliding { .. },
                ..
            } => None,
        };
        (clips, self.test.crops)
    }
}

/// Samples under a video root, made into clips by a [`ClipRecipe`].
#[derive(Debug, Clone)]
pub struct ClipDataset {
    root: PathBuf,
    samples: Vec<Sample>,
    recipe: ClipRecipe,
}

impl ClipDataset {
    pub fn new(root: &Path, samples: Vec<Sample>, recipe: ClipRecipe) -> Self {
        Self {
            root: root.to_path_buf(),
            samples,
            recipe,
        }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    pub fn recipe(&self) -> &ClipRecipe {
        &self.recipe
    }

    fn sample(&self, index: usize) -> Result<&Sample> {
        self.samples.get(index).ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "sample {index} asked of a dataset of {}",
                self.samples.len()
            ))
        })
    }

    fn open(&self, sample: &Sample) -> Result<VideoSource> {
        VideoSource::open(&self.root, &sample.video, self.recipe.fps)
    }

    /// One random training clip of video `index` and its label.
    pub fn train_clip(&self, index: usize, rng: &mut SeededRng) -> Result<(ClipArray, usize)> {
        let sample = self.sample(index)?;
        let clip = (|| {
            let video = self.open(sample)?;
            let fps = self.recipe.source_fps(&video)?;
            let indices = self
                .recipe
                .sampling
                .train_indices(video.num_frames(), fps, rng)?;
            let frames = video.read(&indices)?;
            self.recipe.train.apply(&frames, &self.recipe.norm, rng)
        })()
        .map_err(|e| with_video(e, &self.root, sample))?;
        Ok((clip, sample.label))
    }

    /// Every test view of video `index` (clip-major), and its label.
    pub fn test_views(&self, index: usize) -> Result<(Vec<ClipArray>, usize)> {
        let sample = self.sample(index)?;
        let views = (|| {
            let video = self.open(sample)?;
            let fps = self.recipe.source_fps(&video)?;
            let clips = self.recipe.sampling.test_indices(video.num_frames(), fps)?;
            // One read for all clips, so overlapping windows decode each frame once.
            let all: Vec<usize> = clips.iter().flatten().copied().collect();
            let frames = video.read(&all)?;
            let mut views = Vec::new();
            let mut at = 0;
            for clip in &clips {
                let part = &frames[at..at + clip.len()];
                at += clip.len();
                views.extend(self.recipe.test.apply(part, &self.recipe.norm)?);
            }
            Ok(views)
        })()
        .map_err(|e| with_video(e, &self.root, sample))?;
        Ok((views, sample.label))
    }
}

/// Prefixes an error with the video it concerns, unless it already names it.
fn with_video(e: candle_core::Error, root: &Path, sample: &Sample) -> candle_core::Error {
    let text = e.to_string();
    let name = sample.video.display().to_string();
    let stem = sample
        .video
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if text.contains(&stem) && !stem.is_empty() {
        e
    } else {
        candle_core::Error::Msg(format!("{} ({name}): {text}", root.display()))
    }
}
