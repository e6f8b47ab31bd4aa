//! The synthetic dataset as `.avi` files (feature `ffmpeg`): each frame folder and its WAV encoded
//! as MPEG-4 part 2 (tagged XVID, as UCF101's) + MP3, the way the real benchmark ships.

use super::audio::decode_file;
use super::synth_dataset::SYNTH_VIDEO_DIR;
use super::video::FrameFolder;
use candle_core::Result;
use std::path::{Path, PathBuf};

/// The frame folders under the dataset's video folder.
pub fn frame_folders(dataset: &Path) -> Result<Vec<PathBuf>> {
    let root = dataset.join(SYNTH_VIDEO_DIR);
    let list = |p: &Path| -> Result<Vec<PathBuf>> {
        let entries = std::fs::read_dir(p)
            .map_err(|e| candle_core::Error::Msg(format!("listing {}: {e}", p.display())))?;
        let mut out = Vec::new();
        for entry in entries {
            out.push(entry.map_err(candle_core::Error::wrap)?.path());
        }
        out.sort();
        Ok(out)
    };
    let mut folders = Vec::new();
    for class in list(&root)?.into_iter().filter(|p| p.is_dir()) {
        folders.extend(list(&class)?.into_iter().filter(|p| p.is_dir()));
    }
    Ok(folders)
}

/// Writes `<folder>.avi` for every frame folder that lacks one; with `remove_frames`, the folder is
/// deleted once its `.avi` is written, so the split lists resolve to the `.avi` files.
pub fn write_avi_files(dataset: &Path, remove_frames: bool) -> Result<usize> {
    let mut written = 0;
    for folder in frame_folders(dataset)? {
        let avi = folder.with_extension("avi");
        if !avi.is_file() {
            let frames = FrameFolder::open(&folder)?;
            let images = frames.read(&(0..frames.len()).collect::<Vec<_>>())?;
            let audio = decode_file(&folder.join("audio.wav"))?;
            let fps = frames.fps().unwrap_or(25.0);
            super::ffmpeg::write_avi(&avi, &images, fps, &audio.samples, audio.sample_rate)?;
            written += 1;
        }
        if remove_frames {
            std::fs::remove_dir_all(&folder).map_err(|e| {
                candle_core::Error::Msg(format!("removing {}: {e}", folder.display()))
            })?;
        }
    }
    Ok(written)
}
