//! Timing of the hot paths, for side-by-side comparison with PyTorch (scripts/bench_vs_torch.py runs
//! both in one go and prints the ratios) and librosa (scripts/bench_audio_vs_librosa.py).
//!
//! Above `jobs`, below only the command line.

pub mod distill;
pub mod extract;
pub mod loader;
pub mod pretrain;
pub mod timed_batches;

use crate::data::audio::{decode_file, load_file, XKD_SAMPLE_RATE};
use crate::data::mel::{LogMel, LogMelConfig};
use crate::models::ccl::r2plus1d::{R2Plus1d, R2Plus1dConfig};
use crate::models::classifier::{VideoClassifier, VideoClassifierConfig};
use crate::models::xkd::encoder::XkdEncoder;
use crate::models::xkd::{VideoViT, VideoVitConfig, VitSize};
use crate::nn::param_store::ParamStore;
use crate::nn::rng::SeededRng;
use crate::objectives::smoothing::label_smoothing_ce;
use crate::train::optim::{AdamW, AdamWConfig};
use crate::train::param_groups::finetune_groups;
use candle_core::{DType, Device, Result, Tensor};
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub name: String,
    /// Median seconds per iteration.
    pub median_s: f64,
    pub min_s: f64,
    pub iters: usize,
}

/// Runs `f` once to warm up, then `iters` times; returns median and min wall time.
pub fn time_it(name: &str, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<Timing> {
    f()?;
    let mut samples = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    Ok(Timing {
        name: name.to_string(),
        median_s: samples[samples.len() / 2],
        min_s: samples[0],
        iters,
    })
}

/// The ViT-B video encoder at 32x112x112 (393 tokens): forward, forward+backward, and one fine-tune
/// step (classifier with 101 classes, label smoothing, AdamW with layer-wise lr decay).
pub fn vit_b_video(batches: &[usize], iters: usize, dev: &Device) -> Result<Vec<Timing>> {
    let cfg = VideoVitConfig::xkd(VitSize::Base);
    let store = ParamStore::new(0, DType::F32, dev);
    let trainable = VideoViT::new(&cfg, store.builder())?;
    // Inference uses plain tensors, so no autograd graph is recorded (PyTorch's no_grad).
    let frozen = VideoViT::new(
        &cfg,
        candle_nn::VarBuilder::from_tensors(store.tensors()?, DType::F32, dev),
    )?;
    let mut rng = SeededRng::new(1);
    let mut out = Vec::new();
    for &b in batches {
        let x = rng.normal((b, 3, 32, 112, 112), 0.0, 1.0, dev)?;
        out.push(time_it(&format!("vit_b_video_fwd_b{b}"), iters, || {
            frozen.features(&x)?;
            dev.synchronize()
        })?);
        out.push(time_it(
            &format!("vit_b_video_fwd_bwd_b{b}"),
            iters,
            || {
                let loss = trainable.features(&x)?.sqr()?.mean_all()?;
                loss.backward()?;
                dev.synchronize()
            },
        )?);
    }
    let b = *batches.last().unwrap_or(&1);
    let cls_cfg = VideoClassifierConfig {
        backbone: cfg,
        num_classes: 101,
        head_dropout: 0.5,
    };
    let store = ParamStore::new(0, DType::F32, dev);
    let model = VideoClassifier::new(&cls_cfg, store.builder())?;
    let groups = finetune_groups(&store.named_vars(), 0.05, 0.45, 12)?;
    let mut opt = AdamW::new(
        groups,
        AdamWConfig {
            lr: 5e-4,
            ..Default::default()
        },
    )?;
    let x = rng.normal((b, 3, 32, 112, 112), 0.0, 1.0, dev)?;
    let y = Tensor::from_vec((0..b as u32).collect::<Vec<_>>(), b, dev)?;
    out.push(time_it(&format!("finetune_step_b{b}"), iters, || {
        let logits = model.forward_t(&x, Some(&mut rng))?;
        let loss = label_smoothing_ce(&logits, &y, 0.1)?;
        opt.step(&loss.backward()?)?;
        dev.synchronize()
    })?);
    Ok(out)
}

/// CCL's hot paths: R(2+1)D-18 (51 classes) on [batch, 3, 16, 112, 112], forward (eval) and
/// forward+backward (training mode), and a 3x3x3 Conv3d 64->64 on [2, 64, 8, 56, 56].
pub fn ccl(batch: usize, iters: usize, dev: &Device) -> Result<Vec<Timing>> {
    let mut rng = SeededRng::new(2);
    let store = ParamStore::new(0, DType::F32, dev);
    let model = R2Plus1d::new(&R2Plus1dConfig::official(18, 51), store.builder())?;
    let x = rng.normal((batch, 3, 16, 112, 112), 0.0, 1.0, dev)?;
    let mut out = vec![time_it(&format!("r2plus1d18_fwd_b{batch}"), iters, || {
        model.forward_t(&x, false)?;
        dev.synchronize()
    })?];
    out.push(time_it(
        &format!("r2plus1d18_fwd_bwd_b{batch}"),
        iters,
        || {
            model
                .forward_t(&x, true)?
                .logits
                .sqr()?
                .mean_all()?
                .backward()?;
            dev.synchronize()
        },
    )?);
    let xc = candle_core::Var::from_tensor(&rng.normal((2, 64, 8, 56, 56), 0.0, 1.0, dev)?)?;
    let w = candle_core::Var::from_tensor(&rng.normal((64, 64, 3, 3, 3), 0.0, 0.05, dev)?)?;
    let (xd, wd) = (xc.as_detached_tensor(), w.as_detached_tensor());
    out.push(time_it("conv3d_3x3x3_64_fwd", iters, || {
        crate::nn::conv3d::conv3d(&xd, &wd, [1, 1, 1], [1, 1, 1])?;
        dev.synchronize()
    })?);
    out.push(time_it("conv3d_3x3x3_64_fwd_bwd", iters, || {
        crate::nn::conv3d::conv3d(&xc, &w, [1, 1, 1], [1, 1, 1])?
            .sqr()?
            .mean_all()?
            .backward()?;
        dev.synchronize()
    })?);
    Ok(out)
}

/// The audio front end, single-threaded: XKD's log-mel of 4 s at 16 kHz ([1, 80, 448]), and
/// decoding `mp3` to mono, without and with resampling to 16 kHz (one file load of a data loader;
/// tests/fixtures/media/tone1k_10s_44k_stereo.mp3 is a 10 s 44.1 kHz stereo file).
pub fn audio(mp3: &Path, iters: usize) -> Result<Vec<Timing>> {
    let lm = LogMel::new(LogMelConfig::xkd())?;
    // A tone in deterministic noise (the cost does not depend on the values).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let wav: Vec<f32> = (0..64_000)
        .map(|i| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            0.3 * (i as f32 * 0.2).sin() + 0.05 * noise
        })
        .collect();
    Ok(vec![
        time_it("xkd_logmel_4s", iters, || {
            lm.forward(&wav, &Device::Cpu)?;
            Ok(())
        })?,
        time_it("decode_mp3_10s", iters, || {
            decode_file(mp3)?;
            Ok(())
        })?,
        time_it("decode_resample_mp3_10s", iters, || {
            load_file(mp3, XKD_SAMPLE_RATE)?;
            Ok(())
        })?,
    ])
}
