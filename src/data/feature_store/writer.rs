//! Writing a feature store: features gathered into shards of a few hundred videos, each shard and
//! then the index written atomically, so the store on disk is always consistent (see the parent
//! module).

use super::{
    msg, read_index, shard_name, FeatureIndex, FeatureSource, INDEX_FILE, STORE_FORMAT,
    WINDOWS_SUFFIX,
};
use crate::util::atomic::write_atomic;
use candle_core::Result;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A feature waiting for its shard.
struct Pending {
    key: String,
    feature: Vec<f32>,
    /// Row-major [W, D] and W.
    windows: Option<(Vec<f32>, usize)>,
    padded: bool,
}

/// Adds features to a store (new or resumed) and writes them shard by shard.
pub struct FeatureStoreWriter {
    dir: PathBuf,
    index: FeatureIndex,
    shard_size: usize,
    next_shard: usize,
    pending: Vec<Pending>,
    /// `no_audio` or `failed` changed since the index was last written.
    dirty: bool,
}

/// Whether a folder entry is something a killed run of this writer may leave behind: a shard
/// (written before the index that would name it) or a temporary file of an atomic write.
fn is_store_leftover(name: &str) -> bool {
    let shard = name.starts_with("shard-") && name.ends_with(".safetensors");
    let temp = name.starts_with('.') && name.contains(".tmp.");
    shard || temp
}

impl FeatureStoreWriter {
    /// Opens `dir` for writing: a new store (the folder absent or empty), or the store already
    /// there, resumed when `source` agrees with its index (an error naming the first field that
    /// differs otherwise). A folder holding anything else is refused rather than written into.
    pub fn open(
        dir: &Path,
        source: FeatureSource,
        dataset: serde_json::Value,
        shard_size: usize,
    ) -> Result<Self> {
        let index_path = dir.join(INDEX_FILE);
        let index = if index_path.is_file() {
            let mut index = read_index(dir)?;
            if let Some((field, store, run)) = index.source_mismatch(&source) {
                candle_core::bail!(
                    "{}: key `{field}` differs: the store was written with {store}, this run \
                     gives {run}; extract into another folder, or delete {} to start over",
                    index_path.display(),
                    dir.display()
                )
            }
            // Same weights and segmenting: the latest reference and dataset are recorded.
            index.source = source;
            index.dataset = dataset;
            index
        } else {
            check_new_folder(dir)?;
            FeatureIndex::new(source, dataset)
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| msg(format!("creating {}: {e}", dir.display())))?;
        remove_stale_temporaries(dir);
        let next_shard = index.last_shard().map_or(0, |n| n + 1);
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
            shard_size: shard_size.max(1),
            next_shard,
            pending: Vec::new(),
            dirty: true,
        })
    }

    pub fn index(&self) -> &FeatureIndex {
        &self.index
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds the feature of `key` ([D]), and its windows' ([W][D]) when the store keeps them;
    /// `padded`: its input was zero-padded to the model's minimum. Writes a shard when enough
    /// features wait.
    pub fn add(
        &mut self,
        key: &str,
        feature: Vec<f32>,
        windows: Option<Vec<Vec<f32>>>,
        padded: bool,
    ) -> Result<()> {
        let dim = self.index.source.dim;
        if feature.len() != dim {
            candle_core::bail!(
                "feature of `{key}`: expected {dim} values (the store's dim), found {}",
                feature.len()
            )
        }
        let windows = match (windows, self.index.source.per_window) {
            (Some(rows), true) => {
                if let Some(bad) = rows.iter().find(|r| r.len() != dim) {
                    candle_core::bail!(
                        "window feature of `{key}`: expected {dim} values, found {}",
                        bad.len()
                    )
                }
                let w = rows.len();
                Some((rows.concat(), w))
            }
            (None, true) => {
                candle_core::bail!("`{key}`: the store keeps per-window features, none given")
            }
            (_, false) => None,
        };
        self.pending.push(Pending {
            key: key.to_string(),
            feature,
            windows,
            padded,
        });
        if self.pending.len() >= self.shard_size {
            self.flush()?;
        }
        Ok(())
    }

    /// Records that `key` has no audio (written with the next shard or flush).
    pub fn add_no_audio(&mut self, key: &str) {
        self.index.failed.remove(key);
        self.index.no_audio.insert(key.to_string());
        self.dirty = true;
    }

    /// Records that `key` could not be read, and why.
    pub fn add_failed(&mut self, key: &str, error: &str) {
        self.index.failed.insert(key.to_string(), error.to_string());
        self.dirty = true;
    }

    /// Writes the waiting features as a shard (if any), then the index.
    pub fn flush(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            self.write_shard()?;
        } else if !self.dirty {
            return Ok(());
        }
        let json = serde_json::to_string_pretty(&self.index)
            .map_err(|e| msg(format!("serialising the feature index: {e}")))?;
        write_atomic(&self.dir.join(INDEX_FILE), json.as_bytes())?;
        self.dirty = false;
        Ok(())
    }

    /// Flushes and returns the final index.
    pub fn finish(mut self) -> Result<FeatureIndex> {
        self.flush()?;
        Ok(self.index)
    }

    fn write_shard(&mut self) -> Result<()> {
        let name = shard_name(self.next_shard);
        let dim = self.index.source.dim;
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for p in &self.pending {
            tensors.push((p.key.clone(), vec![dim], le_bytes(&p.feature)));
            if let Some((rows, w)) = &p.windows {
                tensors.push((
                    format!("{}{WINDOWS_SUFFIX}", p.key),
                    vec![*w, dim],
                    le_bytes(rows),
                ));
            }
        }
        let views = tensors
            .iter()
            .map(|(k, shape, bytes)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map(|v| (k.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| msg(format!("{name}: {e}")))?;
        let s = &self.index.source;
        let metadata = HashMap::from([
            ("format".to_string(), STORE_FORMAT.to_string()),
            ("model".to_string(), s.model.clone()),
            ("model_type".to_string(), s.model_type.clone()),
            ("dim".to_string(), s.dim.to_string()),
        ]);
        let bytes = safetensors::serialize(views, Some(metadata))
            .map_err(|e| msg(format!("{name}: serialising: {e}")))?;
        write_atomic(&self.dir.join(&name), &bytes)?;
        for p in self.pending.drain(..) {
            self.index.failed.remove(&p.key);
            if p.padded {
                self.index.padded.insert(p.key.clone());
            }
            self.index.videos.insert(p.key, name.clone());
        }
        self.next_shard += 1;
        Ok(())
    }
}

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A folder without an index may be written into only when it is absent, empty, or holds what a
/// run killed before its first index left there.
fn check_new_folder(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_store_leftover(&name) {
            candle_core::bail!(
                "{}: the folder exists and is not an avkd feature store (no {INDEX_FILE}; it holds \
                 `{name}`); give an empty or new folder",
                dir.display()
            )
        }
    }
    Ok(())
}

/// Temporary files of atomic writes interrupted by a kill (no live writer shares the folder: the
/// store has one writer at a time).
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".tmp.") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
