//! avkd's feature store: one feature per video (and optionally one per window), as `avkd extract`
//! writes it and `avkd distill` reads it.
//!
//! ```text
//! FEATS/shard-00000.safetensors   `<key>` f32 [D]; with per-window features also `<key>#windows` [W, D]
//! FEATS/shard-00001.safetensors   ...  (a few hundred videos each)
//! FEATS/index.json                what made the features, and which shard holds each video
//! ```
//! A key is the listed video path relative to the video root, without its extension, with `/`
//! separators (`ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01`).
//!
//! Shards are written whole and atomically, and `index.json` (atomically) after each one, so a run
//! killed at any point leaves a store whose index names only complete shards: a rerun skips the
//! videos the index lists and extracts the rest. Features not yet in a shard when the run stopped
//! are extracted again. A rerun with another model or another segmenting is refused (it would mix
//! features of different kinds in one store), naming the field that differs.

mod segmenting;
mod writer;

pub use segmenting::Segmenting;
pub use writer::FeatureStoreWriter;

use candle_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// `format` of an avkd feature store's index.
pub const STORE_FORMAT: &str = "avkd-features";
/// The version of the layout this code writes and reads.
pub const STORE_VERSION: u32 = 1;
pub const INDEX_FILE: &str = "index.json";
/// The per-window features of `<key>` are stored as `<key>#windows`.
pub const WINDOWS_SUFFIX: &str = "#windows";

fn msg(s: String) -> Error {
    Error::Msg(s)
}

/// The name of shard `n`.
pub fn shard_name(n: usize) -> String {
    format!("shard-{n:05}.safetensors")
}

/// What made the features. A rerun into the same store must agree on everything but the `model`
/// reference (the same weights may be named by another path) and the texts derived from the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSource {
    /// The model reference as given (`--model`: a folder, hub:…, a zoo name).
    pub model: String,
    pub model_type: String,
    /// sha256 of the model's `model.safetensors`: what identifies the weights on a rerun.
    pub model_sha256: String,
    /// `audio`, `video` or `image`.
    pub modality: String,
    /// The feature dimension D.
    pub dim: usize,
    /// How a video is cut into windows (machine-readable).
    pub segmenting: Segmenting,
    /// The same in words, with the reduction.
    pub segmenting_text: String,
    /// How the windows' features become the video's: `mean`.
    pub reduce: String,
    /// Whether `<key>#windows` [W, D] is stored beside each feature.
    pub per_window: bool,
    /// Audio models: the rate the track is resampled to.
    pub sample_rate: Option<u32>,
    /// What happens to inputs shorter than the model accepts (the videos concerned are listed
    /// under `padded`).
    pub padding: Option<String>,
}

/// `index.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureIndex {
    /// [`STORE_FORMAT`].
    pub format: String,
    pub version: u32,
    #[serde(flatten)]
    pub source: FeatureSource,
    /// The dataset the videos came from (the last run's, as the command line gave it).
    pub dataset: serde_json::Value,
    /// Every stored video: key -> shard file.
    pub videos: BTreeMap<String, String>,
    /// Videos without an audio stream (audio models): no feature, as the official CCL loader
    /// reads a missing file (a zero vector, "no audio").
    pub no_audio: BTreeSet<String>,
    /// Stored videos whose input was zero-padded to the model's minimum length.
    pub padded: BTreeSet<String>,
    /// Videos that could not be read (`--skip-bad`): key -> error. A rerun tries them again.
    pub failed: BTreeMap<String, String>,
}

impl FeatureIndex {
    pub fn new(source: FeatureSource, dataset: serde_json::Value) -> Self {
        Self {
            format: STORE_FORMAT.into(),
            version: STORE_VERSION,
            source,
            dataset,
            videos: BTreeMap::new(),
            no_audio: BTreeSet::new(),
            padded: BTreeSet::new(),
            failed: BTreeMap::new(),
        }
    }

    /// Whether `key` needs no more work: stored, or recorded as having no audio.
    pub fn is_done(&self, key: &str) -> bool {
        self.videos.contains_key(key) || self.no_audio.contains(key)
    }

    /// The first field on which `self` (the store) and `other` (a new run) disagree, as
    /// (field, store's value, run's value).
    pub fn source_mismatch(&self, other: &FeatureSource) -> Option<(&'static str, String, String)> {
        let s = &self.source;
        let pair =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| (format!("{a:?}"), format!("{b:?}"));
        let checks: [(&'static str, bool, (String, String)); 7] = [
            (
                "model_type",
                s.model_type == other.model_type,
                pair(&s.model_type, &other.model_type),
            ),
            (
                "model_sha256",
                s.model_sha256 == other.model_sha256,
                (
                    format!("{} ({})", s.model_sha256, s.model),
                    format!("{} ({})", other.model_sha256, other.model),
                ),
            ),
            (
                "modality",
                s.modality == other.modality,
                pair(&s.modality, &other.modality),
            ),
            ("dim", s.dim == other.dim, pair(&s.dim, &other.dim)),
            (
                "segmenting",
                s.segmenting == other.segmenting,
                (s.segmenting_text.clone(), other.segmenting_text.clone()),
            ),
            (
                "per_window",
                s.per_window == other.per_window,
                pair(&s.per_window, &other.per_window),
            ),
            (
                "sample_rate",
                s.sample_rate == other.sample_rate,
                pair(&s.sample_rate, &other.sample_rate),
            ),
        ];
        checks
            .into_iter()
            .find(|(_, same, _)| !same)
            .map(|(field, _, (a, b))| (field, a, b))
    }

    /// The highest shard number the index names, if any.
    pub fn last_shard(&self) -> Option<usize> {
        self.videos
            .values()
            .filter_map(|f| f.strip_prefix("shard-")?.strip_suffix(".safetensors"))
            .filter_map(|n| n.parse().ok())
            .max()
    }
}

/// Whether `dir` holds an avkd feature store (an `index.json`).
pub fn is_feature_store(dir: &Path) -> bool {
    dir.join(INDEX_FILE).is_file()
}

/// Reads and checks `dir/index.json`.
pub fn read_index(dir: &Path) -> Result<FeatureIndex> {
    let path = dir.join(INDEX_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| msg(format!("{}: cannot read: {e}", path.display())))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| msg(format!("{}: not JSON: {e}", path.display())))?;
    match value.get("format").and_then(|f| f.as_str()) {
        Some(STORE_FORMAT) => {}
        found => {
            return Err(msg(format!(
                "{}: key `format`: expected \"{STORE_FORMAT}\", found {}",
                path.display(),
                found.map_or("nothing".into(), |f| format!("\"{f}\""))
            )))
        }
    }
    match value.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == STORE_VERSION as u64 => {}
        found => {
            return Err(msg(format!(
                "{}: key `version`: expected {STORE_VERSION}, found {} (written by another avkd \
                 version?)",
                path.display(),
                found.map_or("nothing".into(), |v| v.to_string())
            )))
        }
    }
    serde_json::from_value(value).map_err(|e| {
        msg(format!(
            "{}: not an avkd feature index: {e}",
            path.display()
        ))
    })
}

/// One tensor of a shard as f32 values, checked to have `shape`.
fn shard_tensor(
    st: &safetensors::SafeTensors<'_>,
    path: &Path,
    key: &str,
    shape: Option<&[usize]>,
) -> Result<(Vec<usize>, Vec<f32>)> {
    let view = st.tensor(key).map_err(|e| {
        msg(format!(
            "{}: key `{key}`: the index lists it in this shard, but it is not there ({e})",
            path.display()
        ))
    })?;
    if view.dtype() != safetensors::Dtype::F32 {
        return Err(msg(format!(
            "{}: key `{key}`: expected dtype F32, found {:?}",
            path.display(),
            view.dtype()
        )));
    }
    if let Some(want) = shape.filter(|s| *s != view.shape()) {
        return Err(msg(format!(
            "{}: key `{key}`: expected shape {want:?}, found {:?}",
            path.display(),
            view.shape()
        )));
    }
    let values = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((view.shape().to_vec(), values))
}

/// Every shard the index names, with the keys it holds.
fn keys_by_shard(index: &FeatureIndex) -> BTreeMap<&str, Vec<&str>> {
    let mut shards: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (key, shard) in &index.videos {
        shards.entry(shard.as_str()).or_default().push(key.as_str());
    }
    shards
}

fn read_shard_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| msg(format!("{}: cannot read the shard: {e}", path.display())))
}

fn parse_shard<'a>(bytes: &'a [u8], path: &Path) -> Result<safetensors::SafeTensors<'a>> {
    safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| msg(format!("{}: not a safetensors file: {e}", path.display())))
}

/// The features the index lists (key -> [D] values), each checked to be f32 of shape [dim].
pub fn read_features(dir: &Path, index: &FeatureIndex) -> Result<HashMap<String, Vec<f32>>> {
    let dim = [index.source.dim];
    let mut out = HashMap::with_capacity(index.videos.len());
    for (shard, keys) in keys_by_shard(index) {
        let path = dir.join(shard);
        let bytes = read_shard_bytes(&path)?;
        let st = parse_shard(&bytes, &path)?;
        for key in keys {
            let (_, values) = shard_tensor(&st, &path, key, Some(&dim))?;
            out.insert(key.to_string(), values);
        }
    }
    Ok(out)
}

/// The per-window features of a store written with `per_window`: key -> ([W, D] row-major, W).
pub fn read_window_features(
    dir: &Path,
    index: &FeatureIndex,
) -> Result<HashMap<String, (Vec<f32>, usize)>> {
    if !index.source.per_window {
        return Err(msg(format!(
            "{}: key `per_window`: expected true (the store has no per-window features), found \
             false",
            dir.join(INDEX_FILE).display()
        )));
    }
    let mut out = HashMap::with_capacity(index.videos.len());
    for (shard, keys) in keys_by_shard(index) {
        let path = dir.join(shard);
        let bytes = read_shard_bytes(&path)?;
        let st = parse_shard(&bytes, &path)?;
        for key in keys {
            let name = format!("{key}{WINDOWS_SUFFIX}");
            let (shape, values) = shard_tensor(&st, &path, &name, None)?;
            match shape.as_slice() {
                [w, d] if *d == index.source.dim && *w > 0 => {
                    out.insert(key.to_string(), (values, *w));
                }
                s => {
                    return Err(msg(format!(
                        "{}: key `{name}`: expected shape [W, {}], found {s:?}",
                        path.display(),
                        index.source.dim
                    )))
                }
            }
        }
    }
    Ok(out)
}
