//! Writing models: safetensors with metadata, and avkd model folders (config.json + model.safetensors),
//! always atomically (a temporary file in the same folder, then a rename), so an interrupted write
//! never leaves a truncated file under the final name.

use super::keymap::avkd_to_official;
use super::model_card::{model_card, CardSource};
use super::safetensors_writer::{write_streaming, PendingTensor};
use crate::models::config::{PreprocessorConfig, SavedConfig};
use crate::models::folder::ModelFolder;
use crate::util::atomic::write_atomic;
use candle_core::{DType, Device, Result, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Format version written into every avkd safetensors file's metadata.
pub const FORMAT_VERSION: &str = "1";

fn io_err(path: &Path, what: &str, e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{what} {}: {e}", path.display()))
}

/// Writes named tensors as safetensors with `metadata` (plus avkd's format version), atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let pending = tensors
        .iter()
        .map(|(k, t)| PendingTensor::from_tensor(k.clone(), t.clone(), t.dtype()))
        .collect();
    write_streaming(path, pending, &with_format_metadata(metadata))
}

/// Writes `(name, tensor)` pairs in their order, each in its own dtype, with exactly `metadata`
/// (official-name exports, which carry no avkd entries), atomically.
pub fn write_tensor_list(
    path: &Path,
    tensors: Vec<(String, Tensor)>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let pending = tensors
        .into_iter()
        .map(|(n, t)| {
            let dtype = t.dtype();
            PendingTensor::from_tensor(n, t, dtype)
        })
        .collect();
    write_streaming(path, pending, metadata)
}

/// `metadata` plus the entries every avkd safetensors file carries.
pub fn with_format_metadata(metadata: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut meta = metadata.clone();
    meta.insert("format".into(), "pt".into());
    meta.insert("avkd_format_version".into(), FORMAT_VERSION.into());
    meta.insert("avkd_version".into(), env!("CARGO_PKG_VERSION").into());
    meta
}

/// Writes an avkd model folder: `config.json` (the architecture, with `model_type`) and
/// `model.safetensors`.
pub fn write_model_folder(
    dir: &Path,
    model_type: &str,
    config: &impl serde::Serialize,
    tensors: &HashMap<String, Tensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut cfg =
        serde_json::to_value(config).map_err(|e| io_err(dir, "serialising config for", e))?;
    if let Some(obj) = cfg.as_object_mut() {
        obj.insert("model_type".into(), model_type.into());
    }
    let text =
        serde_json::to_string_pretty(&cfg).map_err(|e| io_err(dir, "serialising config for", e))?;
    write_atomic(&dir.join("config.json"), text.as_bytes())?;
    let mut meta = metadata.clone();
    meta.insert("model_type".into(), model_type.into());
    write_safetensors(&dir.join("model.safetensors"), tensors, &meta)
}

/// The tensor-name layout of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// avkd's names: an HF-style folder (config.json, model.safetensors,
    /// preprocessor_config.json, README.md).
    Avkd,
    /// The official PyTorch names, loadable with `load_state_dict(strict=True)`.
    Official,
}

/// Where an export's weights go: `out` itself when it names a `.safetensors` file, else
/// `out/model.safetensors` (with the configs and card beside it).
pub fn export_weights_path(out: &Path) -> PathBuf {
    if out.extension().is_some_and(|e| e == "safetensors") {
        out.to_path_buf()
    } else {
        out.join("model.safetensors")
    }
}

/// Exports an avkd model folder in `layout`, floating-point tensors as `dtype`.
pub fn export_model(
    folder: &ModelFolder,
    out: &Path,
    layout: Layout,
    dtype: DType,
) -> Result<PathBuf> {
    let tensors: BTreeMap<String, Tensor> = folder.tensors(&Device::Cpu)?.into_iter().collect();
    let cfg = &folder.config;
    let named = match layout {
        Layout::Avkd => tensors.into_iter().collect(),
        Layout::Official => avkd_to_official(&cfg.model, tensors)?,
    };
    let parameters = named.iter().map(|(_, t)| t.elem_count()).sum();
    let count = named.len();
    let pending = named
        .into_iter()
        .map(|(k, t)| {
            let d = if t.dtype().is_float() {
                dtype
            } else {
                t.dtype()
            };
            PendingTensor::from_tensor(k, t, d)
        })
        .collect();
    let mut meta = folder.metadata.clone();
    meta.insert("model_type".into(), cfg.model.model_type().into());
    meta.insert("layout".into(), format!("{layout:?}").to_lowercase());
    meta.insert("dtype".into(), format!("{dtype:?}").to_lowercase());
    let weights = export_weights_path(out);
    write_streaming(&weights, pending, &with_format_metadata(&meta))?;
    if weights.parent() == Some(out) {
        let source = CardSource {
            file: meta.get("source_file").cloned().unwrap_or_default(),
            sha256: meta.get("source_sha256").cloned().unwrap_or_default(),
            parameters,
            tensors: count,
            initialised: Vec::new(),
        };
        write_folder_descriptions(out, cfg, &folder.preprocessor, &source)?;
    }
    Ok(weights)
}

/// The files beside `model.safetensors` in a model folder: `config.json`,
/// `preprocessor_config.json` and the `README.md` model card.
pub fn write_folder_descriptions(
    dir: &Path,
    cfg: &SavedConfig,
    pre: &PreprocessorConfig,
    source: &CardSource,
) -> Result<()> {
    write_atomic(&dir.join("config.json"), cfg.to_json()?.as_bytes())?;
    let pre_json =
        serde_json::to_string_pretty(pre).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    write_atomic(&dir.join("preprocessor_config.json"), pre_json.as_bytes())?;
    write_atomic(
        &dir.join("README.md"),
        model_card(cfg, pre, source).as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn safetensors_round_trip_with_metadata() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("avkd-export-{}", std::process::id()));
        let path = dir.join("m.safetensors");
        let t = Tensor::arange(0f32, 6., &Device::Cpu)?.reshape((2, 3))?;
        let meta = BTreeMap::from([("source".to_string(), "test".to_string())]);
        write_safetensors(&path, &HashMap::from([("w".to_string(), t.clone())]), &meta)?;
        let bytes = std::fs::read(&path)?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let m = header.metadata().clone().unwrap();
        assert_eq!(m["source"], "test");
        assert_eq!(m["avkd_format_version"], FORMAT_VERSION);
        let back = candle_core::safetensors::load(&path, &Device::Cpu)?;
        assert_eq!(back["w"].to_vec2::<f32>()?, t.to_vec2::<f32>()?);
        assert!(std::fs::read_dir(&dir)?.all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp.")));
        std::fs::remove_dir_all(&dir).ok();
        Ok(())
    }
}
