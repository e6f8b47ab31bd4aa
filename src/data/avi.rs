//! The audio stream of an AVI file, found by walking its RIFF chunks (symphonia has no AVI
//! reader): `RIFF 'AVI '` (and OpenDML's `RIFF 'AVIX'` continuations) → `LIST 'hdrl'` → one
//! `LIST 'strl'` per stream, whose `strh` says the stream type (`auds`) and whose `strf` is the
//! WAVEFORMATEX (format tag 0x0055 = MP3) → `LIST 'movi'` → the `NNwb` chunks of that stream
//! (also inside `LIST 'rec '`). Their payloads, concatenated, are the elementary audio stream;
//! MPEG audio frames may straddle chunks, which concatenation undoes.

use candle_core::{Error, Result};

/// WAVEFORMATEX format tag of MPEG-1/2 Layer III.
pub const WAVE_FORMAT_MPEGLAYER3: u16 = 0x0055;

/// The first audio stream of an AVI file.
#[derive(Debug, Clone)]
pub struct AviAudio {
    /// Index of the stream among all streams of the file (the `NN` of its `NNwb` chunks).
    pub stream: usize,
    /// The WAVEFORMATEX (`strf` payload): format tag, channels, rate, ... and any extra bytes.
    pub wave_format: Vec<u8>,
    /// The stream's payload bytes in file order.
    pub data: Vec<u8>,
    /// The file ends inside the media data (`movi`): `data` holds what is there.
    pub truncated: bool,
}

impl AviAudio {
    pub fn format_tag(&self) -> u16 {
        u16::from_le_bytes([self.wave_format[0], self.wave_format[1]])
    }

    pub fn channels(&self) -> u16 {
        u16::from_le_bytes([self.wave_format[2], self.wave_format[3]])
    }

    pub fn sample_rate(&self) -> u32 {
        let f = &self.wave_format;
        u32::from_le_bytes([f[4], f[5], f[6], f[7]])
    }
}

/// True when `bytes` start like an AVI file.
pub fn is_avi(bytes: &[u8]) -> bool {
    bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"AVI "
}

/// One chunk: its FOURCC, its payload, and whether the file ended before the size it announces.
struct Chunk<'a> {
    id: [u8; 4],
    body: &'a [u8],
    truncated: bool,
}

/// The chunks laid end to end in `data` (each padded to an even size). A chunk whose announced
/// size runs past the end is cut at the end and flagged; a few stray bytes at the end are ignored.
fn chunks(data: &[u8]) -> impl Iterator<Item = Chunk<'_>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos + 8 > data.len() {
            return None;
        }
        let id = [data[pos], data[pos + 1], data[pos + 2], data[pos + 3]];
        let size = u32::from_le_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]);
        let start = pos + 8;
        let end = start.saturating_add(size as usize);
        let truncated = end > data.len();
        let body = &data[start..end.min(data.len())];
        pos = end.saturating_add(size as usize & 1);
        Some(Chunk {
            id,
            body,
            truncated,
        })
    })
}

/// A LIST (or RIFF) chunk's form type and contents.
fn list<'a>(c: &Chunk<'a>) -> Option<(&'a [u8], &'a [u8])> {
    (c.body.len() >= 4).then(|| (&c.body[..4], &c.body[4..]))
}

fn err(name: &str, what: impl std::fmt::Display) -> Error {
    Error::Msg(format!("{name}: {what}"))
}

/// Stream types (`strh` fccType) and formats (`strf`) of the streams in `LIST 'hdrl'`, in order.
fn stream_headers(hdrl: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    let mut streams = Vec::new();
    for c in chunks(hdrl) {
        let Some((b"strl", strl)) = (&c.id == b"LIST").then(|| list(&c)).flatten() else {
            continue;
        };
        let mut kind = [0u8; 4];
        let mut format = Vec::new();
        for s in chunks(strl) {
            match &s.id {
                b"strh" if s.body.len() >= 4 => kind.copy_from_slice(&s.body[..4]),
                b"strf" => format = s.body.to_vec(),
                _ => {}
            }
        }
        streams.push((kind, format));
    }
    streams
}

/// Appends the payloads of chunks `id` found in a `movi` list (recursing into `rec ` lists).
fn collect_stream(movi: &[u8], id: &[u8; 4], out: &mut Vec<u8>, truncated: &mut bool) {
    for c in chunks(movi) {
        if &c.id == id {
            out.extend_from_slice(c.body);
        } else if &c.id == b"LIST" {
            if let Some((b"rec ", inner)) = list(&c) {
                collect_stream(inner, id, out, truncated);
            }
        }
        *truncated |= c.truncated;
    }
}

/// Whether the AVI file in `bytes` declares an audio stream (`strh` type `auds`) in its first
/// stream header list; `None` when it has no readable header list (not an AVI file, or cut before
/// it), so the caller can let [`extract_audio`] say what is wrong.
pub fn has_audio_stream(bytes: &[u8]) -> Option<bool> {
    if !is_avi(bytes) {
        return None;
    }
    for riff in chunks(bytes) {
        let Some((b"AVI ", body)) = (&riff.id == b"RIFF").then(|| list(&riff)).flatten() else {
            continue;
        };
        for c in chunks(body) {
            if let Some((b"hdrl", inner)) = (&c.id == b"LIST").then(|| list(&c)).flatten() {
                return Some(stream_headers(inner).iter().any(|(k, _)| k == b"auds"));
            }
        }
    }
    None
}

/// The first audio stream of the AVI file in `bytes`; `name` (the file) is used in errors.
pub fn extract_audio(bytes: &[u8], name: &str) -> Result<AviAudio> {
    if !is_avi(bytes) {
        return Err(err(name, "not an AVI file (no RIFF 'AVI ' header)"));
    }
    let mut audio: Option<AviAudio> = None;
    let mut saw_header = false;
    let mut truncated = false;
    for riff in chunks(bytes) {
        let Some((form, body)) = (&riff.id == b"RIFF").then(|| list(&riff)).flatten() else {
            continue;
        };
        if form != b"AVI " && form != b"AVIX" {
            continue;
        }
        for c in chunks(body) {
            let Some((kind, inner)) = (&c.id == b"LIST").then(|| list(&c)).flatten() else {
                continue;
            };
            match kind {
                b"hdrl" if !saw_header => {
                    saw_header = true;
                    let streams = stream_headers(inner);
                    let Some(i) = streams.iter().position(|(k, _)| k == b"auds") else {
                        return Err(err(
                            name,
                            format!(
                                "the AVI file has no audio stream ({} streams, none of type \
                                 'auds')",
                                streams.len()
                            ),
                        ));
                    };
                    if streams[i].1.len() < 16 {
                        return Err(err(
                            name,
                            format!(
                                "AVI audio stream {i}: its 'strf' format header is missing or \
                                 shorter than a WAVEFORMAT (16 bytes)"
                            ),
                        ));
                    }
                    audio = Some(AviAudio {
                        stream: i,
                        wave_format: streams[i].1.clone(),
                        data: Vec::new(),
                        truncated: false,
                    });
                }
                b"movi" => {
                    let Some(a) = audio.as_mut() else {
                        return Err(err(
                            name,
                            "AVI 'movi' data comes before the 'hdrl' stream headers",
                        ));
                    };
                    if a.stream > 99 {
                        return Err(err(
                            name,
                            format!(
                                "AVI audio stream index {} has no two-digit chunk id",
                                a.stream
                            ),
                        ));
                    }
                    let id = [
                        b'0' + (a.stream / 10) as u8,
                        b'0' + (a.stream % 10) as u8,
                        b'w',
                        b'b',
                    ];
                    collect_stream(inner, &id, &mut a.data, &mut truncated);
                    // Only a cut inside the media data matters (not, say, inside the index).
                    truncated |= c.truncated;
                }
                _ => {}
            }
        }
    }
    let Some(mut audio) = audio else {
        return Err(err(
            name,
            "AVI file without stream headers (no LIST 'hdrl'); truncated or corrupt",
        ));
    };
    audio.truncated = truncated;
    if audio.data.is_empty() {
        return Err(err(
            name,
            format!(
                "AVI audio stream {} has no data chunks{}",
                audio.stream,
                if truncated {
                    " (the file is truncated)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(audio)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut v = id.to_vec();
        v.extend_from_slice(&(body.len() as u32).to_le_bytes());
        v.extend_from_slice(body);
        if body.len() % 2 == 1 {
            v.push(0);
        }
        v
    }

    fn list(kind: &[u8; 4], items: &[Vec<u8>]) -> Vec<u8> {
        let mut body = kind.to_vec();
        items.iter().for_each(|i| body.extend_from_slice(i));
        chunk(b"LIST", &body)
    }

    fn strl(kind: &[u8; 4], tag: u16) -> Vec<u8> {
        let mut strh = kind.to_vec();
        strh.resize(56, 0);
        let mut strf = tag.to_le_bytes().to_vec();
        strf.resize(18, 0);
        list(b"strl", &[chunk(b"strh", &strh), chunk(b"strf", &strf)])
    }

    fn avi(movi: &[Vec<u8>]) -> Vec<u8> {
        let hdrl = list(
            b"hdrl",
            &[
                chunk(b"avih", &[0; 56]),
                strl(b"vids", 0),
                strl(b"auds", 0x55),
            ],
        );
        let mut body = b"AVI ".to_vec();
        body.extend(hdrl);
        body.extend(list(b"movi", movi));
        chunk(b"RIFF", &body)
    }

    #[test]
    fn collects_the_audio_stream_in_order_with_odd_sizes_and_rec_lists() -> Result<()> {
        let file = avi(&[
            chunk(b"00dc", b"video"),
            chunk(b"01wb", b"abc"),
            list(b"rec ", &[chunk(b"01wb", b"de"), chunk(b"00dc", b"v")]),
            chunk(b"01wb", b"f"),
        ]);
        let a = extract_audio(&file, "x.avi")?;
        assert_eq!((a.stream, a.format_tag(), a.truncated), (1, 0x55, false));
        assert_eq!(a.data, b"abcdef");
        let cut = extract_audio(&file[..file.len() - 3], "x.avi")?;
        assert!(cut.truncated);
        Ok(())
    }

    #[test]
    fn tells_whether_an_audio_stream_is_declared() {
        assert_eq!(has_audio_stream(&avi(&[chunk(b"00dc", b"v")])), Some(true));
        let hdrl = list(b"hdrl", &[chunk(b"avih", &[0; 56]), strl(b"vids", 0)]);
        let mut body = b"AVI ".to_vec();
        body.extend(hdrl);
        body.extend(list(b"movi", &[chunk(b"00dc", b"v")]));
        assert_eq!(has_audio_stream(&chunk(b"RIFF", &body)), Some(false));
        assert_eq!(has_audio_stream(b"RIFF\x04\0\0\0WAVE"), None);
    }

    #[test]
    fn errors_name_the_file() {
        let e = extract_audio(b"RIFF\x04\0\0\0WAVE", "clip.avi").unwrap_err();
        assert!(e.to_string().contains("clip.avi"), "{e}");
        let e = extract_audio(&avi(&[chunk(b"00dc", b"v")]), "clip.avi").unwrap_err();
        assert!(e.to_string().contains("no data chunks"), "{e}");
    }
}
