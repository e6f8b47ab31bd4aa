//! One XKD pre-training sample: a listed video opened, its clip chosen, and its global and local
//! video and audio views made ([`load_av_views`]).
//!
//! What the official loader (`datasets/loader/backend_pretext/video_db.py`, `kinetics.py`) does,
//! and how it is kept:
//! * Its video list holds only videos with an audio and a video stream both longer than 1.1 s
//!   (`valid_video`, probed once). Here the same rule is checked on every load and a video that
//!   fails it is a distinct error ([`AvSampleError::NoAudio`], [`AvSampleError::TooShort`]), so a
//!   job counts and reports such videos instead of training on them or dropping them unseen.
//! * Its `__getitem__` swallows every exception and moves on to the next video; here a video that
//!   cannot be read is [`AvSampleError::Failed`], and the caller decides.
//! * The clip start comes from `_sample_snippet` ([`sample_snippet`]): with both streams starting
//!   at 0 and a clip no longer than either, one start uniform in [0, min(durations) − clip], the
//!   same for video and audio; a stream shorter than the clip is read whole from 0 instead.
//! * Video: `av_load_video` at `fps` from that start ([`xkd_resampled_indices`]), padded by
//!   repeating from the start to `global_frames` ([`loop_pad`]); audio: `av_laod_audio` +
//!   `AudioPrep`, the clip's samples from the start, zero-padded at the end ([`segment`]).
//!
//! Random draws, in order: the clip start, the video views ([`video_views`]), the audio views
//! ([`audio_views`]), all from the one generator given, so a sample is a function of its seed.

use super::audio::{load_file, segment};
use super::clip_sampling::{loop_pad, xkd_resampled_indices};
use super::media::{resolve_media, VideoMedia};
use super::mel::LogMel;
use super::pretrain_audio::audio_views;
use super::pretrain_video::video_views;
use super::pretrain_views::PretrainViews;
use super::spectrogram::Spectrogram;
use super::transforms::ClipArray;
use super::video_source::VideoSource;
use crate::nn::rng::SeededRng;
use candle_core::{Device, Tensor};
use std::fmt;
use std::path::{Path, PathBuf};

/// The views of one sample: index 0 is the global view, then the local views.
#[derive(Debug, Clone, PartialEq)]
pub struct AvViews {
    /// `[3, global_frames, crop, crop]`, then `[3, local_frames, local_crop, local_crop]` each,
    /// ImageNet-normalised.
    pub frames: Vec<ClipArray>,
    /// `[n_mels, 1 + clip_samples / hop]`, then `[n_mels, 1 + local_samples / hop]` each,
    /// standardised as the [`LogMel`] says.
    pub specs: Vec<Spectrogram>,
    /// Where the clip starts in the video and in the audio, in seconds.
    pub video_start: f64,
    pub audio_start: f64,
}

/// A media stream, in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Video,
    Audio,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Video => "video",
            Stream::Audio => "audio",
        })
    }
}

/// Why a listed video gave no sample. The first two are videos XKD's own list leaves out (see
/// [`AvSampleError::is_filtered`]); the last is a video that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AvSampleError {
    /// The video has no audio: no audio stream, or no audio file for a frame folder.
    #[error("{}: no audio ({reason}); XKD pre-trains only on videos with both an audio and a video stream", video.display())]
    NoAudio { video: PathBuf, reason: String },
    /// A stream lasts no longer than the recipe's `min_stream_seconds` (XKD's 1.1 s).
    #[error("{}: the {stream} stream lasts {seconds:.3} s; XKD pre-trains only on videos whose streams both last more than {min_seconds} s", video.display())]
    TooShort {
        video: PathBuf,
        stream: Stream,
        seconds: f64,
        min_seconds: f64,
    },
    /// Anything else: missing, unreadable or undecodable media, or a recipe the media cannot meet.
    #[error("{}: {source}", video.display())]
    Failed {
        video: PathBuf,
        #[source]
        source: candle_core::Error,
    },
}

impl AvSampleError {
    /// The listed video this is about.
    pub fn video(&self) -> &Path {
        match self {
            Self::NoAudio { video, .. }
            | Self::TooShort { video, .. }
            | Self::Failed { video, .. } => video,
        }
    }

    /// True for the videos XKD's list excludes (no audio, or a stream too short): a job counts
    /// and reports these apart from videos that failed to load.
    pub fn is_filtered(&self) -> bool {
        matches!(self, Self::NoAudio { .. } | Self::TooShort { .. })
    }
}

/// Where the clip lies in each stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snippet {
    pub video_start: f64,
    /// Seconds of video to read: the clip, or the whole video when it is shorter.
    pub video_duration: f64,
    pub audio_start: f64,
}

/// XKD's `_sample_snippet` for streams starting at 0 that last `video_seconds` and
/// `audio_seconds`, with equal video and audio clip lengths `clip_seconds`:
/// * both long enough: one start U(0, min(durations) − clip) (0 when that is not positive) for
///   both (the official second draw, for the audio inside the video's window, can only return the
///   same start and is not made);
/// * the video shorter than the clip: the whole video from 0, the audio from U(0, audio − clip);
/// * the audio shorter: the video from U(0, video − clip), the audio from 0;
/// * both shorter: both from 0.
pub fn sample_snippet(
    video_seconds: f64,
    audio_seconds: f64,
    clip_seconds: f64,
    rng: &mut SeededRng,
) -> Snippet {
    let uniform = |rng: &mut SeededRng, hi: f64| hi * rng.uniform_f64();
    let video_short = clip_seconds > video_seconds;
    let audio_short = clip_seconds > audio_seconds;
    match (video_short, audio_short) {
        (true, true) => Snippet {
            video_start: 0.0,
            video_duration: video_seconds,
            audio_start: 0.0,
        },
        (true, false) => Snippet {
            video_start: 0.0,
            video_duration: video_seconds,
            audio_start: uniform(rng, audio_seconds - clip_seconds),
        },
        (false, true) => Snippet {
            video_start: uniform(rng, video_seconds - clip_seconds),
            video_duration: clip_seconds,
            audio_start: 0.0,
        },
        (false, false) => {
            let last = video_seconds.min(audio_seconds) - clip_seconds;
            let start = if last > 0.0 { uniform(rng, last) } else { 0.0 };
            Snippet {
                video_start: start,
                video_duration: clip_seconds,
                audio_start: start,
            }
        }
    }
}

/// The whole audio of the listed video at `sample_rate`: its separate file (a frame folder's
/// `audio.wav`, a sibling `.wav`), else the container's own track. No audio is
/// [`AvSampleError::NoAudio`].
fn load_audio(root: &Path, video: &Path, sample_rate: u32) -> Result<Vec<f32>, AvSampleError> {
    let failed = |source| AvSampleError::Failed {
        video: video.to_path_buf(),
        source,
    };
    let no_audio = |reason: &str| AvSampleError::NoAudio {
        video: video.to_path_buf(),
        reason: reason.to_string(),
    };
    let media = resolve_media(root, video).ok_or_else(|| {
        failed(candle_core::Error::Msg(format!(
            "no video file or frame folder for it under {}",
            root.display()
        )))
    })?;
    let path = match (media.audio, media.video) {
        (Some(audio), _) => audio,
        (None, VideoMedia::Frames(dir)) => {
            return Err(no_audio(&format!(
            "the frame folder {} holds no audio.{{wav,flac,mp3}} and has no such file beside it",
            dir.display()
        )))
        }
        (None, VideoMedia::File(file)) => {
            if !container_has_audio(&file).map_err(failed)? {
                return Err(no_audio(&format!("{} has no audio stream", file.display())));
            }
            file
        }
    };
    Ok(load_file(&path, sample_rate).map_err(failed)?.samples)
}

/// Whether a container holds an audio stream, as FFmpeg probes it.
#[cfg(feature = "ffmpeg")]
fn container_has_audio(file: &Path) -> candle_core::Result<bool> {
    Ok(super::ffmpeg::probe(file)?.has_audio)
}

/// Without FFmpeg a container's video cannot be decoded, so [`VideoSource::open`] has already
/// refused it before this is asked.
#[cfg(not(feature = "ffmpeg"))]
fn container_has_audio(_file: &Path) -> candle_core::Result<bool> {
    Ok(true)
}

/// The views of the listed `video` under `root` (see the module documentation). `logmel` is
/// XKD's log-mel (`LogMel::new(LogMelConfig::xkd())`, at `views.sample_rate`); `fps_override` is
/// the frame rate of frame folders without `meta.json` (`--fps`).
pub fn load_av_views(
    root: &Path,
    video: &Path,
    views: &PretrainViews,
    logmel: &LogMel,
    fps_override: Option<f64>,
    rng: &mut SeededRng,
) -> Result<AvViews, AvSampleError> {
    let failed = |source| AvSampleError::Failed {
        video: video.to_path_buf(),
        source,
    };
    views.validate().map_err(failed)?;
    let source = VideoSource::open(root, video, fps_override).map_err(failed)?;
    let src_fps = source.fps().map_err(failed)?;
    let samples = load_audio(root, video, views.sample_rate)?;
    let video_seconds = source.num_frames() as f64 / src_fps;
    let audio_seconds = samples.len() as f64 / views.sample_rate as f64;
    for (stream, seconds) in [
        (Stream::Video, video_seconds),
        (Stream::Audio, audio_seconds),
    ] {
        if seconds <= views.min_stream_seconds {
            return Err(AvSampleError::TooShort {
                video: video.to_path_buf(),
                stream,
                seconds,
                min_seconds: views.min_stream_seconds,
            });
        }
    }
    let snip = sample_snippet(video_seconds, audio_seconds, views.clip_seconds(), rng);
    let indices = xkd_resampled_indices(
        source.num_frames(),
        src_fps,
        snip.video_start,
        snip.video_duration,
        views.fps,
    );
    if indices.is_empty() {
        return Err(failed(candle_core::Error::Msg(format!(
            "no frame at {} fps in its {video_seconds:.3} s",
            views.fps
        ))));
    }
    let frames = source
        .read(&loop_pad(indices, views.global_frames))
        .map_err(failed)?;
    let wav = segment(
        &samples,
        views.sample_rate,
        snip.audio_start,
        views.clip_seconds(),
    )
    .map_err(failed)?;
    let frames = video_views(&frames, views, rng).map_err(failed)?;
    let specs = audio_views(&wav, views, logmel, rng).map_err(failed)?;
    Ok(AvViews {
        frames,
        specs,
        video_start: snip.video_start,
        audio_start: snip.audio_start,
    })
}

impl AvViews {
    /// A batch's views as tensors: for each view index, the frames `[B, 3, T, H, W]` and the
    /// spectrograms `[B, 1, n_mels, frames]` (every sample must have the same views).
    pub fn stack(
        batch: &[AvViews],
        dev: &Device,
    ) -> candle_core::Result<(Vec<Tensor>, Vec<Tensor>)> {
        let first = batch
            .first()
            .ok_or_else(|| candle_core::Error::Msg("stacking views: empty batch".into()))?;
        let (nv, na) = (first.frames.len(), first.specs.len());
        if let Some((i, s)) = batch
            .iter()
            .enumerate()
            .find(|(_, s)| s.frames.len() != nv || s.specs.len() != na)
        {
            candle_core::bail!(
                "stacking views: sample {i} has {} video and {} audio views, sample 0 has {nv} and {na}",
                s.frames.len(),
                s.specs.len()
            )
        }
        let mut frames = Vec::with_capacity(nv);
        for v in 0..nv {
            let shape = first.frames[v].shape();
            let mut data = Vec::with_capacity(batch.len() * first.frames[v].data.len());
            for (i, s) in batch.iter().enumerate() {
                let clip = &s.frames[v];
                if clip.shape() != shape || clip.data.len() != first.frames[v].data.len() {
                    candle_core::bail!(
                        "stacking views: video view {v} of sample {i} is {:?}, expected {shape:?} \
                         like sample 0's",
                        clip.shape()
                    )
                }
                data.extend_from_slice(&clip.data);
            }
            let [c, t, h, w] = shape;
            frames.push(Tensor::from_vec(data, (batch.len(), c, t, h, w), dev)?);
        }
        let mut specs = Vec::with_capacity(na);
        for v in 0..na {
            let views: Vec<&Spectrogram> = batch.iter().map(|s| &s.specs[v]).collect();
            specs.push(Spectrogram::stack(&views, dev)?);
        }
        Ok((frames, specs))
    }
}
