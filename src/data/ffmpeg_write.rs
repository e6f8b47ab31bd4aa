//! Writing `.avi` files (MPEG-4 Part 2 tagged `XVID` + MP3, like UCF101's) through the FFmpeg
//! libraries (feature `ffmpeg`), for the synthetic dataset. Re-exported as
//! [`crate::data::ffmpeg::write_avi`].

use super::ffmpeg::{fps_rational, init};
use super::video::RgbImage;
use candle_core::Result;
use ff::codec::{self, Id};
use ff::format::{self, Pixel, Sample};
use ff::software::scaling::{self, Flags};
use ff::util::frame;
use ff::{ChannelLayout, Rational};
use ffmpeg_next as ff;
use std::path::Path;

fn err(path: &Path, what: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{}: {what}", path.display()))
}

/// Sends `frame` (or the end, for `None`) to `enc` and writes what comes out to stream `index`.
fn encode(
    path: &Path,
    octx: &mut format::context::Output,
    enc: &mut ff::encoder::Encoder,
    frame: Option<&frame::Frame>,
    index: usize,
    enc_tb: Rational,
    shift: &mut Option<i64>,
) -> Result<()> {
    match frame {
        Some(f) => enc.send_frame(f),
        None => enc.send_eof(),
    }
    .map_err(|e| err(path, format!("encoding: {e}")))?;
    let stream_tb = octx
        .stream(index)
        .ok_or_else(|| err(path, "output stream vanished"))?
        .time_base();
    let mut packet = ff::Packet::empty();
    while enc.receive_packet(&mut packet).is_ok() {
        // LAME's first packets carry negative timestamps (its encoder delay). The muxer would then
        // delay every stream to make them non-negative, and the AVI muxer fills the video gap with
        // empty chunks (dropped frames); each stream starts at 0 instead.
        let first = packet.dts().or(packet.pts()).unwrap_or(0);
        let s = *shift.get_or_insert((-first).max(0));
        if s != 0 {
            packet.set_pts(packet.pts().map(|p| p + s));
            packet.set_dts(packet.dts().map(|d| d + s));
        }
        packet.set_stream(index);
        packet.rescale_ts(enc_tb, stream_tb);
        packet
            .write_interleaved(octx)
            .map_err(|e| err(path, format!("writing: {e}")))?;
    }
    Ok(())
}

/// Writes `frames` at `fps` as MPEG-4 Part 2 video tagged `XVID` and mono `audio` at `sample_rate`
/// as MP3, in an `.avi` like UCF101's (atomically: a temporary file renamed into place).
pub fn write_avi(
    path: &Path,
    frames: &[RgbImage],
    fps: f64,
    audio: &[f32],
    sample_rate: u32,
) -> Result<()> {
    init();
    let first = frames
        .first()
        .ok_or_else(|| err(path, "no frames to write"))?;
    let (w, h) = first.dimensions();
    if w % 2 != 0 || h % 2 != 0 {
        return Err(err(
            path,
            format!("frames must have even sides for yuv420p, found {w}x{h}"),
        ));
    }
    if let Some((i, f)) = frames
        .iter()
        .enumerate()
        .find(|(_, f)| f.dimensions() != (w, h))
    {
        return Err(err(
            path,
            format!(
                "frame {i} is {}x{}, frame 0 is {w}x{h}",
                f.width(),
                f.height()
            ),
        ));
    }
    if !(fps.is_finite() && fps > 0.0) {
        return Err(err(
            path,
            format!("frame rate must be positive, found {fps}"),
        ));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(dir, format!("creating folder: {e}")))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let result = write_avi_to(&tmp, frames, fps, audio, sample_rate).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| err(path, format!("renaming: {e}")))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_avi_to(path: &Path, frames: &[RgbImage], fps: f64, audio: &[f32], sr: u32) -> Result<()> {
    let (w, h) = frames[0].dimensions();
    let mut octx =
        format::output_as(&path, "avi").map_err(|e| err(path, format!("creating: {e}")))?;

    // Video: mpeg4 at a fixed quantiser, tagged XVID as UCF101's files are.
    let vcodec =
        ff::encoder::find(Id::MPEG4).ok_or_else(|| err(path, "FFmpeg has no mpeg4 encoder"))?;
    let v_index = octx
        .add_stream(vcodec)
        .map_err(|e| err(path, format!("adding video: {e}")))?
        .index();
    let v_tb = fps_rational(fps).invert();
    let mut venc = codec::context::Context::new_with_codec(vcodec)
        .encoder()
        .video()
        .map_err(|e| err(path, format!("mpeg4 encoder: {e}")))?;
    venc.set_width(w);
    venc.set_height(h);
    venc.set_format(Pixel::YUV420P);
    venc.set_time_base(v_tb);
    venc.set_frame_rate(Some(fps_rational(fps)));
    venc.set_flags(codec::Flags::QSCALE);
    // qscale 3 (×FF_QP2LAMBDA): close to the source, like a good Xvid encode.
    venc.set_global_quality(3 * 118);
    // SAFETY: a plain field of the encoder context, set before it is opened.
    unsafe {
        (*venc.as_mut_ptr()).codec_tag = u32::from_le_bytes(*b"XVID");
    }
    let mut venc = venc
        .open_as(vcodec)
        .map_err(|e| err(path, format!("opening mpeg4: {e}")))?;
    {
        // The muxer derives the AVI frame rate from the stream's time base.
        let mut st = octx
            .stream_mut(v_index)
            .ok_or_else(|| err(path, "video stream vanished"))?;
        st.set_parameters(&venc);
        st.set_time_base(v_tb);
        st.set_avg_frame_rate(fps_rational(fps));
    }

    // Audio: MP3 (LAME), mono.
    let acodec = ff::encoder::find_by_name("libmp3lame")
        .ok_or_else(|| err(path, "FFmpeg has no libmp3lame encoder"))?;
    if let Some(mut rates) = acodec.audio().ok().and_then(|a| a.rates()) {
        if !rates.any(|r| r == sr as i32) {
            return Err(err(
                path,
                format!("MP3 cannot hold {sr} Hz audio (8000 to 48000 Hz)"),
            ));
        }
    }
    let a_index = octx
        .add_stream(acodec)
        .map_err(|e| err(path, format!("adding audio: {e}")))?
        .index();
    let a_tb = Rational::new(1, sr as i32);
    let mut aenc = codec::context::Context::new_with_codec(acodec)
        .encoder()
        .audio()
        .map_err(|e| err(path, format!("mp3 encoder: {e}")))?;
    aenc.set_rate(sr as i32);
    aenc.set_channel_layout(ChannelLayout::MONO);
    aenc.set_format(Sample::F32(format::sample::Type::Planar));
    aenc.set_bit_rate(64_000);
    aenc.set_time_base(a_tb);
    let mut aenc = aenc
        .open_as(acodec)
        .map_err(|e| err(path, format!("opening libmp3lame: {e}")))?;
    {
        let mut st = octx
            .stream_mut(a_index)
            .ok_or_else(|| err(path, "audio stream vanished"))?;
        st.set_parameters(&aenc);
        st.set_time_base(a_tb);
    }

    octx.write_header()
        .map_err(|e| err(path, format!("writing header: {e}")))?;
    let mut scaler =
        scaling::Context::get(Pixel::RGB24, w, h, Pixel::YUV420P, w, h, Flags::BICUBIC)
            .map_err(|e| err(path, format!("RGB to yuv420p: {e}")))?;
    let chunk = (aenc.frame_size() as usize).max(1);
    let mut a_pos = 0;
    let (mut v_shift, mut a_shift) = (None, None);
    for (i, img) in frames.iter().enumerate() {
        let mut rgb = frame::Video::new(Pixel::RGB24, w, h);
        let stride = rgb.stride(0);
        let row = 3 * w as usize;
        for (y, src) in img.as_raw().chunks_exact(row).enumerate() {
            rgb.data_mut(0)[y * stride..y * stride + row].copy_from_slice(src);
        }
        let mut yuv = frame::Video::empty();
        scaler
            .run(&rgb, &mut yuv)
            .map_err(|e| err(path, format!("RGB to yuv420p: {e}")))?;
        yuv.set_pts(Some(i as i64));
        encode(
            path,
            &mut octx,
            &mut venc,
            Some(&yuv),
            v_index,
            v_tb,
            &mut v_shift,
        )?;
        // Audio up to the end of this frame, in whole encoder frames, so the streams interleave.
        let until = (((i + 1) as f64 / fps) * sr as f64) as usize;
        while a_pos + chunk <= until.min(audio.len()) {
            let f = audio_frame(&audio[a_pos..a_pos + chunk], sr, a_pos);
            encode(
                path,
                &mut octx,
                &mut aenc,
                Some(&f),
                a_index,
                a_tb,
                &mut a_shift,
            )?;
            a_pos += chunk;
        }
    }
    while a_pos < audio.len() {
        // libmp3lame takes a short last frame.
        let end = (a_pos + chunk).min(audio.len());
        let f = audio_frame(&audio[a_pos..end], sr, a_pos);
        encode(
            path,
            &mut octx,
            &mut aenc,
            Some(&f),
            a_index,
            a_tb,
            &mut a_shift,
        )?;
        a_pos = end;
    }
    encode(
        path,
        &mut octx,
        &mut venc,
        None,
        v_index,
        v_tb,
        &mut v_shift,
    )?;
    encode(
        path,
        &mut octx,
        &mut aenc,
        None,
        a_index,
        a_tb,
        &mut a_shift,
    )?;
    octx.write_trailer()
        .map_err(|e| err(path, format!("writing trailer: {e}")))
}

/// One planar f32 mono frame.
fn audio_frame(samples: &[f32], sr: u32, pts: usize) -> frame::Audio {
    let mut f = frame::Audio::new(
        Sample::F32(format::sample::Type::Planar),
        samples.len(),
        ChannelLayout::MONO,
    );
    f.set_rate(sr);
    f.plane_mut::<f32>(0)[..samples.len()].copy_from_slice(samples);
    f.set_pts(Some(pts as i64));
    f
}
