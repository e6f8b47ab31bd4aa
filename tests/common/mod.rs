//! Helpers shared by the integration tests: fixture loading and tolerance checks.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

/// Path of a file under tests/fixtures.
pub fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// All tensors of a fixture safetensors file, on the CPU.
pub fn load_fixture(rel: &str) -> HashMap<String, Tensor> {
    let path = fixture_path(rel);
    candle_core::safetensors::load(&path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn get<'a>(m: &'a HashMap<String, Tensor>, key: &str) -> &'a Tensor {
    m.get(key)
        .unwrap_or_else(|| panic!("fixture tensor `{key}` missing"))
}

/// Max absolute difference between two tensors of the same shape (compared in f64).
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shape mismatch");
    let a = a.to_dtype(DType::F64).unwrap();
    let b = b.to_dtype(DType::F64).unwrap();
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Max |x| of a tensor (compared in f64).
pub fn max_abs(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Asserts max |a - b| <= atol.
#[track_caller]
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, atol: f64) {
    assert_eq!(
        got.dims(),
        want.dims(),
        "{what}: shape {:?} vs reference {:?}",
        got.dims(),
        want.dims()
    );
    let d = max_abs_diff(got, want);
    assert!(d <= atol, "{what}: max abs error {d:.3e} > {atol:.0e}");
}

/// Asserts |a - b| <= rtol * max(|b|, tiny) elementwise-max (relative to the reference's magnitude).
#[track_caller]
pub fn assert_rel_close(what: &str, got: &Tensor, want: &Tensor, rtol: f64) {
    assert_eq!(
        got.dims(),
        want.dims(),
        "{what}: shape {:?} vs reference {:?}",
        got.dims(),
        want.dims()
    );
    let d = max_abs_diff(got, want);
    let scale = want
        .to_dtype(DType::F64)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let rel = d / scale.max(1e-12);
    assert!(
        rel <= rtol,
        "{what}: relative error {rel:.3e} (abs {d:.3e}, scale {scale:.3e}) > {rtol:.0e}"
    );
}

/// Scalar value of a 0-dim (or 1-element) tensor.
pub fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .get(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// An image of tests/fixtures/transforms (Pillow references made by
/// scripts/make_transform_fixtures.py), as RGB.
pub fn transform_image(name: &str) -> image::RgbImage {
    let path = fixture_path("transforms").join(name);
    image::open(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .to_rgb8()
}

/// tests/fixtures/transforms/manifest.json.
pub fn transform_manifest() -> serde_json::Value {
    let path = fixture_path("transforms/manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// (max abs difference, number of differing values) of two images of the same size.
pub fn image_diff(a: &image::RgbImage, b: &image::RgbImage) -> (u8, usize) {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .fold((0, 0), |(m, n), (&x, &y)| {
            let d = x.abs_diff(y);
            (m.max(d), n + (d > 0) as usize)
        })
}

/// A clock-seeded pseudo-random delay in `[0, max)` (printed, so a failure can be replayed).
pub fn random_delay(max: std::time::Duration, salt: u64) -> std::time::Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut x = nanos ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    let ms = (max.as_millis() as u64).max(1);
    std::time::Duration::from_millis(x % ms)
}

/// Runs `command(resume)` into `out` and SIGKILLs it at a random moment after `checkpoint` (a file
/// under `out`) appears, until two runs died that way (a run that finishes first is started over
/// from scratch); `whole` is how long an uninterrupted run takes. Returns with `out` holding what
/// the second killed run left.
pub fn kill_twice(
    command: impl Fn(bool) -> std::process::Command,
    out: &std::path::Path,
    checkpoint: &std::path::Path,
    whole: std::time::Duration,
) {
    let mut kills = 0;
    for round in 0..6u64 {
        if kills == 2 {
            break;
        }
        let mut child = command(round > 0).spawn().unwrap();
        let started = std::time::Instant::now();
        while !checkpoint.exists() {
            assert!(
                started.elapsed() < whole * 4,
                "{} never appeared",
                checkpoint.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let delay = random_delay(whole.mul_f64(0.5), round);
        std::thread::sleep(delay);
        child.kill().unwrap();
        let status = child.wait().unwrap();
        eprintln!(
            "round {round}: SIGKILL after {delay:?} (the whole run takes {whole:?}): {status}"
        );
        if !status.success() {
            kills += 1;
        } else {
            // It finished before the kill: start over with a fresh run.
            std::fs::remove_dir_all(out).unwrap();
        }
    }
    assert_eq!(
        kills, 2,
        "the child always finished before it could be killed"
    );
}
