//! The audio half of XKD's pre-training views (`GlobalLocalView` and `SpecAug` in
//! `datasets/augmentations/audio_augmentations.py`), on the clip's waveform (mono, already trimmed
//! or zero-padded to the clip's length, as `AudioPrep` leaves it):
//!
//! * global: volume jitter (×U(1 − v, 1 + v), `VolJitter`), log-mel, standardised;
//! * each local view: `local_audio_samples` samples from `randint(0, (n − len) // 100) · 100`,
//!   volume jitter, log-mel, standardised, then BYOL-A's RandomResizeCrop ([`SpecCrop`]).
//!
//! The log-mel and its standardisation are the [`LogMel`] given (XKD's: Kinetics-Sound's
//! (−5.3688107, 4.410007), as every XKD config uses). The volume factor multiplies the f32
//! waveform in f32, as numpy does for a float32 array times a Python float.

use super::mel::LogMel;
use super::pretrain_views::{PretrainViews, LOCAL_AUDIO_STEP};
use super::spec_crop::SpecCrop;
use super::spectrogram::Spectrogram;
use crate::nn::rng::SeededRng;
use candle_core::Result;

/// `VolJitter(vol)`: the waveform times U(1 − vol, 1 + vol); no draw when `vol` is 0.
fn volume_jitter(wav: &[f32], vol: f64, rng: &mut SeededRng) -> Vec<f32> {
    if vol == 0.0 {
        return wav.to_vec();
    }
    let gain = ((1.0 - vol) + 2.0 * vol * rng.uniform_f64()) as f32;
    wav.iter().map(|&x| x * gain).collect()
}

/// The global spectrogram then `num_local_views` local ones of a clip's waveform of exactly
/// [`PretrainViews::clip_samples`] samples. With XKD's values: [80, 448] then [80, 112] each.
pub fn audio_views(
    wav: &[f32],
    views: &PretrainViews,
    logmel: &LogMel,
    rng: &mut SeededRng,
) -> Result<Vec<Spectrogram>> {
    if wav.len() != views.clip_samples() {
        candle_core::bail!(
            "pre-training views: the clip's waveform has {} samples, expected {} ({} s at {} Hz)",
            wav.len(),
            views.clip_samples(),
            views.clip_seconds(),
            views.sample_rate
        )
    }
    if logmel.config().sample_rate != views.sample_rate as usize {
        candle_core::bail!(
            "pre-training views: the log-mel expects {} Hz audio, the views are at {} Hz",
            logmel.config().sample_rate,
            views.sample_rate
        )
    }
    let mut out = Vec::with_capacity(1 + views.num_local_views);
    let global = volume_jitter(wav, views.global_volume, rng);
    out.push(Spectrogram::log_mel(logmel, &global)?);
    let len = views.local_audio_samples();
    let last_step = (wav.len() - len) / LOCAL_AUDIO_STEP;
    for _ in 0..views.num_local_views {
        let start = rng.range(0, last_step + 1) * LOCAL_AUDIO_STEP;
        let local = volume_jitter(&wav[start..start + len], views.local_volume, rng);
        let spec = Spectrogram::log_mel(logmel, &local)?;
        out.push(if views.local_spec_crop {
            crop_spectrogram(&views.spec_crop, spec, rng)?
        } else {
            spec
        });
    }
    Ok(out)
}

fn crop_spectrogram(
    crop: &SpecCrop,
    spec: Spectrogram,
    rng: &mut SeededRng,
) -> Result<Spectrogram> {
    let data = crop.apply(&spec.data, spec.mels, spec.frames, rng)?;
    Ok(Spectrogram { data, ..spec })
}
