//! Decoding the first audio track of a symphonia demuxer to mono f32: packet loop, channel mean,
//! and the checks that turn a malformed, truncated or unsupported stream into an error naming the
//! file.

use super::audio::Audio;
use candle_core::{Error, Result};
use symphonia::core::codecs::audio::{AudioCodecId, AudioCodecParameters, AudioDecoderOptions};
use symphonia::core::codecs::CodecParameters;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatReader, TrackType};
use symphonia::default::get_codecs;

const SUPPORTED: &str = "supported: PCM, FLAC, MP3, AAC-LC";

pub(crate) fn err(name: &str, what: impl std::fmt::Display) -> Error {
    Error::Msg(format!("{name}: {what}"))
}

/// A readable name for the codecs a video dataset may hold that symphonia does not decode.
fn codec_name(id: AudioCodecId) -> String {
    use symphonia::core::codecs::audio::well_known::*;
    let name = match id {
        CODEC_ID_OPUS => "Opus",
        CODEC_ID_VORBIS => "Vorbis",
        CODEC_ID_AC3 => "AC-3",
        CODEC_ID_EAC3 => "E-AC-3",
        CODEC_ID_MP2 => "MPEG Layer II",
        CODEC_ID_MP1 => "MPEG Layer I",
        CODEC_ID_DCA => "DTS",
        CODEC_ID_WMA => "WMA",
        CODEC_ID_ALAC => "ALAC",
        _ => return format!("codec id {id}"),
    };
    name.to_string()
}

/// Id, codec parameters and announced length (frames) of the first audio track.
fn audio_track(
    format: &dyn FormatReader,
    name: &str,
) -> Result<(u32, AudioCodecParameters, Option<u64>)> {
    let track = match format.first_track_known_codec(TrackType::Audio) {
        Some(t) => t,
        None if format.first_track(TrackType::Audio).is_some() => {
            return Err(err(
                name,
                format!("the audio track's codec is not supported ({SUPPORTED})"),
            ))
        }
        None => return Err(err(name, "the file has no audio track")),
    };
    match &track.codec_params {
        Some(CodecParameters::Audio(p)) => Ok((track.id, p.clone(), track.num_frames)),
        _ => Err(err(name, "the audio track has no codec parameters")),
    }
}

/// What the packet loop produced.
struct Decoded {
    mono: Vec<f32>,
    rate: Option<u32>,
    packets: usize,
    malformed: usize,
}

impl Decoded {
    fn seconds(&self) -> f64 {
        self.mono.len() as f64 / self.rate.unwrap_or(1).max(1) as f64
    }
}

/// Decodes every packet of `track_id`, averaging the channels of each decoded buffer. A malformed
/// packet is skipped (as FFmpeg does) and counted; the caller judges how many are too many.
fn decode_packets(
    format: &mut dyn FormatReader,
    track_id: u32,
    params: &AudioCodecParameters,
    name: &str,
) -> Result<Decoded> {
    let mut decoder = get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| match e {
            SymError::Unsupported(_) => err(
                name,
                format!(
                    "the audio track's codec ({}) is not supported ({SUPPORTED})",
                    codec_name(params.codec)
                ),
            ),
            e => err(name, format!("cannot decode the audio track: {e}")),
        })?;
    let mut d = Decoded {
        mono: Vec::new(),
        rate: params.sample_rate,
        packets: 0,
        malformed: 0,
    };
    let mut interleaved: Vec<f32> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(d),
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                let at = d.seconds();
                return Err(err(
                    name,
                    format!("truncated: the file ends inside a packet after {at:.3} s of audio"),
                ));
            }
            Err(e) => {
                let at = d.seconds();
                return Err(err(
                    name,
                    format!("malformed container after {at:.3} s of audio: {e}"),
                ));
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        d.packets += 1;
        let buf = match decoder.decode(&packet) {
            Ok(buf) => buf,
            Err(SymError::DecodeError(_)) | Err(SymError::IoError(_)) => {
                d.malformed += 1;
                continue;
            }
            Err(e) => {
                let at = d.seconds();
                return Err(err(
                    name,
                    format!("cannot decode the audio after {at:.3} s: {e}"),
                ));
            }
        };
        let (channels, rate) = (buf.spec().channels().count().max(1), buf.spec().rate());
        match d.rate {
            Some(r) if r != rate && !d.mono.is_empty() => {
                return Err(err(
                    name,
                    format!("the sample rate changes from {r} to {rate} Hz inside the stream"),
                ))
            }
            _ => d.rate = Some(rate),
        }
        buf.copy_to_vec_interleaved::<f32>(&mut interleaved);
        let scale = 1.0 / channels as f32;
        let frames = interleaved.chunks_exact(channels);
        d.mono.extend(frames.map(|f| f.iter().sum::<f32>() * scale));
    }
}

/// Decodes the first audio track of `format` to mono. `truncated`: the container walk already
/// found the file cut inside its media data (AVI).
pub(crate) fn decode_first_audio_track(
    mut format: Box<dyn FormatReader + '_>,
    name: &str,
    truncated: bool,
) -> Result<Audio> {
    let (track_id, params, announced) = audio_track(&*format, name)?;
    let d = decode_packets(&mut *format, track_id, &params, name)?;
    let rate = match d.rate {
        Some(r) if r > 0 => r,
        _ => return Err(err(name, "the audio track does not state its sample rate")),
    };
    let (packets, malformed) = (d.packets, d.malformed);
    if d.mono.is_empty() {
        return Err(err(
            name,
            match packets {
                0 => "the audio track holds no packets".to_string(),
                p => format!(
                    "none of the {p} audio packets could be decoded ({malformed} malformed)"
                ),
            },
        ));
    }
    if malformed * 2 > packets {
        return Err(err(
            name,
            format!("corrupt audio: {malformed} of {packets} packets are malformed"),
        ));
    }
    if malformed > 0 {
        tracing::warn!("{name}: skipped {malformed} malformed audio packets of {packets}");
    }
    let seconds = d.seconds();
    if truncated {
        return Err(err(
            name,
            format!("truncated: the file ends inside its media data after {seconds:.3} s of audio"),
        ));
    }
    if let Some(n) = announced {
        // A container that announces its length and ends early was cut (some readers stop
        // quietly at the end of the data). A packet of slack covers codec framing.
        let slack = params.max_frames_per_packet.unwrap_or(0).max(4096);
        if (d.mono.len() as u64) + slack < n {
            let want = n as f64 / rate as f64;
            return Err(err(
                name,
                format!(
                    "truncated: decoded {seconds:.3} s of audio, the header announces {want:.3} s"
                ),
            ));
        }
    }
    Ok(Audio {
        samples: d.mono,
        sample_rate: rate,
    })
}
