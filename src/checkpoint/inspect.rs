//! `avkd inspect`: what a checkpoint holds — tensor names, dtypes, shapes, the parameter count, file
//! metadata and the other (scalar) entries of a PyTorch checkpoint such as `epoch` or `arch` —
//! without loading any tensor data. Works on PyTorch files (zip and legacy), safetensors files (only
//! the header is read) and avkd model folders (config.json + model.safetensors).

use super::pickle::Value;
use super::pth::{read_checkpoint, Format};
use crate::util::safetensors_header::read_safetensors_header;
use candle_core::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub path: PathBuf,
    /// `pytorch-zip`, `pytorch-legacy`, `safetensors` or `avkd-folder`.
    pub format: String,
    pub tensors: Vec<TensorInfo>,
    /// Elements over all tensors.
    pub num_elements: usize,
    /// safetensors `__metadata__`, plus `model_type` from an avkd folder's config.json.
    pub metadata: BTreeMap<String, String>,
    /// Scalar entries of a PyTorch checkpoint, by dotted key (e.g. `epoch`, `arch`, `args.lr`).
    pub entries: BTreeMap<String, String>,
}

fn err(path: &Path, what: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("inspecting {}: {what}", path.display()))
}

pub fn inspect(path: &Path) -> Result<Inspection> {
    if path.is_dir() {
        return inspect_folder(path);
    }
    let mut magic = [0u8; 8];
    let mut f = std::fs::File::open(path).map_err(|e| err(path, e))?;
    let n = f.read(&mut magic).map_err(|e| err(path, e))?;
    // safetensors starts with the little-endian length of its JSON header, which starts with '{'.
    let mut next = [0u8; 1];
    let looks_safetensors =
        n == 8 && f.read(&mut next).map_err(|e| err(path, e))? == 1 && next[0] == b'{';
    if looks_safetensors || path.extension().is_some_and(|e| e == "safetensors") {
        inspect_safetensors(path)
    } else {
        inspect_pytorch(path)
    }
}

fn inspect_pytorch(path: &Path) -> Result<Inspection> {
    let ckpt = read_checkpoint(path)?;
    let tensors: Vec<TensorInfo> = ckpt
        .all_tensors()
        .into_iter()
        .map(|(name, t)| TensorInfo {
            name,
            dtype: t.dtype().name().to_string(),
            shape: t.shape.clone(),
        })
        .collect();
    let mut entries = BTreeMap::new();
    collect_scalars(ckpt.root(), "", 0, &mut entries);
    let format = match ckpt.format() {
        Format::Zip => "pytorch-zip",
        Format::Legacy => "pytorch-legacy",
    };
    Ok(summary(path, format, tensors, BTreeMap::new(), entries))
}

/// Scalar entries (numbers, strings, booleans) of dicts and namespaces, two levels deep; big
/// containers (state dicts, optimizer state) are skipped.
fn collect_scalars(v: &Value, prefix: &str, depth: usize, out: &mut BTreeMap<String, String>) {
    let entries: Vec<(String, &Value)> = match v {
        Value::Dict(d) => d
            .iter()
            .filter_map(|(k, v)| k.as_str().map(|k| (k.to_string(), v)))
            .collect(),
        Value::Object {
            state: Some(state), ..
        } => return collect_scalars(state, prefix, depth, out),
        _ => return,
    };
    for (k, v) in entries {
        let key = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Int(i) => drop(out.insert(key, i.to_string())),
            Value::Float(x) => drop(out.insert(key, x.to_string())),
            Value::Bool(b) => drop(out.insert(key, b.to_string())),
            Value::Str(s) => drop(out.insert(key, s.clone())),
            Value::Dict(_) | Value::Object { .. } if depth < 1 => {
                collect_scalars(v, &key, depth + 1, out)
            }
            _ => {}
        }
    }
}

/// Reads the header of a safetensors file (never the tensor data).
fn inspect_safetensors(path: &Path) -> Result<Inspection> {
    let obj = read_safetensors_header(path)?;
    let mut metadata = BTreeMap::new();
    let mut tensors = Vec::new();
    for (name, v) in &obj {
        if name == "__metadata__" {
            for (k, v) in v.as_object().into_iter().flatten() {
                metadata.insert(
                    k.clone(),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                );
            }
            continue;
        }
        let dtype = v
            .get("dtype")
            .and_then(|d| d.as_str())
            .ok_or_else(|| err(path, format!("tensor `{name}` has no dtype")))?;
        let shape = v
            .get("shape")
            .and_then(|s| s.as_array())
            .and_then(|s| {
                s.iter()
                    .map(|d| d.as_u64().map(|d| d as usize))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| err(path, format!("tensor `{name}` has no valid shape")))?;
        tensors.push(TensorInfo {
            name: name.clone(),
            dtype: dtype.to_lowercase(),
            shape,
        });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(summary(
        path,
        "safetensors",
        tensors,
        metadata,
        BTreeMap::new(),
    ))
}

fn inspect_folder(dir: &Path) -> Result<Inspection> {
    let weights = dir.join("model.safetensors");
    if !weights.exists() {
        return Err(err(dir, "not an avkd model folder (no model.safetensors)"));
    }
    let mut out = inspect_safetensors(&weights)?;
    let config = dir.join("config.json");
    if let Ok(text) = std::fs::read_to_string(&config) {
        let cfg: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(&config, e))?;
        if let Some(t) = cfg.get("model_type").and_then(|t| t.as_str()) {
            out.metadata.insert("model_type".into(), t.into());
        }
    }
    out.path = dir.to_path_buf();
    out.format = "avkd-folder".into();
    Ok(out)
}

fn summary(
    path: &Path,
    format: &str,
    tensors: Vec<TensorInfo>,
    metadata: BTreeMap<String, String>,
    entries: BTreeMap<String, String>,
) -> Inspection {
    let num_elements = tensors
        .iter()
        .map(|t| t.shape.iter().product::<usize>())
        .sum();
    Inspection {
        path: path.to_path_buf(),
        format: format.into(),
        tensors,
        num_elements,
        metadata,
        entries,
    }
}

impl std::fmt::Display for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} ({}): {} tensors, {} elements",
            self.path.display(),
            self.format,
            self.tensors.len(),
            self.num_elements
        )?;
        for (k, v) in &self.metadata {
            writeln!(f, "  metadata {k} = {v}")?;
        }
        for (k, v) in &self.entries {
            writeln!(f, "  {k} = {v}")?;
        }
        let width = self.tensors.iter().map(|t| t.name.len()).max().unwrap_or(0);
        for t in &self.tensors {
            writeln!(f, "  {:width$}  {:8} {:?}", t.name, t.dtype, t.shape)?;
        }
        Ok(())
    }
}
