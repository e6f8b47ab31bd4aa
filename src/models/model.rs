//! Any avkd model, built from its [`ModelConfig`], and the one inference entry point every verb
//! uses (`embed`, `verify`, feature extraction): named outputs `tokens`, `features`, `logits`.

use super::ccl::cnn14::Cnn14Emb512;
use super::ccl::composition::CompositionClassifier;
use super::ccl::r2plus1d::R2Plus1d;
use super::ccl::resnet::ResNet;
use super::classifier::VideoClassifier;
use super::config::{InputKind, ModelConfig};
use super::xkd::encoder::pool_patch_tokens;
use super::xkd::net::XkdNet;
use super::xkd::{AudioViT, VideoViT, XkdEncoder};
use crate::nn::param_store::ParamStore;
use candle_core::{bail, DType, Device, Module, Result, Tensor};
use candle_nn::VarBuilder;
use std::collections::{BTreeMap, HashMap};

pub enum Model {
    XkdVideo(VideoViT),
    XkdAudio(AudioViT),
    XkdVideoClassifier(VideoClassifier),
    XkdNet(Box<XkdNet>),
    CclR2Plus1d(R2Plus1d),
    CclComposition(CompositionClassifier),
    ResNet(ResNet),
    PannsCnn14(Cnn14Emb512),
}

/// The tensors an input file may hold, by role.
#[derive(Default)]
pub struct ModelInputs {
    /// `input` (a clip, spectrogram, waveform or images).
    pub input: Option<Tensor>,
    /// The composition head's two inputs.
    pub teacher: Option<Tensor>,
    pub video: Option<Tensor>,
}

impl Model {
    /// Builds a model whose weights come from `vb`. Full XKD nets need a [`ParamStore`] (they share
    /// blocks and keep EMA teachers): use [`Model::from_store`] for them.
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        Ok(match cfg {
            ModelConfig::XkdVideo(c) => Self::XkdVideo(VideoViT::new(c, vb)?),
            ModelConfig::XkdAudio(c) => Self::XkdAudio(AudioViT::new(c, vb)?),
            ModelConfig::XkdVideoClassifier(c) => {
                Self::XkdVideoClassifier(VideoClassifier::new(c, vb)?)
            }
            ModelConfig::CclR2Plus1d(c) => Self::CclR2Plus1d(R2Plus1d::new(c, vb)?),
            ModelConfig::CclComposition(c) => {
                Self::CclComposition(CompositionClassifier::new(c.dim, c.num_classes, vb)?)
            }
            ModelConfig::ResNet(c) => Self::ResNet(ResNet::new(c, vb)?),
            ModelConfig::PannsCnn14(c) => Self::PannsCnn14(Cnn14Emb512::new(c, vb)?),
            ModelConfig::Xkd(_) | ModelConfig::XkdMas(_) | ModelConfig::XkdMats(_) => {
                let store = ParamStore::new(0, vb.dtype(), vb.device());
                return Self::from_store(cfg, &store);
            }
        })
    }

    /// Builds a model in `store`: names already there are used, missing ones are initialised from the
    /// store's seeded generator (the fine-tuning path: a pretrained backbone plus a fresh head).
    pub fn from_store(cfg: &ModelConfig, store: &ParamStore) -> Result<Self> {
        match cfg {
            ModelConfig::Xkd(c) | ModelConfig::XkdMas(c) | ModelConfig::XkdMats(c) => {
                Ok(Self::XkdNet(Box::new(XkdNet::new(c, store)?)))
            }
            _ => Self::new(cfg, store.builder()),
        }
    }

    /// Builds a model from named tensors (an avkd `model.safetensors`); every tensor the
    /// architecture needs must be there. Full nets also take their DINO centres from
    /// `vt2as_center` / `at2vs_center`.
    pub fn from_tensors(
        cfg: &ModelConfig,
        mut tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self> {
        match cfg {
            ModelConfig::Xkd(_) | ModelConfig::XkdMas(_) | ModelConfig::XkdMats(_) => {
                let centers = (
                    tensors.remove("vt2as_center"),
                    tensors.remove("at2vs_center"),
                );
                let store = ParamStore::new(0, DType::F32, device);
                store.insert_tensors(tensors)?;
                let mut model = Self::from_store(cfg, &store)?;
                if let (Self::XkdNet(net), (Some(vt2as), Some(at2vs))) = (&mut model, centers) {
                    net.set_centers(vt2as.to_device(device)?, at2vs.to_device(device)?)?;
                }
                Ok(model)
            }
            _ => Self::new(cfg, VarBuilder::from_tensors(tensors, DType::F32, device)),
        }
    }

    pub fn input_kind(&self) -> InputKind {
        match self {
            Self::XkdVideo(_) | Self::XkdVideoClassifier(_) | Self::CclR2Plus1d(_) => {
                InputKind::Clip
            }
            // A full net embeds with the student of the input's modality.
            Self::XkdNet(_) => InputKind::Clip,
            Self::XkdAudio(_) => InputKind::Spectrogram,
            Self::PannsCnn14(_) => InputKind::Waveform,
            Self::ResNet(_) => InputKind::Image,
            Self::CclComposition(_) => InputKind::EmbeddingPair,
        }
    }

    /// One output of [`Model::embed`] for a clip batch `x` (e.g. `logits` or `features`).
    pub fn clip_output(&self, x: &Tensor, key: &str) -> Result<Tensor> {
        let mut out = self.embed(&ModelInputs {
            input: Some(x.clone()),
            ..Default::default()
        })?;
        out.remove(key)
            .ok_or_else(|| candle_core::Error::Msg(format!("the model gives no `{key}`")))
    }

    /// Runs the model in evaluation mode. Outputs: `tokens` (ViTs: every token after the final norm,
    /// CLS first), `features` (the pooled feature each method uses downstream), `logits` (models with
    /// a classifier; PANNs' `clipwise_output` is its sigmoid).
    pub fn embed(&self, inputs: &ModelInputs) -> Result<BTreeMap<String, Tensor>> {
        let mut out = BTreeMap::new();
        let input = |rank: usize, what: &str| -> Result<Tensor> {
            let Some(x) = &inputs.input else {
                bail!("no tensor named `input` in the input file (the model takes {what})")
            };
            if x.rank() != rank {
                bail!("the model takes {what}; `input` has shape {:?}", x.dims())
            }
            x.to_dtype(DType::F32)
        };
        const CLIP: &str = "a clip [B, C, T, H, W]";
        const SPEC: &str = "a spectrogram [B, 1, F, T]";
        match self {
            Self::XkdVideo(m) => insert_vit(&mut out, m.forward(&input(5, CLIP)?)?)?,
            Self::XkdAudio(m) => insert_vit(&mut out, m.forward(&input(4, SPEC)?)?)?,
            Self::XkdNet(net) => {
                let rank = inputs.input.as_ref().map(|x| x.rank()).unwrap_or(0);
                let tokens = if rank == 4 {
                    net.audio_student().forward(&input(4, SPEC)?)?
                } else {
                    net.video_student().forward(&input(5, CLIP)?)?
                };
                insert_vit(&mut out, tokens)?
            }
            Self::XkdVideoClassifier(m) => {
                let x = input(5, CLIP)?;
                insert_vit(&mut out, m.backbone().forward(&x)?)?;
                out.insert("logits".into(), m.forward(&x)?);
            }
            Self::CclR2Plus1d(m) => {
                let o = m.forward_t(&input(5, CLIP)?, false)?;
                out.insert("features".into(), o.feature);
                out.insert("logits".into(), o.logits);
            }
            Self::ResNet(m) => {
                let x = input(4, "images [B, C, H, W]")?;
                out.insert("features".into(), m.features(&x)?);
                if m.has_classifier() {
                    out.insert("logits".into(), m.logits(&x)?);
                }
            }
            Self::PannsCnn14(m) => {
                let o = m.forward(&input(2, "a waveform [B, N]")?)?;
                out.insert("features".into(), o.embedding);
                out.insert("clipwise_output".into(), o.clipwise_output);
            }
            Self::CclComposition(head) => {
                let (Some(teacher), Some(video)) = (&inputs.teacher, &inputs.video) else {
                    bail!("a ccl-composition head takes two tensors, `teacher` [N, D] and `video` [N, D]")
                };
                let (logits, z) = head.forward(teacher, video)?;
                out.insert("logits".into(), logits);
                out.insert("features".into(), z);
            }
        }
        Ok(out)
    }
}

/// A ViT's outputs: all tokens and the mean of the patch tokens (CLS excluded, as XKD evaluates).
fn insert_vit(out: &mut BTreeMap<String, Tensor>, tokens: Tensor) -> Result<()> {
    out.insert("features".into(), pool_patch_tokens(&tokens)?);
    out.insert("tokens".into(), tokens);
    Ok(())
}
