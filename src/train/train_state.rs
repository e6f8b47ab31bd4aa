//! Training checkpoints: an ordinary avkd model folder (written by the job: `config.json`,
//! `model.safetensors`, `preprocessor_config.json`, `README.md`) plus `optimizer.safetensors` (every
//! optimizer's moments, keys `<slot>.<name>`) and `trainer_state.json` (position, best metric, the
//! job's settings, seed), so a checkpoint both loads with `ModelFolder::open(..).load(..)` and
//! resumes a run exactly.
//!
//! A checkpoint is written whole into a temporary sibling (`.last.tmp.<pid>`), synced, and then
//! swapped in: the previous folder is renamed aside (`.last.old.<pid>`), the new one renamed into
//! place, the old one deleted. A process killed at any moment leaves either the previous
//! checkpoint or the new one: between the two renames only the aside copy exists, and
//! [`recover_checkpoint`] (called before every read) renames it back.

use crate::checkpoint::export::write_safetensors;
use crate::nn::rng::RngState;
use crate::util::atomic::write_atomic;
use candle_core::{Device, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub const TRAINER_STATE_FILE: &str = "trainer_state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const MODEL_FILE: &str = "model.safetensors";

/// One optimizer's place in the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerPosition {
    /// The slot's name (`model`, `student`, `head_image`, ...).
    pub name: String,
    /// `adamw` or `sgd`.
    pub kind: String,
    /// `step` calls made.
    pub steps: u64,
}

/// Where a run stands: enough, with the weights and the optimizer state, to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub avkd_version: String,
    /// The job's name (`fine-tuning`, ...): a checkpoint resumes only the job that wrote it.
    pub job: String,
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
    /// The job's settings ([`super::job::Job::config_json`]).
    pub config: serde_json::Value,
    pub seed: u64,
    /// The generator every step derives its own from (`SeededRng::from_state(train_rng)
    /// .derive(global_step)`); it is never advanced, so its state is fixed by the seed.
    pub train_rng: RngState,
    pub optimizers: Vec<OptimizerPosition>,
}

/// A checkpoint's trainer state and optimizer tensors (the job reads its own weights).
pub struct LoadedCheckpoint {
    pub dir: PathBuf,
    pub state: TrainerState,
    pub optimizer: HashMap<String, Tensor>,
}

fn msg(path: &Path, what: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{}: {what}", path.display()))
}

fn folder_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into())
}

fn sibling(dir: &Path, tag: &str) -> PathBuf {
    dir.with_file_name(format!(
        ".{}.{tag}.{}",
        folder_name(dir),
        std::process::id()
    ))
}

/// Siblings `.NAME.TAG.*` of `dir` that earlier processes left behind.
fn leftovers(dir: &Path, tag: &str) -> Vec<PathBuf> {
    let prefix = format!(".{}.{tag}.", folder_name(dir));
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&parent) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Makes `dir` whole again after a process was killed while writing it: a folder left aside
/// (`.NAME.old.*`) is renamed back when `dir` is missing, and deleted when `dir` exists;
/// unfinished temporary folders (`.NAME.tmp.*`) are deleted.
pub fn recover_checkpoint(dir: &Path) -> Result<()> {
    for old in leftovers(dir, "old") {
        if dir.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| msg(&old, e))?;
        } else {
            std::fs::rename(&old, dir).map_err(|e| msg(&old, format!("restoring: {e}")))?;
            tracing::warn!(
                "{}: restored from {} (a previous run was killed while replacing it)",
                dir.display(),
                old.display()
            );
        }
    }
    for tmp in leftovers(dir, "tmp") {
        std::fs::remove_dir_all(&tmp).map_err(|e| msg(&tmp, e))?;
    }
    Ok(())
}

/// Flushes a folder's entries (the renames into and out of it) to disk.
fn sync_dir(dir: &Path) -> Result<()> {
    crate::util::atomic::sync_dir(dir).map_err(|e| msg(dir, format!("syncing: {e}")))
}

/// Writes a checkpoint folder at `dir`, replacing any previous one atomically (see the module
/// documentation): `write_model` fills the temporary folder with the model folder's files, then
/// the optimizer state and `trainer_state.json` (last) are added.
pub fn write_checkpoint(
    dir: &Path,
    state: &TrainerState,
    optimizer: &HashMap<String, Tensor>,
    write_model: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    recover_checkpoint(dir)?;
    let tmp = sibling(dir, "tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| msg(&tmp, e))?;
    write_model(&tmp)?;
    let kinds: Vec<String> = state.optimizers.iter().map(|o| o.kind.clone()).collect();
    let opt_meta = BTreeMap::from([("optimizers".to_string(), kinds.join(","))]);
    write_safetensors(&tmp.join(OPTIMIZER_FILE), optimizer, &opt_meta)?;
    let text = serde_json::to_string_pretty(state).map_err(|e| msg(&tmp, e))?;
    write_atomic(&tmp.join(TRAINER_STATE_FILE), text.as_bytes())?;
    sync_dir(&tmp)?;

    let old = sibling(dir, "old");
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| msg(dir, format!("moving aside: {e}")))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| msg(dir, format!("renaming into place: {e}")))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
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

/// Reads the trainer state and optimizer tensors of a checkpoint folder written by
/// [`write_checkpoint`] (recovering it first); every problem is an error naming the file.
pub fn read_checkpoint(dir: &Path, device: &Device) -> Result<LoadedCheckpoint> {
    recover_checkpoint(dir)?;
    if !dir.is_dir() {
        return Err(msg(
            dir,
            format!("no checkpoint here (expected a folder with {TRAINER_STATE_FILE}, {MODEL_FILE} and {OPTIMIZER_FILE})"),
        ));
    }
    let state_path = dir.join(TRAINER_STATE_FILE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| msg(&state_path, e))?;
    let state: TrainerState = serde_json::from_str(&text)
        .map_err(|e| msg(&state_path, format!("not an avkd trainer state: {e}")))?;
    Ok(LoadedCheckpoint {
        dir: dir.to_path_buf(),
        optimizer: load_safetensors(&dir.join(OPTIMIZER_FILE), device)?,
        state,
    })
}

/// Puts a checkpoint folder's model tensors into `store` after checking that the names match
/// exactly (an error names the first missing and unexpected ones).
pub fn restore_store(store: &crate::nn::param_store::ParamStore, dir: &Path) -> Result<()> {
    let tensors = read_model_tensors(dir, store.device())?;
    let have: std::collections::BTreeSet<String> =
        store.named_vars().into_iter().map(|(n, _)| n).collect();
    let got: std::collections::BTreeSet<String> = tensors.keys().cloned().collect();
    let missing: Vec<_> = have.difference(&got).take(5).collect();
    let extra: Vec<_> = got.difference(&have).take(5).collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Err(msg(
            dir,
            format!(
                "the checkpoint does not fit the model (missing {missing:?}, unexpected {extra:?})"
            ),
        ));
    }
    store.insert_tensors(tensors).map_err(|e| msg(dir, e))
}

/// The model tensors of a checkpoint folder.
pub fn read_model_tensors(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    load_safetensors(&dir.join(MODEL_FILE), device)
}

/// `tensors` with every key prefixed `<slot>.`.
pub fn prefixed(slot: &str, tensors: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    tensors
        .into_iter()
        .map(|(k, t)| (format!("{slot}.{k}"), t))
        .collect()
}

/// The tensors of `all` under `<slot>.`, with the prefix removed.
pub fn unprefixed(slot: &str, all: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    let prefix = format!("{slot}.");
    all.iter()
        .filter_map(|(k, t)| {
            k.strip_prefix(&prefix)
                .map(|rest| (rest.to_string(), t.clone()))
        })
        .collect()
}
