//! Audio decoding to mono f32 at the file's own sample rate, in pure Rust (symphonia 0.6): WAV,
//! FLAC, MP3, AAC-LC in MP4/M4A (the first audio track, whatever the video tracks), and the
//! audio stream of AVI files (MP3 as in UCF101, fed to symphonia's MP3 reader; other WAVEFORMATEX
//! formats such as PCM through its WAV reader). Channels are averaged, as XKD's `AudioPrep` does
//! (FFmpeg's s16 downmix to mono is the same mean). Then [`resample`] to 16 kHz and [`segment`]
//! cut the clip the way XKD's loader does.
//!
//! Every error names the file and what was wrong with it; malformed, truncated and unsupported
//! files never panic.

use super::audio_track::{decode_first_audio_track, err};
use super::avi::{extract_audio, has_audio_stream, is_avi, WAVE_FORMAT_MPEGLAYER3};
use super::resample::resample;
use candle_core::Result;
use std::io::Cursor;
use std::path::Path;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::default::formats::MpaReader;
use symphonia::default::get_probe;

/// The sample rate XKD's audio front end works at.
pub const XKD_SAMPLE_RATE: u32 = 16_000;

/// Mono audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Audio {
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

/// Decodes the audio of a media file to mono f32 at its own sample rate.
pub fn decode_file(path: &Path) -> Result<Audio> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| err(&name, format!("cannot read: {e}")))?;
    decode_bytes(bytes, &name)
}

/// Decodes the audio of a media file to mono f32 at `sample_rate` (e.g. [`XKD_SAMPLE_RATE`]).
pub fn load_file(path: &Path, sample_rate: u32) -> Result<Audio> {
    let audio = decode_file(path)?;
    let samples = resample(&audio.samples, audio.sample_rate, sample_rate)
        .map_err(|e| err(&path.display().to_string(), e))?;
    Ok(Audio {
        samples,
        sample_rate,
    })
}

/// Decodes a media file held in memory; `name` (its path, or anything that identifies it) is used
/// in errors and its extension as a hint to the container probe.
pub fn decode_bytes(bytes: Vec<u8>, name: &str) -> Result<Audio> {
    if bytes.is_empty() {
        return Err(err(name, "the file is empty"));
    }
    if is_avi(&bytes) {
        return decode_avi(&bytes, name);
    }
    decode_first_audio_track(probe(bytes, name)?, name, false)
}

/// The audio of a media file at `sample_rate`, or `None` when the container has no audio stream
/// at all (a silent video, as half of UCF101's are): that is a property of the video, not an
/// error. Anything unreadable is still an error naming the file.
pub fn load_track(path: &Path, sample_rate: u32) -> Result<Option<Audio>> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| err(&name, format!("cannot read: {e}")))?;
    if bytes.is_empty() {
        return Err(err(&name, "the file is empty"));
    }
    let audio = if is_avi(&bytes) {
        if has_audio_stream(&bytes) == Some(false) {
            return Ok(None);
        }
        decode_avi(&bytes, &name)?
    } else {
        let format = probe(bytes, &name)?;
        if format.first_track(TrackType::Audio).is_none() {
            return Ok(None);
        }
        decode_first_audio_track(format, &name, false)?
    };
    let samples =
        resample(&audio.samples, audio.sample_rate, sample_rate).map_err(|e| err(&name, e))?;
    Ok(Some(Audio {
        samples,
        sample_rate,
    }))
}

/// The demuxer of a (non-AVI) media file; `name`'s extension hints the container.
fn probe(bytes: Vec<u8>, name: &str) -> Result<Box<dyn FormatReader>> {
    let head: Vec<u8> = bytes.iter().take(12).copied().collect();
    let mut hint = Hint::new();
    if let Some(ext) = Path::new(name).extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    get_probe()
        .probe(
            &hint,
            stream(bytes),
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| match e {
            // MP4 keeps its index ('moov') at the end unless written for streaming: a cut file
            // loses it.
            _ if bytes_look_like_mp4(&head) => err(
                name,
                format!("MP4 file that cannot be read, truncated or corrupt ({e})"),
            ),
            SymError::Unsupported(_) => err(
                name,
                "not a supported audio container (wav, flac, mp3, mp4/m4a, avi)",
            ),
            e => err(name, format!("cannot read the container: {e}")),
        })
}

/// An ISO base media file starts with its 'ftyp' box.
fn bytes_look_like_mp4(head: &[u8]) -> bool {
    head.len() >= 8 && &head[4..8] == b"ftyp"
}

fn stream(bytes: Vec<u8>) -> MediaSourceStream<'static> {
    MediaSourceStream::new(
        Box::new(Cursor::new(bytes)),
        MediaSourceStreamOptions::default(),
    )
}

/// A RIFF WAVE file holding `format` (a WAVEFORMATEX) and `data`, so that symphonia's WAV reader
/// decodes AVI audio that is not MP3 (PCM, IEEE float, ...).
fn wav_container(format: &[u8], data: &[u8]) -> Vec<u8> {
    let fmt_len = format.len() + (format.len() & 1);
    let mut v = Vec::with_capacity(28 + fmt_len + data.len());
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&((20 + fmt_len + data.len()) as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&(format.len() as u32).to_le_bytes());
    v.extend_from_slice(format);
    v.resize(v.len() + (format.len() & 1), 0);
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

fn decode_avi(bytes: &[u8], name: &str) -> Result<Audio> {
    let audio = extract_audio(bytes, name)?;
    let (index, tag) = (audio.stream, audio.format_tag());
    let what = |e: SymError| match e {
        SymError::Unsupported(_) => err(
            name,
            format!(
                "AVI audio stream {index} has format tag {tag:#06x}, which is not decoded without \
                 FFmpeg (supported: MP3 0x0055, PCM 0x0001, IEEE float 0x0003)"
            ),
        ),
        e => err(
            name,
            format!("AVI audio stream {index} (format tag {tag:#06x}): {e}"),
        ),
    };
    let format: Box<dyn FormatReader> = if tag == WAVE_FORMAT_MPEGLAYER3 {
        Box::new(MpaReader::try_new(stream(audio.data), FormatOptions::default()).map_err(what)?)
    } else {
        let wav = wav_container(&audio.wave_format, &audio.data);
        get_probe()
            .probe(
                Hint::new().with_extension("wav"),
                stream(wav),
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(what)?
    };
    decode_first_audio_track(format, name, audio.truncated)
}

/// The clip `[start_s, start_s + duration_s)` of `samples` (at `sample_rate`), as XKD's loader
/// cuts it: from sample ⌊start·rate⌋ take ⌊duration·rate⌋ samples (`int()` in the reference),
/// zero-padded at the end where the audio is shorter (`av_laod_audio` + `AudioPrep`'s trim/pad).
pub fn segment(
    samples: &[f32],
    sample_rate: u32,
    start_s: f64,
    duration_s: f64,
) -> Result<Vec<f32>> {
    if !(start_s.is_finite() && start_s >= 0.0 && duration_s.is_finite() && duration_s > 0.0) {
        candle_core::bail!(
            "segment: start {start_s} s must be >= 0 and duration {duration_s} s > 0"
        )
    }
    let rate = sample_rate as f64;
    let (start, len) = ((start_s * rate) as usize, (duration_s * rate) as usize);
    let mut out = vec![0f32; len];
    if start < samples.len() {
        let avail = &samples[start..samples.len().min(start + len)];
        out[..avail.len()].copy_from_slice(avail);
    }
    Ok(out)
}
