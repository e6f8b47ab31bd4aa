//! Recognising what an official state dict holds from its tensor names and shapes, and inferring
//! the architecture config the shapes determine.
//!
//! Shapes fix widths, depths and class counts. They cannot fix everything: a ViT's head count, or
//! the split of a tubelet's length into frames × pixels, is not in the weights. Those start from
//! the official values (XKD: 12 heads of 64 channels, 4×16×16 tubelets, 32 frames of 112 px; PANNs:
//! 32 kHz, hop 320) and can be overridden with `--config`. The shape check that follows catches any
//! config that does not fit the tensors.

use super::keymap::Modality;
use crate::models::ccl::cnn14::Cnn14Config;
use crate::models::ccl::r2plus1d::R2Plus1dConfig;
use crate::models::ccl::resnet::ResNetConfig;
use crate::models::classifier::VideoClassifierConfig;
use crate::models::config::{CompositionConfig, ModelConfig};
use crate::models::xkd::net::{XkdConfig, XkdVariant};
use crate::models::xkd::{AudioVitConfig, VideoVitConfig, VitSize};
use crate::nn::vit::TransformerConfig;
use candle_core::{bail, Result};
use std::collections::BTreeMap;

/// Names and shapes of a state dict (DDP's `module.` prefix already removed).
pub type Shapes = BTreeMap<String, Vec<usize>>;

/// What a state dict holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// An XKD backbone (`*vid_student.pth.tar` training names, or evaluation names).
    XkdBackbone(Modality),
    /// A fine-tuned XKD video model (evaluation names, `head.classifier.*`).
    XkdClassifier,
    /// A full `XKD_Net` (students, teachers, decoders, heads, DINO centres).
    XkdNet,
    CclStudent,
    CclComposition,
    ResNet,
    Panns,
}

/// Recognises a state dict. `modality` settles video vs audio for evaluation-named backbones.
pub fn detect(shapes: &Shapes, modality: Option<Modality>) -> Result<SourceKind> {
    let has = |k: &str| shapes.contains_key(k);
    let any_prefix = |p: &str| shapes.keys().any(|k| k.starts_with(p));
    if has("vt2as_ce_loss.center") || any_prefix("vid_student.backbone.") {
        return Ok(SourceKind::XkdNet);
    }
    if has("logmel_extractor.melW") {
        return Ok(SourceKind::Panns);
    }
    if has("cls_token") {
        if has("head.classifier.weight") || has("head.weight") {
            return Ok(SourceKind::XkdClassifier);
        }
        if let Some(m) = modality {
            return Ok(SourceKind::XkdBackbone(m));
        }
        if has("cuboid_embed.proj.weight") {
            return Ok(SourceKind::XkdBackbone(Modality::Video));
        }
        // Evaluation names: a video tubelet holds 3 colour channels, a spectrogram patch one.
        let patch_dim = dim(shapes, "patch_embed.proj.weight", 1)?;
        let m = if patch_dim % 3 == 0 {
            Modality::Video
        } else {
            Modality::Audio
        };
        return Ok(SourceKind::XkdBackbone(m));
    }
    if has("conv1.spatial_conv.weight") {
        return Ok(SourceKind::CclStudent);
    }
    if has("conv1.weight") && has("layer1.0.conv1.weight") {
        return Ok(SourceKind::ResNet);
    }
    if has("mlp.weight") && has("fc.weight") && shapes.len() <= 4 {
        return Ok(SourceKind::CclComposition);
    }
    let first: Vec<&str> = shapes.keys().take(8).map(|s| s.as_str()).collect();
    bail!(
        "cannot tell which model this state dict holds (first keys: {}); pass --kind",
        first.join(", ")
    )
}

/// The source kind a `--kind` model type names.
pub fn source_for_kind(kind: &str, modality: Option<Modality>) -> Result<SourceKind> {
    Ok(match kind {
        "xkd-video" => SourceKind::XkdBackbone(Modality::Video),
        "xkd-audio" => SourceKind::XkdBackbone(Modality::Audio),
        "xkd-video-classifier" => SourceKind::XkdClassifier,
        "xkd" | "xkd-mas" | "xkd-mats" => SourceKind::XkdNet,
        "ccl-r2plus1d" => SourceKind::CclStudent,
        "ccl-composition" => SourceKind::CclComposition,
        "resnet" => SourceKind::ResNet,
        "panns-cnn14" => SourceKind::Panns,
        "xkd-backbone" => SourceKind::XkdBackbone(modality.unwrap_or(Modality::Video)),
        other => bail!(
            "unknown --kind `{other}`; one of {}",
            crate::models::config::MODEL_TYPES.join(", ")
        ),
    })
}

fn dim(shapes: &Shapes, key: &str, axis: usize) -> Result<usize> {
    match shapes.get(key).and_then(|s| s.get(axis)) {
        Some(&d) => Ok(d),
        None => bail!(
            "the state dict has no `{key}` with at least {} dimensions (found {:?})",
            axis + 1,
            shapes.get(key)
        ),
    }
}

/// Number of distinct `<prefix><index>.` entries.
fn count_indexed(shapes: &Shapes, prefix: &str) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    for k in shapes.keys() {
        if let Some(rest) = k.strip_prefix(prefix) {
            if let Some(i) = rest.split('.').next().and_then(|i| i.parse::<usize>().ok()) {
                seen.insert(i);
            }
        }
    }
    seen.len()
}

/// A ViT's transformer from avkd-named backbone shapes (`blocks.N.*`, `cls_token`).
/// `blocks` names where the blocks live (`{prefix}blocks.` for a backbone, `shared_student_blocks.`
/// for XKD-MAS's shared ones).
fn transformer(shapes: &Shapes, prefix: &str, blocks: &str) -> Result<TransformerConfig> {
    let d = dim(shapes, &format!("{prefix}cls_token"), 2)?;
    let depth = count_indexed(shapes, blocks);
    let mut t = TransformerConfig::xkd(d, depth, (d / 64).max(1));
    if depth > 0 {
        let hidden = dim(shapes, &format!("{blocks}0.mlp.fc1.weight"), 0)?;
        t.mlp_ratio = hidden as f64 / d as f64;
        t.qkv_bias = shapes.contains_key(&format!("{blocks}0.attn.qkv.bias"));
    }
    Ok(t)
}

/// The architecture config the (avkd-named) shapes determine, with the official values for what
/// they do not.
pub fn infer_config(kind: SourceKind, shapes: &Shapes) -> Result<ModelConfig> {
    Ok(match kind {
        SourceKind::XkdBackbone(Modality::Video) => ModelConfig::XkdVideo(video(shapes, "")?),
        SourceKind::XkdBackbone(Modality::Audio) => {
            let mut cfg = AudioVitConfig::xkd(VitSize::Base);
            cfg.transformer = transformer(shapes, "", "blocks.")?;
            ModelConfig::XkdAudio(cfg)
        }
        SourceKind::XkdClassifier => ModelConfig::XkdVideoClassifier(VideoClassifierConfig {
            backbone: video(shapes, "")?,
            // A backbone converted into a classifier has no head yet: `--config '{"num_classes": N}'`.
            num_classes: shapes.get("head.weight").map_or(0, |s| s[0]),
            head_dropout: 0.5,
        }),
        SourceKind::XkdNet => {
            let shared = shapes
                .keys()
                .any(|k| k.starts_with("shared_student_blocks."));
            let mut cfg = XkdConfig::official(
                match (
                    shared,
                    shapes
                        .keys()
                        .any(|k| k.starts_with("shared_teacher_blocks.")),
                ) {
                    (true, true) => XkdVariant::Mats,
                    (true, false) => XkdVariant::Mas,
                    _ => XkdVariant::Xkd,
                },
            );
            for (net, cfg_t) in [
                ("vid_student", &mut cfg.video.transformer),
                ("aud_student", &mut cfg.audio.transformer),
            ] {
                let blocks = match shared {
                    true => "shared_student_blocks.".to_string(),
                    false => format!("{net}.backbone.blocks."),
                };
                *cfg_t = transformer(shapes, &format!("{net}.backbone."), &blocks)?;
            }
            cfg.head.in_dim = cfg.video.transformer.embed_dim;
            ModelConfig::xkd_net(cfg)
        }
        SourceKind::CclStudent => {
            let depth = if shapes.keys().any(|k| k.starts_with("conv2.blocks.")) {
                34
            } else {
                18
            };
            let mut cfg = R2Plus1dConfig::official(depth, dim(shapes, "linear.weight", 0)?);
            for (i, w) in cfg.widths.iter_mut().enumerate() {
                *w = dim(shapes, &format!("conv{}.block1.bn2.weight", i + 2), 0)?;
            }
            cfg.in_channels = dim(shapes, "conv1.spatial_conv.weight", 1)?;
            ModelConfig::CclR2Plus1d(cfg)
        }
        SourceKind::ResNet => {
            let mut cfg = ResNetConfig::resnet34_teacher();
            for i in 0..4 {
                cfg.layers[i] = count_indexed(shapes, &format!("layer{}.", i + 1));
                cfg.widths[i] = dim(shapes, &format!("layer{}.0.conv1.weight", i + 1), 0)?;
            }
            cfg.num_classes = shapes.get("fc.weight").map(|s| s[0]);
            ModelConfig::ResNet(cfg)
        }
        SourceKind::Panns => {
            let mut cfg = Cnn14Config::panns();
            cfg.window_size = dim(shapes, "spectrogram_extractor.stft.conv_real.weight", 2)?;
            cfg.mel_bins = dim(shapes, "logmel_extractor.melW", 1)?;
            for (i, w) in cfg.widths.iter_mut().enumerate() {
                *w = dim(shapes, &format!("conv_block{}.conv1.weight", i + 1), 0)?;
            }
            cfg.emb_dim = dim(shapes, "fc1.weight", 0)?;
            cfg.classes_num = dim(shapes, "fc_audioset.weight", 0)?;
            ModelConfig::PannsCnn14(cfg)
        }
        SourceKind::CclComposition => ModelConfig::CclComposition(CompositionConfig {
            dim: dim(shapes, "mlp.weight", 0)?,
            num_classes: dim(shapes, "fc.weight", 0)?,
        }),
    })
}

fn video(shapes: &Shapes, prefix: &str) -> Result<VideoVitConfig> {
    let mut cfg = VideoVitConfig::xkd(VitSize::Base);
    cfg.transformer = transformer(shapes, prefix, &format!("{prefix}blocks."))?;
    Ok(cfg)
}

/// `base` with every field of `overrides` (a JSON object) merged in, recursively.
pub fn apply_overrides(cfg: &ModelConfig, overrides: &serde_json::Value) -> Result<ModelConfig> {
    fn merge(base: &mut serde_json::Value, over: &serde_json::Value) {
        match (base, over) {
            (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
                for (k, v) in o {
                    match b.get_mut(k) {
                        Some(slot) => merge(slot, v),
                        None => {
                            b.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (slot, v) => *slot = v.clone(),
        }
    }
    if !overrides.is_object() {
        bail!("--config must be a JSON object (or a file holding one), got {overrides}")
    }
    let mut value =
        serde_json::to_value(cfg).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    merge(&mut value, overrides);
    let out: ModelConfig = serde_json::from_value(value).map_err(|e| {
        candle_core::Error::Msg(format!(
            "--config does not fit a `{}` config: {e}",
            cfg.model_type()
        ))
    })?;
    out.validate()?;
    Ok(out)
}
