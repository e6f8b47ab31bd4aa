//! `avkd convert`: an official PyTorch checkpoint -> an avkd model folder
//! (`config.json`, `model.safetensors`, `preprocessor_config.json`, `README.md`).
//!
//! The source is recognised from its keys (or `--kind`), its names mapped to avkd's, and every key
//! and shape checked against the architecture before anything is written. Tensors are read from the
//! checkpoint and written one at a time, so memory stays near the largest tensor (full XKD nets,
//! whose aliases must be compared, are the exception). The source's sha256 is computed on a second
//! thread while the checkpoint is parsed and checked.

use super::detect::{apply_overrides, detect, infer_config, source_for_kind, Shapes, SourceKind};
use super::export::{with_format_metadata, write_folder_descriptions};
use super::keymap::{xkd_backbone_to_avkd, xkd_eval_to_avkd, Modality};
use super::model_card::CardSource;
use super::pth::{read_checkpoint, Checkpoint, TensorRef};
use super::safetensors_writer::{write_streaming, PendingTensor};
use super::xkd_net::xkd_net_from_official;
use crate::models::config::{ModelConfig, PreprocessorConfig, SavedConfig};
use crate::models::model::Model;
use crate::models::param_count::param_shapes;
use crate::nn::param_store::ParamStore;
use crate::util::hash::sha256_hex;
use candle_core::{bail, DType, Device, Result, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Which backbone to take out of a full XKD net.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Student,
    Teacher,
}

#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// A model type (`xkd-video`, `ccl-r2plus1d`, ...) instead of recognising the source.
    pub kind: Option<String>,
    /// Full nets: extract this backbone instead of converting the whole net.
    pub pick: Option<Role>,
    pub modality: Option<Modality>,
    /// Dotted key of the state dict inside the checkpoint (default: the root, `state_dict`,
    /// `model` or `module`, whichever is a state dict).
    pub key: Option<String>,
    /// A JSON object merged into the inferred architecture config.
    pub config_overrides: Option<serde_json::Value>,
    /// Glob patterns of architecture tensors the checkpoint may lack (initialised as the model
    /// initialises them, from seed 0).
    pub allow_missing: Vec<String>,
    /// Glob patterns of checkpoint tensors the architecture does not use (dropped).
    pub allow_unexpected: Vec<String>,
    /// Output dtype of floating-point tensors (default f32).
    pub dtype: Option<DType>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ConvertReport {
    pub out_dir: PathBuf,
    pub model_type: String,
    pub source: PathBuf,
    pub source_sha256: String,
    pub tensors: usize,
    pub parameters: usize,
    /// Checkpoint entries not written (`num_batches_tracked`, allowed unexpected keys).
    pub dropped: Vec<String>,
    /// Architecture tensors the checkpoint lacked, initialised fresh (allowed missing keys).
    pub initialised: Vec<String>,
}

/// Where a converted tensor's data comes from.
enum Data<'a> {
    File(&'a TensorRef),
    Memory(Tensor),
}

struct Mapped<'a> {
    config: ModelConfig,
    /// avkd name -> (official name, data).
    tensors: BTreeMap<String, (String, Data<'a>)>,
    dropped: Vec<String>,
}

pub fn sha256_file(path: &Path) -> Result<String> {
    sha256_hex(path)
        .map_err(|e| candle_core::Error::Msg(format!("hashing {}: {e}", path.display())))
}

/// A checkpoint to convert: a PyTorch file, or a safetensors file in the official names (what
/// `avkd export --layout official` writes).
enum SourceFile {
    Pth(Checkpoint),
    Safetensors {
        path: PathBuf,
        tensors: HashMap<String, Tensor>,
    },
}

impl SourceFile {
    fn open(path: &Path) -> Result<Self> {
        if path.extension().is_some_and(|e| e == "safetensors") {
            let tensors = candle_core::safetensors::load(path, &Device::Cpu)
                .map_err(|e| candle_core::Error::Msg(format!("reading {}: {e}", path.display())))?;
            return Ok(Self::Safetensors {
                path: path.to_path_buf(),
                tensors,
            });
        }
        Ok(Self::Pth(read_checkpoint(path)?))
    }

    fn path(&self) -> &Path {
        match self {
            Self::Pth(c) => c.path(),
            Self::Safetensors { path, .. } => path,
        }
    }

    /// The state dict's entries, data not read yet for PyTorch files.
    fn entries(&self, key: Option<&str>) -> Result<Vec<(String, Data<'_>)>> {
        match self {
            Self::Pth(c) => Ok(c
                .state_dict_refs(key)?
                .into_iter()
                .map(|(k, t)| (k, Data::File(t)))
                .collect()),
            Self::Safetensors { tensors, .. } => {
                let mut v: Vec<_> = tensors
                    .iter()
                    .map(|(k, t)| (k.clone(), Data::Memory(t.clone())))
                    .collect();
                v.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(v)
            }
        }
    }

    fn load(&self, name: &str, data: &Data) -> Result<Tensor> {
        match (self, data) {
            (_, Data::Memory(t)) => Ok(t.clone()),
            (Self::Pth(c), Data::File(t)) => c.tensor(name, t).map_err(|e| {
                candle_core::Error::Msg(format!("{} `{name}`: {e}", c.path().display()))
            }),
            (Self::Safetensors { path, .. }, Data::File(_)) => {
                bail!("{}: `{name}` is not in memory", path.display())
            }
        }
    }
}

pub fn convert(src: &Path, out: &Path, opts: &ConvertOptions) -> Result<ConvertReport> {
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| sha256_file(src));
        let ckpt = SourceFile::open(src)?;
        let mapped = map_checkpoint(&ckpt, opts)?;
        let checked = check_against_architecture(&ckpt, mapped, opts)?;
        let sha = hashing
            .join()
            .map_err(|_| candle_core::Error::Msg("hashing thread panicked".into()))??;
        write_folder(src, &sha, out, checked)
    })
}

/// Reads the state dict's names and shapes, recognises the source and maps names to avkd's.
fn map_checkpoint<'a>(ckpt: &'a SourceFile, opts: &ConvertOptions) -> Result<Mapped<'a>> {
    let refs = ckpt.entries(opts.key.as_deref())?;
    let mut dropped = Vec::new();
    let mut official: Vec<(String, Data<'a>)> = Vec::new();
    for (name, t) in refs {
        let name = name.strip_prefix("module.").unwrap_or(&name).to_string();
        if name.ends_with("num_batches_tracked") {
            dropped.push(name);
        } else {
            official.push((name, t));
        }
    }
    let shapes: Shapes = official
        .iter()
        .map(|(n, d)| (n.clone(), data_shape(d)))
        .collect();
    let kind = match &opts.kind {
        Some(k) => source_for_kind(k, opts.modality)?,
        None => detect(&shapes, opts.modality)?,
    };
    if kind == SourceKind::XkdNet {
        return map_xkd_net(ckpt, official, dropped, opts);
    }
    if opts.pick.is_some() {
        bail!(
            "--pick applies to full XKD nets; {} holds a single model ({kind:?})",
            ckpt.path().display()
        )
    }
    let rename: fn(&str) -> String = match kind {
        SourceKind::XkdBackbone(_) => xkd_backbone_to_avkd,
        SourceKind::XkdClassifier => xkd_eval_to_avkd,
        _ => |k: &str| k.to_string(),
    };
    let mut tensors = BTreeMap::new();
    for (name, d) in official {
        tensors.insert(rename(&name), (name, d));
    }
    let avkd_shapes = tensors
        .iter()
        .map(|(k, (_, d))| (k.clone(), data_shape(d)))
        .collect();
    let config = configure(kind, &avkd_shapes, opts)?;
    Ok(Mapped {
        config,
        tensors,
        dropped,
    })
}

fn data_shape(d: &Data) -> Vec<usize> {
    match d {
        Data::File(t) => t.shape.clone(),
        Data::Memory(t) => t.dims().to_vec(),
    }
}

fn configure(kind: SourceKind, shapes: &Shapes, opts: &ConvertOptions) -> Result<ModelConfig> {
    let cfg = infer_config(kind, shapes)?;
    let cfg = match &opts.config_overrides {
        Some(o) => apply_overrides(&cfg, o)?,
        None => cfg,
    };
    if cfg.num_classes() == Some(0) {
        bail!("the checkpoint has no classifier, so the number of classes is unknown: pass --config '{{\"num_classes\": N}}' (and --allow-missing 'head.*')")
    }
    Ok(cfg)
}

/// A full `XKD_Net`: aliases verified, block sharing recognised; the whole net or one backbone.
fn map_xkd_net<'a>(
    ckpt: &'a SourceFile,
    official: Vec<(String, Data<'a>)>,
    dropped: Vec<String>,
    opts: &ConvertOptions,
) -> Result<Mapped<'a>> {
    let mut entries = Vec::with_capacity(official.len());
    for (name, d) in official {
        entries.push((name.clone(), ckpt.load(&name, &d)?));
    }
    let same = |a: &str, b: &str| -> Result<bool> {
        let find = |k: &str| entries.iter().find(|(n, _)| n == k).map(|(_, t)| t);
        match (find(a), find(b)) {
            (Some(x), Some(y)) if x.dims() == y.dims() => {
                let d = (x.to_dtype(DType::F32)? - y.to_dtype(DType::F32)?)?;
                Ok(d.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()? == 0.0)
            }
            _ => Ok(false),
        }
    };
    let block = |net: &str| format!("{net}.backbone.encoder.blocks.0.attn.qkv.weight");
    let shared_student = same(&block("vid_student"), &block("aud_student"))?;
    let shared_teacher = same(&block("vid_teacher"), &block("aud_teacher"))?;
    let net = xkd_net_from_official(entries, shared_student, shared_teacher)?;
    let mut tensors: BTreeMap<String, (String, Data)> = BTreeMap::new();
    match opts.pick {
        None => {
            for (k, t) in net.params {
                tensors.insert(k.clone(), (k, Data::Memory(t)));
            }
            for (k, t) in [
                ("vt2as_center", net.vt2as_center),
                ("at2vs_center", net.at2vs_center),
            ] {
                tensors.insert(k.to_string(), (k.to_string(), Data::Memory(t)));
            }
            let shapes = tensors
                .iter()
                .map(|(k, (_, d))| (k.clone(), data_shape(d)))
                .collect();
            let config = configure(SourceKind::XkdNet, &shapes, opts)?;
            Ok(Mapped {
                config,
                tensors,
                dropped,
            })
        }
        Some(role) => {
            let Some(modality) = opts.modality else {
                bail!("--pick {role:?} needs --modality video|audio: which backbone of the net?")
            };
            let net_name = match (modality, role) {
                (Modality::Video, Role::Student) => "vid_student",
                (Modality::Video, Role::Teacher) => "vid_teacher",
                (Modality::Audio, Role::Student) => "aud_student",
                (Modality::Audio, Role::Teacher) => "aud_teacher",
            };
            let backbone = format!("{net_name}.backbone.");
            let shared = match role {
                Role::Student => "shared_student_blocks.",
                Role::Teacher => "shared_teacher_blocks.",
            };
            let mut rest = Vec::new();
            for (k, t) in net.params {
                let name = if let Some(r) = k.strip_prefix(&backbone) {
                    r.to_string()
                } else if let Some(r) = k.strip_prefix(shared) {
                    format!("blocks.{r}")
                } else {
                    rest.push(k);
                    continue;
                };
                tensors.insert(name, (k, Data::Memory(t)));
            }
            let mut dropped = dropped;
            dropped.push(format!("{} tensors of the rest of the net", rest.len()));
            let shapes = tensors
                .iter()
                .map(|(k, (_, d))| (k.clone(), data_shape(d)))
                .collect();
            let config = configure(SourceKind::XkdBackbone(modality), &shapes, opts)?;
            Ok(Mapped {
                config,
                tensors,
                dropped,
            })
        }
    }
}

fn patterns(list: &[String], flag: &str) -> Result<Vec<glob::Pattern>> {
    list.iter()
        .map(|p| {
            glob::Pattern::new(p).map_err(|e| candle_core::Error::Msg(format!("{flag} `{p}`: {e}")))
        })
        .collect()
}

/// Shows at most 20 names of a list in an error.
fn listing(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(20).map(|s| s.as_str()).collect();
    match names.len() {
        n if n > 20 => format!("{} ... and {} more", shown.join(", "), n - 20),
        _ => shown.join(", "),
    }
}

/// What passed the check, ready to be written.
struct Checked<'a> {
    config: ModelConfig,
    pending: Vec<PendingTensor<'a>>,
    initialised: Vec<String>,
    dropped: Vec<String>,
    parameters: usize,
}

/// Compares the mapped tensors with what the architecture asks for; returns what to write.
fn check_against_architecture<'a>(
    ckpt: &'a SourceFile,
    mut mapped: Mapped<'a>,
    opts: &ConvertOptions,
) -> Result<Checked<'a>> {
    let cfg = &mapped.config;
    let is_net = matches!(
        cfg,
        ModelConfig::Xkd(_) | ModelConfig::XkdMas(_) | ModelConfig::XkdMats(_)
    );
    // Expected names and shapes. Nets are built for real (they need a ParamStore); everything else
    // is built on a shape recorder, which allocates nothing.
    let (expected, net_store): (BTreeMap<String, Vec<usize>>, Option<ParamStore>) = if is_net {
        let store = ParamStore::new(0, DType::F32, &Device::Cpu);
        let mut provided = Vec::new();
        for (k, (_, d)) in &mapped.tensors {
            if let Data::Memory(t) = d {
                if !k.ends_with("_center") {
                    provided.push((k.clone(), t.clone()));
                }
            }
        }
        store.insert_tensors(provided)?;
        Model::from_store(cfg, &store)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", ckpt.path().display())))?;
        let requested = store.requested_names();
        let mut shapes: BTreeMap<String, Vec<usize>> = store
            .named_vars()
            .into_iter()
            .filter(|(k, _)| requested.contains(k))
            .map(|(k, v)| (k, v.dims().to_vec()))
            .collect();
        if let ModelConfig::Xkd(c) | ModelConfig::XkdMas(c) | ModelConfig::XkdMats(c) = cfg {
            shapes.insert("vt2as_center".into(), vec![1, c.head.out_dim]);
            shapes.insert("at2vs_center".into(), vec![1, c.head.out_dim]);
        }
        (shapes, Some(store))
    } else {
        (param_shapes(cfg)?, None)
    };

    let allow_missing = patterns(&opts.allow_missing, "--allow-missing")?;
    let allow_unexpected = patterns(&opts.allow_unexpected, "--allow-unexpected")?;
    let matches = |pats: &[glob::Pattern], k: &str| pats.iter().any(|p| p.matches(k));
    let (mut missing, mut initialised, mut unexpected, mut mismatched) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (k, shape) in &expected {
        match mapped.tensors.get(k) {
            None if matches(&allow_missing, k) => initialised.push(k.clone()),
            None => missing.push(k.clone()),
            Some((official, d)) if &data_shape(d) != shape => mismatched.push(format!(
                "`{k}` (checkpoint `{official}`): architecture {shape:?}, checkpoint {:?}",
                data_shape(d)
            )),
            Some(_) => {}
        }
    }
    let extra: Vec<String> = mapped
        .tensors
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .cloned()
        .collect();
    for k in extra {
        let official = mapped
            .tensors
            .remove(&k)
            .map(|(o, _)| o)
            .unwrap_or_default();
        if matches(&allow_unexpected, &k) {
            mapped.dropped.push(official);
        } else {
            unexpected.push(format!("{official} (as `{k}`)"));
        }
    }
    if !(missing.is_empty() && unexpected.is_empty() && mismatched.is_empty()) {
        let mut msg = format!(
            "{} does not fit a `{}` with the config {}:",
            ckpt.path().display(),
            cfg.model_type(),
            serde_json::to_string(cfg).unwrap_or_default()
        );
        if !mismatched.is_empty() {
            msg += &format!("\n  shape mismatches: {}", mismatched.join("; "));
        }
        if !missing.is_empty() {
            msg += &format!(
                "\n  missing from the checkpoint ({}): {} (allow with --allow-missing PATTERN)",
                missing.len(),
                listing(&missing)
            );
        }
        if !unexpected.is_empty() {
            msg += &format!(
                "\n  not used by the architecture ({}): {} (drop with --allow-unexpected PATTERN)",
                unexpected.len(),
                listing(&unexpected)
            );
        }
        msg += "\n  (fix the architecture with --config '{...}' or pick another --kind)";
        bail!("{msg}")
    }

    // Fresh values for allowed missing tensors, initialised exactly as a new model would be.
    let mut fresh = BTreeMap::new();
    if !initialised.is_empty() {
        let store = match net_store {
            Some(s) => s,
            None => {
                let store = ParamStore::new(0, DType::F32, &Device::Cpu);
                Model::from_store(cfg, &store)?;
                store
            }
        };
        for k in &initialised {
            if let Some(v) = store.get(k) {
                fresh.insert(k.clone(), v.as_detached_tensor());
            }
        }
    }

    let out_float = opts.dtype.unwrap_or(DType::F32);
    let parameters = expected.values().map(|s| s.iter().product::<usize>()).sum();
    let mut pending = Vec::new();
    for (k, (official, d)) in mapped.tensors {
        let (dtype, shape) = match &d {
            Data::File(t) => (t.dtype().candle_dtype(), t.shape.clone()),
            Data::Memory(t) => (t.dtype(), t.dims().to_vec()),
        };
        let dtype = if dtype.is_float() { out_float } else { dtype };
        let fetch: Box<dyn FnMut() -> Result<Tensor> + 'a> =
            Box::new(move || ckpt.load(&official, &d));
        pending.push(PendingTensor {
            name: k,
            dtype,
            shape,
            fetch,
        });
    }
    for (k, t) in fresh {
        let dtype = if t.dtype().is_float() {
            out_float
        } else {
            t.dtype()
        };
        pending.push(PendingTensor::from_tensor(k, t, dtype));
    }
    Ok(Checked {
        config: mapped.config,
        pending,
        initialised,
        dropped: mapped.dropped,
        parameters,
    })
}

fn write_folder(src: &Path, sha: &str, out: &Path, checked: Checked<'_>) -> Result<ConvertReport> {
    let cfg = &checked.config;
    let file_name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tensors = checked.pending.len();
    let metadata = with_format_metadata(&BTreeMap::from([
        ("model_type".to_string(), cfg.model_type().to_string()),
        ("source_file".to_string(), file_name.clone()),
        ("source_sha256".to_string(), sha.to_string()),
        ("converter".to_string(), "avkd convert".to_string()),
    ]));
    write_streaming(&out.join("model.safetensors"), checked.pending, &metadata)?;
    write_folder_descriptions(
        out,
        &SavedConfig::new(cfg.clone()),
        &PreprocessorConfig::for_model(cfg),
        &CardSource {
            file: file_name,
            sha256: sha.to_string(),
            parameters: checked.parameters,
            tensors,
            initialised: checked.initialised.clone(),
        },
    )?;
    Ok(ConvertReport {
        out_dir: out.to_path_buf(),
        model_type: cfg.model_type().to_string(),
        source: src.to_path_buf(),
        source_sha256: sha.to_string(),
        tensors,
        parameters: checked.parameters,
        dropped: checked.dropped,
        initialised: checked.initialised,
    })
}
