//! Precomputed teacher features for distillation, one vector per video, from either source a user
//! has: an avkd feature store (`avkd extract`), or the official CCL release
//! `audiocnn14embed512_features/<Class>/<video_stem>.npy` (PANNs Cnn14_emb512, 512 float32 each).
//!
//! A video without a feature (no file, or recorded by `avkd extract` as having no audio) has none
//! here: the official loader (`datasets/loader.py::AudioFeatureLoader`) gives such a video a zero
//! vector, and the CCL losses drop all-zero rows (`audio.sum(1) != 0`). A zero vector that is in the
//! data is kept as it is, so the same rows are dropped as in the official code.

use super::feature_store::{is_feature_store, read_features, read_index};
use super::npy::read_npy_vector;
use candle_core::{Error, Result};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// The folder name of the official CCL release.
pub const CCL_RELEASE_DIR: &str = "audiocnn14embed512_features";

fn msg(s: String) -> Error {
    Error::Msg(s)
}

/// Where the features came from.
#[derive(Debug, Clone, PartialEq)]
enum Layout {
    /// An avkd feature store: its model reference and segmenting, and its videos without audio.
    Store {
        model: String,
        segmenting: String,
        no_audio: usize,
        failed: usize,
    },
    /// `<Class>/<video_stem>.npy` files.
    Npy { zero: usize },
}

/// Every feature in memory: key -> vector.
pub struct TeacherFeatures {
    source: PathBuf,
    layout: Layout,
    dim: usize,
    /// Keys: the listed path relative to the video root without its extension, `/`-separated
    /// (`ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01`).
    features: HashMap<String, Vec<f32>>,
    /// ASCII-lowercased key -> key; `None` when two keys fold to the same one (no fallback then).
    folded: HashMap<String, Option<String>>,
}

impl TeacherFeatures {
    /// Opens `path`: an avkd feature store (a folder with index.json written by `avkd extract`),
    /// or the official CCL release layout `audiocnn14embed512_features/<Class>/<video_stem>.npy`
    /// (`path` is that folder, or a folder holding it); errors name the file and what was wrong.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_dir() {
            return Err(msg(format!(
                "{}: not a folder (expected an avkd feature store with index.json, or the CCL \
                 release folder {CCL_RELEASE_DIR}/<Class>/<video>.npy)",
                path.display()
            )));
        }
        if is_feature_store(path) {
            return Self::open_store(path);
        }
        let inner = path.join(CCL_RELEASE_DIR);
        if inner.is_dir() {
            return Self::open_npy(&inner);
        }
        Self::open_npy(path)
    }

    fn open_store(dir: &Path) -> Result<Self> {
        let index = read_index(dir)?;
        let features = read_features(dir, &index)?;
        let layout = Layout::Store {
            model: index.source.model.clone(),
            segmenting: index.source.segmenting_text.clone(),
            no_audio: index.no_audio.len(),
            failed: index.failed.len(),
        };
        Ok(Self::new(dir, layout, index.source.dim, features))
    }

    fn open_npy(dir: &Path) -> Result<Self> {
        let files = npy_files(dir)?;
        if files.is_empty() {
            return Err(msg(format!(
                "{}: no features found: expected an avkd feature store (index.json) or .npy files \
                 as <Class>/<video>.npy (the CCL release folder {CCL_RELEASE_DIR})",
                dir.display()
            )));
        }
        let mut features = HashMap::with_capacity(files.len());
        let mut dim: Option<(usize, PathBuf)> = None;
        let mut zero = 0;
        for (key, path) in files {
            let v = read_npy_vector(&path)?;
            match &dim {
                None => dim = Some((v.len(), path.clone())),
                Some((d, first)) if *d != v.len() => {
                    return Err(msg(format!(
                        "{}: expected {d} values like {} (the first file read), found {}",
                        path.display(),
                        first.display(),
                        v.len()
                    )))
                }
                _ => {}
            }
            zero += v.iter().all(|&x| x == 0.0) as usize;
            features.insert(key, v);
        }
        let dim = dim.map_or(0, |(d, _)| d);
        Ok(Self::new(dir, Layout::Npy { zero }, dim, features))
    }

    fn new(source: &Path, layout: Layout, dim: usize, features: HashMap<String, Vec<f32>>) -> Self {
        let mut folded: HashMap<String, Option<String>> = HashMap::new();
        for key in features.keys() {
            folded
                .entry(key.to_ascii_lowercase())
                .and_modify(|k| *k = None)
                .or_insert_with(|| Some(key.clone()));
        }
        Self {
            source: source.to_path_buf(),
            layout,
            dim,
            features,
            folded,
        }
    }

    /// The feature dimension (512 for PANNs Cnn14_emb512).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The feature of a listed video (`video` as split lists write it, relative to the video root,
    /// e.g. `ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi`; matched by class folder + file stem,
    /// ASCII case-insensitively as a fallback). `None` when there is none (missing file, or
    /// recorded as no audio): the official loader then uses a zero vector, meaning no audio.
    pub fn get(&self, video: &Path) -> Option<&[f32]> {
        let candidates = lookup_keys(video);
        candidates
            .iter()
            .find_map(|k| self.features.get(k))
            .or_else(|| {
                candidates.iter().find_map(|k| {
                    let key = self.folded.get(&k.to_ascii_lowercase())?.as_ref()?;
                    self.features.get(key)
                })
            })
            .map(Vec::as_slice)
    }

    /// How many videos have a feature.
    pub fn len(&self) -> usize {
        self.features.len()
    }

    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// A one-line description for logs (source, layout, dim, counts).
    pub fn describe(&self) -> String {
        let (n, d, src) = (self.len(), self.dim, self.source.display());
        match &self.layout {
            Layout::Store {
                model,
                segmenting,
                no_audio,
                failed,
            } => format!(
                "{src}: avkd feature store of {model}, {n} videos with a {d}-d feature, \
                 {no_audio} without audio, {failed} failed; {segmenting}"
            ),
            Layout::Npy { zero } => format!(
                "{src}: CCL release layout <Class>/<video>.npy, {n} videos with a {d}-d feature \
                 ({zero} all-zero, treated as no audio by the losses)"
            ),
        }
    }
}

/// The keys a listed video may be stored under: its path without extension, then its class
/// folder (the last folder) and file stem.
fn lookup_keys(video: &Path) -> Vec<String> {
    let parts: Vec<String> = video
        .with_extension("")
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let mut keys = vec![parts.join("/")];
    if parts.len() > 2 {
        keys.push(parts[parts.len() - 2..].join("/"));
    }
    keys
}

/// Whether a folder entry is macOS metadata (`._name` AppleDouble files, `.DS_Store`) or other
/// hidden files, which the release tarball carries and which are not features.
fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// Every `<Class>/<stem>.npy` under `dir`, as (`Class/stem`, path), sorted.
fn npy_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let list = |d: &Path| -> Result<Vec<(String, PathBuf)>> {
        let entries =
            std::fs::read_dir(d).map_err(|e| msg(format!("{}: cannot list: {e}", d.display())))?;
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(|e| msg(format!("{}: cannot list: {e}", d.display())))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !is_hidden(&name) {
                out.push((name, e.path()));
            }
        }
        out.sort();
        Ok(out)
    };
    let mut files = Vec::new();
    for (class, class_dir) in list(dir)? {
        if !class_dir.is_dir() {
            continue;
        }
        for (name, path) in list(&class_dir)? {
            if let Some(stem) = name.strip_suffix(".npy").filter(|_| path.is_file()) {
                files.push((format!("{class}/{stem}"), path));
            }
        }
    }
    Ok(files)
}
