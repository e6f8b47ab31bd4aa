//! Decoding containers through the FFmpeg libraries (feature `ffmpeg`): frames equal, byte for
//! byte, those of the `ffmpeg` command (`-f rawvideo -pix_fmt rgb24`), with and without seeking,
//! on the committed UCF101-like `.avi` (Xvid + MP3) and Kinetics-like `.mp4` (H.264 + AAC) and on
//! longer files with several keyframes that the test makes; audio equals the command's f32 PCM
//! averaged over channels; `.avi` writing reads back; bad input gives errors naming the file.
#![cfg(feature = "ffmpeg")]

use avkd::data::ffmpeg::{decode_audio, decode_frames, probe, write_avi};
use avkd::data::video::RgbImage;
use std::path::{Path, PathBuf};
use std::process::Command;

fn media(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/media")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("data_ffmpeg");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e} (the ffmpeg tests need /usr/bin/ffmpeg)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Every decoded frame as the `ffmpeg` command gives it, with its number (pts × fps).
fn reference_frames(path: &Path, fps: f64) -> Vec<(usize, RgbImage)> {
    let info = probe(path).unwrap();
    let raw = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "rgb24"])
        .args(["-fps_mode", "passthrough", "-"]));
    let times = run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "frame=pts_time", "-of", "csv=p=0"])
        .arg(path));
    let numbers: Vec<usize> = String::from_utf8(times)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            // A frame with side data gets a second, empty field.
            let t: f64 = l.split(',').next().unwrap().trim().parse().unwrap();
            (t * fps).round() as usize
        })
        .collect();
    let size = (info.width * info.height * 3) as usize;
    assert_eq!(raw.len(), numbers.len() * size, "{}", path.display());
    numbers
        .into_iter()
        .zip(raw.chunks_exact(size))
        .map(|(n, px)| {
            (
                n,
                RgbImage::from_raw(info.width, info.height, px.to_vec()).unwrap(),
            )
        })
        .collect()
}

/// All frames in one call, then subsets that seek (out of order, repeated), against the command.
fn check_frames(path: &Path) {
    let info = probe(path).unwrap();
    let reference = reference_frames(path, info.fps);
    let numbers: Vec<usize> = reference.iter().map(|(n, _)| *n).collect();
    let all = decode_frames(path, &numbers).unwrap();
    for ((n, want), got) in reference.iter().zip(&all) {
        assert!(want == got, "{} frame {n} differs", path.display());
    }
    let k = reference.len();
    let picks = [k * 2 / 3, k / 5, k * 2 / 3, k - 1, k / 2 + 1];
    let asked: Vec<usize> = picks.iter().map(|&j| reference[j].0).collect();
    let got = decode_frames(path, &asked).unwrap();
    for (&j, g) in picks.iter().zip(&got) {
        assert!(
            &reference[j].1 == g,
            "{} frame {} differs after seeking",
            path.display(),
            reference[j].0
        );
    }
}

#[test]
fn probe_reads_the_fixtures() {
    let avi = probe(&media("xvid_mp3_2s.avi")).unwrap();
    // The AVI index holds 51 entries (the encoder dropped frame 1; pts run 0, 2, 3, ..., 50).
    assert_eq!(
        (avi.fps, avi.frames, avi.width, avi.height, avi.has_audio),
        (25.0, 51, 64, 48, true)
    );
    assert!((avi.duration - 2.04).abs() < 1e-9, "{}", avi.duration);
    let mp4 = probe(&media("h264_aac_2s.mp4")).unwrap();
    assert_eq!(
        (mp4.fps, mp4.frames, mp4.width, mp4.height, mp4.has_audio),
        (25.0, 50, 64, 48, true)
    );
    assert!((mp4.duration - 2.0).abs() < 1e-9, "{}", mp4.duration);
    let silent = probe(&media("video_only.avi")).unwrap();
    assert_eq!(
        (silent.frames, silent.width, silent.has_audio),
        (10, 32, false)
    );
}

#[test]
fn frames_equal_the_ffmpeg_command_on_the_fixtures() {
    check_frames(&media("xvid_mp3_2s.avi"));
    check_frames(&media("h264_aac_2s.mp4"));
    check_frames(&media("mjpeg_pcm.avi"));
}

#[test]
fn a_gap_in_the_timestamps_repeats_the_next_frame_as_pyav_does() {
    let path = media("xvid_mp3_2s.avi");
    let reference = reference_frames(&path, 25.0);
    assert_eq!((reference[0].0, reference[1].0), (0, 2));
    let got = decode_frames(&path, &[1, 0, 1, 2]).unwrap();
    assert!(got[0] == reference[1].1 && got[2] == reference[1].1 && got[3] == reference[1].1);
    assert!(got[1] == reference[0].1);
}

#[test]
fn frames_equal_the_ffmpeg_command_on_long_gops_with_seeking() {
    // H.264 with B-frames and a keyframe every 30 frames; Xvid-like MPEG-4 at 29.97 fps, GOP 12.
    let mp4 = scratch("h264_gop30_6s.mp4");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc=size=96x64:rate=25:duration=6"])
        .args(["-c:v", "libx264", "-g", "30", "-bf", "2", "-crf", "30"])
        .args(["-pix_fmt", "yuv420p"])
        .arg(&mp4));
    let avi = scratch("mpeg4_gop12_2997.avi");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc=size=80x48:rate=30000/1001:duration=4"])
        .args(["-c:v", "mpeg4", "-vtag", "XVID", "-g", "12", "-q:v", "5"])
        .arg(&avi));
    let info = probe(&mp4).unwrap();
    assert_eq!((info.fps, info.frames), (25.0, 150));
    let info = probe(&avi).unwrap();
    assert!((info.fps - 30000.0 / 1001.0).abs() < 1e-9, "{}", info.fps);
    check_frames(&mp4);
    check_frames(&avi);
}

/// The command's decoded audio, channels averaged.
fn reference_audio(path: &Path) -> Vec<f32> {
    let channels: usize = String::from_utf8(run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0"])
        .args(["-show_entries", "stream=channels", "-of", "csv=p=0"])
        .arg(path)))
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    let raw = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-f", "f32le", "-c:a", "pcm_f32le", "-"]));
    let samples: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    samples
        .chunks_exact(channels)
        .map(|c| c.iter().sum::<f32>() / channels as f32)
        .collect()
}

#[test]
fn audio_equals_the_ffmpeg_command() {
    for (name, rate) in [
        ("xvid_mp3_2s.avi", 44_100),
        ("h264_aac_2s.mp4", 44_100),
        ("mjpeg_pcm.avi", 8_000),
    ] {
        let path = media(name);
        let (samples, sr) = decode_audio(&path).unwrap();
        assert_eq!(sr, rate, "{name}");
        let want = reference_audio(&path);
        assert_eq!(samples.len(), want.len(), "{name}");
        let max = samples
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(max <= 1e-7, "{name}: max difference {max}");
        // A 1 kHz tone at 0.5: RMS 0.354 away from the edges.
        let mid = &samples[samples.len() / 4..samples.len() * 3 / 4];
        let rms = (mid.iter().map(|x| x * x).sum::<f32>() / mid.len() as f32).sqrt();
        assert!((rms - 0.3536).abs() < 0.02, "{name}: rms {rms}");
    }
}

/// 50 frames of a gradient with a square moving right, and 2 s of a 1 kHz tone at 16 kHz.
fn synthetic_clip() -> (Vec<RgbImage>, Vec<f32>) {
    let frames = (0..50u32)
        .map(|t| {
            RgbImage::from_fn(64, 48, |x, y| {
                if (t + 4..t + 20).contains(&x) && (16..32).contains(&y) {
                    image::Rgb([230, 40, 40])
                } else {
                    image::Rgb([(x * 4) as u8, (y * 5) as u8, 120])
                }
            })
        })
        .collect();
    let audio = (0..32_000)
        .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin())
        .collect();
    (frames, audio)
}

#[test]
fn write_avi_reads_back_as_xvid_and_mp3() {
    let (frames, audio) = synthetic_clip();
    let path = scratch("written.avi");
    let _ = std::fs::remove_file(&path);
    write_avi(&path, &frames, 25.0, &audio, 16_000).unwrap();
    let streams = String::from_utf8(run(Command::new("ffprobe")
        .args(["-v", "error", "-show_entries"])
        .args([
            "stream=codec_name,codec_tag_string,sample_rate,channels",
            "-of",
            "csv=p=0",
        ])
        .arg(&path)))
    .unwrap();
    assert!(streams.contains("mpeg4,XVID"), "{streams}");
    // ffprobe prints MP3's AVI tag 0x0055 as the characters "U\0\0\0".
    assert!(
        streams.contains("\nmp3,") && streams.contains(",16000,1"),
        "{streams}"
    );
    let info = probe(&path).unwrap();
    assert_eq!(
        (
            info.fps,
            info.frames,
            info.width,
            info.height,
            info.has_audio
        ),
        (25.0, 50, 64, 48, true)
    );
    // The frames come back close to what was written (qscale 3), and as the command decodes them.
    check_frames(&path);
    let back = decode_frames(&path, &(0..50).collect::<Vec<_>>()).unwrap();
    let err: f64 = back
        .iter()
        .zip(&frames)
        .flat_map(|(a, b)| a.as_raw().iter().zip(b.as_raw()))
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .sum::<f64>()
        / (50 * 64 * 48 * 3) as f64;
    assert!(err < 4.0, "mean absolute error {err}");
    // The tone survives MP3 (LAME adds its delay at the start).
    let (samples, sr) = decode_audio(&path).unwrap();
    assert_eq!(sr, 16_000);
    assert!(
        (32_000..32_000 + 3 * 1152).contains(&samples.len()),
        "{}",
        samples.len()
    );
    let mid = &samples[8_000..24_000];
    let rms = (mid.iter().map(|x| x * x).sum::<f32>() / mid.len() as f32).sqrt();
    assert!((rms - 0.3536).abs() < 0.02, "rms {rms}");
    let crossings = mid
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    assert!(
        (1990..=2010).contains(&crossings),
        "{crossings} zero crossings in 1 s"
    );
    // The pure-Rust AVI path (RIFF walk + symphonia's MP3) reads it too.
    let rust = avkd::data::audio::decode_file(&path).unwrap();
    assert_eq!(rust.sample_rate, 16_000);
    assert!(rust.samples.len() >= 32_000, "{}", rust.samples.len());
    // No temporary file is left beside it.
    let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(left.is_empty());
}

#[test]
fn bad_input_gives_errors_naming_the_file() {
    let missing = scratch("no_such_video.avi");
    let e = decode_frames(&missing, &[0]).unwrap_err().to_string();
    assert!(e.contains("no_such_video.avi"), "{e}");
    let e = probe(&missing).unwrap_err().to_string();
    assert!(e.contains("no_such_video.avi"), "{e}");

    let avi = media("xvid_mp3_2s.avi");
    let e = decode_frames(&avi, &[3, 500]).unwrap_err().to_string();
    assert!(
        e.contains("xvid_mp3_2s.avi") && e.contains("frame 500"),
        "{e}"
    );

    let mp3 = media("tone1k_10s_44k_stereo.mp3");
    let e = probe(&mp3).unwrap_err().to_string();
    assert!(
        e.contains("tone1k_10s_44k_stereo.mp3") && e.contains("no video stream"),
        "{e}"
    );
    let e = decode_audio(&media("video_only.avi"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("video_only.avi") && e.contains("no audio stream"),
        "{e}"
    );

    // Noise is not a video.
    let noise = scratch("noise.mp4");
    std::fs::write(
        &noise,
        (0..20_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let e = decode_frames(&noise, &[0]).unwrap_err().to_string();
    assert!(e.contains("noise.mp4"), "{e}");

    let (frames, audio) = synthetic_clip();
    let out = scratch("bad.avi");
    let odd = vec![RgbImage::new(63, 48); 3];
    let e = write_avi(&out, &odd, 25.0, &audio, 16_000)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.avi") && e.contains("63x48"), "{e}");
    let e = write_avi(&out, &frames, 25.0, &audio, 7_000)
        .unwrap_err()
        .to_string();
    assert!(e.contains("7000 Hz"), "{e}");
    let e = write_avi(&out, &frames, 0.0, &audio, 16_000)
        .unwrap_err()
        .to_string();
    assert!(e.contains("frame rate"), "{e}");
    assert!(!out.exists());
}
