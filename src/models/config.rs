//! One enum of model kinds, the `config.json` of an avkd model folder, and its
//! `preprocessor_config.json`.
//!
//! `config.json` is the kind's architecture config with a `model_type` tag beside its fields (the
//! Hugging Face convention), plus `id2label` for classifiers:
//! `{"model_type": "xkd-video", "transformer": {...}, "num_frames": 32, ...}`.

use crate::models::ccl::cnn14::Cnn14Config;
use crate::models::ccl::r2plus1d::R2Plus1dConfig;
use crate::models::ccl::resnet::ResNetConfig;
use crate::models::classifier::VideoClassifierConfig;
use crate::models::xkd::net::{XkdConfig, XkdVariant};
use crate::models::xkd::{AudioVitConfig, VideoVitConfig};
use candle_core::Result;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The CCL composition head's shape (`CompositionClassifier(dim, classes, True)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompositionConfig {
    pub dim: usize,
    pub num_classes: usize,
}

/// Every model kind avkd builds, with its architecture config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model_type")]
pub enum ModelConfig {
    /// XKD video backbone (student or teacher).
    #[serde(rename = "xkd-video")]
    XkdVideo(VideoVitConfig),
    /// XKD audio backbone (student or teacher).
    #[serde(rename = "xkd-audio")]
    XkdAudio(AudioVitConfig),
    /// A fine-tuned XKD video student: backbone + pooled features + Linear head.
    #[serde(rename = "xkd-video-classifier")]
    XkdVideoClassifier(VideoClassifierConfig),
    /// Full pretraining nets (students, teachers, MAE decoders, DINO heads, DINO centres).
    #[serde(rename = "xkd")]
    Xkd(XkdConfig),
    #[serde(rename = "xkd-mas")]
    XkdMas(XkdConfig),
    #[serde(rename = "xkd-mats")]
    XkdMats(XkdConfig),
    /// CCL's R(2+1)D student (with its `fc` classifier).
    #[serde(rename = "ccl-r2plus1d")]
    CclR2Plus1d(R2Plus1dConfig),
    /// CCL's compositional embedding head.
    #[serde(rename = "ccl-composition")]
    CclComposition(CompositionConfig),
    /// torchvision ResNet (CCL's ImageNet teacher: ResNet-34).
    #[serde(rename = "resnet")]
    ResNet(ResNetConfig),
    /// PANNs Cnn14_emb512 (CCL's AudioSet teacher), including its STFT / log-mel front end.
    #[serde(rename = "panns-cnn14")]
    PannsCnn14(Cnn14Config),
}

/// What a model takes as input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// A normalised clip [B, C, T, H, W].
    Clip,
    /// A normalised log-mel spectrogram [B, 1, F, T].
    Spectrogram,
    /// A mono waveform [B, N].
    Waveform,
    /// Normalised images [B, C, H, W] (a clip's frames are averaged in feature space).
    Image,
    /// A teacher embedding `teacher` [N, D] and a video embedding `video` [N, D].
    EmbeddingPair,
}

pub const MODEL_TYPES: &[&str] = &[
    "xkd-video",
    "xkd-audio",
    "xkd-video-classifier",
    "xkd",
    "xkd-mas",
    "xkd-mats",
    "ccl-r2plus1d",
    "ccl-composition",
    "resnet",
    "panns-cnn14",
];

impl ModelConfig {
    /// The `model_type` tag.
    pub fn model_type(&self) -> &'static str {
        match self {
            Self::XkdVideo(_) => "xkd-video",
            Self::XkdAudio(_) => "xkd-audio",
            Self::XkdVideoClassifier(_) => "xkd-video-classifier",
            Self::Xkd(_) => "xkd",
            Self::XkdMas(_) => "xkd-mas",
            Self::XkdMats(_) => "xkd-mats",
            Self::CclR2Plus1d(_) => "ccl-r2plus1d",
            Self::CclComposition(_) => "ccl-composition",
            Self::ResNet(_) => "resnet",
            Self::PannsCnn14(_) => "panns-cnn14",
        }
    }

    /// The full-net kind of an XKD config (its `variant` decides).
    pub fn xkd_net(cfg: XkdConfig) -> Self {
        match cfg.variant {
            XkdVariant::Xkd => Self::Xkd(cfg),
            XkdVariant::Mas => Self::XkdMas(cfg),
            XkdVariant::Mats => Self::XkdMats(cfg),
        }
    }

    pub fn input_kind(&self) -> InputKind {
        match self {
            Self::XkdVideo(_)
            | Self::XkdVideoClassifier(_)
            | Self::CclR2Plus1d(_)
            | Self::Xkd(_)
            | Self::XkdMas(_)
            | Self::XkdMats(_) => InputKind::Clip,
            Self::XkdAudio(_) => InputKind::Spectrogram,
            Self::PannsCnn14(_) => InputKind::Waveform,
            Self::ResNet(_) => InputKind::Image,
            Self::CclComposition(_) => InputKind::EmbeddingPair,
        }
    }

    /// Number of output classes, for kinds that have a classifier.
    pub fn num_classes(&self) -> Option<usize> {
        match self {
            Self::XkdVideoClassifier(c) => Some(c.num_classes),
            Self::CclR2Plus1d(c) => Some(c.num_classes),
            Self::CclComposition(c) => Some(c.num_classes),
            Self::ResNet(c) => c.num_classes,
            Self::PannsCnn14(c) => Some(c.classes_num),
            _ => None,
        }
    }

    /// Checks what serde cannot: a full net's tag agrees with its `variant`.
    pub fn validate(&self) -> Result<()> {
        let (tag, variant) = match self {
            Self::Xkd(c) => ("xkd", c.variant),
            Self::XkdMas(c) => ("xkd-mas", c.variant),
            Self::XkdMats(c) => ("xkd-mats", c.variant),
            _ => return Ok(()),
        };
        if Self::xkd_net(XkdConfig::official(variant)).model_type() != tag {
            candle_core::bail!("config: model_type `{tag}` but variant {variant:?}")
        }
        Ok(())
    }
}

/// `config.json` of an avkd model folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedConfig {
    #[serde(flatten)]
    pub model: ModelConfig,
    /// Class names of classifiers (index -> name), as in transformers' configs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id2label: Option<BTreeMap<usize, String>>,
}

impl SavedConfig {
    pub fn new(model: ModelConfig) -> Self {
        Self {
            model,
            id2label: None,
        }
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| candle_core::Error::Msg(format!("reading {}: {e}", path.display())))?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| {
            candle_core::Error::Msg(format!(
                "{}: not an avkd model config ({e}); `model_type` must be one of {}",
                path.display(),
                MODEL_TYPES.join(", ")
            ))
        })?;
        cfg.model
            .validate()
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
        Ok(cfg)
    }

    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
}

/// `preprocessor_config.json`: how inputs must be prepared for the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocessorConfig {
    pub input: InputKind,
    /// Video: frames per clip, sampling rate, crop size, and the per-channel normalisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_frames: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop_size: Option<usize>,
    /// Short side the frames are resized to before cropping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize_short_side: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<[f64; 3]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<[f64; 3]>,
    /// Audio: sample rate, clip length, STFT / mel parameters and the spectrogram standardisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_fft: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_mels: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmin: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmax: Option<f64>,
    /// (x - mean) / std applied to the log-mel spectrogram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_std: Option<f64>,
}

/// ImageNet statistics (XKD, torchvision ResNet).
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];
/// CCL's `--mean_dataset kinetics` statistics.
pub const CCL_KINETICS_MEAN: [f64; 3] = [0.4345, 0.4051, 0.3775];
pub const CCL_KINETICS_STD: [f64; 3] = [0.2768, 0.2713, 0.2737];

impl PreprocessorConfig {
    fn empty(input: InputKind) -> Self {
        Self {
            input,
            num_frames: None,
            fps: None,
            crop_size: None,
            resize_short_side: None,
            mean: None,
            std: None,
            sample_rate: None,
            audio_seconds: None,
            n_fft: None,
            hop_length: None,
            n_mels: None,
            fmin: None,
            fmax: None,
            spec_mean: None,
            spec_std: None,
        }
    }

    /// XKD's video input (xkd.md §6.1): `frames` at 8 fps, ImageNet normalisation.
    pub fn xkd_video(frames: usize, size: usize) -> Self {
        Self {
            num_frames: Some(frames),
            fps: Some(8.0),
            crop_size: Some(size),
            resize_short_side: Some(size),
            mean: Some(IMAGENET_MEAN),
            std: Some(IMAGENET_STD),
            ..Self::empty(InputKind::Clip)
        }
    }

    /// XKD's audio input (xkd.md §6.2): 16 kHz, librosa STFT 1024/143, 80 Slaney mels, ln, and the
    /// Kinetics-Sound standardisation. `frames` = 448 for 4 s.
    pub fn xkd_audio(n_mels: usize, frames: usize) -> Self {
        Self {
            sample_rate: Some(16000),
            // 448 frames = 1 + 64000 // 143: XKD's 4 s clips (to 0.1 s).
            audio_seconds: Some((frames as f64 * 143.0 / 16000.0 * 10.0).floor() / 10.0),
            n_fft: Some(1024),
            hop_length: Some(143),
            n_mels: Some(n_mels),
            fmin: Some(0.0),
            fmax: Some(8000.0),
            spec_mean: Some(-5.3688107),
            spec_std: Some(4.410007),
            ..Self::empty(InputKind::Spectrogram)
        }
    }

    /// The default preprocessing of a model kind, from its architecture config.
    pub fn for_model(cfg: &ModelConfig) -> Self {
        match cfg {
            ModelConfig::XkdVideo(v) => Self::xkd_video(v.num_frames, v.image_size[0]),
            ModelConfig::XkdVideoClassifier(c) => {
                Self::xkd_video(c.backbone.num_frames, c.backbone.image_size[0])
            }
            ModelConfig::Xkd(c) | ModelConfig::XkdMas(c) | ModelConfig::XkdMats(c) => {
                Self::xkd_video(c.video.num_frames, c.video.image_size[0])
            }
            ModelConfig::XkdAudio(a) => Self::xkd_audio(a.spec_size[0], a.spec_size[1]),
            // ccl.md §6.3: 16 consecutive frames, short side 112, centre crop, Kinetics statistics.
            ModelConfig::CclR2Plus1d(_) => Self {
                num_frames: Some(16),
                crop_size: Some(112),
                resize_short_side: Some(112),
                mean: Some(CCL_KINETICS_MEAN),
                std: Some(CCL_KINETICS_STD),
                ..Self::empty(InputKind::Clip)
            },
            ModelConfig::ResNet(_) => Self {
                crop_size: Some(112),
                resize_short_side: Some(112),
                mean: Some(IMAGENET_MEAN),
                std: Some(IMAGENET_STD),
                ..Self::empty(InputKind::Image)
            },
            ModelConfig::PannsCnn14(c) => Self {
                sample_rate: Some(c.sample_rate),
                n_fft: Some(c.window_size),
                hop_length: Some(c.hop_size),
                n_mels: Some(c.mel_bins),
                fmin: Some(c.fmin),
                fmax: Some(c.fmax),
                ..Self::empty(InputKind::Waveform)
            },
            ModelConfig::CclComposition(_) => Self::empty(InputKind::EmbeddingPair),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::xkd::VitSize;

    #[test]
    fn config_json_is_tagged_and_round_trips() {
        let cfg = SavedConfig::new(ModelConfig::XkdVideo(VideoVitConfig::xkd(VitSize::Base)));
        let json = cfg.to_json().unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["model_type"], "xkd-video");
        assert_eq!(value["transformer"]["embed_dim"], 768);
        assert!(value.get("id2label").is_none());
        let back: SavedConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg);

        let mut cls = SavedConfig::new(ModelConfig::CclR2Plus1d(R2Plus1dConfig::official(18, 2)));
        cls.id2label = Some(BTreeMap::from([(0, "a".into()), (1, "b".into())]));
        let back: SavedConfig = serde_json::from_str(&cls.to_json().unwrap()).unwrap();
        assert_eq!(back, cls);
    }

    #[test]
    fn net_tag_must_match_variant() {
        let bad = ModelConfig::XkdMas(XkdConfig::official(XkdVariant::Xkd));
        assert!(bad.validate().is_err());
        let good = ModelConfig::xkd_net(XkdConfig::official(XkdVariant::Mats));
        assert_eq!(good.model_type(), "xkd-mats");
        good.validate().unwrap();
    }
}
