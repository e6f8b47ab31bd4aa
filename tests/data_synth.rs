//! The synthetic dataset on disk: written in UCF101's layout, parsed back by the UCF101 parser, every
//! listed video found and decoded (JPEG frames, WAV audio), class-dependent motion and pitch, three
//! folds that never split a group, and the same bytes for the same seed.

use avkd::data::media::{resolve_media, VideoMedia};
use avkd::data::splits::{load_folds, Fold, SplitFormat};
use avkd::data::synth::Tone;
use avkd::data::synth_dataset::{
    synth_class_name, write_synth_dataset, SynthDatasetConfig, SYNTH_MEL_BINS,
};
use avkd::data::video::{frames_to_tensor, read_frames, FrameFolder, RgbImage};
use candle_core::Device;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("data_synth")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn small() -> SynthDatasetConfig {
    SynthDatasetConfig {
        classes: 4,
        train_per_class: 6,
        test_per_class: 3,
        frames: 16,
        size: 48,
        ..Default::default()
    }
}

/// "v_Move090_g02_c01" -> 2
fn group_of(video: &Path) -> usize {
    let name = video.file_stem().unwrap().to_str().unwrap();
    let g = name.split('_').find(|p| p.starts_with('g')).unwrap();
    g[1..].parse().unwrap()
}

#[test]
fn synth_parses_back_and_every_video_decodes() {
    let out = scratch("roundtrip");
    let cfg = small();
    let summary = write_synth_dataset(&out, &cfg).unwrap();
    assert_eq!(summary.videos, 4 * 9);
    assert_eq!(summary.folds, [(24, 12); 3]);
    assert_eq!(summary.classes[1], "Move090");
    assert!(summary.to_string().contains("fold 3: 24 train / 12 test"));

    let folds = load_folds(SplitFormat::Ucf101, &summary.split_dir, Fold::All).unwrap();
    let all: HashSet<PathBuf> = folds[0].samples().map(|s| s.video.clone()).collect();
    assert_eq!(all.len(), 36);
    let mut test_sets = Vec::new();
    for split in &folds {
        assert_eq!(split.classes, summary.classes);
        assert_eq!((split.train.len(), split.test.len()), (24, 12));
        split.require_videos(&summary.video_dir).unwrap();
        // Every fold covers every video; no group is in both train and test.
        let fold_all: HashSet<PathBuf> = split.samples().map(|s| s.video.clone()).collect();
        assert_eq!(fold_all, all);
        let test_groups: HashSet<(usize, usize)> = split
            .test
            .iter()
            .map(|s| (s.label, group_of(&s.video)))
            .collect();
        assert!(split
            .train
            .iter()
            .all(|s| !test_groups.contains(&(s.label, group_of(&s.video)))));
        for s in split.samples() {
            let class = &split.classes[s.label];
            assert!(s.video.starts_with(class));
            assert_eq!(s.video.extension().unwrap(), "avi");
        }
        test_sets.push(split.test.clone());
    }
    // Three folds with groups of 3 clips and 3 test clips: disjoint test sets, as UCF101's.
    assert!(test_sets[0]
        .iter()
        .all(|s| !test_sets[1].contains(s) && !test_sets[2].contains(s)));
    assert!(test_sets[1].iter().all(|s| !test_sets[2].contains(s)));

    for s in folds[0].samples() {
        let media = resolve_media(&summary.video_dir, &s.video).unwrap();
        let VideoMedia::Frames(dir) = &media.video else {
            panic!("{} should be a frame folder", s.video.display())
        };
        let folder = FrameFolder::open(dir).unwrap();
        assert_eq!(folder.len(), cfg.frames);
        assert_eq!(folder.fps(), Some(25.0));
        let frames = folder.read(&(0..cfg.frames).collect::<Vec<_>>()).unwrap();
        assert!(frames.iter().all(|f| f.dimensions() == (48, 48)));
        let audio = media.audio.unwrap();
        let reader = hound::WavReader::open(&audio).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (1, 16_000, 16)
        );
        // 16 frames at 25 fps = 0.64 s.
        assert_eq!(reader.len(), 10_240);
    }
    let first = folds[0].train[0].video.with_extension("");
    let dir = summary.video_dir.join(first);
    let clip = read_frames(&dir, &[0, 5, 5, 15]).unwrap();
    let t = frames_to_tensor(&clip, &Device::Cpu).unwrap();
    assert_eq!(t.dims(), &[3, 4, 48, 48]);
    let max = t
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(max > 0.4 && max <= 1.0, "{max}");
    let e = read_frames(&dir, &[16]).unwrap_err().to_string();
    assert!(
        e.contains("frame 16 asked") && e.contains("has 16 frames"),
        "{e}"
    );
}

fn gray(img: &RgbImage) -> Vec<f32> {
    img.pixels()
        .map(|p| p.0.iter().map(|&c| c as f32).sum::<f32>() / 3.0)
        .collect()
}

/// The circular shift (dx, dy) in [-4, 4]² that best maps frame a onto frame b.
fn best_shift(a: &[f32], b: &[f32], s: usize) -> (i64, i64) {
    let mut best = (f32::INFINITY, (0, 0));
    for dy in -4i64..=4 {
        for dx in -4i64..=4 {
            let mut cost = 0.0;
            for y in 0..s {
                for x in 0..s {
                    let sx = (x as i64 - dx).rem_euclid(s as i64) as usize;
                    let sy = (y as i64 - dy).rem_euclid(s as i64) as usize;
                    cost += (b[y * s + x] - a[sy * s + sx]).abs();
                }
            }
            if cost < best.0 {
                best = (cost, (dx, dy));
            }
        }
    }
    best.1
}

/// Total motion over a clip, summed frame to frame.
fn motion(dir: &Path, frames: usize, s: usize) -> (f64, f64) {
    let imgs = read_frames(dir, &(0..frames).collect::<Vec<_>>()).unwrap();
    let g: Vec<Vec<f32>> = imgs.iter().map(gray).collect();
    let (mut x, mut y) = (0.0, 0.0);
    for w in g.windows(2) {
        let (dx, dy) = best_shift(&w[0], &w[1], s);
        x += dx as f64;
        y += dy as f64;
    }
    (x, y)
}

#[test]
fn synth_classes_differ_in_motion_and_pitch() {
    let out = scratch("signature");
    let cfg = small();
    let summary = write_synth_dataset(&out, &cfg).unwrap();
    let split = &load_folds(SplitFormat::Ucf101, &summary.split_dir, Fold::One(1)).unwrap()[0];
    // The square crosses the frame once per clip: about 48 px over 16 frames, in direction 90k°
    // (x right, y down).
    let expected = [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)];
    let mut seen = BTreeMap::new();
    for s in split
        .train
        .iter()
        .filter(|s| s.video.to_str().unwrap().ends_with("_c01.avi"))
    {
        let dir = summary.video_dir.join(s.video.with_extension(""));
        let (x, y) = motion(&dir, cfg.frames, cfg.size);
        let (ex, ey) = expected[s.label];
        let along = x * ex + y * ey;
        let across = x * ey - y * ex;
        assert!(
            along > 35.0 && across.abs() < 6.0,
            "{}: moved ({x}, {y}), expected along ({ex}, {ey})",
            s.video.display()
        );
        seen.insert(s.label, (x, y));
    }
    assert_eq!(seen.len(), 4);

    // Each class's WAV is loudest at its own tone, far above the other classes' tones.
    let tones: Vec<f64> = (0..4)
        .map(|k| {
            Tone {
                class: k,
                num_classes: 4,
            }
            .frequency_hz(16_000, SYNTH_MEL_BINS)
        })
        .collect();
    assert!(tones.windows(2).all(|w| w[1] > w[0] * 1.3), "{tones:?}");
    for s in split.test.iter() {
        let dir = summary.video_dir.join(s.video.with_extension(""));
        let samples: Vec<f64> = hound::WavReader::open(dir.join("audio.wav"))
            .unwrap()
            .samples::<i16>()
            .map(|v| v.unwrap() as f64 / 32767.0)
            .collect();
        let power: Vec<f64> = tones
            .iter()
            .map(|&f| dft_power(&samples, f, 16_000.0))
            .collect();
        for (k, &p) in power.iter().enumerate() {
            if k != s.label {
                assert!(
                    power[s.label] > 50.0 * p,
                    "{}: {power:?}",
                    s.video.display()
                );
            }
        }
    }
}

fn dft_power(x: &[f64], hz: f64, sr: f64) -> f64 {
    let (mut re, mut im) = (0.0, 0.0);
    for (n, v) in x.iter().enumerate() {
        let a = std::f64::consts::TAU * hz * n as f64 / sr;
        re += v * a.cos();
        im -= v * a.sin();
    }
    re * re + im * im
}

/// Every file under `dir` with its bytes, by relative path.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn synth_is_deterministic_for_a_seed_and_safe_to_rerun() {
    let cfg = SynthDatasetConfig {
        classes: 3,
        train_per_class: 7,
        test_per_class: 3,
        frames: 4,
        size: 16,
        ..Default::default()
    };
    let (a, b) = (scratch("seed_a"), scratch("seed_b"));
    write_synth_dataset(&a, &cfg).unwrap();
    write_synth_dataset(&b, &cfg).unwrap();
    let ta = tree(&a);
    // The marker, classInd + 6 lists, and per video 4 frames, audio.wav and meta.json.
    assert_eq!(ta.len(), 1 + 7 + 3 * 10 * (4 + 2));
    assert_eq!(ta, tree(&b));

    // Another seed changes the media but not the lists.
    let other = SynthDatasetConfig {
        seed: 1,
        ..cfg.clone()
    };
    write_synth_dataset(&b, &other).unwrap();
    let tb = tree(&b);
    let list = Path::new("ucfTrainTestlist/trainlist02.txt");
    assert_eq!(ta[list], tb[list]);
    let frame = Path::new("UCF-101/Move120/v_Move120_g01_c01/img_00001.jpg");
    assert_ne!(ta[frame], tb[frame]);
    // Rewriting over an earlier synthetic dataset replaces it.
    write_synth_dataset(&b, &cfg).unwrap();
    assert_eq!(ta, tree(&b));

    // 7 train and 3 test give groups of one clip; folds test on groups 1-3, 4-6, 7-9.
    let folds = load_folds(SplitFormat::Ucf101, &a.join("ucfTrainTestlist"), Fold::All).unwrap();
    for (f, split) in folds.iter().enumerate() {
        let mut groups: Vec<usize> = split.test.iter().map(|s| group_of(&s.video)).collect();
        groups.sort();
        groups.dedup();
        assert_eq!(groups, vec![3 * f + 1, 3 * f + 2, 3 * f + 3]);
    }
}

#[test]
fn synth_refuses_foreign_folders_and_bad_settings() {
    let dir = scratch("foreign");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("thesis.tex"), "keep me").unwrap();
    let e = write_synth_dataset(&dir, &small()).unwrap_err().to_string();
    assert!(
        e.contains("refusing to write") && e.contains("not empty"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("thesis.tex")).unwrap(),
        "keep me"
    );

    let bad = SynthDatasetConfig {
        classes: 1,
        ..small()
    };
    let e = write_synth_dataset(&scratch("bad"), &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("classes must be 2 to 360, found 1"), "{e}");
    let bad = SynthDatasetConfig {
        test_per_class: 0,
        ..small()
    };
    assert!(write_synth_dataset(&scratch("bad"), &bad).is_err());

    // Names are the direction in degrees, unique for up to 360 classes.
    let names: HashSet<String> = (0..360).map(|k| synth_class_name(k, 360)).collect();
    assert_eq!(names.len(), 360);
    assert_eq!(synth_class_name(3, 8), "Move135");
}
