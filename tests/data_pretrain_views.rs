//! XKD's pre-training views on the synthetic dataset (frame folders with `audio.wav` and
//! `meta.json`): official and overridden shapes, normalisation ranges, time alignment of the audio
//! windows, determinism per seed, the error kinds (no audio, too short, unreadable), batching.

use avkd::data::audio::{load_file, segment};
use avkd::data::av_views::{load_av_views, sample_snippet, AvSampleError, AvViews, Stream};
use avkd::data::mel::{LogMel, LogMelConfig};
use avkd::data::pretrain_video::{resize_short_side, video_views};
use avkd::data::pretrain_views::PretrainViews;
use avkd::data::synth_dataset::{synth_videos, write_synth_dataset, SynthDatasetConfig};
use avkd::data::transforms::{ClipArray, Normalization};
use avkd::data::video::read_frames;
use avkd::nn::rng::SeededRng;
use candle_core::Device;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("data_pretrain_views")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The synthetic dataset, written once: 2 classes, 2 videos each, 40 frames of 48² at 25 fps
/// (1.6 s) and 1.6 s of 16 kHz audio.
fn dataset() -> &'static (PathBuf, Vec<PathBuf>) {
    static DATA: OnceLock<(PathBuf, Vec<PathBuf>)> = OnceLock::new();
    DATA.get_or_init(|| {
        let out = scratch("synth");
        let cfg = SynthDatasetConfig {
            classes: 2,
            train_per_class: 1,
            test_per_class: 1,
            frames: 40,
            size: 48,
            ..Default::default()
        };
        let summary = write_synth_dataset(&out, &cfg).unwrap();
        let videos = synth_videos(&out)
            .unwrap()
            .iter()
            .map(|v| v.strip_prefix(&summary.video_dir).unwrap().to_path_buf())
            .collect();
        (summary.video_dir, videos)
    })
}

fn logmel() -> LogMel {
    LogMel::new(LogMelConfig::xkd()).unwrap()
}

/// 8 frames at 8 fps (a 1-s clip), 32-px global and 16-px local crops, three local views of
/// 2 frames and 0.25 s: the sizes CI pre-trains tiny nets on.
fn tiny() -> PretrainViews {
    PretrainViews {
        global_frames: 8,
        crop: 32,
        local_frames: 2,
        local_crop: 16,
        num_local_views: 3,
        local_audio_seconds: 0.25,
        ..PretrainViews::xkd()
    }
}

/// ImageNet-normalised values lie in [(0 − mean) / std, (1 − mean) / std] per channel.
fn assert_imagenet_range(clip: &ClipArray) {
    let n = Normalization::imagenet();
    let plane = clip.frames * clip.height * clip.width;
    for c in 0..3 {
        let (lo, hi) = (-n.mean[c] / n.std[c], (1.0 - n.mean[c]) / n.std[c]);
        let values = &clip.data[c * plane..(c + 1) * plane];
        assert!(values.iter().all(|v| (lo - 1e-5..=hi + 1e-5).contains(v)));
    }
}

#[test]
fn official_views_have_the_official_shapes() {
    let (root, videos) = dataset();
    let views = PretrainViews::xkd();
    let mut rng = SeededRng::new(1);
    let v = load_av_views(root, &videos[0], &views, &logmel(), None, &mut rng).unwrap();
    assert_eq!(v.frames.len(), 2);
    assert_eq!(v.frames[0].shape(), [3, 32, 112, 112]);
    assert_eq!(v.frames[1].shape(), [3, 8, 96, 96]);
    assert_eq!(v.specs.len(), 2);
    assert_eq!(v.specs[0].shape(), [80, 448]);
    assert_eq!(v.specs[1].shape(), [80, 112]);
    v.frames.iter().for_each(assert_imagenet_range);
    // 1.6 s of media is shorter than the 4-s clip: both streams are read from 0, the audio
    // zero-padded, so the end of the global log-mel is the standardised ln(eps) of silence.
    assert_eq!((v.video_start, v.audio_start), (0.0, 0.0));
    let silence = ((f32::EPSILON).ln() + 5.3688107) / 4.410007;
    let last = v.specs[0].data[447];
    assert!((last - silence).abs() < 1e-3, "{last} vs {silence}");
    for s in &v.specs {
        assert!(s
            .data
            .iter()
            .all(|x| x.is_finite() && (-3.0..10.0).contains(x)));
    }
}

#[test]
fn overridden_views_are_small_and_time_aligned() {
    let (root, videos) = dataset();
    let views = PretrainViews {
        global_volume: 0.0,
        local_volume: 0.0,
        local_spec_crop: false,
        ..tiny()
    };
    let lm = logmel();
    let mut starts = Vec::new();
    for seed in 0..4 {
        let mut rng = SeededRng::new(seed);
        let v = load_av_views(root, &videos[1], &views, &lm, None, &mut rng).unwrap();
        assert_eq!(v.frames[0].shape(), [3, 8, 32, 32]);
        for local in &v.frames[1..] {
            assert_eq!(local.shape(), [3, 2, 16, 16]);
        }
        assert_eq!(v.specs[0].shape(), [80, 1 + 16_000 / 143]);
        assert_eq!(v.specs.len(), 4);
        // The 1-s clip of a 1.6-s video: one start in [0, 0.6] for both streams.
        assert_eq!(v.video_start, v.audio_start);
        assert!((0.0..=0.6).contains(&v.video_start));
        starts.push(v.video_start);
        // Without volume jitter and crop, the global spectrogram is the log-mel of the clip's
        // audio, and each local one that of a 0.25-s window starting on a multiple of 100 samples.
        let wav = load_file(&root.join(&videos[1]).join("audio.wav"), 16_000).unwrap();
        let clip = segment(&wav.samples, 16_000, v.audio_start, 1.0).unwrap();
        assert_eq!(v.specs[0].data, lm.log_mel(&clip).unwrap());
        for local in &v.specs[1..] {
            assert_eq!(local.shape(), [80, 1 + 4_000 / 143]);
            let found = (0..=120)
                .any(|k| lm.log_mel(&clip[k * 100..k * 100 + 4000]).unwrap() == local.data);
            assert!(
                found,
                "no 100-sample step of the clip gives this local view"
            );
        }
    }
    assert!(starts.windows(2).any(|w| w[0] != w[1]), "{starts:?}");
}

#[test]
fn a_seed_fixes_the_views_and_seeds_differ() {
    let (root, videos) = dataset();
    let (views, lm) = (tiny(), logmel());
    let load = |seed| {
        load_av_views(
            root,
            &videos[2],
            &views,
            &lm,
            None,
            &mut SeededRng::new(seed),
        )
        .unwrap()
    };
    let (a, b, c) = (load(7), load(7), load(8));
    assert_eq!(a, b);
    assert_ne!(a.frames[0].data, c.frames[0].data);
    assert_ne!(a.specs[1].data, c.specs[1].data);
    // Local views of one sample differ from each other too.
    assert_ne!(a.frames[1].data, a.frames[2].data);
}

#[test]
fn the_global_view_is_the_resized_clip_when_nothing_is_random() {
    let (root, videos) = dataset();
    let frames = read_frames(&root.join(&videos[0]), &[0, 3, 6, 9]).unwrap();
    let views = PretrainViews {
        global_frames: 4,
        crop: 40,
        local_frames: 4,
        local_crop: 24,
        global_scale: (1.0, 1.0),
        ratio: (1.0, 1.0),
        hflip_prob: 0.0,
        color_jitter: [0.0; 4],
        local_gray_prob: 1.0,
        local_blur_prob: 1.0,
        ..PretrainViews::xkd()
    };
    let out = video_views(&frames, &views, &mut SeededRng::new(0)).unwrap();
    let resized: Vec<_> = frames.iter().map(|f| resize_short_side(f, 40)).collect();
    assert_eq!(resized[0].dimensions(), (40, 40));
    let expected = ClipArray::from_frames(&resized, &Normalization::imagenet()).unwrap();
    assert_eq!(out[0], expected);
    // Grey with p = 1: the three channels hold one grey level per pixel.
    let n = Normalization::imagenet();
    let local = &out[1];
    let plane = local.frames * local.height * local.width;
    for i in 0..plane {
        let level = |c: usize| local.data[c * plane + i] * n.std[c] + n.mean[c];
        assert!((level(0) - level(1)).abs() < 1e-5 && (level(1) - level(2)).abs() < 1e-5);
    }
}

#[test]
fn missing_audio_and_short_streams_are_their_own_errors() {
    let (root, videos) = dataset();
    let (views, lm) = (tiny(), logmel());
    let mut rng = SeededRng::new(0);
    // A copy of a video folder without its audio.wav.
    let copy_root = scratch("no_audio");
    let listed = &videos[0];
    let dst = copy_root.join(listed);
    std::fs::create_dir_all(&dst).unwrap();
    for entry in std::fs::read_dir(root.join(listed)).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "audio.wav" {
            std::fs::copy(&path, dst.join(path.file_name().unwrap())).unwrap();
        }
    }
    let e = load_av_views(&copy_root, listed, &views, &lm, None, &mut rng).unwrap_err();
    assert!(matches!(e, AvSampleError::NoAudio { .. }), "{e}");
    assert!(e.is_filtered());
    assert_eq!(e.video(), listed.as_path());
    assert!(e.to_string().contains("no audio"), "{e}");

    // Streams of 1.6 s against a 2-s minimum: the video is reported first.
    let strict = PretrainViews {
        min_stream_seconds: 2.0,
        ..tiny()
    };
    match load_av_views(root, listed, &strict, &lm, None, &mut rng).unwrap_err() {
        AvSampleError::TooShort {
            stream, seconds, ..
        } => {
            assert_eq!(stream, Stream::Video);
            assert!((seconds - 1.6).abs() < 1e-9);
        }
        other => panic!("expected TooShort, found {other}"),
    }

    // A video that is not there, and a recipe that cannot work, fail without being "filtered".
    let e =
        load_av_views(root, Path::new("Nope/v_x.avi"), &views, &lm, None, &mut rng).unwrap_err();
    assert!(
        matches!(e, AvSampleError::Failed { .. }) && !e.is_filtered(),
        "{e}"
    );
    let broken = PretrainViews {
        local_frames: 9,
        ..tiny()
    };
    let e = load_av_views(root, listed, &broken, &lm, None, &mut rng).unwrap_err();
    assert!(e.to_string().contains("local_frames"), "{e}");
}

#[test]
fn snippets_follow_the_official_cases() {
    let mut rng = SeededRng::new(5);
    for _ in 0..50 {
        // Both long: one start in [0, min − clip].
        let s = sample_snippet(10.0, 7.0, 4.0, &mut rng);
        assert_eq!(s.video_start, s.audio_start);
        assert!((0.0..=3.0).contains(&s.video_start) && s.video_duration == 4.0);
        // Video short: the whole video from 0, the audio anywhere it fits.
        let s = sample_snippet(2.0, 9.0, 4.0, &mut rng);
        assert_eq!((s.video_start, s.video_duration), (0.0, 2.0));
        assert!((0.0..=5.0).contains(&s.audio_start));
        // Audio short: the audio from 0.
        let s = sample_snippet(9.0, 2.0, 4.0, &mut rng);
        assert_eq!(s.audio_start, 0.0);
        assert!((0.0..=5.0).contains(&s.video_start));
    }
    let s = sample_snippet(4.0, 4.0, 4.0, &mut rng);
    assert_eq!(
        (s.video_start, s.audio_start, s.video_duration),
        (0.0, 0.0, 4.0)
    );
}

#[test]
fn batches_stack_per_view() {
    let (root, videos) = dataset();
    let (views, lm) = (tiny(), logmel());
    let batch: Vec<AvViews> = videos[..2]
        .iter()
        .enumerate()
        .map(|(i, v)| {
            load_av_views(root, v, &views, &lm, None, &mut SeededRng::new(i as u64)).unwrap()
        })
        .collect();
    let (frames, specs) = AvViews::stack(&batch, &Device::Cpu).unwrap();
    assert_eq!(frames.len(), 4);
    assert_eq!(frames[0].dims(), &[2, 3, 8, 32, 32]);
    assert_eq!(frames[3].dims(), &[2, 3, 2, 16, 16]);
    assert_eq!(specs[0].dims(), &[2, 1, 80, 112]);
    assert_eq!(specs[1].dims(), &[2, 1, 80, 28]);
}

#[test]
fn views_recipes_round_trip_through_toml_with_overrides() {
    let text = "global_frames = 8\ncrop = 32\nlocal_frames = 2\nnum_local_views = 3\n";
    let views: PretrainViews = toml::from_str(text).unwrap();
    assert_eq!(views.global_frames, 8);
    assert_eq!(
        (views.crop, views.local_frames, views.num_local_views),
        (32, 2, 3)
    );
    assert_eq!(views.local_crop, 96, "unset keys keep the official values");
    assert!(toml::from_str::<PretrainViews>("framez = 8").is_err());
    let off: PretrainViews = toml::from_str("local_spec_crop = false").unwrap();
    assert!(!off.local_spec_crop);
    let xkd = PretrainViews::xkd();
    let back: PretrainViews = toml::from_str(&toml::to_string(&xkd).unwrap()).unwrap();
    assert_eq!(back, xkd);
    assert_eq!((xkd.clip_seconds(), xkd.clip_samples()), (4.0, 64_000));
    assert_eq!(xkd.local_blur().unwrap().kernel(), 9);
}
