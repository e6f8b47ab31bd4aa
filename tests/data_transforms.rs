//! Video clip transforms against Pillow and a numpy re-implementation of torch's bilinear
//! interpolation (tests/fixtures/transforms, made by scripts/make_transform_fixtures.py), and
//! the statistics of the random transforms.

use avkd::data::transforms::crop::{
    center_crop, random_resized_crop_params, torchvision_short_side, uniform_crop,
};
use avkd::data::transforms::resize::{pil_bilinear, torch_bilinear_window, Rect, TorchLinear};
use avkd::data::transforms::train::TrainParams;
use avkd::data::transforms::{
    AugOp, ClipArray, Mixup, Normalization, RandAugment, RandomErasing, ResizeKind, TestAugment,
    TrainAugment,
};
use avkd::nn::rng::SeededRng;
use candle_core::{Device, Tensor};
use image::RgbImage;
mod common;

use common::{image_diff, transform_image, transform_manifest};

#[test]
fn pil_resize_matches_pillow_exactly() {
    let input = transform_image("input.png");
    let m = transform_manifest();
    for r in m["resize"].as_array().unwrap() {
        let v: Vec<usize> = r["rect"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        let s: Vec<usize> = r["size"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        let out = pil_bilinear(
            &input,
            Rect {
                x: v[0],
                y: v[1],
                w: v[2],
                h: v[3],
            },
            s[0],
            s[1],
        );
        let want = transform_image(r["file"].as_str().unwrap());
        assert_eq!(image_diff(&out, &want), (0, 0), "{}", r["file"]);
    }
}

#[test]
fn torch_bilinear_matches_numpy_reference() {
    let m = transform_manifest();
    let inp: Vec<f32> = m["torch_bilinear_input"]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    let (ih, iw) = (9, 13);
    for case in m["torch_bilinear"].as_array().unwrap() {
        let oh = case["out"][0].as_u64().unwrap() as usize;
        let ow = case["out"][1].as_u64().unwrap() as usize;
        let want: Vec<f32> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let mut out = vec![0f32; oh * ow];
        let (ys, xs) = (TorchLinear::new(ih, oh), TorchLinear::new(iw, ow));
        torch_bilinear_window(
            |y, x| inp[y * iw + x],
            &ys,
            &xs,
            0,
            oh,
            0,
            ow,
            false,
            &mut out,
        );
        let err = out
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err <= 1e-5, "{oh}x{ow}: max error {err}");
        // A window of the full output, flipped, is the same values reversed per row.
        let mut win = vec![0f32; 2 * 3];
        torch_bilinear_window(|y, x| inp[y * iw + x], &ys, &xs, 1, 2, 1, 3, true, &mut win);
        for r in 0..2 {
            for c in 0..3 {
                assert_eq!(win[r * 3 + 2 - c], out[(1 + r) * ow + 1 + c]);
            }
        }
    }
}

fn op_by_name(name: &str) -> AugOp {
    *AugOp::INCREASING
        .iter()
        .find(|o| format!("{o:?}") == name)
        .expect("op name")
}

#[test]
fn rand_augment_ops_match_pillow() {
    let input = transform_image("input.png");
    let m = transform_manifest();
    let mut report = Vec::new();
    for case in m["ops"].as_array().unwrap() {
        let op = op_by_name(case["op"].as_str().unwrap());
        let mut img = input.clone();
        op.apply(&mut img, case["arg"].as_f64().unwrap(), [128, 128, 128]);
        let want = transform_image(case["file"].as_str().unwrap());
        let (maxd, n) = image_diff(&img, &want);
        report.push(format!("{}: max {maxd} n {n}", case["file"]));
        assert_eq!(maxd, 0, "{}: max diff {maxd} in {n} values", case["file"]);
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn timm_level_arguments_at_magnitude_7() {
    assert_eq!(AugOp::PosterizeIncreasing.arg(7.0, false), 2.0);
    assert_eq!(AugOp::SolarizeIncreasing.arg(7.0, false), 77.0);
    assert_eq!(AugOp::SolarizeAdd.arg(7.0, true), 77.0);
    assert!((AugOp::Rotate.arg(7.0, true) + 21.0).abs() < 1e-12);
    assert!((AugOp::ColorIncreasing.arg(7.0, true) - 0.37).abs() < 1e-12);
    assert!((AugOp::TranslateXRel.arg(10.0, false) - 0.45).abs() < 1e-12);
    assert!((AugOp::ShearY.arg(7.0, false) - 0.21).abs() < 1e-12);
}

#[test]
fn rand_augment_draws_are_seeded_and_bounded() {
    let ra = RandAugment::xkd();
    let mut applied = 0;
    for seed in 0..400 {
        let d = ra.draw(&mut SeededRng::new(seed));
        assert_eq!(d, ra.draw(&mut SeededRng::new(seed)));
        assert!(d.len() <= 4);
        applied += d.len();
        for op in d {
            if op.op == AugOp::Rotate {
                assert!(op.arg.abs() <= 30.0);
            }
        }
    }
    // Each of 4 ops applies with probability 0.5: about 2 per clip.
    let mean = applied as f64 / 400.0;
    assert!((mean - 2.0).abs() < 0.2, "mean ops per clip {mean}");
}

#[test]
fn random_resized_crop_stays_in_bounds_and_is_seeded() {
    let mut rng = SeededRng::new(5);
    let (w, h) = (320, 240);
    let mut areas = Vec::new();
    for _ in 0..2000 {
        let r = random_resized_crop_params(w, h, (0.2, 0.766), (0.75, 1.3333), &mut rng);
        assert!(
            r.w > 0 && r.h > 0 && r.x + r.w <= w && r.y + r.h <= h,
            "{r:?}"
        );
        let ratio = r.w as f64 / r.h as f64;
        assert!(ratio > 0.74 && ratio < 1.35, "{r:?}");
        areas.push((r.w * r.h) as f64 / (w * h) as f64);
    }
    assert!(areas.iter().all(|&a| (0.19..0.78).contains(&a)));
    let a = random_resized_crop_params(
        w,
        h,
        (0.25, 1.0),
        (0.75, 1.0 / 0.75),
        &mut SeededRng::new(9),
    );
    let b = random_resized_crop_params(
        w,
        h,
        (0.25, 1.0),
        (0.75, 1.0 / 0.75),
        &mut SeededRng::new(9),
    );
    assert_eq!(a, b);
    // Impossible scale: the fallback is a centre crop with the ratio clamped.
    let f = random_resized_crop_params(400, 100, (2.0, 3.0), (0.75, 1.3333), &mut rng);
    assert_eq!(
        f,
        Rect {
            x: 133,
            y: 0,
            w: 133,
            h: 100
        }
    );
}

fn textured(t: usize, w: u32, h: u32, seed: u64) -> Vec<RgbImage> {
    let mut rng = SeededRng::new(seed);
    (0..t)
        .map(|_| {
            RgbImage::from_fn(w, h, |_, _| {
                image::Rgb([
                    rng.range(0, 256) as u8,
                    rng.range(0, 256) as u8,
                    rng.range(0, 256) as u8,
                ])
            })
        })
        .collect()
}

fn frame(clip: &ClipArray, c: usize, t: usize) -> Vec<f32> {
    let n = clip.height * clip.width;
    clip.data[(c * clip.frames + t) * n..(c * clip.frames + t + 1) * n].to_vec()
}

#[test]
fn train_transform_uses_one_crop_for_every_frame() {
    let one = textured(1, 64, 48, 1).remove(0);
    let frames = vec![one.clone(), one.clone(), one];
    let norm = Normalization::imagenet();
    for mut aug in [TrainAugment::xkd_finetune(32), TrainAugment::ccl(32)] {
        aug.erasing_prob = 0.0;
        for seed in 0..5 {
            let clip = aug
                .apply(&frames, &norm, &mut SeededRng::new(seed))
                .unwrap();
            assert_eq!(clip.shape(), [3, 3, 32, 32]);
            for c in 0..3 {
                assert_eq!(frame(&clip, c, 0), frame(&clip, c, 2));
            }
            let again = aug
                .apply(&frames, &norm, &mut SeededRng::new(seed))
                .unwrap();
            assert_eq!(clip, again);
        }
    }
}

#[test]
fn flip_reverses_columns_and_pil_path_matches_pillow_resize() {
    let frames = vec![transform_image("input.png")];
    let norm = Normalization::ccl_kinetics();
    let aug = TrainAugment::ccl(17);
    let crop = Rect {
        x: 3,
        y: 2,
        w: 33,
        h: 25,
    };
    let a = aug.crop_resize(&frames, &norm, TrainParams { crop, flip: false });
    let b = aug.crop_resize(&frames, &norm, TrainParams { crop, flip: true });
    for c in 0..3 {
        let (fa, fb) = (frame(&a, c, 0), frame(&b, c, 0));
        for y in 0..17 {
            for x in 0..17 {
                assert_eq!(fa[y * 17 + x], fb[y * 17 + 16 - x]);
            }
        }
    }
    // Square 17x17 output of the crop: compare with normalizing the Pillow-exact resize.
    let want = pil_bilinear(&frames[0], crop, 17, 17);
    let lut = norm.lut();
    for (i, p) in want.as_raw().chunks_exact(3).enumerate() {
        for c in 0..3 {
            assert_eq!(
                frame(&a, c, 0)[i],
                (p[c] as f32 / 255.0 - norm.mean[c]) / norm.std[c]
            );
            assert_eq!(lut[c][p[c] as usize], frame(&a, c, 0)[i]);
        }
    }
}

#[test]
fn xkd_train_resize_is_torch_bilinear_of_the_normalized_crop() {
    let frames = textured(2, 50, 40, 3);
    let norm = Normalization::imagenet();
    let aug = TrainAugment::xkd_finetune(24);
    let crop = Rect {
        x: 5,
        y: 7,
        w: 30,
        h: 21,
    };
    let clip = aug.crop_resize(&frames, &norm, TrainParams { crop, flip: false });
    let full = ClipArray::from_frames(&frames, &norm).unwrap();
    let (ys, xs) = (TorchLinear::new(21, 24), TorchLinear::new(30, 24));
    for t in 0..2 {
        for c in 0..3 {
            let plane = frame(&full, c, t);
            let mut want = vec![0f32; 24 * 24];
            torch_bilinear_window(
                |y, x| plane[(y + 7) * 50 + x + 5],
                &ys,
                &xs,
                0,
                24,
                0,
                24,
                false,
                &mut want,
            );
            assert_eq!(frame(&clip, c, t), want);
        }
    }
}

#[test]
fn random_erasing_boxes_and_rate() {
    let er = RandomErasing::pixel(0.25);
    let mut rng = SeededRng::new(11);
    let (h, w) = (224, 224);
    let mut hits = 0;
    let n = 4000;
    for _ in 0..n {
        if let Some(b) = er.draw_box(h, w, &mut rng) {
            hits += 1;
            assert!(b.top + b.h <= h && b.left + b.w <= w && b.h < h && b.w < w);
            let frac = (b.h * b.w) as f64 / (h * w) as f64;
            assert!((0.015..0.36).contains(&frac), "area fraction {frac}");
        }
    }
    let rate = hits as f64 / n as f64;
    assert!((rate - 0.25).abs() < 0.03, "erase rate {rate}");
    // Erased values are standard normal, the rest untouched.
    let mut clip = ClipArray::zeros(64, 32, 32);
    let boxes = RandomErasing::pixel(1.0).apply(&mut clip, &mut SeededRng::new(2));
    let erased: Vec<f32> = clip.data.iter().copied().filter(|&v| v != 0.0).collect();
    let expect: usize = boxes.iter().flatten().map(|b| 3 * b.h * b.w).sum();
    assert!(boxes.iter().flatten().count() > 50);
    assert_eq!(erased.len(), expect);
    let mean = erased.iter().map(|&v| v as f64).sum::<f64>() / erased.len() as f64;
    let var = erased
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / erased.len() as f64;
    assert!(
        mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
        "mean {mean} var {var}"
    );
}

#[test]
fn test_transform_crops_and_sizes() {
    let frames = textured(3, 80, 60, 4);
    let norm = Normalization::imagenet();
    let clips = TestAugment::xkd(56).apply(&frames, &norm).unwrap();
    assert_eq!(clips.len(), 3);
    // floor(80/60*56) = 74 wide: left/centre/right offsets 0, ceil(18/2)=9, 18.
    let full = TestAugment {
        short_side: 56,
        crop: 56,
        crops: 3,
        resize: ResizeKind::TorchBilinear,
    };
    let ((nw, nh), rects) = full.windows(80, 60).unwrap();
    assert_eq!((nw, nh), (74, 56));
    assert_eq!(
        rects.iter().map(|r| r.x).collect::<Vec<_>>(),
        vec![0, 9, 18]
    );
    let whole = ClipArray::from_frames(&frames, &norm).unwrap();
    let (ys, xs) = (TorchLinear::new(60, 56), TorchLinear::new(80, 74));
    for (k, clip) in clips.iter().enumerate() {
        assert_eq!(clip.shape(), [3, 3, 56, 56]);
        let plane = frame(&whole, 1, 2);
        let mut want = vec![0f32; 56 * 56];
        torch_bilinear_window(
            |y, x| plane[y * 80 + x],
            &ys,
            &xs,
            0,
            56,
            rects[k].x,
            56,
            false,
            &mut want,
        );
        assert_eq!(frame(clip, 1, 2), want);
    }
    // Portrait: crops go top/centre/bottom.
    assert_eq!(
        uniform_crop(56, 74, 56, 2),
        Rect {
            x: 0,
            y: 18,
            w: 56,
            h: 56
        }
    );
    // CCL: 320x240 -> 149x112, CenterCrop offset round(37/2) = 18 (Python rounds halves to even).
    assert_eq!(torchvision_short_side(320, 240, 112), (149, 112));
    assert_eq!(
        center_crop(149, 112, 112),
        Rect {
            x: 18,
            y: 0,
            w: 112,
            h: 112
        }
    );
    let input = vec![transform_image("input.png")];
    let ccl = TestAugment::ccl(20).apply(&input, &norm).unwrap();
    assert_eq!(ccl.len(), 1);
    let resized = pil_bilinear(&input[0], Rect::full(40, 30), 26, 20);
    let want = image::imageops::crop_imm(&resized, 3, 0, 20, 20).to_image();
    let lut = norm.lut();
    for (i, p) in want.as_raw().chunks_exact(3).enumerate() {
        assert_eq!(frame(&ccl[0], 2, 0)[i], lut[2][p[2] as usize]);
    }
}

#[test]
fn bad_input_is_an_error() {
    let norm = Normalization::imagenet();
    let mut rng = SeededRng::new(0);
    let err = TrainAugment::ccl(16)
        .apply(&[], &norm, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no frames"), "{err}");
    let mixed = vec![RgbImage::new(40, 30), RgbImage::new(40, 31)];
    let err = TrainAugment::xkd_finetune(16)
        .apply(&mixed, &norm, &mut rng)
        .unwrap_err()
        .to_string();
    assert!(err.contains("frame 1 is 40x31"), "{err}");
    let err = TestAugment::xkd(16)
        .apply(&mixed, &norm)
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected 40x30"), "{err}");
    let small = vec![RgbImage::new(40, 30)];
    let t = TestAugment {
        short_side: 20,
        crop: 24,
        crops: 1,
        resize: ResizeKind::PilBilinear,
    };
    let err = t.apply(&small, &norm).unwrap_err().to_string();
    assert!(err.contains("crop 24 is larger"), "{err}");
    let t = TestAugment {
        crops: 2,
        ..TestAugment::xkd(16)
    };
    assert!(t.apply(&small, &norm).is_err());
    assert!(ClipArray::stack(&[], &Device::Cpu).is_err());
    let a = ClipArray::zeros(2, 4, 4);
    let b = ClipArray::zeros(3, 4, 4);
    assert!(ClipArray::stack(&[a.clone(), b], &Device::Cpu).is_err());
    assert_eq!(
        ClipArray::stack(&[a.clone(), a], &Device::Cpu)
            .unwrap()
            .dims(),
        &[2, 3, 2, 4, 4]
    );
    let mix = Mixup::xkd_ucf101(5);
    let x = Tensor::zeros((0, 3, 2, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(mix.apply(&x, &[], &mut rng).is_err());
    let x = Tensor::zeros((2, 3, 2, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(mix.apply(&x, &[0, 7], &mut rng).is_err());
}

/// An odd batch (the last of an epoch without `drop_last`) is mixed as timm pairs samples (i with
/// B-1-i): the middle sample is paired with itself, so it stays unmixed with its own smoothed
/// target, and the others are mixed as in an even batch.
#[test]
fn odd_batches_mix_with_the_middle_sample_unmixed() {
    let mix = Mixup::xkd_ucf101(5);
    for seed in 0..8 {
        let mut rng = SeededRng::new(seed);
        let x = batch(5, 2, 8, 8);
        let (mixed, target) = mix.apply(&x, &[0, 1, 2, 3, 4], &mut rng).unwrap();
        let middle = mixed.get(2).unwrap().flatten_all().unwrap();
        let middle: Vec<f32> = middle.to_vec1().unwrap();
        assert!(middle.iter().all(|v| (v - 2.0).abs() < 1e-5), "seed {seed}");
        let row: Vec<f32> = target.get(2).unwrap().to_vec1().unwrap();
        for (k, v) in row.iter().enumerate() {
            let want = if k == 2 { 0.92 } else { 0.02 };
            assert!((v - want).abs() < 1e-6, "seed {seed}: class {k}: {v}");
        }
        let sums: Vec<f32> = target.sum(1).unwrap().to_vec1().unwrap();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5));
    }
}

fn batch(b: usize, t: usize, h: usize, w: usize) -> Tensor {
    // Sample i holds the value i everywhere, so mixing is readable from the output.
    let data: Vec<f32> = (0..b)
        .flat_map(|i| std::iter::repeat_n(i as f32, 3 * t * h * w))
        .collect();
    Tensor::from_vec(data, (b, 3, t, h, w), &Device::Cpu).unwrap()
}

#[test]
fn mixup_targets_smoothing_and_lambda() {
    let labels = [0usize, 3, 1, 4];
    let (b, t, h, w) = (4, 8, 16, 16);
    let x = batch(b, t, h, w);
    let mut saw = (false, false);
    for seed in 0..40 {
        let mix = Mixup::xkd_hmdb51(5);
        let (mx, tg) = mix.apply(&x, &labels, &mut SeededRng::new(seed)).unwrap();
        let (mx2, tg2) = mix.apply(&x, &labels, &mut SeededRng::new(seed)).unwrap();
        assert_eq!(
            mx.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            mx2.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        assert_eq!(tg.to_vec2::<f32>().unwrap(), tg2.to_vec2::<f32>().unwrap());
        assert_eq!(mx.dims(), x.dims());
        let tg = tg.to_vec2::<f32>().unwrap();
        for row in &tg {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        let draw = mix.draw(h, w, &mut SeededRng::new(seed)).unwrap();
        let (off, on) = (0.1f32 / 5.0, 0.9f32 + 0.1 / 5.0);
        // Sample 0 is mixed with sample 3 (labels 0 and 4).
        let lam = draw.lam as f32;
        assert!((tg[0][0] - (on * lam + off * (1.0 - lam))).abs() < 1e-6);
        assert!((tg[0][4] - (off * lam + on * (1.0 - lam))).abs() < 1e-6);
        assert!((tg[0][2] - off).abs() < 1e-6);
        let v = mx
            .i(0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        if let Some((yl, yh, xl, xh)) = draw.bbox {
            saw.0 = true;
            // timm indexing on [B,C,T,H,W]: frames yl..yh (clamped to T), rows xl..xh, all columns.
            let area = ((yh - yl) * (xh - xl)) as f64 / (h * w) as f64;
            assert!((draw.lam - (1.0 - area)).abs() < 1e-12);
            let expect = (yh.min(t).saturating_sub(yl.min(t))) * (xh - xl) * w * 3;
            assert_eq!(v.iter().filter(|&&e| e == 3.0).count(), expect);
            assert!(v.iter().all(|&e| e == 0.0 || e == 3.0));
        } else {
            saw.1 = true;
            let want = 0.0 * lam + 3.0 * (1.0 - lam);
            assert!(v.iter().all(|&e| (e - want).abs() < 1e-5));
        }
    }
    assert!(saw.0 && saw.1, "both mixup and cutmix drawn over 40 seeds");
    // The box on H, W of every frame when timm's indexing is turned off.
    let mut mix = Mixup::xkd_ucf101(5);
    mix.timm_video_indexing = false;
    mix.switch_prob = 1.0;
    let (mx, _) = mix.apply(&x, &labels, &mut SeededRng::new(1)).unwrap();
    let draw = mix.draw(h, w, &mut SeededRng::new(1)).unwrap();
    let (yl, yh, xl, xh) = draw.bbox.unwrap();
    let v = mx
        .i(1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(
        v.iter().filter(|&&e| e == 2.0).count(),
        3 * t * (yh - yl) * (xh - xl)
    );
}

#[test]
fn mixup_without_smoothing_or_mixing_gives_one_hot() {
    let mix = Mixup {
        prob: 0.0,
        label_smoothing: 0.0,
        ..Mixup::xkd_ucf101(3)
    };
    let x = batch(2, 1, 4, 4);
    let (mx, tg) = mix.apply(&x, &[2, 0], &mut SeededRng::new(0)).unwrap();
    assert_eq!(
        tg.to_vec2::<f32>().unwrap(),
        vec![vec![0.0, 0.0, 1.0], vec![1.0, 0.0, 0.0]]
    );
    assert_eq!(
        mx.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
}

use candle_core::IndexOp;
