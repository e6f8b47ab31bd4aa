//! Which source frames make up a clip: the temporal sampling of XKD and CCL, as pure functions of
//! the frame count and frame rate, so a frame folder and a decoded container give the same clips.
//!
//! - XKD (PyAV `av_load_video` at `video_fps = 8`): output times t = start + k/8, fewer than
//!   min(start + dur − 0.5/fps_src, end), at most int(dur·8) of them; source frame int(t·fps_src).
//!   Frames past the end are missing and padded by repeating from the start. Training takes one
//!   random 4-s window; testing decodes the whole video at 8 fps and takes `clips` windows of 32
//!   frames at `np.linspace(0, nf − 32, clips).astype(int)`.
//! - CCL (kenshohara/3D-ResNets-PyTorch `temporal_transforms.py`, frames 0-based here where CCL's
//!   are 1-based): `TemporalRandomCrop(16)` for training, `TemporalEvenCrop(16, 3)` for validation,
//!   `SlidingWindow(16, 16)` for testing, all loop-padded.

use crate::nn::rng::SeededRng;
use candle_core::Result;

fn msg(s: String) -> candle_core::Error {
    candle_core::Error::Msg(s)
}

/// Source frame indices of XKD's 8-fps resampling from `start_sec` for `duration_sec`, with no
/// padding: what PyAV decodes, so frames past the end of the video are simply absent.
pub fn xkd_resampled_indices(
    num_src_frames: usize,
    src_fps: f64,
    start_sec: f64,
    duration_sec: f64,
    target_fps: f64,
) -> Vec<usize> {
    if num_src_frames == 0 || src_fps <= 0.0 || target_fps <= 0.0 {
        return Vec::new();
    }
    let end = num_src_frames as f64 / src_fps;
    let stop = (start_sec + duration_sec - 0.5 / src_fps).min(end);
    let max_out = (duration_sec * target_fps) as usize;
    let step = 1.0 / target_fps;
    let mut out = Vec::with_capacity(max_out);
    // np.arange(start, stop, step)[k] = start + k·step.
    for k in 0..max_out {
        let t = start_sec + k as f64 * step;
        if t >= stop {
            break;
        }
        let idx = (t * src_fps).floor() as usize;
        if idx >= num_src_frames {
            break;
        }
        out.push(idx);
    }
    out
}

/// Pads a clip to `len` by repeating it from its start (cyclically, so a clip shorter than half
/// of `len` still fills it). This is both XKD's `_if_pad_missing` and 3D-ResNets' `LoopPadding`.
pub fn loop_pad(mut clip: Vec<usize>, len: usize) -> Vec<usize> {
    if clip.is_empty() {
        return clip;
    }
    let mut i = 0;
    while clip.len() < len {
        clip.push(clip[i]);
        i += 1;
    }
    clip
}

/// XKD's frames of one clip: `num_frames` frames at `target_fps` from `start_sec` (32 at 8 fps =
/// 4 s), source index int(t·fps_src), padded by repeating from the start when the video ends first.
pub fn xkd_frame_indices(
    num_src_frames: usize,
    src_fps: f64,
    start_sec: f64,
    num_frames: usize,
    target_fps: f64,
) -> Vec<usize> {
    let duration = num_frames as f64 / target_fps;
    let clip = xkd_resampled_indices(num_src_frames, src_fps, start_sec, duration, target_fps);
    loop_pad(clip, num_frames)
}

/// The starts of `np.linspace(0, last, n).astype(int)` (truncation toward zero, `last` ≥ 0).
pub fn linspace_starts(last: usize, n: usize) -> Vec<usize> {
    match n {
        0 => Vec::new(),
        1 => vec![0],
        _ => {
            let step = last as f64 / (n - 1) as f64;
            (0..n)
                .map(|i| {
                    if i == n - 1 {
                        last
                    } else {
                        (i as f64 * step) as usize
                    }
                })
                .collect()
        }
    }
}

/// XKD's test clips: the whole video at `target_fps`, padded to at least `num_frames`, then
/// `clips` windows of `num_frames` at `np.linspace(0, nf − num_frames, clips).astype(int)`.
pub fn xkd_test_indices(
    num_src_frames: usize,
    src_fps: f64,
    num_frames: usize,
    target_fps: f64,
    clips: usize,
) -> Vec<Vec<usize>> {
    let duration = num_src_frames as f64 / src_fps;
    let all = xkd_resampled_indices(num_src_frames, src_fps, 0.0, duration, target_fps);
    let all = loop_pad(all, num_frames);
    if all.is_empty() {
        return Vec::new();
    }
    linspace_starts(all.len() - num_frames, clips)
        .into_iter()
        .map(|s| all[s..s + num_frames].to_vec())
        .collect()
}

/// 3D-ResNets' `TemporalRandomCrop(size)`: start uniform in [0, max(0, n − size − 1)] inclusive,
/// `size` consecutive frames, loop-padded when the video is shorter.
pub fn ccl_random_crop(n_frames: usize, size: usize, rng: &mut SeededRng) -> Vec<usize> {
    if n_frames == 0 {
        return Vec::new();
    }
    let rand_end = n_frames.saturating_sub(size + 1);
    let begin = rng.range(0, rand_end + 1);
    let end = (begin + size).min(n_frames);
    loop_pad((begin..end).collect(), size)
}

/// 3D-ResNets' `TemporalEvenCrop(size, n_samples)`:
/// ```python
/// stride = max(1, math.ceil((n_frames - 1 - size) / (n_samples - 1)))
/// for begin in frame_indices[::stride]:
///     if len(out) >= n_samples: break
///     sample = list(range(begin, min(frame_indices[-1] + 1, begin + size)))
///     if len(sample) < size: out.append(loop(sample)); break
///     else: out.append(sample)
/// ```
/// So clips start at 0, stride, 2·stride, …; the first short clip is loop-padded and ends the
/// list, which can therefore hold fewer than `n_samples` clips. (`n_samples = 1` divides by zero
/// in Python; here it gives the single clip at 0.)
pub fn ccl_even_crop(n_frames: usize, size: usize, n_samples: usize) -> Vec<Vec<usize>> {
    if n_frames == 0 || n_samples == 0 {
        return Vec::new();
    }
    let stride = if n_samples == 1 {
        n_frames.max(1)
    } else {
        let num = n_frames as i64 - 1 - size as i64;
        let den = n_samples as i64 - 1;
        // ceil of a possibly negative ratio, as math.ceil.
        let ceil = num.div_euclid(den) + i64::from(num.rem_euclid(den) != 0);
        ceil.max(1) as usize
    };
    let mut out = Vec::new();
    for begin in (0..n_frames).step_by(stride) {
        if out.len() >= n_samples {
            break;
        }
        let end = n_frames.min(begin + size);
        let sample: Vec<usize> = (begin..end).collect();
        if sample.len() < size {
            out.push(loop_pad(sample, size));
            break;
        }
        out.push(sample);
    }
    out
}

/// 3D-ResNets' `SlidingWindow(size, stride)`: windows at 0, stride, …; the first short one is
/// loop-padded and is the last.
pub fn ccl_sliding_window(n_frames: usize, size: usize, stride: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    for begin in (0..n_frames).step_by(stride.max(1)) {
        let end = n_frames.min(begin + size);
        let sample: Vec<usize> = (begin..end).collect();
        if sample.len() < size {
            out.push(loop_pad(sample, size));
            break;
        }
        out.push(sample);
    }
    out
}

/// How CCL picks its evaluation clips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CclTest {
    /// `TemporalEvenCrop(frames, clips)`: the per-epoch validation (3 clips).
    EvenCrop { clips: usize },
    /// `SlidingWindow(frames, stride)`: the final test (stride 16, every window).
    Sliding { stride: usize },
}

/// A model's temporal sampling protocol.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClipSampling {
    /// XKD: `frames` frames at `fps` (32 at 8 fps); `clips` test windows per video (3).
    Xkd {
        frames: usize,
        fps: f64,
        clips: usize,
    },
    /// CCL: `frames` consecutive source frames (16).
    Ccl { frames: usize, clips: CclTest },
}

impl ClipSampling {
    /// XKD's fine-tuning protocol: 32 frames at 8 fps, 3 test clips.
    pub fn xkd() -> Self {
        Self::Xkd {
            frames: 32,
            fps: 8.0,
            clips: 3,
        }
    }

    /// CCL's test protocol: 16 frames, every non-overlapping window.
    pub fn ccl_test() -> Self {
        Self::Ccl {
            frames: 16,
            clips: CclTest::Sliding { stride: 16 },
        }
    }

    /// CCL's per-epoch validation: 16 frames, 3 evenly spaced clips.
    pub fn ccl_val() -> Self {
        Self::Ccl {
            frames: 16,
            clips: CclTest::EvenCrop { clips: 3 },
        }
    }

    /// Frames per clip.
    pub fn frames(&self) -> usize {
        match self {
            Self::Xkd { frames, .. } | Self::Ccl { frames, .. } => *frames,
        }
    }

    fn check(&self, n_frames: usize, src_fps: f64) -> Result<()> {
        if n_frames == 0 {
            return Err(msg("clip sampling: the video has no frames".into()));
        }
        if !(src_fps.is_finite() && src_fps > 0.0) {
            return Err(msg(format!(
                "clip sampling: frame rate must be positive, found {src_fps}"
            )));
        }
        if self.frames() == 0 {
            return Err(msg("clip sampling: frames per clip must be positive".into()));
        }
        if let Self::Xkd { fps, .. } = self {
            if !(fps.is_finite() && *fps > 0.0) {
                return Err(msg(format!(
                    "clip sampling: target frame rate must be positive, found {fps}"
                )));
            }
        }
        Ok(())
    }

    /// One training clip's source frame indices.
    pub fn train_indices(
        &self,
        n_frames: usize,
        src_fps: f64,
        rng: &mut SeededRng,
    ) -> Result<Vec<usize>> {
        self.check(n_frames, src_fps)?;
        Ok(match *self {
            Self::Xkd { frames, fps, .. } => {
                // One random window of frames/fps seconds, its start uniform over the video.
                let clip_sec = frames as f64 / fps;
                let dur = n_frames as f64 / src_fps;
                let start = rng.uniform_f64() * (dur - clip_sec).max(0.0);
                xkd_frame_indices(n_frames, src_fps, start, frames, fps)
            }
            Self::Ccl { frames, .. } => ccl_random_crop(n_frames, frames, rng),
        })
    }

    /// The evaluation clips of one video, each as source frame indices.
    pub fn test_indices(&self, n_frames: usize, src_fps: f64) -> Result<Vec<Vec<usize>>> {
        self.check(n_frames, src_fps)?;
        Ok(match *self {
            Self::Xkd { frames, fps, clips } => {
                xkd_test_indices(n_frames, src_fps, frames, fps, clips)
            }
            Self::Ccl {
                frames,
                clips: CclTest::EvenCrop { clips },
            } => ccl_even_crop(n_frames, frames, clips),
            Self::Ccl {
                frames,
                clips: CclTest::Sliding { stride },
            } => ccl_sliding_window(n_frames, frames, stride),
        })
    }
}
