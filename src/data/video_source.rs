//! One listed video opened for frame access, whatever it is on disk: a frame folder (always
//! available) or a container decoded in-process through FFmpeg's libraries (feature `ffmpeg`).
//!
//! The clip samplers need the frame count and the frame rate before they choose indices; both come
//! from the folder's `meta.json` or the container's stream. No rate is ever assumed: a frame folder
//! without `meta.json` takes the rate the caller was given (`--fps`), and without one asking for
//! its rate is an error that names it and says how to supply it. A container that states no rate
//! cannot be decoded at all ([`super::ffmpeg::probe`] says so, and how to proceed).

use super::media::{resolve_media, VideoMedia};
use super::video::{FrameFolder, RgbImage, FRAME_FOLDER_META};
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
    /// The media's own rate, else the one given to [`VideoSource::open`].
    fps: Option<f64>,
}

impl VideoSource {
    /// Opens what exists under `root` for the listed `video` (see [`resolve_media`]);
    /// `fps` (`--fps`) is the rate of a frame folder without `meta.json`.
    pub fn open(root: &Path, video: &Path, fps: Option<f64>) -> Result<Self> {
        if let Some(f) = fps.filter(|f| !(f.is_finite() && *f > 0.0)) {
            return Err(msg(format!(
                "{}: --fps must be a positive frame rate, found {f}",
                video.display()
            )));
        }
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
                if let Some(f) = folder.fps().filter(|f| !(f.is_finite() && *f > 0.0)) {
                    return Err(msg(format!(
                        "{}: `fps` must be a positive frame rate, found {f}",
                        dir.join(FRAME_FOLDER_META).display()
                    )));
                }
                Ok(Self {
                    num_frames: folder.len(),
                    fps: folder.fps().or(fps),
                    path: dir,
                    backend: Backend::Frames(folder),
                })
            }
            VideoMedia::File(path) => Self::open_file(path),
        }
    }

    /// A container's rate is its stream's: [`super::ffmpeg::probe`] refuses a stream without one,
    /// as decoding maps timestamps to frames through it.
    #[cfg(feature = "ffmpeg")]
    fn open_file(path: PathBuf) -> Result<Self> {
        let info = super::ffmpeg::probe(&path)?;
        if info.frames == 0 {
            return Err(msg(format!(
                "{}: the video stream has no frames",
                path.display()
            )));
        }
        Ok(Self {
            num_frames: info.frames,
            fps: Some(info.fps),
            backend: Backend::File(path.clone()),
            path,
        })
    }

    #[cfg(not(feature = "ffmpeg"))]
    fn open_file(path: PathBuf) -> Result<Self> {
        Err(msg(format!(
            "{}: decoding video containers needs avkd built with `--features ffmpeg`; \
             without it, extract frames to a folder per video (`ffmpeg -i v.avi v/img_%05d.jpg`)",
            path.display()
        )))
    }

    pub fn num_frames(&self) -> usize {
        self.num_frames
    }

    /// The frame rate: the media's own, else the one given to [`VideoSource::open`]. A frame
    /// folder that states none, opened without one, is an error naming it and saying how to supply
    /// the rate.
    pub fn fps(&self) -> Result<f64> {
        self.fps.ok_or_else(|| {
            msg(format!(
                "{}: the frame folder states no frame rate (it has no {FRAME_FOLDER_META}): \
                 write {} with {{\"fps\": N}}, N the source video's frames per second, \
                 or pass --fps N",
                self.path.display(),
                self.path.join(FRAME_FOLDER_META).display()
            ))
        })
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
