//! What exists on disk for a listed video: the video file itself, or a folder of its frames.
//!
//! Split lists name videos as `<Class>/<video>.avi`. A dataset may hold them as those files, as the
//! same stem with another container (`.mp4` after re-encoding), or as a folder per video with the
//! same stem holding its frames (MMAction2's `rawframes`, avkd's synthetic dataset). Audio is either
//! inside the video file, or a separate file: `audio.{wav,flac,mp3}` inside the frame folder, or a
//! sibling `<video>.{wav,flac,mp3}`.
//!
//! An exact path is tried first; only when nothing matches is each path component matched ignoring
//! ASCII case, so copies of UCF101 whose folder and file name cases were normalised (the
//! `HandstandPushups` / `v_HandStandPushups_*` pair) still resolve.

use std::path::{Path, PathBuf};

/// Containers tried, in order, when the listed file is absent.
pub const VIDEO_EXTENSIONS: [&str; 5] = ["avi", "mp4", "mkv", "webm", "mov"];
/// Separate audio files looked for, in order.
pub const AUDIO_EXTENSIONS: [&str; 3] = ["wav", "flac", "mp3"];
/// The stem of the audio file inside a frame folder (`audio.wav`).
pub const FRAME_FOLDER_AUDIO_STEM: &str = "audio";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoMedia {
    /// A container to decode (needs the `ffmpeg` feature for `.avi`/`.mp4`).
    File(PathBuf),
    /// A folder of JPEG/PNG frames (see [`crate::data::video::FrameFolder`]).
    Frames(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub video: VideoMedia,
    /// A separate audio file. `None` for a video file means its own audio track is the audio; for a
    /// frame folder it means there is no audio.
    pub audio: Option<PathBuf>,
}

/// What exists under `root` for the listed `video`, or `None` if nothing does.
pub fn resolve_media(root: &Path, video: &Path) -> Option<Media> {
    let found = find_video(root, video).or_else(|| {
        let actual = find_ignoring_case(root, video.parent()?)?;
        let name = Path::new(video.file_name()?);
        find_video(&actual, name).or_else(|| {
            // The folder matched; now the file or frame-folder name, ignoring case.
            let stem = Path::new(video.file_stem()?);
            [name, stem]
                .iter()
                .filter_map(|n| find_ignoring_case(&actual, n))
                .find_map(|p| classify(&p))
        })
    })?;
    Some(with_audio(found))
}

/// The listed file, the frame folder with its stem, or the stem with another container.
fn find_video(root: &Path, video: &Path) -> Option<VideoMedia> {
    let path = root.join(video);
    if path.is_file() {
        return Some(VideoMedia::File(path));
    }
    let stem = path.with_extension("");
    if stem.is_dir() {
        return Some(VideoMedia::Frames(stem));
    }
    VIDEO_EXTENSIONS
        .iter()
        .map(|ext| path.with_extension(ext))
        .find(|p| p.is_file())
        .map(VideoMedia::File)
}

fn classify(path: &Path) -> Option<VideoMedia> {
    if path.is_dir() {
        Some(VideoMedia::Frames(path.to_path_buf()))
    } else if path.is_file() {
        Some(VideoMedia::File(path.to_path_buf()))
    } else {
        None
    }
}

fn with_audio(video: VideoMedia) -> Media {
    let candidates: Vec<PathBuf> = match &video {
        VideoMedia::Frames(dir) => AUDIO_EXTENSIONS
            .iter()
            .map(|ext| dir.join(FRAME_FOLDER_AUDIO_STEM).with_extension(ext))
            .chain(AUDIO_EXTENSIONS.iter().map(|ext| dir.with_extension(ext)))
            .collect(),
        VideoMedia::File(file) => AUDIO_EXTENSIONS
            .iter()
            .map(|ext| file.with_extension(ext))
            .filter(|p| p != file)
            .collect(),
    };
    let audio = candidates.into_iter().find(|p| p.is_file());
    Media { video, audio }
}

/// `root/rel` with each component matched ignoring ASCII case (exact matches preferred).
fn find_ignoring_case(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut current = root.to_path_buf();
    for part in rel.components() {
        let part = part.as_os_str();
        let exact = current.join(part);
        if exact.exists() {
            current = exact;
            continue;
        }
        let wanted = part.to_str()?;
        let entry = std::fs::read_dir(&current)
            .ok()?
            .filter_map(|e| e.ok())
            .find(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(wanted))
            })?;
        current = entry.path();
    }
    Some(current)
}
