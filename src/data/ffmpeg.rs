//! Containers (`.avi` Xvid/DivX + MP3, `.mp4` H.264 + AAC, anything FFmpeg reads) decoded in-process
//! through the system FFmpeg libraries (feature `ffmpeg`, via `ffmpeg-next`); `.avi` writing for
//! the synthetic dataset is in `ffmpeg_write.rs`, re-exported here.
//!
//! Frames are converted to RGB24 by swscale with PyAV's `to_image()` settings (bilinear, BT.601,
//! limited range when the stream says nothing), so they are the frames XKD's PyAV loader sees and
//! those of `ffmpeg -i x -f rawvideo -pix_fmt rgb24`. A frame's number is its presentation time
//! × the stream's average frame rate, as PyAV's `av_load_video` counts them.

use super::video::RgbImage;
use candle_core::Result;
use ff::codec;
use ff::format::{self, Pixel, Sample};
use ff::software::scaling::{self, Flags};
use ff::util::frame;
use ff::Rational;
use ffmpeg_next as ff;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Once;

pub use super::ffmpeg_write::write_avi;

fn err(path: &Path, what: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{}: {what}", path.display()))
}

pub(super) fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // Registration is a no-op since FFmpeg 4. FFmpeg's own messages are quietened: errors
        // come back, naming the file, through the results.
        let _ = ff::init();
        ff::util::log::set_level(ff::util::log::Level::Fatal);
    });
}

/// What a video file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Average frame rate of the video stream.
    pub fps: f64,
    /// Frames in the video stream (from the container, else duration × fps).
    pub frames: usize,
    pub width: u32,
    pub height: u32,
    /// Seconds, of the video stream (else of the container).
    pub duration: f64,
    pub has_audio: bool,
}

fn open(path: &Path) -> Result<format::context::Input> {
    init();
    format::input(&path).map_err(|e| err(path, format!("cannot open: {e}")))
}

/// FFmpeg's internal time unit, µs (`AV_TIME_BASE`).
const AV_TIME_BASE: f64 = 1_000_000.0;

/// A frame rate as a fraction with a denominator MPEG-4 can store (< 2^16): 29.97 → 30000/1001.
pub(super) fn fps_rational(fps: f64) -> Rational {
    // SAFETY: av_d2q is a pure arithmetic function.
    Rational::from(unsafe { ff::ffi::av_d2q(fps, 65_535) })
}

fn rational(r: Rational) -> Option<f64> {
    (r.numerator() > 0 && r.denominator() > 0).then(|| f64::from(r))
}

/// The video stream's index, time base, start and average frame rate.
struct VideoStream {
    index: usize,
    time_base: f64,
    start: i64,
    fps: f64,
}

fn video_stream(path: &Path, input: &format::context::Input) -> Result<VideoStream> {
    let s = input
        .streams()
        .best(ff::media::Type::Video)
        .ok_or_else(|| err(path, "no video stream"))?;
    let fps = rational(s.avg_frame_rate())
        .or_else(|| rational(s.rate()))
        .ok_or_else(|| {
            err(
                path,
                "the video stream states no frame rate, which decoding needs: extract its frames \
                 to a folder (`ffmpeg -i v.avi v/img_%05d.jpg`) and give their rate there, \
                 in v/meta.json as {\"fps\": N} or with --fps N",
            )
        })?;
    let time_base = rational(s.time_base()).ok_or_else(|| err(path, "invalid time base"))?;
    let start = if s.start_time() == ff::ffi::AV_NOPTS_VALUE {
        0
    } else {
        s.start_time()
    };
    Ok(VideoStream {
        index: s.index(),
        time_base,
        start,
        fps,
    })
}

/// Frame rate, frame count, size, duration and whether there is audio.
pub fn probe(path: &Path) -> Result<VideoInfo> {
    let input = open(path)?;
    let vs = video_stream(path, &input)?;
    let stream = input
        .stream(vs.index)
        .ok_or_else(|| err(path, "video stream vanished"))?;
    let params = codec::context::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().video())
        .map_err(|e| err(path, format!("video stream: {e}")))?;
    let duration = if stream.duration() > 0 {
        stream.duration() as f64 * vs.time_base
    } else if input.duration() > 0 {
        input.duration() as f64 / AV_TIME_BASE
    } else {
        0.0
    };
    let frames = if stream.frames() > 0 {
        stream.frames() as usize
    } else {
        (duration * vs.fps).round() as usize
    };
    let has_audio = input.streams().best(ff::media::Type::Audio).is_some();
    Ok(VideoInfo {
        fps: vs.fps,
        frames,
        width: params.width(),
        height: params.height(),
        duration,
        has_audio,
    })
}

/// Reads packets of `stream` into `decoder`, calling `on_frame` with every decoded frame until
/// it returns `false` or the file ends.
fn decode_video(
    path: &Path,
    input: &mut format::context::Input,
    stream: usize,
    mut on_frame: impl FnMut(&frame::Video) -> Result<bool>,
) -> Result<()> {
    let params = input
        .stream(stream)
        .ok_or_else(|| err(path, "video stream vanished"))?
        .parameters();
    let mut decoder = codec::context::Context::from_parameters(params)
        .and_then(|c| c.decoder().video())
        .map_err(|e| err(path, format!("no decoder for the video stream: {e}")))?;
    let mut decoded = frame::Video::empty();
    let mut packet = ff::Packet::empty();
    loop {
        match packet.read(input) {
            Ok(()) => {}
            Err(ff::Error::Eof) => break,
            Err(e) => return Err(err(path, format!("reading: {e}"))),
        }
        if packet.stream() != stream {
            continue;
        }
        decoder
            .send_packet(&packet)
            .map_err(|e| err(path, format!("decoding video: {e}")))?;
        while decoder.receive_frame(&mut decoded).is_ok() {
            if !on_frame(&decoded)? {
                return Ok(());
            }
        }
    }
    decoder
        .send_eof()
        .map_err(|e| err(path, format!("decoding video: {e}")))?;
    while decoder.receive_frame(&mut decoded).is_ok() {
        if !on_frame(&decoded)? {
            return Ok(());
        }
    }
    Ok(())
}

/// A decoded frame as RGB, through swscale (rebuilt if the frame's format or size changes).
fn to_rgb(
    path: &Path,
    scaler: &mut Option<scaling::Context>,
    f: &frame::Video,
) -> Result<RgbImage> {
    let (w, h) = (f.width(), f.height());
    let stale = scaler.as_ref().is_none_or(|s| {
        let i = s.input();
        (i.format, i.width, i.height) != (f.format(), w, h)
    });
    if stale {
        *scaler = Some(
            scaling::Context::get(f.format(), w, h, Pixel::RGB24, w, h, Flags::BILINEAR)
                .map_err(|e| err(path, format!("no RGB conversion for {:?}: {e}", f.format())))?,
        );
    }
    let mut rgb = frame::Video::empty();
    if let Some(s) = scaler.as_mut() {
        s.run(f, &mut rgb)
            .map_err(|e| err(path, format!("converting to RGB: {e}")))?;
    }
    // Rows of the converted frame may be padded to `stride`.
    let (stride, row) = (rgb.stride(0), 3 * w as usize);
    let data = rgb.data(0);
    let mut pixels = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        pixels.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    RgbImage::from_raw(w, h, pixels).ok_or_else(|| err(path, "RGB frame of the wrong size"))
}

/// The frames at 0-based `indices` (any order, repeats allowed), as RGB.
///
/// A decoded frame's number is round((pts − start)·time_base·fps), and index k gets the first
/// frame numbered k or more, as PyAV's `av_load_video` fills them: a gap in the timestamps (an
/// Xvid `.avi` with a dropped frame) repeats the next frame, not the previous. Seeks to the
/// keyframe at or before the first wanted frame and decodes forward; each frame is converted once.
pub fn decode_frames(path: &Path, indices: &[usize]) -> Result<Vec<RgbImage>> {
    let mut wanted: Vec<usize> = indices.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let got = match decode_wanted(path, &wanted, true)? {
        Some(got) => got,
        // The seek landed past the first wanted frame (an inexact index): decode from the start.
        None => decode_wanted(path, &wanted, false)?.unwrap_or_default(),
    };
    indices
        .iter()
        .map(|i| {
            got.get(i).cloned().ok_or_else(|| {
                let end = got.keys().next_back().map_or(0, |k| k + 1);
                err(path, format!("frame {i} asked for, but the video ends before it (frames 0 to {end} found)"))
            })
        })
        .collect()
}

/// Decodes the sorted, distinct `wanted` frames, seeking first when `seek`; `None` when the
/// seek overshot. Frames past the end are absent from the map.
fn decode_wanted(
    path: &Path,
    wanted: &[usize],
    seek: bool,
) -> Result<Option<BTreeMap<usize, RgbImage>>> {
    let mut input = open(path)?;
    let vs = video_stream(path, &input)?;
    let first = wanted[0];
    let seeked = seek && first > 0;
    if seeked {
        let secs = vs.start as f64 * vs.time_base + first as f64 / vs.fps;
        let ts = (secs * AV_TIME_BASE).floor() as i64;
        // max_ts = ts (ffmpeg-next passes the range end as is): a keyframe at or before the frame.
        input
            .seek(ts, ..ts)
            .map_err(|e| err(path, format!("seeking to frame {first}: {e}")))?;
    }
    let mut out = BTreeMap::new();
    let mut scaler = None;
    let mut next = 0; // the first of `wanted` not yet filled
    let mut prev: Option<usize> = None;
    let mut overshot = false;
    decode_video(path, &mut input, vs.index, |f| {
        let n = match f.timestamp() {
            Some(ts) => ((ts - vs.start) as f64 * vs.time_base * vs.fps)
                .round()
                .max(0.0) as usize,
            None => prev.map_or(0, |p| p + 1),
        };
        if seeked && prev.is_none() && n > first {
            overshot = true;
            return Ok(false);
        }
        prev = Some(n);
        if next < wanted.len() && wanted[next] <= n {
            let img = to_rgb(path, &mut scaler, f)?;
            while next < wanted.len() && wanted[next] <= n {
                out.insert(wanted[next], img.clone());
                next += 1;
            }
        }
        Ok(next < wanted.len())
    })?;
    Ok((!overshot).then_some(out))
}

/// Appends a decoded audio frame's samples, averaged over channels, to `out`.
fn push_mono(path: &Path, f: &frame::Audio, out: &mut Vec<f32>) -> Result<()> {
    let n = f.samples();
    // SAFETY: reads fields of a frame the decoder filled.
    let ch = unsafe { (*f.as_ptr()).ch_layout.nb_channels }.max(0) as usize;
    if ch == 0 {
        return Err(err(path, "audio frame with no channels"));
    }
    let width = match f.format() {
        Sample::U8(_) => 1,
        Sample::I16(_) => 2,
        Sample::I32(_) | Sample::F32(_) => 4,
        Sample::F64(_) => 8,
        other => return Err(err(path, format!("unsupported sample format {other:?}"))),
    };
    let planar = f.is_planar();
    let (planes, per_plane) = if planar { (ch, n) } else { (1, n * ch) };
    // ffmpeg-next's `data(i)` sizes plane i by linesize[i], which audio frames only set for
    // plane 0, so the planes are sliced here from their sample counts.
    let mut data: Vec<&[u8]> = Vec::with_capacity(planes);
    for p in 0..planes {
        // SAFETY: a decoded frame holds `planes` planes of `per_plane` samples each.
        let ptr = unsafe { (*f.as_ptr()).data[p.min(7)] };
        if ptr.is_null() || p >= 8 {
            return Err(err(path, format!("audio frame without plane {p}")));
        }
        data.push(unsafe { std::slice::from_raw_parts(ptr, per_plane * width) });
    }
    let get = |c: usize, s: usize| -> f32 {
        let (plane, i) = if planar { (c, s) } else { (0, s * ch + c) };
        let b = &data[plane][i * width..(i + 1) * width];
        match f.format() {
            Sample::U8(_) => (b[0] as f32 - 128.0) / 128.0,
            Sample::I16(_) => i16::from_ne_bytes([b[0], b[1]]) as f32 / 32768.0,
            Sample::I32(_) => i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0,
            Sample::F32(_) => f32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            _ => f64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32,
        }
    };
    for s in 0..n {
        let sum: f32 = (0..ch).map(|c| get(c, s)).sum();
        out.push(sum / ch as f32);
    }
    Ok(())
}

/// The best audio stream, decoded to mono (the mean of the channels) at its own sample rate.
pub fn decode_audio(path: &Path) -> Result<(Vec<f32>, u32)> {
    let mut input = open(path)?;
    let stream = input
        .streams()
        .best(ff::media::Type::Audio)
        .ok_or_else(|| err(path, "no audio stream"))?;
    let index = stream.index();
    let mut decoder = codec::context::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().audio())
        .map_err(|e| err(path, format!("no decoder for the audio stream: {e}")))?;
    let mut samples = Vec::new();
    let mut rate = decoder.rate();
    let mut decoded = frame::Audio::empty();
    let mut packet = ff::Packet::empty();
    let mut eof = false;
    while !eof {
        match packet.read(&mut input) {
            Ok(()) if packet.stream() != index => continue,
            Ok(()) => decoder
                .send_packet(&packet)
                .map_err(|e| err(path, format!("decoding audio: {e}")))?,
            Err(ff::Error::Eof) => {
                eof = true;
                decoder
                    .send_eof()
                    .map_err(|e| err(path, format!("decoding audio: {e}")))?;
            }
            Err(e) => return Err(err(path, format!("reading: {e}"))),
        }
        while decoder.receive_frame(&mut decoded).is_ok() {
            rate = decoded.rate();
            push_mono(path, &decoded, &mut samples)?;
        }
    }
    if rate == 0 {
        return Err(err(path, "the audio stream has no sample rate"));
    }
    Ok((samples, rate))
}
