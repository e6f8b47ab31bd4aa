//! Reading PyTorch `torch.save` files (zip format) as named tensors, without executing any code:
//! candle's unpickler only builds data. `key` selects a nested state_dict (e.g. "model", "state_dict").

use candle_core::{Result, Tensor};
use std::path::Path;

pub fn read_state_dict(path: &Path, key: Option<&str>) -> Result<Vec<(String, Tensor)>> {
    let tensors = match candle_core::pickle::read_all_with_key(path, key) {
        Ok(t) => t,
        Err(first) => read_without_zip64_trailer(path, key).map_err(|_| first)?,
    }
    .into_iter()
    .collect::<Vec<_>>();
    if tensors.is_empty() {
        candle_core::bail!(
            "PyTorch checkpoint {} holds no tensors{}",
            path.display(),
            key.map(|k| format!(" under key `{k}`")).unwrap_or_default()
        )
    }
    Ok(tensors)
}

/// torch writes a zip64 end record and locator (76 bytes) before the classic end record. When the
/// archive's first central-directory entry is also exactly 76 bytes long (a 30-character name such
/// as `model_init_eval_names/data.pkl`), the `zip` crate's guess of where the directory starts lands
/// on the second entry and it fails with "Invalid Central Directory header". The zip64 trailer is
/// redundant below 4 GiB, so the file is re-read from a temporary copy without it.
fn read_without_zip64_trailer(path: &Path, key: Option<&str>) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path)
        .map_err(|e| candle_core::Error::Msg(format!("reading {}: {e}", path.display())))?;
    let find = |magic: &[u8]| bytes.windows(4).rposition(|w| w == magic);
    let (Some(z64), Some(eocd)) = (find(b"PK\x06\x06"), find(b"PK\x05\x06")) else {
        candle_core::bail!("{}: not a zip64 archive", path.display())
    };
    if z64 > eocd || bytes.len() >= u32::MAX as usize {
        candle_core::bail!("{}: unexpected zip64 layout", path.display())
    }
    let mut fixed = bytes[..z64].to_vec();
    fixed.extend_from_slice(&bytes[eocd..]);
    let tmp = tempfile_path(path);
    std::fs::write(&tmp, fixed)
        .map_err(|e| candle_core::Error::Msg(format!("writing {}: {e}", tmp.display())))?;
    let out = candle_core::pickle::read_all_with_key(&tmp, key);
    let _ = std::fs::remove_file(&tmp);
    out
}

fn tempfile_path(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("checkpoint.pth");
    std::env::temp_dir().join(format!(
        "avkd-{}-{}-{name}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ))
}
