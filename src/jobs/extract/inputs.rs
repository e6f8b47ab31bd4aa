//! What a model sees of one video, by its input kind, prepared on the loader's worker threads:
//!
//! - `Waveform` (PANNs Cnn14): the audio track, mono at the model's sample rate, whole or in
//!   windows; a track shorter than the model's minimum is zero-padded at the end.
//! - `Spectrogram` (XKD audio ViT): the log-mel of consecutive windows of the model's input length
//!   (its `spec_size` frames; XKD's 4 s), or of `--window-seconds`, standardised as its
//!   preprocessor says.
//! - `Clip` (R(2+1)D, XKD video ViTs): the test views of the model's clip recipe.
//! - `Image` (ResNet): the centre frame (or each window's), short side resized to the crop with
//!   PIL's bilinear, centre-cropped, normalised with the model's mean/std.

use crate::data::clip_dataset::{ClipDataset, ClipRecipe};
use crate::data::feature_store::Segmenting;
use crate::data::mel::{LogMel, LogMelConfig};
use crate::data::splits::Sample;
use crate::data::transforms::{ClipArray, Normalization, ResizeKind, TestAugment};
use crate::data::video_audio::{load_video_audio, VideoAudio};
use crate::data::video_source::VideoSource;
use crate::jobs::clip_recipe::recipe_for_model;
use crate::models::config::{InputKind, ModelConfig, PreprocessorConfig};
use crate::models::folder::ModelFolder;
use candle_core::{bail, Result};
use std::path::{Path, PathBuf};

/// One input of the model, without the batch axis.
#[derive(Debug, Clone)]
pub struct ModelInput {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// What a worker prepares for one video.
#[derive(Debug)]
pub enum Prepared {
    /// The windows (views, frames) the model sees, and whether the input was zero-padded to the
    /// model's minimum.
    Inputs {
        inputs: Vec<ModelInput>,
        padded: bool,
    },
    /// An audio model, and the video has no audio (why, for logs).
    NoAudio(String),
}

enum Kind {
    Waveform {
        sample_rate: u32,
        min_samples: usize,
    },
    Spectrogram {
        logmel: LogMel,
    },
    Clip {
        data: ClipDataset,
    },
    Image {
        test: TestAugment,
        norm: Normalization,
    },
}

/// How every video is made into model inputs.
pub struct InputPlan {
    kind: Kind,
    segmenting: Segmenting,
    root: PathBuf,
    /// `--fps`: the rate of frame folders without meta.json.
    fps: Option<f64>,
    /// The videos, in the order `prepare` is asked by index.
    videos: Vec<PathBuf>,
}

fn pre_field<T: Copy>(folder: &ModelFolder, value: Option<T>, key: &str) -> Result<T> {
    value.ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "{}: key `{key}`: expected a value for a {} model, found none",
            folder.dir.join("preprocessor_config.json").display(),
            folder.config.model.model_type()
        ))
    })
}

fn normalization(folder: &ModelFolder, pre: &PreprocessorConfig) -> Result<Normalization> {
    let (mean, std) = (
        pre_field(folder, pre.mean, "mean")?,
        pre_field(folder, pre.std, "std")?,
    );
    Ok(Normalization {
        mean: mean.map(|v| v as f32),
        std: std.map(|v| v as f32),
    })
}

fn check_window(window_seconds: Option<f64>) -> Result<()> {
    match window_seconds {
        Some(w) if !(w.is_finite() && w > 0.0) => {
            bail!("--window-seconds must be a positive number of seconds, found {w}")
        }
        _ => Ok(()),
    }
}

impl InputPlan {
    /// The plan for `folder`'s model over `videos` under `root`. `window_seconds`: windows of that
    /// length (audio and image models) instead of the default; `fps`: `--fps`.
    pub fn new(
        folder: &ModelFolder,
        root: &Path,
        videos: Vec<PathBuf>,
        window_seconds: Option<f64>,
        fps: Option<f64>,
    ) -> Result<Self> {
        check_window(window_seconds)?;
        let pre = &folder.preprocessor;
        let (kind, segmenting) = match folder.config.model.input_kind() {
            InputKind::Waveform => Self::waveform(folder, window_seconds)?,
            InputKind::Spectrogram => Self::spectrogram(folder, window_seconds)?,
            InputKind::Clip => {
                if window_seconds.is_some() {
                    bail!(
                        "--window-seconds applies to audio and image models; a video model ({}) \
                         sees the test views of its clip recipe",
                        folder.config.model.model_type()
                    )
                }
                let recipe = recipe_for_model(pre, None, None, fps)?;
                let segmenting = clip_segmenting(&recipe, pre);
                let samples = videos
                    .iter()
                    .map(|v| Sample {
                        video: v.clone(),
                        label: 0,
                    })
                    .collect();
                let data = ClipDataset::new(root, samples, recipe);
                (Kind::Clip { data }, segmenting)
            }
            InputKind::Image => {
                let crop = pre_field(folder, pre.crop_size, "crop_size")?;
                let test = TestAugment {
                    short_side: pre.resize_short_side.unwrap_or(crop),
                    crop,
                    crops: 1,
                    resize: ResizeKind::PilBilinear,
                };
                let norm = normalization(folder, pre)?;
                let segmenting = match window_seconds {
                    Some(window_seconds) => Segmenting::FrameWindows { window_seconds },
                    None => Segmenting::CentreFrame,
                };
                (Kind::Image { test, norm }, segmenting)
            }
            InputKind::EmbeddingPair => bail!(
                "{}: a {} model takes embeddings, not videos; extract features with a video, \
                 audio or image model",
                folder.dir.display(),
                folder.config.model.model_type()
            ),
        };
        Ok(Self {
            kind,
            segmenting,
            root: root.to_path_buf(),
            fps,
            videos,
        })
    }

    fn waveform(folder: &ModelFolder, window_seconds: Option<f64>) -> Result<(Kind, Segmenting)> {
        let ModelConfig::PannsCnn14(cfg) = &folder.config.model else {
            bail!(
                "{}: a waveform model of type {} is not supported by extract (panns-cnn14 is)",
                folder.dir.display(),
                folder.config.model.model_type()
            )
        };
        // The front end's filterbank is built for the config's rate: that is the rate it needs.
        let sample_rate = cfg.sample_rate as u32;
        if let Some(pre) = folder
            .preprocessor
            .sample_rate
            .filter(|&r| r != cfg.sample_rate)
        {
            bail!(
                "{}: key `sample_rate`: expected {sample_rate} (config.json's), found {pre}",
                folder.dir.join("preprocessor_config.json").display()
            )
        }
        let min_samples = cfg.min_samples();
        let segmenting = match window_seconds {
            Some(window_seconds) => Segmenting::AudioWindows { window_seconds },
            None => Segmenting::WholeTrack,
        };
        if let Some(len) = segmenting.window_samples(sample_rate) {
            if len < min_samples {
                bail!(
                    "--window-seconds {}: {len} samples at {sample_rate} Hz, fewer than the \
                     {min_samples} the model needs",
                    window_seconds.unwrap_or_default()
                )
            }
        }
        Ok((
            Kind::Waveform {
                sample_rate,
                min_samples,
            },
            segmenting,
        ))
    }

    fn spectrogram(
        folder: &ModelFolder,
        window_seconds: Option<f64>,
    ) -> Result<(Kind, Segmenting)> {
        let pre = &folder.preprocessor;
        let ModelConfig::XkdAudio(vit) = &folder.config.model else {
            bail!(
                "{}: a spectrogram model of type {} is not supported by extract (xkd-audio is)",
                folder.dir.display(),
                folder.config.model.model_type()
            )
        };
        let normalize = match (pre.spec_mean, pre.spec_std) {
            (Some(m), Some(s)) => Some((m as f32, s as f32)),
            _ => None,
        };
        let cfg = LogMelConfig {
            sample_rate: pre_field(folder, pre.sample_rate, "sample_rate")?,
            n_fft: pre_field(folder, pre.n_fft, "n_fft")?,
            hop_length: pre_field(folder, pre.hop_length, "hop_length")?,
            n_mels: pre_field(folder, pre.n_mels, "n_mels")?,
            fmin: pre.fmin.unwrap_or(0.0),
            fmax: pre.fmax,
            normalize,
        };
        let logmel = LogMel::new(cfg)?;
        let window_seconds = match window_seconds {
            Some(w) => w,
            None => native_window_seconds(&logmel, pre.audio_seconds, vit.spec_size[1]),
        };
        let segmenting = Segmenting::AudioWindows { window_seconds };
        let samples = segmenting
            .window_samples(cfg.sample_rate as u32)
            .unwrap_or(0);
        let frames = logmel.num_frames(samples);
        let patch = vit.patch_size[1];
        if cfg.n_mels != vit.spec_size[0] || frames % patch != 0 {
            bail!(
                "a window of {window_seconds} s gives a log-mel of {} mels x {frames} frames; the \
                 model needs {} mels and a multiple of {patch} frames (its own input is {} \
                 frames)",
                cfg.n_mels,
                vit.spec_size[0],
                vit.spec_size[1]
            )
        }
        Ok((Kind::Spectrogram { logmel }, segmenting))
    }

    pub fn segmenting(&self) -> &Segmenting {
        &self.segmenting
    }

    /// `audio`, `video` or `image`.
    pub fn modality(&self) -> &'static str {
        match self.kind {
            Kind::Waveform { .. } | Kind::Spectrogram { .. } => "audio",
            Kind::Clip { .. } => "video",
            Kind::Image { .. } => "image",
        }
    }

    /// The rate audio is resampled to (audio models).
    pub fn sample_rate(&self) -> Option<u32> {
        match &self.kind {
            Kind::Waveform { sample_rate, .. } => Some(*sample_rate),
            Kind::Spectrogram { logmel } => Some(logmel.config().sample_rate as u32),
            _ => None,
        }
    }

    /// What happens to inputs shorter than the model accepts, in words.
    pub fn padding(&self) -> Option<String> {
        match &self.kind {
            Kind::Waveform {
                sample_rate,
                min_samples,
            } => Some(format!(
                "a track (or window) shorter than the model's minimum of {min_samples} samples \
                 ({:.3} s at {sample_rate} Hz) is zero-padded at the end; those videos are listed \
                 under `padded`",
                *min_samples as f64 / *sample_rate as f64
            )),
            Kind::Spectrogram { .. } => Some(
                "a track shorter than one window is zero-padded to a window; those videos are \
                 listed under `padded`"
                    .into(),
            ),
            _ => None,
        }
    }

    /// A zero input of the shape the model takes (to learn its feature dimension).
    pub fn probe_input(&self) -> Result<ModelInput> {
        let shape = match &self.kind {
            Kind::Waveform { min_samples, .. } => vec![*min_samples],
            Kind::Spectrogram { logmel } => {
                let n = self
                    .segmenting
                    .window_samples(logmel.config().sample_rate as u32)
                    .unwrap_or(1);
                vec![1, logmel.config().n_mels, logmel.num_frames(n)]
            }
            Kind::Clip { data } => {
                let s = data.recipe().test.crop;
                vec![3, data.recipe().sampling.frames(), s, s]
            }
            Kind::Image { test, .. } => vec![3, test.crop, test.crop],
        };
        let n = shape.iter().product();
        Ok(ModelInput {
            shape,
            data: vec![0.0; n],
        })
    }

    /// The inputs of video `index` (of the videos the plan was made with).
    pub fn prepare(&self, index: usize) -> Result<Prepared> {
        let video = self.videos.get(index).ok_or_else(|| {
            candle_core::Error::Msg(format!("video {index} asked of {}", self.videos.len()))
        })?;
        match &self.kind {
            Kind::Waveform {
                sample_rate,
                min_samples,
            } => self.audio_inputs(video, *sample_rate, *min_samples, |w| {
                Ok(ModelInput {
                    shape: vec![w.len()],
                    data: w,
                })
            }),
            Kind::Spectrogram { logmel } => {
                let rate = logmel.config().sample_rate as u32;
                self.audio_inputs(video, rate, 1, |w| {
                    let frames = logmel.num_frames(w.len());
                    Ok(ModelInput {
                        shape: vec![1, logmel.config().n_mels, frames],
                        data: logmel.log_mel(&w)?,
                    })
                })
            }
            Kind::Clip { data } => {
                let (views, _) = data.test_views(index)?;
                Ok(Prepared::Inputs {
                    inputs: views.into_iter().map(clip_input).collect(),
                    padded: false,
                })
            }
            Kind::Image { test, norm } => self.image_inputs(video, test, norm),
        }
    }

    fn audio_inputs(
        &self,
        video: &Path,
        rate: u32,
        min_samples: usize,
        make: impl Fn(Vec<f32>) -> Result<ModelInput>,
    ) -> Result<Prepared> {
        let audio = match load_video_audio(&self.root, video, rate)? {
            VideoAudio::Track(a) => a,
            VideoAudio::None(why) => return Ok(Prepared::NoAudio(why)),
        };
        let (windows, padded) = self
            .segmenting
            .audio_windows(&audio.samples, rate, min_samples)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", video.display())))?;
        Ok(Prepared::Inputs {
            inputs: windows.into_iter().map(make).collect::<Result<_>>()?,
            padded,
        })
    }

    fn image_inputs(
        &self,
        video: &Path,
        test: &TestAugment,
        norm: &Normalization,
    ) -> Result<Prepared> {
        let source = VideoSource::open(&self.root, video, self.fps)?;
        let indices = self
            .segmenting
            .frame_indices(source.num_frames(), || source.fps())
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", video.display())))?;
        let mut inputs = Vec::with_capacity(indices.len());
        for frame in source.read(&indices)? {
            let mut clips = test.apply(std::slice::from_ref(&frame), norm)?;
            let clip = clips.pop().ok_or_else(|| {
                candle_core::Error::Msg(format!("{}: the transform gave no crop", video.display()))
            })?;
            // [3, 1, H, W] and [3, H, W] have the same layout.
            inputs.push(ModelInput {
                shape: vec![3, clip.height, clip.width],
                data: clip.data,
            });
        }
        Ok(Prepared::Inputs {
            inputs,
            padded: false,
        })
    }
}

/// The window of an audio ViT's own input length: its preprocessor's clip when that gives exactly
/// `frames` log-mel frames (XKD: 4 s = 448 frames), else the length that does ((frames - 1) hops).
fn native_window_seconds(logmel: &LogMel, audio_seconds: Option<f64>, frames: usize) -> f64 {
    let rate = logmel.config().sample_rate as f64;
    audio_seconds
        .filter(|s| logmel.num_frames((s * rate).round() as usize) == frames)
        .unwrap_or((frames.saturating_sub(1) * logmel.config().hop_length) as f64 / rate)
}

fn clip_input(clip: ClipArray) -> ModelInput {
    ModelInput {
        shape: clip.shape().to_vec(),
        data: clip.data,
    }
}

fn clip_segmenting(recipe: &ClipRecipe, pre: &PreprocessorConfig) -> Segmenting {
    let (clips, crops) = recipe.views_per_video();
    Segmenting::ClipViews {
        frames: recipe.sampling.frames(),
        clips,
        crops,
        fps: pre.fps,
        crop_size: recipe.test.crop,
    }
}
