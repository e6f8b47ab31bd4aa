//! Video decoders. For now, frame folders: a folder per video holding one JPEG or PNG per frame
//! (MMAction2's `rawframes` `img_00001.jpg`, CCL's `image_00001.jpg`, avkd's synthetic dataset),
//! which needs no system library. Decoding containers (`.avi`, `.mp4`) comes with the `ffmpeg`
//! feature, in this module.
//!
//! Frames are ordered by name with numbers compared as numbers, so `img_2.jpg` comes before
//! `img_10.jpg` as well as `img_00002.jpg` before `img_00010.jpg`. A `meta.json` in the folder
//! ([`FrameFolderMeta`]) gives the frame rate; without one the caller must supply it (`--fps`), as
//! none is assumed.

use candle_core::{Device, Result, Tensor};
pub use image::RgbImage;
use std::path::{Path, PathBuf};

/// The file in a frame folder that describes it.
pub const FRAME_FOLDER_META: &str = "meta.json";

fn msg(s: String) -> candle_core::Error {
    candle_core::Error::Msg(s)
}

/// What `meta.json` says about a frame folder. Only `fps` is required.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FrameFolderMeta {
    /// Frames per second of the source video.
    pub fps: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Of the separate audio file, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_sample_rate: Option<u32>,
}

/// A folder of frames, listed once; frames are decoded when asked for.
#[derive(Debug, Clone)]
pub struct FrameFolder {
    dir: PathBuf,
    frames: Vec<PathBuf>,
    meta: Option<FrameFolderMeta>,
}

impl FrameFolder {
    /// Lists the `.jpg`/`.jpeg`/`.png` files of `dir` and reads its `meta.json` if there is one.
    pub fn open(dir: &Path) -> Result<Self> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| msg(format!("opening frame folder {}: {e}", dir.display())))?;
        let mut frames = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| msg(format!("listing frame folder {}: {e}", dir.display())))?
                .path();
            let is_image = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                ["jpg", "jpeg", "png"]
                    .iter()
                    .any(|x| e.eq_ignore_ascii_case(x))
            });
            if is_image && path.is_file() {
                frames.push(path);
            }
        }
        if frames.is_empty() {
            return Err(msg(format!(
                "frame folder {} holds no .jpg/.jpeg/.png frames",
                dir.display()
            )));
        }
        frames.sort_by_cached_key(|p| natural_key(p));
        let meta_path = dir.join(FRAME_FOLDER_META);
        let meta = if meta_path.is_file() {
            let text = std::fs::read_to_string(&meta_path)
                .map_err(|e| msg(format!("reading {}: {e}", meta_path.display())))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| msg(format!("parsing {}: {e}", meta_path.display())))?,
            )
        } else {
            None
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            frames,
            meta,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The frame files in order.
    pub fn frame_paths(&self) -> &[PathBuf] {
        &self.frames
    }

    pub fn meta(&self) -> Option<&FrameFolderMeta> {
        self.meta.as_ref()
    }

    /// Frames per second from `meta.json`, if the folder has one.
    pub fn fps(&self) -> Option<f64> {
        self.meta.as_ref().map(|m| m.fps)
    }

    /// The frames at 0-based `indices`, as RGB. A repeated index (loop padding) is decoded once.
    pub fn read(&self, indices: &[usize]) -> Result<Vec<RgbImage>> {
        let mut decoded: Vec<(usize, RgbImage)> = Vec::with_capacity(indices.len());
        let mut out = Vec::with_capacity(indices.len());
        for &i in indices {
            if let Some((_, img)) = decoded.iter().find(|(j, _)| *j == i) {
                out.push(img.clone());
                continue;
            }
            let path = self.frames.get(i).ok_or_else(|| {
                msg(format!(
                    "frame {i} asked of {}, which has {} frames",
                    self.dir.display(),
                    self.frames.len()
                ))
            })?;
            let img = decode_image(path)?;
            decoded.push((i, img.clone()));
            out.push(img);
        }
        Ok(out)
    }
}

/// The frames at 0-based `indices` of the frame folder `dir`.
pub fn read_frames(dir: &Path, indices: &[usize]) -> Result<Vec<RgbImage>> {
    FrameFolder::open(dir)?.read(indices)
}

/// One image file (JPEG or PNG, told by its bytes) as RGB.
pub fn decode_image(path: &Path) -> Result<RgbImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| msg(format!("opening {}: {e}", path.display())))?
        .with_guessed_format()
        .map_err(|e| msg(format!("reading {}: {e}", path.display())))?;
    Ok(reader
        .decode()
        .map_err(|e| msg(format!("decoding {}: {e}", path.display())))?
        .to_rgb8())
}

/// Frames of one size as a [3, T, H, W] f32 tensor in [0, 1] (the layout of `ClipToTensor`).
pub fn frames_to_tensor(frames: &[RgbImage], dev: &Device) -> Result<Tensor> {
    let first = frames
        .first()
        .ok_or_else(|| msg("no frames to stack".to_string()))?;
    let (w, h) = first.dimensions();
    let (t, hw) = (frames.len(), (w * h) as usize);
    let mut data = vec![0f32; 3 * t * hw];
    for (ti, frame) in frames.iter().enumerate() {
        if frame.dimensions() != (w, h) {
            return Err(msg(format!(
                "frame {ti} is {}x{}, frame 0 is {w}x{h}",
                frame.width(),
                frame.height()
            )));
        }
        for (p, px) in frame.pixels().enumerate() {
            for c in 0..3 {
                data[(c * t + ti) * hw + p] = px.0[c] as f32 / 255.0;
            }
        }
    }
    Tensor::from_vec(data, (3, t, h as usize, w as usize), dev)
}

/// Sort key that compares runs of digits by value: ("img_", 2, ".jpg") < ("img_", 10, ".jpg").
fn natural_key(path: &Path) -> Vec<(String, u64)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut key = Vec::new();
    let mut text = String::new();
    let mut digits = String::new();
    for ch in name.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
        } else {
            if !digits.is_empty() {
                key.push((
                    std::mem::take(&mut text),
                    digits.parse().unwrap_or(u64::MAX),
                ));
                digits.clear();
            }
            text.push(ch);
        }
    }
    key.push((text, digits.parse().unwrap_or(0)));
    key
}
