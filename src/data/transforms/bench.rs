//! Timing of the clip transforms on synthetic frames, for `avkd bench`.

use super::{Normalization, TestAugment, TrainAugment};
use crate::nn::rng::SeededRng;
use candle_core::Result;
use image::RgbImage;
use std::time::Instant;

/// `t` frames of `w`×`h` with texture (gradients and a moving pattern), so that RandAugment's
/// histogram ops and the resizes do real work.
pub fn synthetic_frames(t: usize, w: u32, h: u32) -> Vec<RgbImage> {
    (0..t)
        .map(|k| {
            RgbImage::from_fn(w, h, |x, y| {
                let v = (x * 7 + y * 3 + k as u32 * 5) ^ (x * y);
                image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, (v & 0xff) as u8])
            })
        })
        .collect()
}

fn time_ms(iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?; // warm-up
    let start = Instant::now();
    for _ in 0..iters {
        f()?;
    }
    Ok(start.elapsed().as_secs_f64() * 1000.0 / iters as f64)
}

/// Milliseconds per clip (single thread) for: XKD train (32×240×320 → 224, RandAugment and
/// erasing included), XKD test (3 crops of 224), CCL train (16×240×320 → 112), CCL test (112).
pub fn bench_transforms(iters: usize) -> Result<Vec<(String, f64)>> {
    let iters = iters.max(1);
    let mut rng = SeededRng::new(0);
    let x32 = synthetic_frames(32, 320, 240);
    let x16 = synthetic_frames(16, 320, 240);
    let (imnet, kin) = (Normalization::imagenet(), Normalization::ccl_kinetics());
    let (xtr, xte) = (TrainAugment::xkd_finetune(224), TestAugment::xkd(224));
    let (ctr, cte) = (TrainAugment::ccl(112), TestAugment::ccl(112));
    let out = vec![
        (
            "xkd train 32x240x320->224".to_string(),
            time_ms(iters, || xtr.apply(&x32, &imnet, &mut rng).map(|_| ()))?,
        ),
        (
            "xkd test 32x240x320->3x224".to_string(),
            time_ms(iters, || xte.apply(&x32, &imnet).map(|_| ()))?,
        ),
        (
            "ccl train 16x240x320->112".to_string(),
            time_ms(iters, || ctr.apply(&x16, &kin, &mut rng).map(|_| ()))?,
        ),
        (
            "ccl test 16x240x320->112".to_string(),
            time_ms(iters, || cte.apply(&x16, &kin).map(|_| ()))?,
        ),
    ];
    Ok(out)
}
