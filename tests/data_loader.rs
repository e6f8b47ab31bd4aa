//! Clip sampling against the official definitions, and the parallel loader: the same batches for
//! any number of workers and prefetch depth, shuffled orders, exact resume, clean early drop,
//! errors and skipped samples, bounded memory, and real frame folders decoded in the workers.
//!
//! The expected clips come from `tests/fixtures/clip_sampling/reference.py`: 3D-ResNets-PyTorch's `LoopPadding`,
//! `TemporalEvenCrop` and `SlidingWindow` copied verbatim, and PyAV `av_load_video`'s time list
//! (`np.arange(start, min(start + dur − 0.5/fps, end), 1/8)[:int(dur·8)]`, `int(t·fps)`) with
//! `fps = Fraction(25)` or `Fraction(30000, 1001)`.

use avkd::data::clip_dataset::{ClipDataset, ClipRecipe};
use avkd::data::clip_sampling::{
    ccl_even_crop, ccl_random_crop, ccl_sliding_window, linspace_starts, xkd_frame_indices,
    xkd_test_indices, CclTest, ClipSampling,
};
use avkd::data::loader::{BadSample, Loader, LoaderConfig};
use avkd::data::splits::Sample;
use avkd::data::synth_dataset::{write_synth_dataset, SynthDatasetConfig};
use avkd::data::transforms::{Normalization, ResizeKind, TestAugment, TrainAugment};
use avkd::data::video::{frames_to_tensor, FrameFolder};
use avkd::nn::rng::SeededRng;
use candle_core::{Device, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn range(a: usize, b: usize) -> Vec<usize> {
    (a..b).collect()
}

#[test]
fn ccl_even_crop_matches_3d_resnets() {
    let starts = |n| {
        ccl_even_crop(n, 16, 3)
            .iter()
            .map(|c| c[0])
            .collect::<Vec<_>>()
    };
    // stride = max(1, ceil((n − 1 − 16) / 2)).
    assert_eq!(starts(100), vec![0, 42, 84]);
    assert_eq!(starts(40), vec![0, 12, 24]);
    assert_eq!(
        ccl_even_crop(20, 16, 3),
        vec![range(0, 16), range(2, 18), range(4, 20)]
    );
    // Shorter than a clip: one loop-padded clip, not three.
    let mut ten = range(0, 10);
    ten.extend(0..6);
    assert_eq!(ccl_even_crop(10, 16, 3), vec![ten]);
    // 17 frames: stride 1, the third clip runs past the end and is padded with its own first frame.
    let c = ccl_even_crop(17, 16, 3);
    assert_eq!(c.iter().map(|c| c[0]).collect::<Vec<_>>(), vec![0, 1, 2]);
    let mut last = range(2, 17);
    last.push(2);
    assert_eq!(c[2], last);
}

#[test]
fn ccl_sliding_window_matches_3d_resnets() {
    let mut tail = range(32, 40);
    tail.extend(32..40);
    assert_eq!(
        ccl_sliding_window(40, 16, 16),
        vec![range(0, 16), range(16, 32), tail]
    );
    assert_eq!(ccl_sliding_window(32, 16, 16).len(), 2);
    let five: Vec<usize> = (0..16).map(|i| i % 5).collect();
    assert_eq!(ccl_sliding_window(5, 16, 16), vec![five]);
}

#[test]
fn ccl_random_crop_covers_its_range_and_loops() {
    let mut rng = SeededRng::new(3);
    let mut starts = std::collections::BTreeSet::new();
    for _ in 0..2000 {
        let c = ccl_random_crop(20, 16, &mut rng);
        assert_eq!(c, range(c[0], c[0] + 16));
        starts.insert(c[0]);
    }
    // [0, max(0, 20 − 16 − 1)] = [0, 3], inclusive.
    assert_eq!(starts.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    let c = ccl_random_crop(16, 16, &mut rng);
    assert_eq!(c, range(0, 16));
    let c = ccl_random_crop(6, 16, &mut rng);
    assert_eq!(c, (0..16).map(|i| i % 6).collect::<Vec<_>>());
}

#[test]
fn xkd_indices_match_pyav_resampling() {
    assert_eq!(
        xkd_frame_indices(100, 25.0, 0.0, 32, 8.0),
        vec![
            0, 3, 6, 9, 12, 15, 18, 21, 25, 28, 31, 34, 37, 40, 43, 46, 50, 53, 56, 59, 62, 65, 68,
            71, 75, 78, 81, 84, 87, 90, 93, 96
        ]
    );
    assert_eq!(
        xkd_frame_indices(300, 30000.0 / 1001.0, 1.3, 32, 8.0),
        vec![
            38, 42, 46, 50, 53, 57, 61, 65, 68, 72, 76, 80, 83, 87, 91, 95, 98, 102, 106, 110, 113,
            117, 121, 125, 128, 132, 136, 140, 143, 147, 151, 155
        ]
    );
    // 2 s of video: 16 frames decoded, then repeated from the start.
    let decoded = vec![0, 3, 6, 9, 12, 15, 18, 21, 25, 28, 31, 34, 37, 40, 43, 46];
    let mut padded = decoded.clone();
    padded.extend(&decoded);
    assert_eq!(xkd_frame_indices(50, 25.0, 0.0, 32, 8.0), padded);
}

#[test]
fn xkd_test_clips_match_linspace() {
    assert_eq!(linspace_starts(48, 3), vec![0, 24, 48]);
    assert_eq!(linspace_starts(21, 3), vec![0, 10, 21]);
    let xkd = ClipSampling::xkd();
    // 10 s at 25 fps: 80 frames at 8 fps, windows at 0, 24, 48 (source 0, 75, 150).
    let clips = xkd.test_indices(250, 25.0).unwrap();
    assert_eq!(
        clips.iter().map(|c| c[0]).collect::<Vec<_>>(),
        vec![0, 75, 150]
    );
    // 29.97 fps: 53 frames, windows at 0, 10, 21.
    let clips = xkd.test_indices(200, 30000.0 / 1001.0).unwrap();
    assert_eq!(
        clips.iter().map(|c| c[0]).collect::<Vec<_>>(),
        vec![0, 37, 78]
    );
    assert_eq!(
        clips[2],
        vec![
            78, 82, 86, 89, 93, 97, 101, 104, 108, 112, 116, 119, 123, 127, 131, 134, 138, 142,
            146, 149, 153, 157, 161, 164, 168, 172, 176, 179, 183, 187, 191, 194
        ]
    );
    // 2.4 s: 19 frames padded to 32, three identical windows.
    let clips = xkd.test_indices(60, 25.0).unwrap();
    let decoded = vec![
        0, 3, 6, 9, 12, 15, 18, 21, 25, 28, 31, 34, 37, 40, 43, 46, 50, 53, 56,
    ];
    let mut padded = decoded.clone();
    padded.extend(&decoded[..13]);
    assert_eq!(clips, vec![padded.clone(), padded.clone(), padded]);
}

#[test]
fn clip_sampling_enum_and_its_errors() {
    let mut rng = SeededRng::new(0);
    let xkd = ClipSampling::xkd();
    for _ in 0..200 {
        let c = xkd.train_indices(250, 25.0, &mut rng).unwrap();
        assert_eq!(c.len(), 32);
        // A 4-s window inside 10 s: consecutive 8-fps steps of 3 or 4 source frames.
        assert!(c.windows(2).all(|w| w[1] - w[0] == 3 || w[1] - w[0] == 4));
        assert!(*c.last().unwrap() < 250);
    }
    let ccl = ClipSampling::Ccl {
        frames: 16,
        clips: CclTest::EvenCrop { clips: 3 },
    };
    assert_eq!(ccl, ClipSampling::ccl_val());
    assert_eq!(ccl.test_indices(100, 25.0).unwrap().len(), 3);
    assert_eq!(
        ClipSampling::ccl_test()
            .test_indices(40, 25.0)
            .unwrap()
            .len(),
        3
    );
    let e = xkd.test_indices(0, 25.0).unwrap_err().to_string();
    assert!(e.contains("no frames"), "{e}");
    let e = ccl
        .train_indices(10, 0.0, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.contains("frame rate"), "{e}");
}

/// An item that depends on its index and its generator, loaded after a delay that varies with
/// the index so that workers finish out of order.
fn slow_item(i: usize, rng: &mut SeededRng) -> Result<(usize, Vec<u64>)> {
    std::thread::sleep(Duration::from_micros(((i * 7919) % 5) as u64 * 300));
    Ok((i, (0..3).map(|_| rng.next_u64()).collect()))
}

fn cfg(batch_size: usize, workers: usize, prefetch_batches: usize) -> LoaderConfig {
    LoaderConfig {
        batch_size,
        workers,
        prefetch_batches,
        shuffle: true,
        drop_last: false,
        seed: 42,
        bad_sample: BadSample::Fail,
    }
}

type Item = (usize, Vec<u64>);

fn all_batches(loader: &Loader<Item>, epoch: usize, start: usize) -> Vec<(usize, Vec<Item>)> {
    loader
        .epoch(epoch, start)
        .map(|b| {
            let b = b.unwrap();
            assert_eq!(
                b.indices,
                b.items.iter().map(|(i, _)| *i).collect::<Vec<_>>()
            );
            (b.batch, b.items)
        })
        .collect()
}

#[test]
fn same_batches_for_any_workers_and_prefetch() {
    let load: avkd::data::loader::LoadFn<Item> = Arc::new(slow_item);
    let reference = all_batches(&Loader::new(37, cfg(5, 0, 1), load.clone()), 2, 0);
    assert_eq!(reference.len(), 8);
    assert_eq!(reference.last().unwrap().1.len(), 2);
    for workers in [1, 2, 4] {
        for prefetch in [1, 2, 5] {
            let loader = Loader::new(37, cfg(5, workers, prefetch), load.clone());
            assert_eq!(
                all_batches(&loader, 2, 0),
                reference,
                "workers {workers} prefetch {prefetch}"
            );
        }
    }
    // drop_last leaves the short batch out.
    let mut c = cfg(5, 2, 2);
    c.drop_last = true;
    let loader = Loader::new(37, c, load);
    assert_eq!(loader.num_batches(), 7);
    assert_eq!(all_batches(&loader, 2, 0), reference[..7].to_vec());
}

#[test]
fn orders_are_permutations_that_change_with_the_epoch() {
    let load: avkd::data::loader::LoadFn<Item> = Arc::new(slow_item);
    let loader = Loader::new(50, cfg(8, 2, 2), load.clone());
    let (a, b) = (loader.order(0), loader.order(1));
    for o in [&a, &b] {
        let mut s = o.clone();
        s.sort();
        assert_eq!(s, range(0, 50));
    }
    assert_ne!(a, b);
    assert_ne!(a, range(0, 50));
    assert_eq!(a, loader.order(0));
    let flat: Vec<usize> = all_batches(&loader, 1, 0)
        .into_iter()
        .flat_map(|(_, items)| items.into_iter().map(|(i, _)| i))
        .collect();
    assert_eq!(flat, b);
    let mut c = cfg(8, 2, 2);
    c.shuffle = false;
    assert_eq!(Loader::new(50, c, load).order(3), range(0, 50));
}

#[test]
fn resume_from_a_batch_yields_exactly_the_tail() {
    let load: avkd::data::loader::LoadFn<Item> = Arc::new(slow_item);
    let loader = Loader::new(37, cfg(5, 3, 2), load);
    let full = all_batches(&loader, 4, 0);
    for start in [1, 3, 7, 8, 20] {
        let tail = all_batches(&loader, 4, start);
        assert_eq!(tail, full[start.min(8)..].to_vec(), "start {start}");
    }
}

#[test]
fn dropping_early_stops_the_workers() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let load: avkd::data::loader::LoadFn<usize> = Arc::new(move |i, _| {
        counter.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        Ok(i)
    });
    let loader = Loader::new(10_000, cfg(4, 4, 2), load.clone());
    let t = Instant::now();
    {
        let mut it = loader.epoch(0, 0);
        assert_eq!(it.next().unwrap().unwrap().items.len(), 4);
        assert_eq!(it.remaining(), 2499);
    }
    // Joined: only the loader and this test still hold the closure, and loading has stopped.
    assert_eq!(Arc::strong_count(&load), 2);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let n = calls.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(calls.load(Ordering::SeqCst), n);
    // At most the prefetch window (2 batches after the first) was started.
    assert!(n <= 4 * 3, "{n} loads started");
}

#[test]
fn a_failing_sample_fails_its_batch_only() {
    let load: avkd::data::loader::LoadFn<usize> = Arc::new(|i, _| {
        if i == 13 {
            Err(candle_core::Error::Msg("cannot open v_13.avi".into()))
        } else if i == 21 {
            panic!("decoder crashed on v_21.avi")
        } else {
            Ok(i)
        }
    });
    let mut c = cfg(4, 2, 2);
    c.shuffle = false;
    for workers in [0, 2] {
        c.workers = workers;
        let out: Vec<_> = Loader::new(24, c.clone(), load.clone())
            .epoch(0, 0)
            .collect();
        assert_eq!(out.len(), 6);
        for (b, r) in out.iter().enumerate() {
            match b {
                3 => {
                    let e = r.as_ref().unwrap_err().to_string();
                    assert!(e.contains("sample 13") && e.contains("v_13.avi"), "{e}");
                }
                5 => {
                    let e = r.as_ref().unwrap_err().to_string();
                    assert!(e.contains("sample 21") && e.contains("panicked"), "{e}");
                }
                _ => assert_eq!(r.as_ref().unwrap().items, range(4 * b, 4 * b + 4)),
            }
        }
    }
}

#[test]
fn skip_drops_bad_samples_and_counts_them() {
    let load: avkd::data::loader::LoadFn<usize> = Arc::new(|i, _| {
        if i % 7 == 3 {
            Err(candle_core::Error::Msg(format!("cannot decode v_{i}.avi")))
        } else {
            Ok(i)
        }
    });
    let mut c = cfg(5, 3, 2);
    c.bad_sample = BadSample::Skip;
    let loader = Loader::new(100, c, load);
    let mut it = loader.epoch(0, 0);
    let mut seen = Vec::new();
    for b in it.by_ref() {
        let b = b.unwrap();
        assert_eq!(b.indices, b.items);
        seen.extend(b.items);
    }
    let bad: Vec<usize> = (0..100).filter(|i| i % 7 == 3).collect();
    seen.sort();
    assert_eq!(seen.len() + bad.len(), 100);
    assert!(seen.iter().all(|i| i % 7 != 3));
    let skipped = it.skipped();
    assert_eq!(skipped.count, bad.len());
    assert_eq!(skipped.first.len(), 10);
    assert!(skipped
        .first
        .iter()
        .all(|(i, e)| e.contains(&format!("v_{i}.avi"))));
    let s = skipped.summary();
    assert!(
        s.starts_with("14 unreadable samples skipped: #") && s.ends_with("and 4 more"),
        "{s}"
    );
}

/// Counts live items.
struct Tracked {
    alive: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn memory_stays_within_the_prefetch_window() {
    let (bs, workers, prefetch) = (4, 3, 2);
    let alive = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (a, p) = (alive.clone(), peak.clone());
    let load: avkd::data::loader::LoadFn<Tracked> = Arc::new(move |_, _| {
        let now = a.fetch_add(1, Ordering::SeqCst) + 1;
        p.fetch_max(now, Ordering::SeqCst);
        Ok(Tracked { alive: a.clone() })
    });
    let loader = Loader::new(200, cfg(bs, workers, prefetch), load);
    let mut held = None;
    for b in loader.epoch(0, 0) {
        // A slow consumer that keeps the previous batch while the next is fetched.
        std::thread::sleep(Duration::from_millis(5));
        held = Some(b.unwrap());
    }
    drop(held);
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= (prefetch + workers) * bs, "peak {peak}");
    // The workers did run ahead of the consumer.
    assert!(peak > bs, "peak {peak}");
    assert_eq!(alive.load(Ordering::SeqCst), 0);
}

fn frame_folders(root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for class in std::fs::read_dir(root).unwrap() {
        for video in std::fs::read_dir(class.unwrap().path()).unwrap() {
            dirs.push(video.unwrap().path());
        }
    }
    dirs.sort();
    dirs
}

#[test]
fn real_frame_folders_load_the_same_on_any_workers() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("data_loader_synth");
    let _ = std::fs::remove_dir_all(&out);
    let summary = write_synth_dataset(
        &out,
        &SynthDatasetConfig {
            classes: 3,
            train_per_class: 3,
            test_per_class: 1,
            frames: 20,
            size: 32,
            ..Default::default()
        },
    )
    .unwrap();
    let dirs = Arc::new(frame_folders(&summary.video_dir));
    assert_eq!(dirs.len(), 12);
    let sampling = ClipSampling::Ccl {
        frames: 16,
        clips: CclTest::Sliding { stride: 16 },
    };
    let d = dirs.clone();
    // A CCL training clip of every video, decoded from its JPEGs to a [3, 16, 32, 32] tensor.
    let load: avkd::data::loader::LoadFn<(Vec<usize>, Vec<f32>)> = Arc::new(move |i, rng| {
        let folder = FrameFolder::open(&d[i])?;
        let fps = folder.fps().unwrap_or(25.0);
        let idx = sampling.train_indices(folder.len(), fps, rng)?;
        let frames = folder.read(&idx)?;
        let t = frames_to_tensor(&frames, &Device::Cpu)?;
        Ok((idx, t.flatten_all()?.to_vec1::<f32>()?))
    });
    let run = |workers| {
        let loader = Loader::new(dirs.len(), cfg(5, workers, 2), load.clone());
        loader
            .epoch(1, 0)
            .map(|b| b.unwrap())
            .flat_map(|b| b.indices.into_iter().zip(b.items))
            .collect::<Vec<_>>()
    };
    let inline = run(0);
    assert_eq!(inline.len(), 12);
    for (video, (idx, pixels)) in &inline {
        assert_eq!(pixels.len(), 3 * 16 * 32 * 32);
        // 20 frames: starts in [0, 3].
        assert!(idx[0] <= 3 && *idx == range(idx[0], idx[0] + 16), "{video}");
        let direct = frames_to_tensor(
            &FrameFolder::open(&dirs[*video]).unwrap().read(idx).unwrap(),
            &Device::Cpu,
        )
        .unwrap();
        assert_eq!(
            direct.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            *pixels
        );
    }
    // Different videos draw different starts (not one shared generator state).
    let starts: std::collections::BTreeSet<usize> =
        inline.iter().map(|(_, (idx, _))| idx[0]).collect();
    assert!(starts.len() > 1);
    assert_eq!(run(3), inline);
}

/// A frame folder of `n` solid grey PNG frames, frame i of level 4·i, so a decoded clip tells which
/// source frames it holds.
fn numbered_frames(dir: &Path, n: usize) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let level = u8::try_from(4 * i).unwrap();
        avkd::data::video::RgbImage::from_pixel(16, 16, image::Rgb([level; 3]))
            .save(dir.join(format!("img_{:05}.png", i + 1)))
            .unwrap();
    }
}

/// The source frame of every frame of every test view (channel 0, top-left pixel, unnormalised).
fn view_frames(data: &ClipDataset) -> candle_core::Result<Vec<Vec<usize>>> {
    let (views, _) = data.test_views(0)?;
    Ok(views
        .iter()
        .map(|v| {
            let hw = v.height * v.width;
            (0..v.frames)
                .map(|t| (v.data[t * hw] * 255.0 / 4.0).round() as usize)
                .collect()
        })
        .collect())
}

#[test]
fn frame_rate_comes_from_meta_json_or_fps_and_is_never_assumed() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("data_loader_fps");
    numbered_frames(&root.join("Wave/v_Wave_g01_c01"), 60);
    let recipe = |sampling, fps| ClipRecipe {
        sampling,
        train: TrainAugment::xkd_finetune(16),
        test: TestAugment {
            short_side: 16,
            crop: 16,
            crops: 1,
            resize: ResizeKind::PilBilinear,
        },
        norm: Normalization {
            mean: [0.0; 3],
            std: [1.0; 3],
        },
        fps,
    };
    let xkd = ClipSampling::Xkd {
        frames: 8,
        fps: 8.0,
        clips: 3,
    };
    let dataset = |fps| {
        let sample = Sample {
            video: PathBuf::from("Wave/v_Wave_g01_c01.avi"),
            label: 0,
        };
        ClipDataset::new(&root, vec![sample], recipe(xkd, fps))
    };

    // No meta.json and no --fps: refused, naming the folder and how to give the rate.
    let e = view_frames(&dataset(None)).unwrap_err().to_string();
    assert!(
        e.contains("v_Wave_g01_c01") && e.contains("meta.json") && e.contains("--fps"),
        "{e}"
    );
    // CCL takes consecutive frames, which no rate changes: it needs none.
    let ccl = ClipSampling::Ccl {
        frames: 8,
        clips: CclTest::Sliding { stride: 8 },
    };
    let data = ClipDataset::new(&root, dataset(None).samples().to_vec(), recipe(ccl, None));
    assert_eq!(view_frames(&data).unwrap()[1], range(8, 16));

    // meta.json at 12 fps: XKD's 8-fps resampling of a 5-s video, not of a 2.4-s one at 25 fps.
    let at_12 = xkd_test_indices(60, 12.0, 8, 8.0, 3);
    assert_ne!(at_12, xkd_test_indices(60, 25.0, 8, 8.0, 3));
    std::fs::write(root.join("Wave/v_Wave_g01_c01/meta.json"), r#"{"fps": 12}"#).unwrap();
    assert_eq!(view_frames(&dataset(None)).unwrap(), at_12);
    // The folder's own rate wins over --fps.
    assert_eq!(view_frames(&dataset(Some(30.0))).unwrap(), at_12);

    // Without meta.json, --fps gives the rate.
    std::fs::remove_file(root.join("Wave/v_Wave_g01_c01/meta.json")).unwrap();
    assert_eq!(view_frames(&dataset(Some(12.0))).unwrap(), at_12);
    assert_eq!(
        view_frames(&dataset(Some(25.0))).unwrap(),
        xkd_test_indices(60, 25.0, 8, 8.0, 3)
    );
}
