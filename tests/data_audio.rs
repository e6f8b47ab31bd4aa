//! Audio data path: XKD's log-mel against the official code (fixture xkd/logmel), and decoding of
//! real media files of every supported format, resampling and segmenting.

mod common;

use avkd::data::mel::{LogMel, LogMelConfig};
use candle_core::{Device, Tensor};
use common::*;

const LOGMEL: &str = "xkd/logmel/logmel_io.safetensors";

/// The fixture's waveform as the reference feeds it: float32(float64(int16) / 32767).
fn fixture_waveform() -> Vec<f32> {
    let bytes = std::fs::read(fixture_path(LOGMEL)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = st.tensor("waveform_int16").unwrap();
    assert_eq!(view.dtype(), safetensors::Dtype::I16);
    view.data()
        .chunks_exact(2)
        .map(|b| (i16::from_le_bytes([b[0], b[1]]) as f64 / 32767.0) as f32)
        .collect()
}

#[test]
fn xkd_logmel_matches_official() {
    let wav = fixture_waveform();
    assert_eq!(wav.len(), 64_000);
    let lm = LogMel::new(LogMelConfig::xkd()).unwrap();
    let ours = lm.forward(&wav, &Device::Cpu).unwrap();
    let want = get(&load_fixture(LOGMEL), "out").clone();
    let d = max_abs_diff(&ours, &want);
    println!(
        "xkd log-mel [1,80,448]: max abs error {d:.3e} (max |ref| {:.3})",
        max_abs(&want)
    );
    assert_close("xkd log-mel", &ours, &want, 1e-4);
}

/// The standardisation is the last step: without it the output is ln(mel + eps), and the
/// standardised fixture maps back onto it.
#[test]
fn xkd_logmel_unnormalised_is_the_log_of_mel_energies() {
    let wav = fixture_waveform();
    let cfg = LogMelConfig {
        normalize: None,
        ..LogMelConfig::xkd()
    };
    let lm = LogMel::new(cfg).unwrap();
    let log = Tensor::from_vec(lm.log_mel(&wav).unwrap(), (1, 80, 448), &Device::Cpu).unwrap();
    let want = ((get(&load_fixture(LOGMEL), "out") * 4.410007).unwrap() - 5.3688107).unwrap();
    let d = max_abs_diff(&log, &want);
    println!("ln(mel + eps): max abs error {d:.3e}");
    assert_close("ln(mel + eps)", &log, &want, 5e-4);
    let mel = lm.mel_spectrogram(&wav).unwrap();
    let power = lm.power_spectrogram(&wav).unwrap();
    assert_eq!((mel.len(), power.len()), (80 * 448, 513 * 448));
    // eps keeps every power positive; every mel band of a noisy mix has energy.
    assert!(power.iter().all(|&p| p > 0.0) && mel.iter().all(|&m| m > 0.0));
}

// ---------------------------------------------------------------------------------------------
// Decoding real media files (tests/fixtures/media, made with FFmpeg; see its README.md).

use avkd::data::audio::{decode_bytes, decode_file, load_file, segment, Audio, XKD_SAMPLE_RATE};
use avkd::data::resample::resample;
use std::f64::consts::PI;
use std::path::{Path, PathBuf};

fn media(name: &str) -> PathBuf {
    fixture_path(&format!("media/{name}"))
}

/// A scratch directory for files the tests write, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("avkd-audio-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Frequency of the strongest bin of the Hann-windowed spectrum of `x`, and the bin width.
fn dominant_hz(x: &[f32], rate: u32) -> (f64, f64) {
    let n = x.len();
    let mut planner = realfft::RealFftPlanner::<f64>::new();
    let fft = planner.plan_fft_forward(n);
    let mut input: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| v as f64 * (0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos()))
        .collect();
    let mut spec = fft.make_output_vec();
    fft.process(&mut input, &mut spec).unwrap();
    let k = (1..spec.len())
        .max_by(|&a, &b| spec[a].norm().total_cmp(&spec[b].norm()))
        .unwrap();
    let bin = rate as f64 / n as f64;
    (k as f64 * bin, bin)
}

/// Amplitude of a pure tone from its RMS (sqrt(2)·rms).
fn tone_amplitude(x: &[f32]) -> f64 {
    let ms = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64;
    (2.0 * ms).sqrt()
}

/// The middle of a clip, away from codec start-up and fade-out.
fn middle(x: &[f32], rate: u32) -> &[f32] {
    let edge = (rate as usize / 10).min(x.len() / 4);
    &x[edge..x.len() - edge]
}

/// Checks a decoded 1 kHz tone of amplitude 0.5: rate, duration within `slack` samples,
/// frequency within one bin, amplitude within 5 %.
#[track_caller]
fn assert_tone(what: &str, a: &Audio, rate: u32, seconds: f64, slack: usize) {
    assert_eq!(a.sample_rate, rate, "{what}: sample rate");
    let want = (seconds * rate as f64) as usize;
    assert!(
        a.samples.len().abs_diff(want) <= slack,
        "{what}: {} samples, expected {want} ± {slack}",
        a.samples.len()
    );
    let m = middle(&a.samples, rate);
    let (hz, bin) = dominant_hz(m, rate);
    assert!((hz - 1000.0).abs() <= bin, "{what}: dominant {hz} Hz");
    let amp = tone_amplitude(m);
    assert!((amp - 0.5).abs() < 0.025, "{what}: amplitude {amp}");
    println!(
        "{what}: {} Hz, {:.4} s, dominant {hz:.1} Hz (bin {bin:.2}), amplitude {amp:.4}",
        a.sample_rate,
        a.duration_s()
    );
}

/// 16-bit stereo at 44.1 kHz written with hound: the decoded mono signal is the mean of the two
/// channels' samples / 32768, exactly.
#[test]
fn wav_16bit_stereo_decodes_to_the_channel_mean() {
    let dir = Scratch::new("wav");
    let path = dir.0.join("tones_44k_stereo.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    let mut want = Vec::new();
    for i in 0..44_100 {
        let t = i as f64 / 44_100.0;
        let l = (0.5 * (2.0 * PI * 440.0 * t).sin() * 32767.0).round() as i16;
        let r = (0.3 * (2.0 * PI * 1000.0 * t).sin() * 32767.0).round() as i16;
        w.write_sample(l).unwrap();
        w.write_sample(r).unwrap();
        want.push((l as f32 / 32768.0 + r as f32 / 32768.0) * 0.5);
    }
    w.finalize().unwrap();
    let a = decode_file(&path).unwrap();
    assert_eq!((a.sample_rate, a.samples.len()), (44_100, 44_100));
    let err = a
        .samples
        .iter()
        .zip(&want)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(err < 1e-6, "max error {err}");
}

/// FLAC is lossless: left 440 Hz at 0.5, right 1 kHz at 0.3 (16-bit), averaged.
#[test]
fn flac_decodes_exactly() {
    let a = decode_file(&media("tones_44k_stereo.flac")).unwrap();
    assert_eq!((a.sample_rate, a.samples.len()), (44_100, 22_050));
    let err = a
        .samples
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let t = i as f64 / 44_100.0;
            let want =
                0.5 * (0.5 * (2.0 * PI * 440.0 * t).sin() + 0.3 * (2.0 * PI * 1000.0 * t).sin());
            (x as f64 - want).abs()
        })
        .fold(0f64, f64::max);
    // 16-bit quantisation of each channel: at most one LSB.
    assert!(err <= 1.0 / 32768.0, "max error {err}");
}

#[test]
fn mp3_decodes_the_tone() {
    let a = decode_file(&media("tone1k_10s_44k_stereo.mp3")).unwrap();
    assert_tone("mp3", &a, 44_100, 10.0, 1152);
}

#[test]
fn aac_in_m4a_decodes_the_tone() {
    let a = decode_file(&media("tone1k_2s_48k.m4a")).unwrap();
    assert_tone("m4a (AAC-LC)", &a, 48_000, 2.0, 2048);
}

/// The video track comes first; the audio track is found and decoded.
#[test]
fn aac_in_mp4_with_h264_video_decodes_the_audio_track() {
    let a = decode_file(&media("h264_aac_2s.mp4")).unwrap();
    assert_tone("mp4 (H.264 + AAC-LC)", &a, 44_100, 2.0, 2048);
}

/// UCF101's layout: Xvid video and MP3 audio in AVI, read by walking the RIFF chunks.
#[test]
fn mp3_in_avi_decodes_the_tone() {
    let a = decode_file(&media("xvid_mp3_2s.avi")).unwrap();
    // No LAME header inside AVI, so the encoder delay (~1100 samples) stays in.
    assert_tone("avi (Xvid + MP3)", &a, 44_100, 2.0, 2 * 1152);
}

#[test]
fn pcm_in_avi_decodes_exactly() {
    let a = decode_file(&media("mjpeg_pcm.avi")).unwrap();
    assert_eq!((a.sample_rate, a.samples.len()), (8_000, 4_000));
    let err = a
        .samples
        .iter()
        .enumerate()
        .map(|(i, &x)| (x as f64 - 0.5 * (2.0 * PI * 1000.0 * i as f64 / 8000.0).sin()).abs())
        .fold(0f64, f64::max);
    assert!(err <= 1.0 / 32768.0, "max error {err}");
}

/// 44.1 kHz -> 16 kHz keeps both tones, their amplitudes and the duration (exact length).
#[test]
fn resampling_keeps_tones_and_length() {
    let a = decode_file(&media("tones_44k_stereo.flac")).unwrap();
    let r = resample(&a.samples, 44_100, 16_000).unwrap();
    assert_eq!(r.len(), 8_000);
    // Output sample i is input time i / 16 kHz; the edges (one filter half-length, ~400 output
    // samples) see the zeros beyond the clip.
    let mut err = 0f64;
    for (i, &y) in r.iter().enumerate().take(7_200).skip(800) {
        let t = i as f64 / 16_000.0;
        let want = 0.5 * (0.5 * (2.0 * PI * 440.0 * t).sin() + 0.3 * (2.0 * PI * 1000.0 * t).sin());
        err = err.max((y as f64 - want).abs());
    }
    // 16-bit quantisation of the source plus the filter's passband ripple.
    assert!(err < 2e-4, "max error {err}");
    let m = load_file(&media("tone1k_10s_44k_stereo.mp3"), XKD_SAMPLE_RATE).unwrap();
    let d = decode_file(&media("tone1k_10s_44k_stereo.mp3")).unwrap();
    assert_eq!(
        m.samples.len(),
        (d.samples.len() as f64 * 16_000.0 / 44_100.0).ceil() as usize
    );
    assert_tone("mp3 at 16 kHz", &m, 16_000, 10.0, 420);
    let aac48 = load_file(&media("tone1k_2s_48k.m4a"), XKD_SAMPLE_RATE).unwrap();
    assert_tone("m4a 48 -> 16 kHz", &aac48, 16_000, 2.0, 700);
}

/// A tone above the new Nyquist frequency must not alias into the band.
#[test]
fn resampling_suppresses_aliases() {
    let x: Vec<f32> = (0..44_100)
        .map(|i| (0.5 * (2.0 * PI * 12_000.0 * i as f64 / 44_100.0).sin()) as f32)
        .collect();
    let r = resample(&x, 44_100, 16_000).unwrap();
    let amp = tone_amplitude(&r[800..15_200]);
    // 12 kHz would fold to 4 kHz; what is left is below 16-bit noise.
    assert!(amp < 1e-4, "alias amplitude {amp}");
}

/// XKD's rule: from ⌊start·sr⌋ take ⌊duration·sr⌋ samples, zero-padded at the end.
#[test]
fn segment_takes_the_window_and_pads_at_the_end() {
    let x: Vec<f32> = (0..100).map(|i| i as f32).collect();
    assert_eq!(segment(&x, 10, 2.0, 3.0).unwrap(), x[20..50].to_vec());
    let tail = segment(&x, 10, 8.5, 4.0).unwrap();
    assert_eq!(tail.len(), 40);
    assert_eq!(&tail[..15], &x[85..100]);
    assert!(tail[15..].iter().all(|&v| v == 0.0));
    // int(2.01 * 16000) = 32159 in Python (2.01·16000 = 32159.999...); the same here.
    assert_eq!(segment(&x, 16_000, 0.0, 2.01).unwrap().len(), 32_159);
    assert_eq!(segment(&x, 10, 20.0, 1.0).unwrap(), vec![0.0; 10]);
    assert!(segment(&x, 10, -1.0, 1.0).is_err());
    assert!(segment(&x, 10, 0.0, 0.0).is_err());
    // A 2 s clip asked for 4 s at XKD's rate: 64,000 samples, the last 2 s silent.
    let m = load_file(&media("h264_aac_2s.mp4"), XKD_SAMPLE_RATE).unwrap();
    let s = segment(&m.samples, 16_000, 0.0, 4.0).unwrap();
    assert_eq!(s.len(), 64_000);
    assert!(s[m.samples.len()..].iter().all(|&v| v == 0.0));
}

/// File -> 16 kHz -> 4 s -> XKD log-mel: [1, 80, 448] with the energy in the band around 1 kHz.
#[test]
fn mp3_to_xkd_logmel() {
    let m = load_file(&media("tone1k_10s_44k_stereo.mp3"), XKD_SAMPLE_RATE).unwrap();
    let clip = segment(&m.samples, 16_000, 3.0, 4.0).unwrap();
    let lm = LogMel::new(LogMelConfig::xkd()).unwrap();
    let spec = lm.forward(&clip, &Device::Cpu).unwrap();
    assert_eq!(spec.dims(), &[1, 80, 448]);
    let per_band = spec
        .squeeze(0)
        .unwrap()
        .mean(1)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let peak = (0..80)
        .max_by(|&a, &b| per_band[a].total_cmp(&per_band[b]))
        .unwrap();
    // Slaney mel: 1 kHz is mel 15; 80 bands over 0..45.2 mel put it in band ~25.
    assert!((24..=26).contains(&peak), "peak band {peak}");
}

// ---------------------------------------------------------------------------------------------
// Broken and unsupported files: an error that names the file, never a panic.

#[track_caller]
fn assert_error(path: &Path, needle: &str) {
    let e = match decode_file(path) {
        Ok(a) => panic!(
            "{} decoded to {} s of audio",
            path.display(),
            a.duration_s()
        ),
        Err(e) => e.to_string(),
    };
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(e.contains(name), "error does not name the file: {e}");
    assert!(
        e.to_lowercase().contains(needle),
        "error for {name} does not say `{needle}`: {e}"
    );
    println!("{e}");
}

fn cut(path: &Path, keep: f64) -> Vec<u8> {
    let b = std::fs::read(path).unwrap();
    b[..(b.len() as f64 * keep) as usize].to_vec()
}

#[test]
fn truncated_files_are_errors() {
    let dir = Scratch::new("truncated");
    for (src, keep) in [
        ("tones_44k_stereo.flac", 0.6),
        ("tone1k_10s_44k_stereo.mp3", 0.5),
        ("tone1k_2s_48k.m4a", 0.5),
        ("h264_aac_2s.mp4", 0.7),
        ("xvid_mp3_2s.avi", 0.6),
        ("mjpeg_pcm.avi", 0.8),
    ] {
        let p = dir.write(&format!("cut_{src}"), &cut(&media(src), keep));
        assert_error(&p, "truncated");
    }
    let hdr = dir.write(
        "header_only.flac",
        &cut(&media("tones_44k_stereo.flac"), 0.02),
    );
    let e = decode_file(&hdr).unwrap_err().to_string();
    assert!(e.contains("header_only.flac"), "{e}");
}

#[test]
fn corrupt_files_are_errors() {
    let dir = Scratch::new("corrupt");
    // Deterministic noise (a xorshift), so the test is reproducible.
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..20_000)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    assert_error(&dir.write("noise.mp3", &noise), "not a supported");
    assert_error(&dir.write("noise.wav", &noise), "not a supported");
    assert_error(&dir.write("empty.flac", &[]), "empty");
    // An MP3 whose frames were overwritten with noise after the first few.
    let mut mp3 = std::fs::read(media("tone1k_10s_44k_stereo.mp3")).unwrap();
    let n = mp3.len();
    mp3[2_000..n].copy_from_slice(&noise.repeat(3)[..n - 2_000]);
    let e = decode_file(&dir.write("scrambled.mp3", &mp3));
    match e {
        Err(e) => assert!(e.to_string().contains("scrambled.mp3"), "{e}"),
        // Frame sync may find the few intact frames: then only they are decoded.
        Ok(a) => assert!(
            a.duration_s() < 1.0,
            "{} s from a scrambled file",
            a.duration_s()
        ),
    }
    assert_error(&dir.0.join("missing.wav"), "cannot read");
}

#[test]
fn unsupported_files_are_errors() {
    let dir = Scratch::new("unsupported");
    // HMDB51-like: an AVI with a video stream only.
    assert_error(&media("video_only.avi"), "no audio stream");
    // AVI audio in a format symphonia does not decode (AC-3, tag 0x2000).
    let mut avi = std::fs::read(media("xvid_mp3_2s.avi")).unwrap();
    let strf = avi
        .windows(4)
        .enumerate()
        .filter(|(_, w)| w == b"strf")
        .nth(1)
        .unwrap()
        .0;
    avi[strf + 8..strf + 10].copy_from_slice(&0x2000u16.to_le_bytes());
    assert_error(&dir.write("ac3.avi", &avi), "format tag 0x2000");
    // Opus in MP4 (as some Kinetics downloads): symphonia has no Opus decoder.
    assert_error(&media("opus_0.5s.mp4"), "codec (opus) is not supported");
    // An MP4 whose only audio sample entry is of an unknown type: no audio track to decode.
    let mut mp4 = std::fs::read(media("h264_aac_2s.mp4")).unwrap();
    let entry = mp4.windows(4).position(|w| w == b"mp4a").unwrap();
    mp4[entry..entry + 4].copy_from_slice(b"zzzz");
    let e = decode_bytes(mp4, "unknown.mp4")
        .map(|a| a.samples.len())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown.mp4") && e.contains("no audio track"),
        "{e}"
    );
    assert_error(
        &dir.write("notes.txt", b"just some text, not audio\n"),
        "not a supported",
    );
}
