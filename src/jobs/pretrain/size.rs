//! The size of an XKD net: the official encoder / decoder / projector presets (`encoder_dict`,
//! `decoder_dict`, `projector_dict` of the official code), or a JSON file shaped like those entries:
//!
//! ```json
//! {"encoder": {"embed_dim": 192, "depth": 12, "num_heads": 3},
//!  "decoder": {"embed_dim": 96, "depth": 4, "num_heads": 3},
//!  "projector": {"out_dim": 8192, "hidden_dim": 2048, "bottleneck_dim": 256, "nlayers": 3}}
//! ```
//!
//! Keys left out take the `base` values; the patch geometry may be given with the official
//! constructor names (`vid_patch_spatial`, `vid_patch_temporal`, `spec_patch_spatial`). Unknown
//! keys are refused, so a typo never silently trains the default.

use crate::models::xkd::config::VitSize;
use crate::nn::vit::TransformerConfig;
use candle_core::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One transformer entry (`{"embed_dim", "depth", "num_heads"}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformerEntry {
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
}

impl TransformerEntry {
    fn preset(size: VitSize) -> Self {
        let (embed_dim, depth, num_heads) = size.dims();
        Self {
            embed_dim,
            depth,
            num_heads,
        }
    }

    pub fn transformer(&self) -> TransformerConfig {
        TransformerConfig::xkd(self.embed_dim, self.depth, self.num_heads)
    }
}

/// The DINO projector entry; the official `act`, `norm`, `last_norm` and `norm_last_layer` are
/// accepted only with the values avkd's head implements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectorEntry {
    pub out_dim: usize,
    pub hidden_dim: usize,
    pub bottleneck_dim: usize,
    pub nlayers: usize,
}

/// A whole net's size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetSize {
    pub encoder: TransformerEntry,
    pub decoder: TransformerEntry,
    pub projector: ProjectorEntry,
    /// Video patch (height, width) in pixels (official 16×16).
    pub vid_patch_spatial: [usize; 2],
    /// Frames per video tubelet (official 4).
    pub vid_patch_temporal: usize,
    /// Spectrogram patch (mel bins, frames) (official 4×16).
    pub spec_patch_spatial: [usize; 2],
}

impl NetSize {
    /// An official preset: `tiny`, `small`, `base` or `large` encoders with their decoders, and the
    /// one projector the official code defines (`2048-gelu-3-256-8192-norm3`).
    pub fn preset(name: &str) -> Result<Self> {
        let (encoder, decoder) = match name {
            "tiny" => (VitSize::Tiny, VitSize::TinyDecoder),
            "small" => (VitSize::Small, VitSize::SmallDecoder),
            "base" => (VitSize::Base, VitSize::BaseDecoder),
            "large" => (VitSize::Large, VitSize::LargeDecoder),
            other => candle_core::bail!(
                "unknown size `{other}`: expected tiny, small, base, large or a JSON file"
            ),
        };
        Ok(Self {
            encoder: TransformerEntry::preset(encoder),
            decoder: TransformerEntry::preset(decoder),
            projector: ProjectorEntry {
                out_dim: 8192,
                hidden_dim: 2048,
                bottleneck_dim: 256,
                nlayers: 3,
            },
            vid_patch_spatial: [16, 16],
            vid_patch_temporal: 4,
            spec_patch_spatial: [4, 16],
        })
    }

    /// `tiny|small|base|large`, or the path of a JSON file.
    pub fn parse(arg: &str) -> Result<Self> {
        match arg {
            "tiny" | "small" | "base" | "large" => Self::preset(arg),
            path => Self::from_json_file(Path::new(path)),
        }
    }

    pub fn from_json_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            candle_core::Error::Msg(format!(
                "--size {}: not a preset (tiny, small, base, large) and not a readable file: {e}",
                path.display()
            ))
        })?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
        Self::from_json(&value)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))
    }

    /// The `base` size with the entries `value` gives replaced.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let mut merged = serde_json::to_value(Self::preset("base")?)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| candle_core::Error::Msg("expected a JSON object".into()))?;
        for (key, entry) in obj {
            let slot = merged.get_mut(key).ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "unknown key `{key}`: expected encoder, decoder, projector, vid_patch_spatial, vid_patch_temporal or spec_patch_spatial"
                ))
            })?;
            merge_entry(key, slot, entry)?;
        }
        serde_json::from_value(merged).map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
}

/// Replaces `slot` by `entry`, or, for an object, each of its keys (known keys only). The official
/// projector descriptors that avkd's head fixes are checked instead of stored.
fn merge_entry(key: &str, slot: &mut serde_json::Value, entry: &serde_json::Value) -> Result<()> {
    let (Some(slot_obj), Some(entry_obj)) = (slot.as_object_mut(), entry.as_object()) else {
        *slot = entry.clone();
        return Ok(());
    };
    for (k, v) in entry_obj {
        if let Some(expected) = fixed_projector_value(key, k) {
            if v != &expected {
                candle_core::bail!(
                    "`{key}.{k}` is {v}; avkd's DINO head implements only {expected} (the official preset)"
                )
            }
            continue;
        }
        match slot_obj.get_mut(k) {
            Some(s) => *s = v.clone(),
            None => candle_core::bail!(
                "unknown key `{key}.{k}`: expected one of {}",
                slot_obj.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }
    Ok(())
}

fn fixed_projector_value(entry: &str, key: &str) -> Option<serde_json::Value> {
    if entry != "projector" {
        return None;
    }
    match key {
        "act" => Some("gelu".into()),
        "norm" | "last_norm" => Some("ln".into()),
        "norm_last_layer" => Some(true.into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_overrides_base_and_refuses_unknown_keys() -> Result<()> {
        let v = serde_json::json!({"encoder": {"embed_dim": 64, "num_heads": 4},
            "projector": {"out_dim": 256, "act": "gelu"}});
        let s = NetSize::from_json(&v)?;
        assert_eq!(
            (s.encoder.embed_dim, s.encoder.depth, s.encoder.num_heads),
            (64, 12, 4)
        );
        assert_eq!(s.decoder, NetSize::preset("base")?.decoder);
        assert_eq!((s.projector.out_dim, s.projector.hidden_dim), (256, 2048));
        let err = NetSize::from_json(&serde_json::json!({"encoder": {"dim": 3}})).unwrap_err();
        assert!(err.to_string().contains("encoder.dim"), "{err}");
        let err =
            NetSize::from_json(&serde_json::json!({"projector": {"act": "relu"}})).unwrap_err();
        assert!(err.to_string().contains("projector.act"), "{err}");
        assert!(NetSize::parse("huge").is_err());
        Ok(())
    }
}
