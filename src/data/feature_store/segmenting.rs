//! How a video is cut into the windows a model sees, whose features are averaged into the video's
//! feature: recorded in a feature store's index (machine-readable and in words), and applied here
//! to an audio track or a video's frame count.
//!
//! Windows are consecutive and non-overlapping from the start. A last, partial window is kept when
//! it lasts at least half a window, or when it is the only one (a video shorter than a window);
//! audio windows are zero-padded to full length, as PANNs and XKD pad short clips. Dropping a short
//! tail keeps a few padded samples from weighing as much as a full window in the mean.

use candle_core::Result;
use serde::{Deserialize, Serialize};

/// A partial last window shorter than this fraction of a window is dropped (unless it is the only
/// one); [`Segmenting::describe`] says "half a window".
pub const MIN_TAIL_FRACTION: f64 = 0.5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Segmenting {
    /// The whole audio track in one forward pass.
    WholeTrack,
    /// Consecutive windows of the audio track.
    AudioWindows { window_seconds: f64 },
    /// The centre frame of the video.
    CentreFrame,
    /// The centre frame of each consecutive window of the video.
    FrameWindows { window_seconds: f64 },
    /// A video model's test views, as its clip recipe makes them.
    ClipViews {
        frames: usize,
        /// Clips per video; `None`: every non-overlapping window of `frames` frames.
        clips: Option<usize>,
        crops: usize,
        /// The rate clips are sampled at; `None`: consecutive frames.
        fps: Option<f64>,
        crop_size: usize,
    },
}

/// Windows of `len` in `total`: the whole ones, plus the partial tail when the rule keeps it.
fn window_count(total: usize, len: usize) -> usize {
    let (full, tail) = (total / len, total % len);
    let keep_tail = tail > 0 && (full == 0 || tail as f64 >= MIN_TAIL_FRACTION * len as f64);
    full + keep_tail as usize
}

/// Samples (or frames) of a window of `seconds` at `rate`, at least 1.
fn window_len(seconds: f64, rate: f64) -> usize {
    ((seconds * rate).round() as usize).max(1)
}

impl Segmenting {
    /// The policy in words, for the index and the logs.
    pub fn describe(&self) -> String {
        let tail = "a last partial window is kept when it lasts at least half a window or is the \
                    only one";
        match self {
            Self::WholeTrack => "the whole audio track in one forward pass (no windows)".into(),
            Self::AudioWindows { window_seconds } => format!(
                "the audio track in consecutive non-overlapping windows of {window_seconds} s from \
                 its start ({tail}, zero-padded to full length); the video's feature is the mean \
                 of its windows' features"
            ),
            Self::CentreFrame => "the centre frame of the video (frame floor(n/2), 0-based)".into(),
            Self::FrameWindows { window_seconds } => format!(
                "the centre frame of each consecutive non-overlapping {window_seconds} s window of \
                 the video ({tail}); the video's feature is the mean of the frames' features"
            ),
            Self::ClipViews {
                frames,
                clips,
                crops,
                fps,
                crop_size,
            } => {
                let clips = match clips {
                    Some(n) => format!("{n} clips"),
                    None => "every non-overlapping clip".into(),
                };
                let frames = match fps {
                    Some(f) => format!("{frames} frames at {f} fps"),
                    None => format!("{frames} consecutive frames"),
                };
                format!(
                    "the model's test views: {clips} of {frames}, {crops} crop(s) of {crop_size} px \
                     each; the video's feature is the mean of the views' features"
                )
            }
        }
    }

    /// Samples per audio window at `rate` Hz (`None` for the whole track or non-audio policies).
    pub fn window_samples(&self, rate: u32) -> Option<usize> {
        match self {
            Self::AudioWindows { window_seconds } => Some(window_len(*window_seconds, rate as f64)),
            _ => None,
        }
    }

    /// The windows of an audio track at `rate` Hz, each at least `min_samples` long (shorter ones
    /// zero-padded at the end), and whether the track was shorter than the first window (so it
    /// was padded).
    pub fn audio_windows(
        &self,
        samples: &[f32],
        rate: u32,
        min_samples: usize,
    ) -> Result<(Vec<Vec<f32>>, bool)> {
        if samples.is_empty() {
            candle_core::bail!("the audio track is empty")
        }
        let padded = |w: &[f32], len: usize| {
            let mut v = w.to_vec();
            v.resize(len.max(w.len()), 0.0);
            v
        };
        match self {
            Self::WholeTrack => Ok((
                vec![padded(samples, min_samples)],
                samples.len() < min_samples,
            )),
            Self::AudioWindows { window_seconds } => {
                let len = window_len(*window_seconds, rate as f64);
                if len < min_samples {
                    candle_core::bail!(
                        "a window of {window_seconds} s is {len} samples at {rate} Hz, fewer than \
                         the {min_samples} the model needs"
                    )
                }
                let count = window_count(samples.len(), len);
                let windows = (0..count)
                    .map(|i| padded(&samples[i * len..((i + 1) * len).min(samples.len())], len))
                    .collect();
                Ok((windows, samples.len() < len))
            }
            other => candle_core::bail!("{other:?} does not cut an audio track"),
        }
    }

    /// The 0-based frames an image model sees, of a video of `num_frames` frames at `fps`
    /// (frame windows need the rate).
    pub fn frame_indices(
        &self,
        num_frames: usize,
        fps: impl Fn() -> Result<f64>,
    ) -> Result<Vec<usize>> {
        if num_frames == 0 {
            candle_core::bail!("the video has no frames")
        }
        match self {
            Self::CentreFrame => Ok(vec![num_frames / 2]),
            Self::FrameWindows { window_seconds } => {
                let len = window_len(*window_seconds, fps()?);
                let count = window_count(num_frames, len);
                Ok((0..count)
                    .map(|i| {
                        let start = i * len;
                        start + (len.min(num_frames - start)) / 2
                    })
                    .collect())
            }
            other => candle_core::bail!("{other:?} does not choose frames"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_rule() {
        assert_eq!(window_count(10, 4), 3);
        assert_eq!(window_count(9, 4), 2);
        assert_eq!(window_count(3, 4), 1);
        assert_eq!(window_count(8, 4), 2);
    }

    #[test]
    fn audio_windows_pad_and_cut() {
        let s = Segmenting::AudioWindows {
            window_seconds: 1.0,
        };
        let (w, padded) = s.audio_windows(&[1.0; 25], 10, 5).unwrap();
        assert_eq!(w.len(), 3);
        assert!(!padded);
        assert_eq!(&w[2][..], &[1., 1., 1., 1., 1., 0., 0., 0., 0., 0.]);
        let (w, padded) = Segmenting::WholeTrack
            .audio_windows(&[1.0; 3], 10, 5)
            .unwrap();
        assert_eq!((w[0].len(), padded), (5, true));
        let (w, padded) = Segmenting::WholeTrack
            .audio_windows(&[1.0; 7], 10, 5)
            .unwrap();
        assert_eq!((w[0].len(), padded), (7, false));
    }

    #[test]
    fn frames_are_window_centres() {
        let f = || Ok(10.0);
        assert_eq!(
            Segmenting::CentreFrame.frame_indices(32, f).unwrap(),
            vec![16]
        );
        let s = Segmenting::FrameWindows {
            window_seconds: 1.0,
        };
        assert_eq!(s.frame_indices(25, f).unwrap(), vec![5, 15, 22]);
        assert_eq!(s.frame_indices(4, f).unwrap(), vec![2]);
    }
}
