//! The configuration of a whole XKD net (`XKD_Net`, XKD-MAS, XKD-MATS): the variant, the two
//! encoders and decoders, the DINO head and the objective's coefficients and temperatures.

use super::config::{AudioVitConfig, DinoHeadConfig, MaeDecoderConfig, VideoVitConfig, VitSize};
use super::refine::CrossModalAttnMode;
use crate::nn::interpolate::AxisRule;
use crate::nn::vit::TransformerConfig;
use serde::{Deserialize, Serialize};
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XkdVariant {
    /// Modality-specific students and teachers.
    Xkd,
    /// Modality-agnostic student: one set of blocks for both students.
    Mas,
    /// Modality-agnostic student and teacher.
    Mats,
}

impl XkdVariant {
    /// The `model_type` of a saved net of this variant.
    pub fn model_type(self) -> &'static str {
        match self {
            Self::Xkd => "xkd",
            Self::Mas => "xkd-mas",
            Self::Mats => "xkd-mats",
        }
    }

    pub fn shares_student_blocks(self) -> bool {
        matches!(self, Self::Mas | Self::Mats)
    }

    pub fn shares_teacher_blocks(self) -> bool {
        matches!(self, Self::Mats)
    }
}

/// Temperatures and loss weights of the XKD objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XkdObjectiveConfig {
    pub teacher_temp_video: f64,
    pub teacher_temp_audio: f64,
    pub student_temp_video: f64,
    pub student_temp_audio: f64,
    pub center_momentum: f64,
    pub align_coeff: f64,
    pub kd_coeff: f64,
    pub recon_coeff: f64,
    pub cross_modal_attn: CrossModalAttnMode,
}

impl Default for XkdObjectiveConfig {
    /// The XKD (K400) values; MAS/MATS warm their teacher temperatures up from 0.09/0.04 to 0.11/0.06.
    fn default() -> Self {
        Self {
            teacher_temp_video: 0.1,
            teacher_temp_audio: 0.07,
            student_temp_video: 0.1,
            student_temp_audio: 0.1,
            center_momentum: 0.9,
            align_coeff: 1.0,
            kd_coeff: 1.0,
            recon_coeff: 5.0,
            cross_modal_attn: CrossModalAttnMode::Mean,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XkdConfig {
    pub variant: XkdVariant,
    pub video: VideoVitConfig,
    pub audio: AudioVitConfig,
    pub video_decoder: MaeDecoderConfig,
    pub audio_decoder: MaeDecoderConfig,
    pub head: DinoHeadConfig,
    #[serde(default)]
    pub objective: XkdObjectiveConfig,
}

impl XkdConfig {
    /// The official configuration: ViT-B encoders, 4x384 decoders, masking 85 % / 80 %.
    pub fn official(variant: XkdVariant) -> Self {
        Self {
            variant,
            video: VideoVitConfig::xkd(VitSize::Base),
            audio: AudioVitConfig::xkd(VitSize::Base),
            video_decoder: MaeDecoderConfig::xkd(VitSize::BaseDecoder, 0.85),
            audio_decoder: MaeDecoderConfig::xkd(VitSize::BaseDecoder, 0.8),
            head: DinoHeadConfig::xkd(768),
            objective: XkdObjectiveConfig::default(),
        }
    }

    /// A tiny XKD net for tests and the quickstart's own student: 4-block 64-d encoders on 8x32x32
    /// clips and 16x64 spectrograms (the synthetic dataset's sizes), 2-block 32-d decoders.
    pub fn tiny_synthetic() -> Self {
        let enc = TransformerConfig::xkd(64, 4, 4);
        Self {
            variant: XkdVariant::Xkd,
            video: VideoVitConfig {
                transformer: enc,
                in_channels: 3,
                num_frames: 8,
                image_size: [32, 32],
                patch_size: [8, 8],
                tubelet_size: 2,
                pos_embed_axis_rule: AxisRule::Cuda,
            },
            audio: AudioVitConfig {
                transformer: enc,
                in_channels: 1,
                spec_size: [16, 64],
                patch_size: [4, 16],
            },
            video_decoder: MaeDecoderConfig {
                transformer: TransformerConfig::xkd(32, 2, 4),
                mask_ratio: 0.85,
                norm_pix_loss: true,
            },
            audio_decoder: MaeDecoderConfig {
                transformer: TransformerConfig::xkd(32, 2, 4),
                mask_ratio: 0.8,
                norm_pix_loss: true,
            },
            head: DinoHeadConfig {
                in_dim: 64,
                hidden_dim: 128,
                bottleneck_dim: 32,
                out_dim: 256,
                nlayers: 3,
                layer_norm_eps: 1e-5,
            },
            objective: XkdObjectiveConfig::default(),
        }
    }
}
