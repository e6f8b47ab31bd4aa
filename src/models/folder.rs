//! Opening an avkd model folder: `config.json` + `model.safetensors` (+ `preprocessor_config.json`).

use super::config::{PreprocessorConfig, SavedConfig};
use super::model::Model;
use candle_core::{Device, Result, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub struct ModelFolder {
    pub dir: PathBuf,
    pub config: SavedConfig,
    pub preprocessor: PreprocessorConfig,
    /// The safetensors metadata (source file and sha256, converter, format version).
    pub metadata: BTreeMap<String, String>,
}

fn err(path: &Path, what: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{}: {what}", path.display()))
}

impl ModelFolder {
    /// Reads the folder's configs and weights' metadata (not the weights).
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(err(
                dir,
                "not a folder (an avkd model is a folder with config.json and model.safetensors)",
            ));
        }
        let config = SavedConfig::read(&dir.join("config.json"))?;
        let pre_path = dir.join("preprocessor_config.json");
        let preprocessor = if pre_path.exists() {
            let text = std::fs::read_to_string(&pre_path).map_err(|e| err(&pre_path, e))?;
            serde_json::from_str(&text).map_err(|e| err(&pre_path, e))?
        } else {
            PreprocessorConfig::for_model(&config.model)
        };
        let weights = dir.join("model.safetensors");
        let metadata = safetensors_metadata(&weights)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            preprocessor,
            metadata,
        })
    }

    pub fn weights_path(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }

    /// Every tensor of `model.safetensors`, on `device`.
    pub fn tensors(&self, device: &Device) -> Result<HashMap<String, Tensor>> {
        let path = self.weights_path();
        candle_core::safetensors::load(&path, device).map_err(|e| err(&path, e))
    }

    /// The model, ready for inference.
    pub fn load(&self, device: &Device) -> Result<Model> {
        Model::from_tensors(&self.config.model, self.tensors(device)?, device)
            .map_err(|e| err(&self.dir, e))
    }
}

/// The `__metadata__` of a safetensors file, reading only its header.
pub fn safetensors_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    let header = crate::util::safetensors_header::read_safetensors_header(path)?;
    Ok(header
        .get("__metadata__")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default())
}
