//! Fine-tuning checkpoints: a normal avkd model folder (`config.json`, `model.safetensors`,
//! `preprocessor_config.json`, `README.md`) plus `optimizer.safetensors` (the optimiser's moments)
//! and `trainer_state.json` (position, best metric, config, seeds), so a checkpoint both loads with
//! `ModelFolder::open(..).load(..)` and resumes a run exactly.
//!
//! A checkpoint folder is written whole into a temporary sibling and then renamed into place, so a
//! crash leaves either the previous checkpoint or the new one, never a mix.

use super::finetune_config::FinetuneConfig;
use super::finetune_model::FinetuneModel;
use crate::checkpoint::export::{write_folder_descriptions, write_safetensors};
use crate::checkpoint::model_card::CardSource;
use crate::nn::param_store::ParamStore;
use crate::nn::rng::RngState;
use crate::util::atomic::write_atomic;
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub const TRAINER_STATE_FILE: &str = "trainer_state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const MODEL_FILE: &str = "model.safetensors";

/// Where a run stands: enough, with the weights and the optimiser state, to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub avkd_version: String,
    /// The epoch to continue in (0-based) and the first batch of it still to run; the position is
    /// always on an optimizer-step boundary.
    pub epoch: usize,
    pub batch_in_epoch: usize,
    /// Optimizer steps done so far.
    pub global_step: u64,
    /// Batches per epoch of the data this run was trained on (a resumed run must see the same).
    pub batches_per_epoch: usize,
    pub best_top1: Option<f64>,
    /// The epoch (counted from 1, as in metrics.jsonl) whose evaluation gave `best_top1`.
    pub best_epoch: Option<usize>,
    /// Mean loss of the last optimizer step.
    pub last_loss: Option<f64>,
    pub config: FinetuneConfig,
    pub seed: u64,
    /// The generator every step derives its own from (`SeededRng::from_state(train_rng)
    /// .derive(global_step)`); it is never advanced, so its state is fixed by the seed.
    pub train_rng: RngState,
    /// `adamw` or `sgd`, and the number of `step` calls it made.
    pub optimizer: String,
    pub optimizer_steps: u64,
}

/// A checkpoint read back from disk.
pub struct LoadedCheckpoint {
    pub dir: PathBuf,
    pub state: TrainerState,
    pub model: HashMap<String, Tensor>,
    pub optimizer: HashMap<String, Tensor>,
}

/// What goes into a checkpoint folder.
pub struct CheckpointContents<'a> {
    pub model: &'a FinetuneModel,
    pub store: &'a ParamStore,
    pub state: &'a TrainerState,
    pub optimizer: HashMap<String, Tensor>,
    pub id2label: Option<BTreeMap<usize, String>>,
    pub image_size: Option<usize>,
}

fn msg(path: &Path, what: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{}: {what}", path.display()))
}

fn sibling(dir: &Path, tag: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    dir.with_file_name(format!(".{name}.{tag}.{}", std::process::id()))
}

/// Writes a checkpoint folder at `dir`, replacing any previous one atomically (write to a temporary
/// sibling, move the old folder aside, rename the new one into place, delete the old one).
pub fn write_checkpoint(dir: &Path, c: &CheckpointContents) -> Result<()> {
    let tmp = sibling(dir, "tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| msg(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| msg(&tmp, e))?;

    let tensors = c.store.tensors()?;
    let config = c.model.config(c.id2label.clone());
    let mut meta = BTreeMap::new();
    meta.insert(
        "model_type".to_string(),
        config.model.model_type().to_string(),
    );
    meta.insert("source_file".to_string(), "avkd fine-tuning".to_string());
    meta.insert("epoch".to_string(), c.state.epoch.to_string());
    meta.insert("global_step".to_string(), c.state.global_step.to_string());
    write_safetensors(&tmp.join(MODEL_FILE), &tensors, &meta)?;
    let source = CardSource {
        file: format!(
            "avkd fine-tuning, epoch {} step {}",
            c.state.epoch, c.state.global_step
        ),
        sha256: String::new(),
        parameters: tensors.values().map(|t| t.elem_count()).sum(),
        tensors: tensors.len(),
        initialised: Vec::new(),
    };
    write_folder_descriptions(&tmp, &config, &c.model.preprocessor(c.image_size), &source)?;
    let opt_meta = BTreeMap::from([("optimizer".to_string(), c.state.optimizer.clone())]);
    write_safetensors(&tmp.join(OPTIMIZER_FILE), &c.optimizer, &opt_meta)?;
    let state = serde_json::to_string_pretty(c.state).map_err(|e| msg(&tmp, e))?;
    write_atomic(&tmp.join(TRAINER_STATE_FILE), state.as_bytes())?;

    let old = sibling(dir, "old");
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| msg(&old, e))?;
        }
        std::fs::rename(dir, &old).map_err(|e| msg(dir, format!("moving aside: {e}")))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| msg(dir, format!("renaming into place: {e}")))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| msg(&old, e))?;
    }
    Ok(())
}

fn load_safetensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(msg(path, "missing (the checkpoint is incomplete)"));
    }
    candle_core::safetensors::load(path, device).map_err(|e| msg(path, e))
}

/// Reads a checkpoint folder written by [`write_checkpoint`]; every problem is an error naming the
/// file (a missing folder, a missing or corrupt `trainer_state.json` or safetensors file).
pub fn read_checkpoint(dir: &Path, device: &Device) -> Result<LoadedCheckpoint> {
    if !dir.is_dir() {
        return Err(msg(
            dir,
            format!("no checkpoint here (expected a folder with {TRAINER_STATE_FILE}, {MODEL_FILE} and {OPTIMIZER_FILE})"),
        ));
    }
    let state_path = dir.join(TRAINER_STATE_FILE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| msg(&state_path, e))?;
    let state: TrainerState = serde_json::from_str(&text)
        .map_err(|e| msg(&state_path, format!("not a fine-tuning trainer state: {e}")))?;
    Ok(LoadedCheckpoint {
        dir: dir.to_path_buf(),
        model: load_safetensors(&dir.join(MODEL_FILE), device)?,
        optimizer: load_safetensors(&dir.join(OPTIMIZER_FILE), device)?,
        state,
    })
}
