//! Official tensor names <-> avkd names.
//!
//! avkd's ViT names are timm-style (`cls_token`, `pos_embed`, `patch_embed.proj.*`, `blocks.N.*`,
//! `norm.*`), which is exactly what XKD's evaluation code loads after its rename of the pretraining
//! names (`encoder.blocks.*`, `encoder_norm.*`, `enc_pos_embed`, `cuboid_embed.*` for video).

use crate::models::config::ModelConfig;
use candle_core::{Result, Tensor};
use std::collections::BTreeMap;

/// XKD's evaluation rename (xkd.md §3.2), applied to one backbone key in the training layout.
pub fn xkd_backbone_to_avkd(key: &str) -> String {
    if let Some(rest) = key.strip_prefix("encoder.") {
        rest.to_string()
    } else if let Some(rest) = key.strip_prefix("encoder_") {
        rest.to_string()
    } else if key == "enc_pos_embed" {
        "pos_embed".to_string()
    } else if let Some(rest) = key.strip_prefix("cuboid_embed") {
        format!("patch_embed{rest}")
    } else {
        key.to_string()
    }
}

/// Which tokeniser name the official training layout uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    Video,
    Audio,
}

/// avkd backbone key -> the official pretraining (training-class) key.
pub fn avkd_to_xkd_backbone(key: &str, modality: Modality) -> String {
    if key.starts_with("blocks.") {
        format!("encoder.{key}")
    } else if let Some(rest) = key.strip_prefix("norm.") {
        format!("encoder_norm.{rest}")
    } else if key == "pos_embed" {
        "enc_pos_embed".to_string()
    } else if let (Some(rest), Modality::Video) = (key.strip_prefix("patch_embed"), modality) {
        format!("cuboid_embed{rest}")
    } else {
        key.to_string()
    }
}

/// The fine-tuning classifier's official evaluation names (`head.classifier.*`) -> avkd (`head.*`).
pub fn xkd_eval_to_avkd(key: &str) -> String {
    match key.strip_prefix("head.classifier.") {
        Some(rest) => format!("head.{rest}"),
        None => xkd_backbone_to_avkd(key),
    }
}

pub fn avkd_to_xkd_eval(key: &str) -> String {
    match key.strip_prefix("head.") {
        Some(rest) => format!("head.classifier.{rest}"),
        None => key.to_string(),
    }
}

/// Where one key of an official full `XKD_Net` state_dict goes in avkd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XkdNetKey {
    /// A parameter, under its avkd name.
    Param(String),
    /// A DINO centre buffer: `vt2as` (video teacher -> audio student) or `at2vs`.
    Center(&'static str),
    /// A second name for a tensor that is already mapped (the MAE encoder is the student backbone;
    /// the head's `mlp.4` is the same LayerNorm as `mlp.1`): verified equal, then dropped.
    Alias(String),
}

/// Maps one key of an official `XKD_Net.state_dict()` (`module.` already stripped).
/// `shared_student` / `shared_teacher`: the XKD-MAS / XKD-MATS block sharing.
pub fn xkd_net_to_avkd(key: &str, shared_student: bool, shared_teacher: bool) -> XkdNetKey {
    match key {
        "vt2as_ce_loss.center" => return XkdNetKey::Center("vt2as"),
        "at2vs_ce_loss.center" => return XkdNetKey::Center("at2vs"),
        _ => {}
    }
    for (ae, student) in [
        ("vid_ae.encoder.", "vid_student.backbone."),
        ("aud_ae.encoder.", "aud_student.backbone."),
    ] {
        if let Some(rest) = key.strip_prefix(ae) {
            return XkdNetKey::Alias(net_backbone_key(
                student,
                rest,
                shared_student,
                shared_teacher,
            ));
        }
    }
    for net in ["vid_student", "vid_teacher", "aud_student", "aud_teacher"] {
        if let Some(rest) = key
            .strip_prefix(net)
            .and_then(|r| r.strip_prefix(".backbone."))
        {
            return XkdNetKey::Param(net_backbone_key(
                &format!("{net}.backbone."),
                rest,
                shared_student,
                shared_teacher,
            ));
        }
        if let Some(rest) = key
            .strip_prefix(net)
            .and_then(|r| r.strip_prefix(".head.mlp."))
        {
            // Sequential indices 1, 4, 7, ... are all the one shared LayerNorm.
            if let Some((idx, param)) = rest.split_once('.') {
                if let Ok(i) = idx.parse::<usize>() {
                    if i % 3 == 1 && i > 1 {
                        return XkdNetKey::Alias(format!("{net}.head.mlp.1.{param}"));
                    }
                }
            }
        }
    }
    XkdNetKey::Param(key.to_string())
}

/// A backbone key of the full net (`<net>.backbone.<official>`) in avkd naming, with shared blocks
/// moved to `shared_{student,teacher}_blocks.N.*`.
fn net_backbone_key(
    prefix: &str,
    official: &str,
    shared_student: bool,
    shared_teacher: bool,
) -> String {
    let role_shared = if prefix.contains("_student") {
        shared_student.then_some("student")
    } else {
        shared_teacher.then_some("teacher")
    };
    match (official.strip_prefix("encoder.blocks."), role_shared) {
        (Some(block), Some(role)) => format!("shared_{role}_blocks.{block}"),
        _ => format!("{prefix}{}", xkd_backbone_to_avkd(official)),
    }
}

/// An avkd model's tensors under the official PyTorch names, so that the official code loads them
/// with `load_state_dict(strict=True)`: XKD backbones in the pretraining layout (as
/// `XKD_Net.save_state_dicts` writes them), fine-tuned classifiers in the evaluation layout, full nets
/// with every alias the official state dict repeats (the MAE encoders, the DINO heads' shared norm,
/// XKD-MAS/MATS' shared blocks), and CNNs with the `num_batches_tracked` counters BatchNorm saves.
pub fn avkd_to_official(
    cfg: &ModelConfig,
    tensors: BTreeMap<String, Tensor>,
) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::with_capacity(tensors.len());
    match cfg {
        ModelConfig::XkdVideo(_) | ModelConfig::XkdAudio(_) => {
            let m = match cfg {
                ModelConfig::XkdVideo(_) => Modality::Video,
                _ => Modality::Audio,
            };
            out.extend(
                tensors
                    .into_iter()
                    .map(|(k, t)| (avkd_to_xkd_backbone(&k, m), t)),
            );
        }
        ModelConfig::XkdVideoClassifier(_) => {
            out.extend(tensors.into_iter().map(|(k, t)| (avkd_to_xkd_eval(&k), t)));
        }
        ModelConfig::Xkd(c) | ModelConfig::XkdMas(c) | ModelConfig::XkdMats(c) => {
            let backbone = |net: &str, rest: &str| {
                let m = if net.starts_with("vid") {
                    Modality::Video
                } else {
                    Modality::Audio
                };
                let official = avkd_to_xkd_backbone(rest, m);
                let mut names = vec![format!("{net}.backbone.{official}")];
                if let Some(ae) = net.strip_suffix("_student") {
                    names.push(format!("{ae}_ae.encoder.{official}"));
                }
                names
            };
            for (k, t) in tensors {
                let names = if k == "vt2as_center" || k == "at2vs_center" {
                    vec![format!("{}_ce_loss.center", &k[..5])]
                } else if let Some(block) = k.strip_prefix("shared_student_blocks.") {
                    let rest = format!("blocks.{block}");
                    [
                        backbone("vid_student", &rest),
                        backbone("aud_student", &rest),
                    ]
                    .concat()
                } else if let Some(block) = k.strip_prefix("shared_teacher_blocks.") {
                    let rest = format!("blocks.{block}");
                    [
                        backbone("vid_teacher", &rest),
                        backbone("aud_teacher", &rest),
                    ]
                    .concat()
                } else if let Some((net, rest)) = k.split_once(".backbone.") {
                    backbone(net, rest)
                } else if let Some((net, param)) = k.split_once(".head.mlp.1.") {
                    // One LayerNorm appears after every hidden Linear: mlp.1, mlp.4, mlp.7, ...
                    (0..c.head.nlayers.saturating_sub(1))
                        .map(|j| format!("{net}.head.mlp.{}.{param}", 1 + 3 * j))
                        .collect()
                } else {
                    vec![k.clone()]
                };
                out.extend(names.into_iter().map(|n| (n, t.clone())));
            }
        }
        _ => {
            let dev = tensors.values().next().map(|t| t.device().clone());
            for (k, t) in tensors {
                if let (Some(bn), Some(dev)) = (k.strip_suffix(".running_mean"), &dev) {
                    let count = Tensor::zeros((), candle_core::DType::I64, dev)?;
                    out.push((format!("{bn}.num_batches_tracked"), count));
                }
                out.push((k, t));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backbone_names_round_trip() {
        for (official, avkd) in [
            (
                "encoder.blocks.3.attn.qkv.weight",
                "blocks.3.attn.qkv.weight",
            ),
            ("encoder_norm.bias", "norm.bias"),
            ("enc_pos_embed", "pos_embed"),
            ("cuboid_embed.proj.weight", "patch_embed.proj.weight"),
            ("cls_token", "cls_token"),
        ] {
            assert_eq!(xkd_backbone_to_avkd(official), avkd);
            assert_eq!(avkd_to_xkd_backbone(avkd, Modality::Video), official);
        }
        assert_eq!(
            avkd_to_xkd_backbone("patch_embed.proj.bias", Modality::Audio),
            "patch_embed.proj.bias"
        );
    }
}
