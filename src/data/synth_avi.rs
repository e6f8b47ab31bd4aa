//! The synthetic dataset as `.avi` files (feature `ffmpeg`): each frame folder and its WAV encoded
//! as MPEG-4 part 2 (tagged XVID, as UCF101's) + MP3, the way the real benchmark ships.

use super::audio::decode_file;
use super::synth_dataset::synth_videos;
use super::video::FrameFolder;
use candle_core::Result;
use std::path::Path;

/// Writes `<folder>.avi` for every frame folder that lacks one; with `remove_frames`, the folder is
/// deleted once its `.avi` is written, so the split lists resolve to the `.avi` files.
pub fn write_avi_files(dataset: &Path, remove_frames: bool) -> Result<usize> {
    let mut written = 0;
    for folder in synth_videos(dataset)?.into_iter().filter(|p| p.is_dir()) {
        let avi = folder.with_extension("avi");
        if !avi.is_file() {
            let frames = FrameFolder::open(&folder)?;
            let images = frames.read(&(0..frames.len()).collect::<Vec<_>>())?;
            let audio = decode_file(&folder.join("audio.wav"))?;
            let fps = frames.fps().ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "{}: no meta.json giving the frame rate to encode at",
                    folder.display()
                ))
            })?;
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
