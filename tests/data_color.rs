//! torchvision's ColorJitter and RandomGrayscale on PIL images, against Pillow references
//! (tests/fixtures/transforms, made by scripts/make_transform_fixtures.py), and the statistics
//! of the draws inside the training transform.

use avkd::data::transforms::color::{
    adjust_hue, hsv_from_rgb, hue_shift, rgb_from_hsv, to_grayscale, JitterDraw, JitterOp,
};
use avkd::data::transforms::resize::{pil_bilinear, Rect};
use avkd::data::transforms::train::{ColorParams, TrainParams};
use avkd::data::transforms::{ClipArray, ColorJitter, Normalization, ResizeKind, TrainAugment};
use avkd::nn::rng::SeededRng;
use image::RgbImage;
mod common;

use common::{image_diff, transform_image, transform_manifest};

fn color_entries() -> Vec<serde_json::Value> {
    transform_manifest()["color"]
        .as_array()
        .expect("color fixtures")
        .clone()
}

fn map_pixels(img: &RgbImage, f: impl Fn([u8; 3]) -> [u8; 3]) -> RgbImage {
    let mut out = img.clone();
    for p in (*out).chunks_exact_mut(3) {
        p.copy_from_slice(&f([p[0], p[1], p[2]]));
    }
    out
}

fn fixture_draw(e: &serde_json::Value) -> JitterDraw {
    let order: Vec<usize> = e["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let f: Vec<f64> = e["factors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    JitterDraw {
        order: [0, 1, 2, 3].map(|i| JitterOp::ALL[order[i]]),
        brightness: Some(f[0]),
        contrast: Some(f[1]),
        saturation: Some(f[2]),
        hue: Some(f[3]),
    }
}

#[test]
fn colour_ops_match_pillow_exactly() {
    let entries = color_entries();
    assert_eq!(entries.len(), 20);
    for e in &entries {
        let input = transform_image(e["input"].as_str().unwrap());
        let file = e["file"].as_str().unwrap();
        let out = match e["kind"].as_str().unwrap() {
            "hue" => {
                let mut img = input.clone();
                adjust_hue(&mut img, e["factor"].as_f64().unwrap());
                img
            }
            "hsv_raw" => map_pixels(&input, hsv_from_rgb),
            "hsv_roundtrip" => map_pixels(&input, |p| rgb_from_hsv(hsv_from_rgb(p))),
            "gray" => {
                let mut img = input.clone();
                to_grayscale(&mut img);
                img
            }
            "jitter" => {
                let mut img = input.clone();
                ColorJitter::xkd().apply(&fixture_draw(e), &mut img);
                img
            }
            k => panic!("unknown fixture kind {k}"),
        };
        assert_eq!(image_diff(&out, &transform_image(file)), (0, 0), "{file}");
    }
}

#[test]
fn hsv_back_conversion_matches_pillow_on_raw_hsv() {
    // The stored HSV bytes converted back must give Pillow's round trip.
    for tag in ["input", "color_input"] {
        let raw = transform_image(&format!("color_{tag}_hsv_raw.png"));
        let back = map_pixels(&raw, rgb_from_hsv);
        let want = transform_image(&format!("color_{tag}_hsv_roundtrip.png"));
        assert_eq!(image_diff(&back, &want), (0, 0), "{tag}");
    }
}

#[test]
fn hue_shift_truncates_and_wraps_like_numpy() {
    assert_eq!(hue_shift(0.2), 51);
    assert_eq!(hue_shift(-0.2), 205);
    assert_eq!(hue_shift(0.05), 12);
    assert_eq!(hue_shift(-0.05), 244);
    assert_eq!(hue_shift(0.5), 127);
    assert_eq!(hue_shift(-0.5), 129);
    assert_eq!(hue_shift(0.0), 0);
    assert_eq!(hue_shift(0.003), 0);
    assert_eq!(hue_shift(-0.003), 0);
}

#[test]
fn grey_and_achromatic_pixels() {
    assert_eq!(hsv_from_rgb([7, 7, 7]), [0, 0, 7]);
    assert_eq!(rgb_from_hsv([200, 0, 90]), [90, 90, 90]);
    let mut img = RgbImage::from_raw(2, 1, vec![255, 0, 0, 10, 200, 30]).unwrap();
    to_grayscale(&mut img);
    // (19595 R + 38470 G + 7471 B + 0x8000) >> 16
    assert_eq!(img.as_raw(), &vec![76, 76, 76, 124, 124, 124]);
}

#[test]
fn draws_stay_in_range_and_follow_the_seed() {
    let cj = ColorJitter::xkd();
    let mut rng = SeededRng::new(3);
    let mut first_ops = [0usize; 4];
    for _ in 0..4000 {
        let d = cj.draw(&mut rng);
        let mut seen = d.order.to_vec();
        seen.sort_by_key(|op| JitterOp::ALL.iter().position(|o| o == op));
        assert_eq!(seen, JitterOp::ALL.to_vec());
        first_ops[JitterOp::ALL.iter().position(|o| *o == d.order[0]).unwrap()] += 1;
        for f in [d.brightness, d.contrast, d.saturation] {
            let f = f.unwrap();
            assert!((0.6..=1.4).contains(&f), "{f}");
        }
        let h = d.hue.unwrap();
        assert!((-0.2..=0.2).contains(&h), "{h}");
    }
    for n in first_ops {
        assert!((850..1150).contains(&n), "{first_ops:?}");
    }
    let a: Vec<_> = (0..10)
        .map({
            let mut r = SeededRng::new(11);
            move |_| cj.draw(&mut r)
        })
        .collect();
    let b: Vec<_> = (0..10)
        .map({
            let mut r = SeededRng::new(11);
            move |_| cj.draw(&mut r)
        })
        .collect();
    let c: Vec<_> = (0..10)
        .map({
            let mut r = SeededRng::new(12);
            move |_| cj.draw(&mut r)
        })
        .collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn strong_and_off_strengths() {
    let cj = ColorJitter {
        brightness: 1.5,
        contrast: 0.0,
        saturation: 0.0,
        hue: 0.0,
    };
    let mut rng = SeededRng::new(5);
    let mut min = f64::MAX;
    for _ in 0..2000 {
        let d = cj.draw(&mut rng);
        let b = d.brightness.unwrap();
        assert!((0.0..=2.5).contains(&b));
        min = min.min(b);
        assert_eq!((d.contrast, d.saturation, d.hue), (None, None, None));
    }
    assert!(min < 0.05, "lower bound clamps at 0: min {min}");
    // An off op leaves the image alone.
    let img = transform_image("input.png");
    let mut out = img.clone();
    let d = JitterDraw {
        order: JitterOp::ALL,
        brightness: None,
        contrast: None,
        saturation: None,
        hue: None,
    };
    d.apply(&mut out);
    assert_eq!(out, img);
    assert!(ColorJitter { hue: 0.6, ..cj }.validate().is_err());
    assert!(ColorJitter {
        brightness: -0.1,
        ..cj
    }
    .validate()
    .is_err());
    assert!(ColorJitter::xkd().validate().is_ok());
}

fn clip(n: usize) -> Vec<RgbImage> {
    let base = transform_image("color_input.png");
    (0..n)
        .map(|t| {
            let mut f = base.clone();
            // Different frames, so that a per-frame draw would show.
            (*f).iter_mut()
                .for_each(|v| *v = v.wrapping_add(t as u8 * 40));
            f
        })
        .collect()
}

fn jitter_augment(resize: ResizeKind, gray_prob: f64) -> TrainAugment {
    TrainAugment {
        color_jitter: Some(ColorJitter::xkd()),
        gray_prob,
        resize,
        ..TrainAugment::ccl(24)
    }
}

#[test]
fn presets_keep_colour_off() {
    for a in [TrainAugment::ccl(16), TrainAugment::xkd_finetune(16)] {
        assert_eq!(a.color_jitter, None);
        assert_eq!(a.gray_prob, 0.0);
    }
}

#[test]
fn every_frame_gets_the_same_treatment() {
    let frames = clip(3);
    let norm = Normalization::imagenet();
    for resize in [ResizeKind::PilBilinear, ResizeKind::TorchBilinear] {
        let aug = jitter_augment(resize, 0.0);
        for seed in 0..6 {
            // Replay the draws: crop and flip, then the colour.
            let mut rng = SeededRng::new(seed);
            let p: TrainParams = aug.draw(64, 48, &mut rng);
            let color = aug.draw_color(&mut rng);
            let jd = color.jitter.unwrap();
            let got = aug
                .apply(&frames, &norm, &mut SeededRng::new(seed))
                .unwrap();
            let mut want = ClipArray::zeros(frames.len(), 24, 24);
            for (t, f) in frames.iter().enumerate() {
                let one = match resize {
                    // Jitter after the crop, on the resized u8 crop.
                    ResizeKind::PilBilinear => {
                        let mut out = pil_bilinear(f, p.crop, 24, 24);
                        jd.apply(&mut out);
                        let c = Rect {
                            x: 0,
                            y: 0,
                            w: 24,
                            h: 24,
                        };
                        let q = TrainParams { crop: c, ..p };
                        aug.crop_resize(&[out], &norm, q)
                    }
                    // Jitter on the whole frame, before normalization.
                    ResizeKind::TorchBilinear => {
                        let mut g = f.clone();
                        jd.apply(&mut g);
                        aug.crop_resize(&[g], &norm, p)
                    }
                };
                for c in 0..3 {
                    want.plane_mut(c, t)
                        .copy_from_slice(&one.data[c * 576..(c + 1) * 576]);
                }
            }
            assert_eq!(got, want, "{resize:?} seed {seed}");
        }
    }
}

#[test]
fn apply_clip_uses_one_draw() {
    let mut frames = clip(4);
    let orig = frames.clone();
    let d = ColorJitter::xkd().apply_clip(&mut frames, &mut SeededRng::new(9));
    for (f, o) in frames.iter().zip(&orig) {
        let mut want = o.clone();
        d.apply(&mut want);
        assert_eq!(f, &want);
    }
}

#[test]
fn grey_probability_and_grey_clips() {
    let aug = jitter_augment(ResizeKind::PilBilinear, 0.2);
    let mut rng = SeededRng::new(1);
    let n = 20000;
    let greys = (0..n).filter(|_| aug.draw_color(&mut rng).gray).count();
    let frac = greys as f64 / n as f64;
    assert!((frac - 0.2).abs() < 0.015, "{frac}");

    // gray_prob 1: every frame grey, so the normalized channels come from equal u8 levels.
    let aug = TrainAugment {
        gray_prob: 1.0,
        color_jitter: None,
        ..TrainAugment::ccl(24)
    };
    let norm = Normalization {
        mean: [0.5; 3],
        std: [0.25; 3],
    };
    let clip_out = aug.apply(&clip(2), &norm, &mut SeededRng::new(4)).unwrap();
    let plane = 24 * 24;
    let nf = 2;
    for t in 0..nf {
        for i in 0..plane {
            let r = clip_out.data[t * plane + i];
            assert_eq!(clip_out.data[(nf + t) * plane + i], r);
            assert_eq!(clip_out.data[(2 * nf + t) * plane + i], r);
        }
    }
    let cp = ColorParams {
        jitter: None,
        gray: false,
    };
    assert!(cp.is_identity());
}

#[test]
fn bad_settings_are_errors() {
    let frames = clip(1);
    let norm = Normalization::imagenet();
    let mut aug = jitter_augment(ResizeKind::PilBilinear, 1.5);
    assert!(aug.apply(&frames, &norm, &mut SeededRng::new(0)).is_err());
    aug.gray_prob = 0.1;
    aug.color_jitter = Some(ColorJitter {
        hue: 0.7,
        ..ColorJitter::xkd()
    });
    assert!(aug.apply(&frames, &norm, &mut SeededRng::new(0)).is_err());
}
