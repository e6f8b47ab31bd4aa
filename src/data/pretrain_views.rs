//! The recipe of XKD's pre-training views (spec xkd §6, §2.6): how long the clip is, how many
//! frames at which rate, the crop sizes, how many local views, and every augmentation strength.
//!
//! [`PretrainViews::xkd`] holds the official values (`configs/pretext/kinetics400/xkd.yaml` and
//! `datasets/augmentations/*`): a 4-s clip (32 frames at 8 fps, 4 s of 16 kHz audio), a global
//! view of 32×112² frames and an 80×448 log-mel, and per local view 8×96² frames and a 1-s
//! 80×112 log-mel. Every field can be changed (the pre-training job exposes them as `--set` keys),
//! so tests can pre-train tiny nets on, e.g., 8 frames at 32 px; [`PretrainViews::validate`] says
//! which combinations cannot work. The struct is serde, so a checkpoint's config can record it.

use super::spec_crop::SpecCrop;
use super::transforms::blur::GaussianBlur;
use super::transforms::ColorJitter;
use candle_core::Result;
use serde::{Deserialize, Serialize};

fn msg(s: String) -> candle_core::Error {
    candle_core::Error::Msg(s)
}

/// What one pre-training sample is made of. Field names are the job's `--set` keys
/// (`global_frames` also answers to `frames`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainViews {
    /// Frames per second the video is resampled to (official: 8).
    pub fps: f64,
    /// Frames of the global view (official: 32). The clip lasts `global_frames / fps` seconds, for
    /// the video and for the audio.
    pub global_frames: usize,
    /// The global view's square crop, and the short side frames are resized to first (official: 112).
    pub crop: usize,
    /// RandomResizedCrop area range of the global view (official: (0.2, 1)).
    pub global_scale: (f64, f64),
    /// Frames of each local view, a contiguous window of the clip (official: 32 / 4 = 8).
    pub local_frames: usize,
    /// The local views' square crop (official: round(112 // 1.16) = 96).
    pub local_crop: usize,
    /// RandomResizedCrop area range of the local views (official: (0.08, 0.4)).
    pub local_scale: (f64, f64),
    /// RandomResizedCrop aspect-ratio range, both views (official: (3/4, 4/3)).
    pub ratio: (f64, f64),
    /// Horizontal-flip probability, both views (official: 0.5).
    pub hflip_prob: f64,
    /// ColorJitter strengths (brightness, contrast, saturation, hue), both views (official: 0.4,
    /// 0.4, 0.4, 0.2); all zero turns it off.
    pub color_jitter: [f64; 4],
    /// RandomGray probability of the local views (official: 0.2; the global view has none).
    pub local_gray_prob: f64,
    /// Gaussian-blur probability of the local views (official: 0.5; the global view has none).
    pub local_blur_prob: f64,
    /// The blur's (sigma_x, sigma_y). The official code passes its `sigma=(0.1, 2.0)` straight to
    /// torchvision's `gaussian_blur`, which reads a pair as (sigma_x, sigma_y): a fixed blur of
    /// sigma 0.1 across and 2.0 down, not a random sigma. The kernel side is `local_crop // 20 * 2
    /// + 1` (9 at 96 px).
    pub local_blur_sigma: (f64, f64),
    /// Local views per sample (official: 1 for XKD, 3 for XKD-MAS/MATS).
    pub num_local_views: usize,
    /// Audio sample rate (official: 16,000 Hz).
    pub sample_rate: u32,
    /// Length of each local audio view (official: 1 s, a quarter of the clip).
    pub local_audio_seconds: f64,
    /// Global audio volume jitter: the waveform is scaled by U(1 − v, 1 + v) (official: 0.1);
    /// 0 turns it off.
    pub global_volume: f64,
    /// Local audio volume jitter (official: 0.2).
    pub local_volume: f64,
    /// Whether each local log-mel gets BYOL-A's RandomResizeCrop (official: yes).
    pub local_spec_crop: bool,
    /// That crop's ranges (official: canvas (1.0, 1.5), scales (0.6, 1.5)).
    pub spec_crop: SpecCrop,
    /// A video whose video or audio stream lasts this long or less is not a pre-training sample
    /// (the official list keeps videos with both streams longer than 1.1 s).
    pub min_stream_seconds: f64,
}

/// Samples between the possible starts of a local audio view (`randint(0, n // 100) * 100`).
pub const LOCAL_AUDIO_STEP: usize = 100;

impl Default for PretrainViews {
    fn default() -> Self {
        Self::xkd()
    }
}

impl PretrainViews {
    /// The official XKD recipe (one local view).
    pub fn xkd() -> Self {
        Self {
            fps: 8.0,
            global_frames: 32,
            crop: 112,
            global_scale: (0.2, 1.0),
            local_frames: 8,
            local_crop: 96,
            local_scale: (0.08, 0.4),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            hflip_prob: 0.5,
            color_jitter: [0.4, 0.4, 0.4, 0.2],
            local_gray_prob: 0.2,
            local_blur_prob: 0.5,
            local_blur_sigma: (0.1, 2.0),
            num_local_views: 1,
            sample_rate: 16_000,
            local_audio_seconds: 1.0,
            global_volume: 0.1,
            local_volume: 0.2,
            local_spec_crop: true,
            spec_crop: SpecCrop::xkd(),
            min_stream_seconds: 1.1,
        }
    }

    /// XKD-MAS and XKD-MATS: the same views with three local views.
    pub fn xkd_multi_local() -> Self {
        Self {
            num_local_views: 3,
            ..Self::xkd()
        }
    }

    /// Seconds of video and of audio in a clip: `global_frames / fps` (official: 4).
    pub fn clip_seconds(&self) -> f64 {
        self.global_frames as f64 / self.fps
    }

    /// Audio samples of the clip, `int(seconds · rate)` as `AudioPrep` (official: 64,000).
    pub fn clip_samples(&self) -> usize {
        (self.clip_seconds() * self.sample_rate as f64) as usize
    }

    /// Audio samples of a local view (official: 16,000).
    pub fn local_audio_samples(&self) -> usize {
        (self.local_audio_seconds * self.sample_rate as f64) as usize
    }

    /// The ColorJitter of both views, `None` when every strength is 0 (the official code then
    /// leaves it out and draws nothing for it).
    pub fn jitter(&self) -> Option<ColorJitter> {
        let [brightness, contrast, saturation, hue] = self.color_jitter;
        (self.color_jitter.iter().any(|&v| v != 0.0)).then_some(ColorJitter {
            brightness,
            contrast,
            saturation,
            hue,
        })
    }

    /// The local views' Gaussian blur: kernel `local_crop // 20 * 2 + 1`, sigma
    /// [`Self::local_blur_sigma`].
    pub fn local_blur(&self) -> Result<GaussianBlur> {
        let (sx, sy) = self.local_blur_sigma;
        GaussianBlur::new(self.local_crop / 20 * 2 + 1, sx, sy)
    }

    /// Checks that the recipe can make views, naming the field, what it must be and what it is.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, expected: &str, found: String| {
            Err(msg(format!(
                "pre-training views: `{field}` must be {expected}, found {found}"
            )))
        };
        if !(self.fps.is_finite() && self.fps > 0.0) {
            return bad("fps", "a positive frame rate", self.fps.to_string());
        }
        if self.global_frames == 0 {
            return bad("global_frames", "at least 1", "0".into());
        }
        if self.local_frames == 0 || self.local_frames > self.global_frames {
            return bad(
                "local_frames",
                &format!("between 1 and global_frames ({})", self.global_frames),
                self.local_frames.to_string(),
            );
        }
        if self.crop == 0 {
            return bad("crop", "at least 1 pixel", "0".into());
        }
        if self.local_crop == 0 {
            return bad("local_crop", "at least 1 pixel", "0".into());
        }
        for (field, (lo, hi)) in [
            ("global_scale", self.global_scale),
            ("local_scale", self.local_scale),
            ("ratio", self.ratio),
        ] {
            if !(lo.is_finite() && hi.is_finite() && 0.0 < lo && lo <= hi) {
                return bad(
                    field,
                    "a range (lo, hi) with 0 < lo <= hi",
                    format!("({lo}, {hi})"),
                );
            }
        }
        for (field, p) in [
            ("hflip_prob", self.hflip_prob),
            ("local_gray_prob", self.local_gray_prob),
            ("local_blur_prob", self.local_blur_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(field, "a probability in [0, 1]", p.to_string());
            }
        }
        if let Some(j) = self.jitter() {
            j.validate()?;
        }
        self.local_blur()?;
        if self.sample_rate == 0 {
            return bad("sample_rate", "a positive rate in Hz", "0".into());
        }
        let clip = self.clip_samples();
        let local = self.local_audio_samples();
        if local == 0 || local > clip {
            return bad(
                "local_audio_seconds",
                &format!(
                    "positive and at most the clip's {} s (global_frames / fps)",
                    self.clip_seconds()
                ),
                self.local_audio_seconds.to_string(),
            );
        }
        for (field, v) in [
            ("global_volume", self.global_volume),
            ("local_volume", self.local_volume),
        ] {
            if !(0.0..1.0).contains(&v) {
                return bad(field, "a jitter in [0, 1)", v.to_string());
            }
        }
        self.spec_crop.validate()?;
        if !(self.min_stream_seconds.is_finite() && self.min_stream_seconds >= 0.0) {
            return bad(
                "min_stream_seconds",
                "a duration >= 0",
                self.min_stream_seconds.to_string(),
            );
        }
        Ok(())
    }
}
