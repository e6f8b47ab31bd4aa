//! XKD's optimiser parameter groups.
//!
//! * Fine-tuning (`codes/eval/engine/utils.py::get_params_groups`, from BEiT/MAE): layer-wise lr
//!   decay plus "no weight decay for 1-D tensors, `pos_embed` and `cls_token`".
//! * Pretraining (`codes/train/optimizers::get_params_groups`, from DINO): group 0 = biases and 1-D
//!   tensors without decay, group 1 = everything else (including the 3-D tokens and position
//!   embeddings) with decay. XKD's loop schedules the weight decay of group 1 only.
//!
//! Names follow timm/avkd: `cls_token`, `pos_embed`, `patch_embed.*`, `blocks.{i}.*`, `norm.*`,
//! `head.*`. A fine-tune model that nests the ViT under a prefix (avkd's `backbone.`) is handled by
//! stripping that prefix before the rules are applied; names outside the prefix (`head.*`) are used
//! as they are. The official eval model's `head.classifier.*` falls in the "everything else" bucket
//! exactly like `head.*`.

use super::optim::ParamGroup;
use candle_core::{Result, Var};

/// The prefix [`finetune_groups`] strips: avkd's fine-tune models keep the ViT under `backbone.`.
pub const BACKBONE_PREFIX: &str = "backbone.";

/// Names that are never decayed whatever their rank (`model.no_weight_decay()` in XKD's ViT).
const NO_WEIGHT_DECAY: [&str; 2] = ["pos_embed", "cls_token"];

/// BEiT's `get_layer_id_for_vit`: 0 for the embeddings, `i + 1` for block `i`, `num_layers` for
/// the rest (final norm, head).
fn layer_id(name: &str, num_layers: usize) -> Result<usize> {
    if NO_WEIGHT_DECAY.contains(&name) || name.starts_with("patch_embed") {
        return Ok(0);
    }
    if let Some(rest) = name.strip_prefix("blocks.") {
        let idx = rest.split('.').next().unwrap_or("");
        let Ok(i) = idx.parse::<usize>() else {
            candle_core::bail!("finetune_groups: cannot read the block index of `{name}`")
        };
        if i + 1 >= num_layers {
            candle_core::bail!(
                "finetune_groups: `{name}` is block {i} but the model has {} blocks",
                num_layers - 1
            )
        }
        return Ok(i + 1);
    }
    if name.starts_with("blocks") {
        candle_core::bail!("finetune_groups: unexpected block parameter name `{name}`")
    }
    Ok(num_layers)
}

/// Fine-tune groups with layer-wise lr decay, stripping a leading `backbone.` from the names before
/// applying the rules (see [`finetune_groups_with_prefix`]).
pub fn finetune_groups(
    named_vars: &[(String, Var)],
    weight_decay: f64,
    layer_decay: f64,
    num_blocks: usize,
) -> Result<Vec<ParamGroup>> {
    finetune_groups_with_prefix(
        named_vars,
        BACKBONE_PREFIX,
        weight_decay,
        layer_decay,
        num_blocks,
    )
}

/// Fine-tune groups as XKD builds them: no decay iff the tensor is 1-D or is `pos_embed` /
/// `cls_token`; layer id from [`layer_id`]; `lr_scale = layer_decay^(num_blocks + 1 - layer_id)`.
/// Groups are keyed by (layer id, decay) and ordered by first appearance, like the Python dict.
/// `prefix` is removed from names that start with it before the rules are applied (pass `""` for
/// none); the groups keep the full names.
pub fn finetune_groups_with_prefix(
    named_vars: &[(String, Var)],
    prefix: &str,
    weight_decay: f64,
    layer_decay: f64,
    num_blocks: usize,
) -> Result<Vec<ParamGroup>> {
    let num_layers = num_blocks + 1;
    let mut groups: Vec<(usize, bool, ParamGroup)> = Vec::new();
    for (full_name, var) in named_vars {
        let name = full_name.strip_prefix(prefix).unwrap_or(full_name);
        let decay = !(var.rank() == 1 || NO_WEIGHT_DECAY.contains(&name));
        let id = layer_id(name, num_layers)?;
        let pos = groups.iter().position(|(i, d, _)| *i == id && *d == decay);
        let pos = match pos {
            Some(p) => p,
            None => {
                let label = format!("layer_{id}_{}", if decay { "decay" } else { "no_decay" });
                let group = ParamGroup {
                    name: label,
                    vars: Vec::new(),
                    // Python's `layer_decay ** k` is C pow on floats.
                    lr_scale: layer_decay.powf((num_layers - id) as f64),
                    weight_decay: if decay { weight_decay } else { 0.0 },
                };
                groups.push((id, decay, group));
                groups.len() - 1
            }
        };
        let group = &mut groups[pos].2;
        group.vars.push((full_name.clone(), var.clone()));
    }
    Ok(groups.into_iter().map(|(_, _, g)| g).collect())
}

/// Pretraining groups: `[no_decay (biases and 1-D tensors, wd 0), decay (the rest, weight_decay)]`.
/// Both groups are always returned (possibly empty) so that group 1 is the decayed one, as the
/// training loop assumes.
pub fn pretrain_groups(named_vars: &[(String, Var)], weight_decay: f64) -> Vec<ParamGroup> {
    let mut no_decay = ParamGroup::new("no_decay", Vec::new(), 0.0);
    let mut decay = ParamGroup::new("decay", Vec::new(), weight_decay);
    for (name, var) in named_vars {
        if name.ends_with(".bias") || var.rank() == 1 {
            no_decay.vars.push((name.clone(), var.clone()));
        } else {
            decay.vars.push((name.clone(), var.clone()));
        }
    }
    vec![no_decay, decay]
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use std::collections::HashMap;

    fn var(shape: &[usize]) -> Var {
        Var::zeros(shape, DType::F32, &Device::Cpu).expect("zeros")
    }

    /// A 2-block ViT with timm names (D = 4), optionally under `prefix`.
    fn vit_vars(prefix: &str) -> Vec<(String, Var)> {
        let mut v = vec![
            ("cls_token".to_string(), var(&[1, 1, 4])),
            ("pos_embed".to_string(), var(&[1, 5, 4])),
            ("patch_embed.proj.weight".to_string(), var(&[4, 12])),
            ("patch_embed.proj.bias".to_string(), var(&[4])),
            ("norm.weight".to_string(), var(&[4])),
            ("norm.bias".to_string(), var(&[4])),
        ];
        for i in 0..2 {
            for (n, s) in [
                ("norm1.weight", vec![4]),
                ("norm1.bias", vec![4]),
                ("attn.qkv.weight", vec![12, 4]),
                ("attn.proj.weight", vec![4, 4]),
                ("attn.proj.bias", vec![4]),
                ("norm2.weight", vec![4]),
                ("norm2.bias", vec![4]),
                ("mlp.fc1.weight", vec![16, 4]),
                ("mlp.fc1.bias", vec![16]),
                ("mlp.fc2.weight", vec![4, 16]),
                ("mlp.fc2.bias", vec![4]),
            ] {
                v.push((format!("blocks.{i}.{n}"), var(&s)));
            }
        }
        let mut v: Vec<_> = v
            .into_iter()
            .map(|(n, x)| (format!("{prefix}{n}"), x))
            .collect();
        v.push(("head.weight".to_string(), var(&[3, 4])));
        v.push(("head.bias".to_string(), var(&[3])));
        v
    }

    fn table(groups: &[ParamGroup]) -> HashMap<String, (f64, f64)> {
        let mut t = HashMap::new();
        for g in groups {
            for (n, _) in &g.vars {
                assert!(t.insert(n.clone(), (g.lr_scale, g.weight_decay)).is_none());
            }
        }
        t
    }

    fn check_table(prefix: &str) -> Result<()> {
        let vars = vit_vars(prefix);
        let groups = finetune_groups(&vars, 0.05, 0.75, 2)?;
        assert_eq!(groups.len(), 8);
        let t = table(&groups);
        assert_eq!(t.len(), vars.len());
        let expect = |name: &str| -> (f64, f64) {
            let (scale, decayed) = match name {
                "cls_token" | "pos_embed" | "patch_embed.proj.bias" => (0.421875, false),
                "patch_embed.proj.weight" => (0.421875, true),
                "norm.weight" | "norm.bias" | "head.bias" => (1.0, false),
                "head.weight" => (1.0, true),
                n if n.starts_with("blocks.0.") => {
                    (0.5625, n.ends_with("weight") && !n.contains("norm"))
                }
                n if n.starts_with("blocks.1.") => {
                    (0.75, n.ends_with("weight") && !n.contains("norm"))
                }
                n => panic!("unexpected {n}"),
            };
            (scale, if decayed { 0.05 } else { 0.0 })
        };
        for (name, got) in &t {
            let short = name.strip_prefix(prefix).unwrap_or(name);
            assert_eq!(*got, expect(short), "{name}");
        }
        Ok(())
    }

    #[test]
    fn finetune_table_matches_xkd() -> Result<()> {
        check_table("")
    }

    #[test]
    fn finetune_table_with_backbone_prefix() -> Result<()> {
        check_table("backbone.")
    }

    #[test]
    fn finetune_rejects_out_of_range_block() {
        let vars = vec![("blocks.2.norm1.weight".to_string(), var(&[4]))];
        assert!(finetune_groups(&vars, 0.05, 0.75, 2).is_err());
    }

    #[test]
    fn pretrain_groups_decay_tokens() {
        let vars = vec![
            ("cls_token".to_string(), var(&[1, 1, 4])),
            ("mask_token".to_string(), var(&[1, 1, 4])),
            ("dec_pos_embed".to_string(), var(&[1, 5, 4])),
            ("x.bias".to_string(), var(&[4])),
            ("x.weight".to_string(), var(&[4, 4])),
            ("n.weight".to_string(), var(&[4])),
        ];
        let g = pretrain_groups(&vars, 0.04);
        let names = |i: usize| {
            g[i].vars
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(0), ["x.bias", "n.weight"]);
        assert_eq!(
            names(1),
            ["cls_token", "mask_token", "dec_pos_embed", "x.weight"]
        );
        assert_eq!((g[0].weight_decay, g[1].weight_decay), (0.0, 0.04));
    }
}
