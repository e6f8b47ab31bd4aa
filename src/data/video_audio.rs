//! The whole audio track of a listed video, or the fact that it has none.
//!
//! Audio is the separate file beside or inside the video's entry (a frame folder's `audio.wav`, a
//! sibling `<video>.wav`), else the container's own track (see [`resolve_media`]). A video with no
//! audio at all (a frame folder without an audio file, a container without an audio stream) is
//! [`VideoAudio::None`], not an error: half of UCF101 is silent, and feature extraction records
//! such videos as having no audio, as the CCL release does by leaving their feature out.

use super::audio::{load_file, load_track, Audio};
use super::media::{resolve_media, VideoMedia};
use candle_core::Result;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub enum VideoAudio {
    /// Mono samples at the rate asked for.
    Track(Audio),
    /// No audio, and why (for logs).
    None(String),
}

/// The audio of the listed `video` under `root`, mono at `sample_rate`.
pub fn load_video_audio(root: &Path, video: &Path, sample_rate: u32) -> Result<VideoAudio> {
    let media = resolve_media(root, video).ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "{}: no video file or frame folder for it under {}",
            video.display(),
            root.display()
        ))
    })?;
    match (media.audio, media.video) {
        (Some(audio), _) => Ok(VideoAudio::Track(load_file(&audio, sample_rate)?)),
        (None, VideoMedia::Frames(dir)) => Ok(VideoAudio::None(format!(
            "the frame folder {} holds no audio.{{wav,flac,mp3}} and has no such file beside it",
            dir.display()
        ))),
        (None, VideoMedia::File(file)) => Ok(match load_track(&file, sample_rate)? {
            Some(audio) => VideoAudio::Track(audio),
            None => VideoAudio::None(format!("{} has no audio stream", file.display())),
        }),
    }
}
