//! timm's `Mixup` in mode "batch" (`timm/data/mixup.py`, correct_lam=True): one λ for the batch,
//! each sample mixed with the batch reversed (`x.flip(0)`), mixup or cutmix switched at random,
//! soft targets `λ·onehot_smoothed(y) + (1-λ)·onehot_smoothed(y.flip(0))`.
//!
//! timm's cutmix writes `x[:, :, yl:yh, xl:xh]` with the box drawn from the last two dims (H, W).
//! On a video batch `[B, C, T, H, W]` those indices land on T and H: the official fine-tuning
//! (XKD, VideoMAE) mixes frames `yl..yh` (clamped to T) and rows `xl..xh`, all columns, while λ is
//! still corrected by the H×W box area. [`Mixup::timm_video_indexing`] keeps that behaviour
//! (the presets); turning it off applies the box to H and W of every frame.

use crate::nn::rng::SeededRng;
use candle_core::{DType, Result, Tensor};

fn msg(s: String) -> candle_core::Error {
    candle_core::Error::Msg(s)
}

/// Mixup / cutmix parameters (timm's `Mixup(...)` arguments, mode "batch").
#[derive(Debug, Clone, PartialEq)]
pub struct Mixup {
    pub mixup_alpha: f64,
    pub cutmix_alpha: f64,
    pub prob: f64,
    pub switch_prob: f64,
    pub label_smoothing: f64,
    pub num_classes: usize,
    /// Index a 5-D batch as timm does (box rows on T, box columns on H); see the module doc.
    pub timm_video_indexing: bool,
}

/// What one call drew: λ after correction, whether cutmix was used, and its box (yl, yh, xl, xh).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixDraw {
    pub lam: f64,
    pub cutmix: bool,
    pub bbox: Option<(usize, usize, usize, usize)>,
}

/// Gamma(shape, 1) by Marsaglia–Tsang (boosted by U^(1/shape) below shape 1).
fn gamma(shape: f64, rng: &mut SeededRng) -> f64 {
    if shape < 1.0 {
        let u = rng.uniform_f64();
        return gamma(shape + 1.0, rng) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = rng.normal_f64();
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = rng.uniform_f64();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// Beta(a, b) from two gammas.
pub fn beta(a: f64, b: f64, rng: &mut SeededRng) -> f64 {
    let x = gamma(a, rng);
    let y = gamma(b, rng);
    if x + y == 0.0 {
        0.5
    } else {
        x / (x + y)
    }
}

/// timm's `mixup_target`: smoothed one-hots of `labels` and of `labels` reversed, blended by λ.
pub fn mixup_target(labels: &[usize], num_classes: usize, lam: f64, smoothing: f64) -> Vec<f32> {
    let off = (smoothing / num_classes as f64) as f32;
    let on = (1.0 - smoothing + smoothing / num_classes as f64) as f32;
    let (l1, l2) = (lam as f32, (1.0 - lam) as f32);
    let b = labels.len();
    let mut out = vec![0f32; b * num_classes];
    for (i, row) in out.chunks_exact_mut(num_classes).enumerate() {
        for (k, v) in row.iter_mut().enumerate() {
            let y1 = if labels[i] == k { on } else { off };
            let y2 = if labels[b - 1 - i] == k { on } else { off };
            *v = y1 * l1 + y2 * l2;
        }
    }
    out
}

impl Mixup {
    /// XKD UCF101 fine-tuning: mixup 0.6, cutmix 0.5, prob 1, switch 0.5, smoothing 0.1.
    pub fn xkd_ucf101(num_classes: usize) -> Self {
        Self {
            mixup_alpha: 0.6,
            cutmix_alpha: 0.5,
            prob: 1.0,
            switch_prob: 0.5,
            label_smoothing: 0.1,
            num_classes,
            timm_video_indexing: true,
        }
    }

    /// XKD HMDB51 fine-tuning: mixup 1.0, cutmix 1.0, prob 1, switch 0.5, smoothing 0.1.
    pub fn xkd_hmdb51(num_classes: usize) -> Self {
        Self {
            mixup_alpha: 1.0,
            cutmix_alpha: 1.0,
            ..Self::xkd_ucf101(num_classes)
        }
    }

    /// `_params_per_batch` + `cutmix_bbox_and_lam` for an image of `img_h`×`img_w`.
    pub fn draw(&self, img_h: usize, img_w: usize, rng: &mut SeededRng) -> Result<MixDraw> {
        let mut lam = 1.0;
        let mut cutmix = false;
        if rng.uniform_f64() < self.prob {
            if self.mixup_alpha > 0.0 && self.cutmix_alpha > 0.0 {
                cutmix = rng.uniform_f64() < self.switch_prob;
                let a = if cutmix {
                    self.cutmix_alpha
                } else {
                    self.mixup_alpha
                };
                lam = beta(a, a, rng);
            } else if self.mixup_alpha > 0.0 {
                lam = beta(self.mixup_alpha, self.mixup_alpha, rng);
            } else if self.cutmix_alpha > 0.0 {
                cutmix = true;
                lam = beta(self.cutmix_alpha, self.cutmix_alpha, rng);
            } else {
                return Err(msg("mixup: mixup_alpha and cutmix_alpha are both 0".into()));
            }
        }
        if lam == 1.0 || !cutmix {
            return Ok(MixDraw {
                lam,
                cutmix: false,
                bbox: None,
            });
        }
        // rand_bbox: cut = int(L * sqrt(1 - λ)), centre randint(0, L), clipped box.
        let ratio = (1.0 - lam).sqrt();
        let (cut_h, cut_w) = ((img_h as f64 * ratio) as i64, (img_w as f64 * ratio) as i64);
        let cy = rng.range(0, img_h) as i64;
        let cx = rng.range(0, img_w) as i64;
        let clip = |v: i64, hi: usize| v.clamp(0, hi as i64) as usize;
        let (yl, yh) = (clip(cy - cut_h / 2, img_h), clip(cy + cut_h / 2, img_h));
        let (xl, xh) = (clip(cx - cut_w / 2, img_w), clip(cx + cut_w / 2, img_w));
        let lam = 1.0 - ((yh - yl) * (xh - xl)) as f64 / (img_h * img_w) as f64;
        Ok(MixDraw {
            lam,
            cutmix: true,
            bbox: Some((yl, yh, xl, xh)),
        })
    }

    /// Mixes `x` (`[B, 3, T, H, W]` or `[B, C, H, W]`) and returns it with the soft targets
    /// `[B, num_classes]` (f32, on x's device).
    ///
    /// timm refuses an odd batch; here sample `i` is paired with sample `B-1-i` as timm pairs
    /// them, so in an odd batch (the last batch of an epoch without `drop_last`) the middle sample
    /// is paired with itself: it stays unmixed and its target is its own smoothed one-hot.
    pub fn apply(
        &self,
        x: &Tensor,
        labels: &[usize],
        rng: &mut SeededRng,
    ) -> Result<(Tensor, Tensor)> {
        let dims = x.dims().to_vec();
        if dims.len() < 4 {
            return Err(msg(format!(
                "mixup: expected x of shape [B, C, (T,) H, W], found {dims:?}"
            )));
        }
        let b = dims[0];
        if b == 0 {
            return Err(msg("mixup: the batch is empty".into()));
        }
        if labels.len() != b {
            return Err(msg(format!(
                "mixup: {} labels for a batch of {b}",
                labels.len()
            )));
        }
        if let Some(&bad) = labels.iter().find(|&&l| l >= self.num_classes) {
            return Err(msg(format!(
                "mixup: label {bad} out of range for {} classes",
                self.num_classes
            )));
        }
        let nd = dims.len();
        let (h, w) = (dims[nd - 2], dims[nd - 1]);
        let draw = self.draw(h, w, rng)?;
        let rev: Vec<u32> = (0..b as u32).rev().collect();
        let rev = Tensor::new(rev.as_slice(), x.device())?;
        let mixed = if draw.lam == 1.0 {
            x.clone()
        } else if let Some((yl, yh, xl, xh)) = draw.bbox {
            let flipped = x.index_select(&rev, 0)?;
            // timm's `x[:, :, yl:yh, xl:xh]`, or the box on H, W of every frame.
            let (d0, d1) = if nd == 5 && self.timm_video_indexing {
                (2, 3)
            } else {
                (nd - 2, nd - 1)
            };
            let (r0, r1) = (
                (yl.min(dims[d0]), yh.min(dims[d0])),
                (xl.min(dims[d1]), xh.min(dims[d1])),
            );
            if r0.1 <= r0.0 || r1.1 <= r1.0 {
                x.clone()
            } else {
                let patch = flipped
                    .narrow(d0, r0.0, r0.1 - r0.0)?
                    .narrow(d1, r1.0, r1.1 - r1.0)?;
                let ranges: Vec<std::ops::Range<usize>> = (0..nd)
                    .map(|d| match d {
                        _ if d == d0 => r0.0..r0.1,
                        _ if d == d1 => r1.0..r1.1,
                        _ => 0..dims[d],
                    })
                    .collect();
                slice_assign(x, &ranges, &patch)?
            }
        } else {
            let flipped = x.index_select(&rev, 0)?;
            ((x * draw.lam)? + (flipped * (1.0 - draw.lam))?)?
        };
        let target = mixup_target(labels, self.num_classes, draw.lam, self.label_smoothing);
        let target =
            Tensor::from_vec(target, (b, self.num_classes), x.device())?.to_dtype(DType::F32)?;
        Ok((mixed, target))
    }
}

/// `x[ranges] = src` without touching `x`, for 4-D or 5-D ranges.
fn slice_assign(x: &Tensor, ranges: &[std::ops::Range<usize>], src: &Tensor) -> Result<Tensor> {
    match ranges {
        [a, b, c, d] => x.slice_assign(&[a.clone(), b.clone(), c.clone(), d.clone()], src),
        [a, b, c, d, e] => x.slice_assign(
            &[a.clone(), b.clone(), c.clone(), d.clone(), e.clone()],
            src,
        ),
        _ => Err(msg(format!("mixup: cannot index {} dims", ranges.len()))),
    }
}
