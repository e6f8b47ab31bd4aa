//! Reading PyTorch `torch.save` files (zip format) as named tensors, without executing any code:
//! candle's unpickler only builds data. `key` selects a nested state_dict (e.g. "model", "state_dict").

use candle_core::{Result, Tensor};
use std::path::Path;

pub fn read_state_dict(path: &Path, key: Option<&str>) -> Result<Vec<(String, Tensor)>> {
    let tensors = candle_core::pickle::read_all_with_key(path, key).map_err(|e| {
        candle_core::Error::Msg(format!(
            "reading PyTorch checkpoint {}: {e}",
            path.display()
        ))
    })?;
    if tensors.is_empty() {
        candle_core::bail!(
            "PyTorch checkpoint {} holds no tensors{}",
            path.display(),
            key.map(|k| format!(" under key `{k}`")).unwrap_or_default()
        )
    }
    Ok(tensors)
}
