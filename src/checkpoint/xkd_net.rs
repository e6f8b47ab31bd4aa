//! Official full XKD nets (`XKD_Net.state_dict()`) in avkd naming, with their aliases checked.

use super::keymap::{xkd_net_to_avkd, XkdNetKey};
use candle_core::{DType, Result, Tensor};
use std::collections::BTreeMap;

/// An official full XKD / XKD-MAS / XKD-MATS net in avkd naming.
#[derive(Debug, Clone)]
pub struct XkdNetTensors {
    pub params: BTreeMap<String, Tensor>,
    pub vt2as_center: Tensor,
    pub at2vs_center: Tensor,
}

/// Maps an official `XKD_Net.state_dict()` (a training checkpoint's `model`, with or without the DDP
/// `module.` prefix). Every aliased name must hold exactly the tensor it aliases.
pub fn xkd_net_from_official(
    entries: Vec<(String, Tensor)>,
    shared_student: bool,
    shared_teacher: bool,
) -> Result<XkdNetTensors> {
    let mut params = BTreeMap::new();
    let mut aliases = Vec::new();
    let (mut vt2as, mut at2vs) = (None, None);
    for (key, t) in entries {
        let key = key.strip_prefix("module.").unwrap_or(&key).to_string();
        let t = t.to_dtype(DType::F32)?;
        match xkd_net_to_avkd(&key, shared_student, shared_teacher) {
            XkdNetKey::Center("vt2as") => vt2as = Some(t),
            XkdNetKey::Center(_) => at2vs = Some(t),
            XkdNetKey::Alias(target) => aliases.push((key, target, t)),
            XkdNetKey::Param(name) => match params.get(&name) {
                // Shared blocks appear once per encoder; all copies must agree.
                Some(existing) => check_same(&key, &name, existing, &t)?,
                None => {
                    params.insert(name, t);
                }
            },
        }
    }
    for (key, target, t) in aliases {
        match params.get(&target) {
            Some(existing) => check_same(&key, &target, existing, &t)?,
            None => candle_core::bail!(
                "checkpoint key `{key}` aliases `{target}`, which the checkpoint does not hold"
            ),
        }
    }
    let missing = |what| {
        candle_core::Error::Msg(format!(
            "the checkpoint has no `{what}_ce_loss.center` buffer: not a full XKD net"
        ))
    };
    Ok(XkdNetTensors {
        params,
        vt2as_center: vt2as.ok_or_else(|| missing("vt2as"))?,
        at2vs_center: at2vs.ok_or_else(|| missing("at2vs"))?,
    })
}

fn check_same(key: &str, target: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dims() != b.dims() {
        candle_core::bail!("checkpoint key `{key}` should hold the same tensor as `{target}`: shapes {:?} and {:?}", b.dims(), a.dims())
    }
    let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    if diff != 0.0 {
        candle_core::bail!("checkpoint key `{key}` should hold the same tensor as `{target}`, but they differ by up to {diff}")
    }
    Ok(())
}
