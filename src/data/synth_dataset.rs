//! A small synthetic action dataset on disk, laid out like UCF101, so the whole data path (split
//! parsing, media resolution, frame and audio decoding) runs end to end with no download.
//!
//! ```text
//! <out>/ucfTrainTestlist/classInd.txt                 1 Move000            (CRLF, as UCF101's)
//! <out>/ucfTrainTestlist/trainlist0{1,2,3}.txt        Move000/v_Move000_g02_c01.avi 1
//! <out>/ucfTrainTestlist/testlist0{1,2,3}.txt         Move000/v_Move000_g01_c01.avi
//! <out>/UCF-101/<Class>/v_<Class>_gXX_cYY/img_00001.jpg ...   frames (MMAction2 rawframes naming)
//! <out>/UCF-101/<Class>/v_<Class>_gXX_cYY/audio.wav           16-bit PCM mono
//! <out>/UCF-101/<Class>/v_<Class>_gXX_cYY/meta.json           fps (25, UCF101's), size, sample rate
//! <out>/avkd_synth.json                                       the configuration
//! ```
//! The lists name `.avi` files, as UCF101's do; [`crate::data::media::resolve_media`] maps each to
//! its frame folder. Class k of K is the [`MovingSquare`] moving in direction 2πk/K and the
//! [`Tone`] at a class-dependent pitch, pulsing 1 + k times per clip.
//!
//! Clips come in groups, like UCF101's g01–g25 (clips cut from one source video): clips of a group
//! share the square's colour, start and background and differ by a small shift, noise and the
//! tone's phase. Each fold tests on different groups (fold f on the f-th block of groups, as UCF101
//! tests on g01–07, g08–14, g15–21), so no group is split between train and test.

use super::synth::{MovingSquare, Tone};
use super::video::{FrameFolderMeta, FRAME_FOLDER_META};
use crate::nn::rng::SeededRng;
use candle_core::Result;
use rayon::prelude::*;
use std::fmt;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub const SYNTH_SPLIT_DIR: &str = "ucfTrainTestlist";
pub const SYNTH_VIDEO_DIR: &str = "UCF-101";
pub const SYNTH_MARKER: &str = "avkd_synth.json";
/// The tone of class k lands on the mel bin the in-memory generator uses for XKD's 80-bin log-mel.
pub const SYNTH_MEL_BINS: usize = 80;

fn msg(s: String) -> candle_core::Error {
    candle_core::Error::Msg(s)
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SynthDatasetConfig {
    pub classes: usize,
    pub train_per_class: usize,
    /// Test clips per class in each fold; the three folds test on disjoint groups when there are
    /// at least three times as many clips as this.
    pub test_per_class: usize,
    pub frames: usize,
    /// Frame width and height in pixels.
    pub size: usize,
    pub fps: f64,
    pub sample_rate: u32,
    pub jpeg_quality: u8,
    pub seed: u64,
    /// Colour each class's square with its own hue, so that one frame tells the class too (the
    /// motion still does): data on which an image teacher, which sees one frame, knows something.
    #[serde(default)]
    pub class_colours: bool,
}

impl Default for SynthDatasetConfig {
    fn default() -> Self {
        Self {
            classes: 8,
            train_per_class: 8,
            test_per_class: 4,
            frames: 32,
            size: 64,
            fps: 25.0,
            sample_rate: 16_000,
            jpeg_quality: 90,
            seed: 0,
            class_colours: false,
        }
    }
}

/// Every entry under the dataset's video folder (`UCF-101/<Class>/<video>`: frame folders, and
/// `.avi` files when they were written), sorted.
pub fn synth_videos(dataset: &Path) -> Result<Vec<PathBuf>> {
    let list = |p: &Path| -> Result<Vec<PathBuf>> {
        let entries =
            std::fs::read_dir(p).map_err(|e| msg(format!("listing {}: {e}", p.display())))?;
        let mut out = Vec::new();
        for entry in entries {
            out.push(entry.map_err(candle_core::Error::wrap)?.path());
        }
        Ok(out)
    };
    let mut videos = Vec::new();
    for class in list(&dataset.join(SYNTH_VIDEO_DIR))? {
        if class.is_dir() {
            videos.extend(list(&class)?);
        }
    }
    videos.sort();
    Ok(videos)
}

/// What [`write_synth_dataset`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SynthDatasetSummary {
    pub out: PathBuf,
    /// Holds `classInd.txt`, `trainlist0N.txt`, `testlist0N.txt`.
    pub split_dir: PathBuf,
    /// The video root: `<Class>/v_<Class>_gXX_cYY/`.
    pub video_dir: PathBuf,
    pub classes: Vec<String>,
    pub videos: usize,
    pub frames_written: usize,
    /// (train, test) videos of folds 1, 2, 3.
    pub folds: [(usize, usize); 3],
    pub bytes: u64,
    pub seconds: f64,
    pub config: SynthDatasetConfig,
}

impl fmt::Display for SynthDatasetSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "wrote {} videos of {} classes ({} frames of {}x{} at {} fps, {} Hz wav) to {} in {:.2} s ({:.1} MB)",
            self.videos,
            self.classes.len(),
            c.frames,
            c.size,
            c.size,
            c.fps,
            c.sample_rate,
            self.out.display(),
            self.seconds,
            self.bytes as f64 / 1e6
        )?;
        writeln!(
            f,
            "splits: {} (classInd.txt, trainlist01-03.txt, testlist01-03.txt)",
            self.split_dir.display()
        )?;
        writeln!(
            f,
            "videos: {}/<Class>/v_<Class>_gXX_cYY/ (img_00001.jpg ..., audio.wav, meta.json)",
            self.video_dir.display()
        )?;
        for (i, (train, test)) in self.folds.iter().enumerate() {
            writeln!(f, "fold {}: {train} train / {test} test", i + 1)?;
        }
        writeln!(f, "classes: {}", self.classes.join(", "))
    }
}

/// Class k of K, named after its direction of motion in degrees (`Move045`): CamelCase without
/// underscores, so `v_<Class>_gXX_cYY` parses as UCF101's names do.
pub fn synth_class_name(class: usize, num_classes: usize) -> String {
    format!(
        "Move{:03}",
        (360.0 * class as f64 / num_classes as f64).round() as usize
    )
}

/// A saturated colour of hue k/K for class k of K (RGB in [0, 1]).
fn class_colour(class: usize, num_classes: usize) -> [f32; 3] {
    let h = 6.0 * class as f32 / num_classes.max(1) as f32;
    let x = 1.0 - ((h % 2.0) - 1.0).abs();
    match h as usize {
        0 => [1.0, x, 0.0],
        1 => [x, 1.0, 0.0],
        2 => [0.0, 1.0, x],
        3 => [0.0, x, 1.0],
        4 => [x, 0.0, 1.0],
        _ => [1.0, 0.0, x],
    }
}

/// How clips are grouped and which groups each fold tests on.
#[derive(Debug, Clone, Copy)]
struct GroupPlan {
    group_size: usize,
    groups: usize,
    test_groups: usize,
}

impl GroupPlan {
    /// Groups of up to 7 clips (UCF101 has 4–7), sized so train and test are whole groups.
    fn new(train: usize, test: usize) -> Self {
        let (mut a, mut b) = (train, test);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        let group_size = (1..=a.min(7)).rev().find(|d| a % d == 0).unwrap_or(1);
        Self {
            group_size,
            groups: (train + test) / group_size,
            test_groups: test / group_size,
        }
    }

    /// Fold `fold` (0-based) tests on a block of consecutive groups: disjoint blocks when three
    /// fit, else blocks a third of the way round apart.
    fn is_test(&self, fold: usize, group: usize) -> bool {
        let start = if 3 * self.test_groups <= self.groups {
            fold * self.test_groups
        } else {
            fold * self.groups / 3
        };
        (group + self.groups - start) % self.groups < self.test_groups
    }
}

/// One video to write.
struct Clip {
    class: usize,
    group: usize,
    index: usize,
}

impl Clip {
    fn name(&self, classes: &[String]) -> String {
        format!(
            "v_{}_g{:02}_c{:02}",
            classes[self.class],
            self.group + 1,
            self.index + 1
        )
    }
}

/// Writes the dataset under `out` (created if needed). `out` must be empty or hold an earlier
/// synthetic dataset (its `avkd_synth.json`), which is replaced; anything else is refused, so a
/// mistyped path never deletes real data. The same seed writes the same files.
pub fn write_synth_dataset(out: &Path, cfg: &SynthDatasetConfig) -> Result<SynthDatasetSummary> {
    check_config(cfg)?;
    let start = Instant::now();
    prepare_out(out, cfg)?;
    let classes: Vec<String> = (0..cfg.classes)
        .map(|k| synth_class_name(k, cfg.classes))
        .collect();
    let plan = GroupPlan::new(cfg.train_per_class, cfg.test_per_class);
    let clips: Vec<Clip> = (0..cfg.classes)
        .flat_map(|class| {
            (0..plan.groups).flat_map(move |group| {
                (0..plan.group_size).map(move |index| Clip {
                    class,
                    group,
                    index,
                })
            })
        })
        .collect();
    let split_dir = out.join(SYNTH_SPLIT_DIR);
    let video_dir = out.join(SYNTH_VIDEO_DIR);
    let mut bytes = write_lists(&split_dir, &classes, &clips, &plan)?;
    let root = SeededRng::new(cfg.seed);
    bytes += clips
        .par_iter()
        .map(|clip| write_clip(&video_dir, &classes, clip, cfg, &root))
        .collect::<Result<Vec<u64>>>()?
        .iter()
        .sum::<u64>();
    let folds = [0, 1, 2].map(|f| {
        let test = clips.iter().filter(|c| plan.is_test(f, c.group)).count();
        (clips.len() - test, test)
    });
    let summary = SynthDatasetSummary {
        out: out.to_path_buf(),
        split_dir,
        video_dir,
        classes,
        videos: clips.len(),
        frames_written: clips.len() * cfg.frames,
        folds,
        bytes,
        seconds: start.elapsed().as_secs_f64(),
        config: cfg.clone(),
    };
    write_marker(out, cfg, true)?;
    Ok(summary)
}

fn check_config(cfg: &SynthDatasetConfig) -> Result<()> {
    let bad = |what: String| Err(msg(format!("synthetic dataset: {what}")));
    if !(2..=360).contains(&cfg.classes) {
        return bad(format!("classes must be 2 to 360, found {}", cfg.classes));
    }
    if cfg.train_per_class == 0 || cfg.test_per_class == 0 {
        return bad("train-per-class and test-per-class must be at least 1".to_string());
    }
    if cfg.frames == 0 || cfg.size < 8 {
        return bad(format!(
            "need at least 1 frame of at least 8x8 pixels, found {} frames of {}x{}",
            cfg.frames, cfg.size, cfg.size
        ));
    }
    if !(cfg.fps > 0.0 && cfg.fps.is_finite()) || cfg.sample_rate < 8_000 {
        return bad(format!(
            "fps must be positive and the sample rate at least 8000 Hz, found {} fps, {} Hz",
            cfg.fps, cfg.sample_rate
        ));
    }
    if !(1..=100).contains(&cfg.jpeg_quality) {
        return bad(format!(
            "JPEG quality must be 1 to 100, found {}",
            cfg.jpeg_quality
        ));
    }
    Ok(())
}

fn io_err(what: &str, path: &Path, e: impl fmt::Display) -> candle_core::Error {
    msg(format!("{what} {}: {e}", path.display()))
}

/// Makes `out` ready: created if missing; an earlier synthetic dataset there is removed; any other
/// content is refused.
fn prepare_out(out: &Path, cfg: &SynthDatasetConfig) -> Result<()> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(|e| io_err("reading", out, e))?;
        let empty = entries.next().is_none();
        if !empty {
            if !out.join(SYNTH_MARKER).is_file() {
                return Err(msg(format!(
                    "refusing to write a synthetic dataset into {}: it is not empty and holds no {SYNTH_MARKER} from an earlier one",
                    out.display()
                )));
            }
            for sub in [SYNTH_SPLIT_DIR, SYNTH_VIDEO_DIR] {
                let p = out.join(sub);
                if p.exists() {
                    std::fs::remove_dir_all(&p).map_err(|e| io_err("removing", &p, e))?;
                }
            }
        }
    }
    std::fs::create_dir_all(out).map_err(|e| io_err("creating", out, e))?;
    // Written first, so that an interrupted run can be overwritten by the next.
    write_marker(out, cfg, false)
}

fn write_marker(out: &Path, cfg: &SynthDatasetConfig, complete: bool) -> Result<()> {
    let path = out.join(SYNTH_MARKER);
    let json =
        serde_json::json!({ "generator": "avkd synth", "complete": complete, "config": cfg });
    std::fs::write(&path, format!("{json:#}\n")).map_err(|e| io_err("writing", &path, e))
}

/// `classInd.txt` and the three folds' lists, with CRLF line ends as UCF101's files have.
fn write_lists(dir: &Path, classes: &[String], clips: &[Clip], plan: &GroupPlan) -> Result<u64> {
    std::fs::create_dir_all(dir).map_err(|e| io_err("creating", dir, e))?;
    let mut files: Vec<(PathBuf, String)> = vec![(
        dir.join("classInd.txt"),
        classes
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} {c}\r\n", i + 1))
            .collect(),
    )];
    for fold in 0..3 {
        let (mut train, mut test) = (String::new(), String::new());
        for clip in clips {
            let class = &classes[clip.class];
            let video = format!("{class}/{}.avi", clip.name(classes));
            if plan.is_test(fold, clip.group) {
                test.push_str(&format!("{video}\r\n"));
            } else {
                train.push_str(&format!("{video} {}\r\n", clip.class + 1));
            }
        }
        files.push((dir.join(format!("trainlist{:02}.txt", fold + 1)), train));
        files.push((dir.join(format!("testlist{:02}.txt", fold + 1)), test));
    }
    let mut bytes = 0;
    for (path, text) in files {
        std::fs::write(&path, &text).map_err(|e| io_err("writing", &path, e))?;
        bytes += text.len() as u64;
    }
    Ok(bytes)
}

/// One clip's frame folder: frames, audio and meta.json. Returns the bytes written.
fn write_clip(
    video_dir: &Path,
    classes: &[String],
    clip: &Clip,
    cfg: &SynthDatasetConfig,
    root: &SeededRng,
) -> Result<u64> {
    let dir = video_dir
        .join(&classes[clip.class])
        .join(clip.name(classes));
    std::fs::create_dir_all(&dir).map_err(|e| io_err("creating", &dir, e))?;
    // The group's scene, then this clip's variation: both independent of the order clips are made in.
    let mut group_rng = root.derive(((clip.class as u64) << 32) | clip.group as u64);
    let mut rng = group_rng.derive(clip.index as u64 + 1);
    let s = cfg.size;
    let mut scene = MovingSquare::random(clip.class, cfg.classes, s, cfg.frames, &mut group_rng);
    if cfg.class_colours {
        scene.colour = class_colour(clip.class, cfg.classes);
    }
    let background: Vec<f64> = (0..3).map(|_| 0.2 * group_rng.uniform_f64()).collect();
    let jitter = s as f64 / 8.0;
    let square = scene.shifted(
        jitter * (2.0 * rng.uniform_f64() - 1.0),
        jitter * (2.0 * rng.uniform_f64() - 1.0),
    );
    let mut bytes = 0u64;
    let mut pixels = vec![0u8; 3 * s * s];
    for ti in 0..cfg.frames {
        let corner = square.corner(ti);
        for y in 0..s {
            for x in 0..s {
                let inside = square.covers(corner, x, y);
                // 8 noise values in [-6, 6] per draw.
                let noise = rng.next_u64().to_le_bytes();
                for c in 0..3 {
                    let level = if inside {
                        0.45 + 0.55 * square.colour[c] as f64
                    } else {
                        background[c]
                    };
                    let v = (level * 255.0).round() as i32 + (noise[c] % 13) as i32 - 6;
                    pixels[(y * s + x) * 3 + c] = v.clamp(0, 255) as u8;
                }
            }
        }
        let path = dir.join(format!("img_{:05}.jpg", ti + 1));
        let mut file =
            BufWriter::new(std::fs::File::create(&path).map_err(|e| io_err("creating", &path, e))?);
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut file, cfg.jpeg_quality)
            .encode(&pixels, s as u32, s as u32, image::ExtendedColorType::Rgb8)
            .map_err(|e| io_err("encoding", &path, e))?;
        file.flush().map_err(|e| io_err("writing", &path, e))?;
        bytes += file
            .get_ref()
            .metadata()
            .map_err(|e| io_err("reading", &path, e))?
            .len();
    }
    bytes += write_audio(&dir, clip, cfg, &mut rng)?;
    let meta = FrameFolderMeta {
        fps: cfg.fps,
        frames: Some(cfg.frames),
        width: Some(s as u32),
        height: Some(s as u32),
        audio_sample_rate: Some(cfg.sample_rate),
    };
    let path = dir.join(FRAME_FOLDER_META);
    let json = serde_json::to_string_pretty(&meta).map_err(|e| io_err("encoding", &path, e))?;
    std::fs::write(&path, &json).map_err(|e| io_err("writing", &path, e))?;
    Ok(bytes + json.len() as u64)
}

/// `audio.wav`: the class's tone, as long as the frames last, 16-bit PCM mono.
fn write_audio(
    dir: &Path,
    clip: &Clip,
    cfg: &SynthDatasetConfig,
    rng: &mut SeededRng,
) -> Result<u64> {
    let tone = Tone {
        class: clip.class,
        num_classes: cfg.classes,
    };
    let hz = tone.frequency_hz(cfg.sample_rate, SYNTH_MEL_BINS);
    let n = (cfg.frames as f64 / cfg.fps * cfg.sample_rate as f64).round() as usize;
    let phase = std::f64::consts::TAU * rng.uniform_f64();
    let path = dir.join("audio.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: cfg.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut wav =
        hound::WavWriter::create(&path, spec).map_err(|e| io_err("creating", &path, e))?;
    for i in 0..n {
        let t = i as f64 / cfg.sample_rate as f64;
        let x = 0.5 * tone.envelope(i, n) * (std::f64::consts::TAU * hz * t + phase).sin()
            + 0.01 * rng.normal_f64();
        let v = (x * i16::MAX as f64)
            .round()
            .clamp(i16::MIN as f64, i16::MAX as f64) as i16;
        wav.write_sample(v)
            .map_err(|e| io_err("writing", &path, e))?;
    }
    wav.finalize().map_err(|e| io_err("writing", &path, e))?;
    Ok(44 + 2 * n as u64)
}
