//! Official tensor names <-> avkd names.
//!
//! avkd's ViT names are timm-style (`cls_token`, `pos_embed`, `patch_embed.proj.*`, `blocks.N.*`,
//! `norm.*`), which is exactly what XKD's evaluation code loads after its rename of the pretraining
//! names (`encoder.blocks.*`, `encoder_norm.*`, `enc_pos_embed`, `cuboid_embed.*` for video).

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
