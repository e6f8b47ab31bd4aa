//! The fine-tuning model of XKD's video evaluation (`vit_video2.VideoViT` + `engine.utils.Classifier`):
//! the encoder, the mean of its patch tokens (CLS excluded), dropout, and a Linear head with the
//! official orthogonal init. avkd names the head `head.{weight,bias}` (official: `head.classifier.*`).

use crate::models::xkd::encoder::{forward_encoder, pool_patch_tokens};
use crate::models::xkd::{VideoViT, VideoVitConfig};
use crate::nn::dropout::dropout;
use crate::nn::init::orthogonal;
use crate::nn::linear::Linear;
use crate::nn::rng::SeededRng;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoClassifierConfig {
    pub backbone: VideoVitConfig,
    pub num_classes: usize,
    /// Dropout before the head (XKD fine-tuning: 0.5).
    pub head_dropout: f64,
}

#[derive(Debug, Clone)]
pub struct VideoClassifier {
    backbone: VideoViT,
    head: Linear,
    cfg: VideoClassifierConfig,
}

impl VideoClassifier {
    pub fn new(cfg: &VideoClassifierConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.backbone.transformer.embed_dim;
        let backbone = VideoViT::new(&cfg.backbone, vb.clone())?;
        let head = Linear::new(
            d,
            cfg.num_classes,
            true,
            orthogonal(1.0),
            Init::Const(0.),
            vb.pp("head"),
        )?;
        Ok(Self {
            backbone,
            head,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &VideoClassifierConfig {
        &self.cfg
    }

    pub fn backbone(&self) -> &VideoViT {
        &self.backbone
    }

    /// Pooled features [B, D]; `rng` is `Some` in training (drop path).
    pub fn features(&self, x: &Tensor, rng: Option<&mut SeededRng>) -> Result<Tensor> {
        pool_patch_tokens(&forward_encoder(&self.backbone, x, false, rng)?.0)
    }

    /// Logits [B, classes]; `rng` is `Some` in training (drop path and head dropout).
    pub fn forward_t(&self, x: &Tensor, mut rng: Option<&mut SeededRng>) -> Result<Tensor> {
        let feats = self.features(x, rng.as_deref_mut())?;
        self.head
            .forward(&dropout(&feats, self.cfg.head_dropout, rng)?)
    }
}

impl Module for VideoClassifier {
    /// Evaluation-mode logits.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, None)
    }
}
