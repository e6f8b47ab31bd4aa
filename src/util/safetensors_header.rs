//! The JSON header of a safetensors file, read without touching the tensor data.

use candle_core::Result;
use std::io::Read;
use std::path::Path;

fn err(path: &Path, what: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("inspecting {}: {what}", path.display()))
}

/// The JSON header of a safetensors file (tensor entries and `__metadata__`), read without touching
/// the tensor data.
pub fn read_safetensors_header(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut f = std::fs::File::open(path).map_err(|e| err(path, e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|e| err(path, format!("not a safetensors file ({e})")))?;
    let len = u64::from_le_bytes(len);
    let file_len = f.metadata().map_err(|e| err(path, e))?.len();
    if len > file_len.saturating_sub(8) || len > 100 << 20 {
        return Err(err(
            path,
            format!("safetensors header of {len} bytes does not fit a {file_len}-byte file"),
        ));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).map_err(|e| err(path, e))?;
    let json: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| err(path, format!("bad safetensors header: {e}")))?;
    match json {
        serde_json::Value::Object(obj) => Ok(obj),
        _ => Err(err(path, "the safetensors header is not a JSON object")),
    }
}
