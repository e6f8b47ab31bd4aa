//! XKD architecture configurations: the official size presets and any size through config.json.

use crate::nn::interpolate::AxisRule;
use crate::nn::vit::TransformerConfig;
use serde::{Deserialize, Serialize};

/// The official encoder and decoder size presets (`encoder_dict` / `decoder_dict` of XKD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VitSize {
    Tiny,
    TinyH6,
    Small,
    SmallH12,
    Base,
    Large,
    LargeDecoder,
    BaseDecoder,
    BaseDecoderD1,
    SmallDecoder,
    TinyDecoder,
}

impl VitSize {
    /// (embed_dim, depth, num_heads)
    pub fn dims(self) -> (usize, usize, usize) {
        match self {
            Self::Tiny => (192, 12, 3),
            Self::TinyH6 => (192, 12, 6),
            Self::Small => (384, 12, 6),
            Self::SmallH12 => (384, 12, 12),
            Self::Base => (768, 12, 12),
            Self::Large => (1024, 24, 16),
            Self::LargeDecoder => (512, 8, 16),
            Self::BaseDecoder => (384, 4, 12),
            Self::BaseDecoderD1 => (384, 1, 12),
            Self::SmallDecoder => (192, 4, 6),
            Self::TinyDecoder => (96, 4, 3),
        }
    }

    pub fn transformer(self) -> TransformerConfig {
        let (d, depth, heads) = self.dims();
        TransformerConfig::xkd(d, depth, heads)
    }
}

/// The video encoder: tubelets of `tubelet_size` frames x `patch_size` pixels, embedded by a Linear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoVitConfig {
    pub transformer: TransformerConfig,
    pub in_channels: usize,
    /// Frames of the native clip (the positional embedding's time extent).
    pub num_frames: usize,
    /// Native (height, width) in pixels.
    pub image_size: [usize; 2],
    /// (height, width) of a patch in pixels.
    pub patch_size: [usize; 2],
    /// Frames per tubelet.
    pub tubelet_size: usize,
    /// How size-preserving axes are treated when the positional embedding is resampled.
    #[serde(default)]
    pub pos_embed_axis_rule: AxisRule,
}

impl VideoVitConfig {
    /// XKD's video encoder: 32 frames of 112x112, 4x16x16 tubelets.
    pub fn xkd(size: VitSize) -> Self {
        Self {
            transformer: size.transformer(),
            in_channels: 3,
            num_frames: 32,
            image_size: [112, 112],
            patch_size: [16, 16],
            tubelet_size: 4,
            pos_embed_axis_rule: AxisRule::Cuda,
        }
    }

    /// The native token grid (time, height, width).
    pub fn grid(&self) -> [usize; 3] {
        [
            self.num_frames / self.tubelet_size,
            self.image_size[0] / self.patch_size[0],
            self.image_size[1] / self.patch_size[1],
        ]
    }

    pub fn num_patches(&self) -> usize {
        self.grid().iter().product()
    }

    /// Length of one flattened tubelet (pt * ph * pw * C).
    pub fn patch_dim(&self) -> usize {
        self.tubelet_size * self.patch_size[0] * self.patch_size[1] * self.in_channels
    }
}

/// The audio encoder: (frequency x time) patches of a log-mel spectrogram, embedded by a Linear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioVitConfig {
    pub transformer: TransformerConfig,
    pub in_channels: usize,
    /// Native (mel bins, frames).
    pub spec_size: [usize; 2],
    /// (frequency, time) size of a patch.
    pub patch_size: [usize; 2],
}

impl AudioVitConfig {
    /// XKD's audio encoder: 80 mel bins x 448 frames, 4x16 patches.
    pub fn xkd(size: VitSize) -> Self {
        Self {
            transformer: size.transformer(),
            in_channels: 1,
            spec_size: [80, 448],
            patch_size: [4, 16],
        }
    }

    pub fn grid(&self) -> [usize; 2] {
        [
            self.spec_size[0] / self.patch_size[0],
            self.spec_size[1] / self.patch_size[1],
        ]
    }

    pub fn num_patches(&self) -> usize {
        self.grid().iter().product()
    }

    pub fn patch_dim(&self) -> usize {
        self.patch_size[0] * self.patch_size[1] * self.in_channels
    }
}

/// The MAE decoder of one modality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaeDecoderConfig {
    pub transformer: TransformerConfig,
    pub mask_ratio: f64,
    pub norm_pix_loss: bool,
}

impl MaeDecoderConfig {
    pub fn xkd(size: VitSize, mask_ratio: f64) -> Self {
        Self {
            transformer: size.transformer(),
            mask_ratio,
            norm_pix_loss: true,
        }
    }
}

/// The DINO projection head (`'2048-gelu-3-256-8192-norm3'`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DinoHeadConfig {
    pub in_dim: usize,
    pub hidden_dim: usize,
    pub bottleneck_dim: usize,
    pub out_dim: usize,
    pub nlayers: usize,
    pub layer_norm_eps: f64,
}

impl DinoHeadConfig {
    pub fn xkd(in_dim: usize) -> Self {
        Self {
            in_dim,
            hidden_dim: 2048,
            bottleneck_dim: 256,
            out_dim: 8192,
            nlayers: 3,
            layer_norm_eps: 1e-5,
        }
    }
}
