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
