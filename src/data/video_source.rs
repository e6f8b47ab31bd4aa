//! One listed video opened for frame access, whatever it is on disk: a frame folder (always
//! available) or a container decoded in-process through FFmpeg's libraries (feature `ffmpeg`).
//!
//! The clip samplers need the frame count and the frame rate before they choose indices; both come
//! from the folder's `meta.json` or the container's stream, and otherwise from the dataset's
//! nominal rate (UCF101 25 fps, HMDB51 30 fps).

use super::media::{resolve_media, VideoMedia};
use super::video::{FrameFolder, RgbImage};
use candle_core::Result;
use std::path::{Path, PathBuf};

fn msg(s: String) -> candle_core::Error {
    candle_core::Error::Msg(s)
}

#[derive(Debug, Clone)]
enum Backend {
    Frames(FrameFolder),
    #[cfg(feature = "ffmpeg")]
    File(PathBuf),
}

/// An opened video: frame count, frame rate, and frames by index.
#[derive(Debug, Clone)]
pub struct VideoSource {
    backend: Backend,
    path: PathBuf,
    num_frames: usize,
    fps: f64,
}

impl VideoSource {
    /// Opens what exists under `root` for the listed `video` (see [`resolve_media`]);
    /// `default_fps` is used when the media does not say its rate.
    pub fn open(root: &Path, video: &Path, default_fps: f64) -> Result<Self> {
        let media = resolve_media(root, video).ok_or_else(|| {
            msg(format!(
                "{}: no video file or frame folder for it under {}",
                video.display(),
                root.display()
            ))
        })?;
        match media.video {
            VideoMedia::Frames(dir) => {
                let folder = FrameFolder::open(&dir)?;
                let fps = folder.fps().unwrap_or(default_fps);
                Ok(Self {
                    num_frames: folder.len(),
                    fps,
                    path: dir,
                    backend: Backend::Frames(folder),
                })
            }
            VideoMedia::File(path) => Self::open_file(path, default_fps),
        }
    }

    #[cfg(feature = "ffmpeg")]
    fn open_file(path: PathBuf, default_fps: f64) -> Result<Self> {
        let info = super::ffmpeg::probe(&path)?;
        let fps = if info.fps.is_finite() && info.fps > 0.0 {
            info.fps
        } else {
            default_fps
        };
        if info.frames == 0 {
            return Err(msg(format!(
                "{}: the video stream has no frames",
                path.display()
            )));
        }
        Ok(Self {
            num_frames: info.frames,
            fps,
            backend: Backend::File(path.clone()),
            path,
        })
    }

    #[cfg(not(feature = "ffmpeg"))]
    fn open_file(path: PathBuf, _default_fps: f64) -> Result<Self> {
        Err(msg(format!(
            "{}: decoding video containers needs avkd built with `--features ffmpeg`; \
             without it, extract frames to a folder per video (`ffmpeg -i v.avi v/img_%05d.jpg`)",
            path.display()
        )))
    }

    pub fn num_frames(&self) -> usize {
        self.num_frames
    }

    pub fn fps(&self) -> f64 {
        self.fps
    }

    /// The frame folder or the container file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames at 0-based `indices` (repeats allowed, any order).
    pub fn read(&self, indices: &[usize]) -> Result<Vec<RgbImage>> {
        match &self.backend {
            Backend::Frames(folder) => folder.read(indices),
            #[cfg(feature = "ffmpeg")]
            Backend::File(path) => super::ffmpeg::decode_frames(path, indices),
        }
    }
}
