//! Reading PyTorch `torch.save` files without executing any code.
//!
//! Two file formats are understood:
//! - zip (torch ≥ 1.6): `<archive>/data.pkl` holds the object tree, `<archive>/data/<key>` the raw
//!   storages, `<archive>/byteorder` their byte order. The archive is read here directly (end of
//!   central directory found by scanning backwards, zip64 records honoured, stored entries only, as
//!   torch writes them) because the `zip` crate mis-locates the central directory of some torch files.
//! - legacy (torch < 1.6 or `_use_new_zipfile_serialization=False`): magic-number, protocol and
//!   sys-info pickles, the main pickle, a pickle of the storage keys, then each storage as an
//!   8-byte little-endian element count followed by its bytes.
//!
//! The object tree is rebuilt by the data-only unpickler in [`super::pickle`]; storages are read
//! lazily, one tensor at a time, so memory stays close to the size of the tensors asked for.
//!
//! dtypes: f32, f16, bf16, f64, i64 and u8 keep their type; i32, i16 and i8 become I64 (the
//! integer type every candle op supports); bool becomes U8 (0/1).

use super::pickle::{self, PickleError};
pub use super::pickle::{StorageDtype, StorageRef, TensorRef, Value};
use super::storage_tensor::{gather, is_row_major, to_tensor};
use super::zip_archive::{read_at, u64_at, zip_directory, zip_span, Span};
use candle_core::{Result, Tensor};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Which container the checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Zip,
    Legacy,
}

/// A parsed checkpoint: the whole object tree plus where each storage lives. Tensors are read from
/// the file when asked for.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    format: Format,
    root: Value,
    storages: HashMap<String, Span>,
    big_endian: bool,
    file_len: u64,
}

pub(super) fn msg(s: String) -> candle_core::Error {
    candle_core::Error::Msg(s)
}

/// Reads the object tree of a checkpoint (zip or legacy). No tensor data is read yet.
pub fn read_checkpoint(path: &Path) -> Result<Checkpoint> {
    let mut file = File::open(path).map_err(|e| msg(format!("opening {}: {e}", path.display())))?;
    let file_len = file
        .metadata()
        .map_err(|e| msg(format!("reading {}: {e}", path.display())))?
        .len();
    let mut head = [0u8; 4];
    let n = read_up_to(&mut file, &mut head)
        .map_err(|e| msg(format!("reading {}: {e}", path.display())))?;
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04") {
        read_zip(path, file, file_len)
    } else if head.first() == Some(&0x80) {
        read_legacy(path, file, file_len)
    } else {
        Err(msg(format!(
            "{} is not a PyTorch checkpoint: neither a zip archive nor a legacy pickle",
            path.display()
        )))
    }
}

/// Named tensors of a state dict, in the file's order. `key` selects a nested dict, dotted for
/// deeper levels ("model", "state_dict", "model.student"). With `None` the top-level object is used
/// when it is a name → tensor dict, else the first of `state_dict`, `model`, `module` that is one.
pub fn read_state_dict(path: &Path, key: Option<&str>) -> Result<Vec<(String, Tensor)>> {
    read_checkpoint(path)?.state_dict(key)
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let got = f.read(&mut buf[n..])?;
        if got == 0 {
            break;
        }
        n += got;
    }
    Ok(n)
}

/// Turns an unpickler error into one that names the file.
fn pickle_err(path: &Path, what: &str, e: PickleError) -> candle_core::Error {
    match e {
        PickleError::Refused(_) => msg(format!("refusing to load {}: {e}", path.display())),
        PickleError::Invalid(m) => msg(format!(
            "corrupt or unsupported checkpoint {} ({what}): {m}",
            path.display()
        )),
    }
}

/// Interprets a persistent id `('storage', torch.XStorage, key, location, numel[, view_metadata])`.
fn storage_from_pid(pid: Value) -> std::result::Result<Value, PickleError> {
    let bad = |why: &str| PickleError::Invalid(format!("persistent id {why}"));
    let Value::Tuple(items) = pid else {
        return Err(bad("is not a tuple"));
    };
    let [tag, storage_type, key, _location, numel, rest @ ..] = items.as_slice() else {
        return Err(bad("is not a storage"));
    };
    if tag.as_str() != Some("storage") {
        return Err(bad("is not a storage"));
    }
    let dtype = match storage_type {
        Value::Global(m, n) if m == "torch" => StorageDtype::from_storage_name(n),
        _ => None,
    }
    .ok_or_else(|| bad("names no known storage type"))?;
    let key = match key {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => return Err(bad("has no storage key")),
    };
    let count = |v: &Value, why: &str| {
        v.as_int()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| bad(why))
    };
    let numel = count(numel, "has a bad element count")?;
    // Legacy views: (view_key, offset, view_size) into the root storage, in elements.
    let (offset, numel) = match rest.first() {
        Some(Value::Tuple(v)) => match v.as_slice() {
            [_, offset, size] => (
                count(offset, "has a bad view offset")?,
                count(size, "has a bad view size")?,
            ),
            _ => return Err(bad("has malformed view metadata")),
        },
        _ => (0, numel),
    };
    Ok(Value::Storage(StorageRef {
        key,
        dtype,
        numel,
        offset,
    }))
}

fn read_zip(path: &Path, mut file: File, file_len: u64) -> Result<Checkpoint> {
    let dir = zip_directory(path, &mut file, file_len)?;
    let (pkl_name, pkl) = dir
        .iter()
        .find(|(n, _)| {
            n.strip_suffix("data.pkl")
                .is_some_and(|p| p.ends_with('/') && p.matches('/').count() == 1)
        })
        .ok_or_else(|| {
            msg(format!(
                "{} is a zip archive without `<archive>/data.pkl`: not a torch.save file",
                path.display()
            ))
        })?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let span = zip_span(path, &mut file, file_len, pkl_name, pkl)?;
    let bytes = read_at(path, &mut file, file_len, span.offset, span.len, pkl_name)?;
    let (root, _) = pickle::load(&bytes[..], &mut storage_from_pid)
        .map_err(|e| pickle_err(path, pkl_name, e))?;

    let mut big_endian = false;
    let data_prefix = format!("{prefix}data/");
    let mut storages = HashMap::new();
    for (name, entry) in &dir {
        if let Some(key) = name.strip_prefix(&data_prefix) {
            let span = zip_span(path, &mut file, file_len, name, entry)?;
            storages.insert(key.to_string(), span);
        } else if *name == format!("{prefix}byteorder") {
            let span = zip_span(path, &mut file, file_len, name, entry)?;
            let b = read_at(
                path,
                &mut file,
                file_len,
                span.offset,
                span.len.min(16),
                name,
            )?;
            big_endian = b.starts_with(b"big");
        }
    }
    Ok(Checkpoint {
        path: path.to_path_buf(),
        format: Format::Zip,
        root,
        storages,
        big_endian,
        file_len,
    })
}

/// The magic number torch writes first in legacy files (0x1950a86a20f9469cfc6c).
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

fn read_legacy(path: &Path, mut file: File, file_len: u64) -> Result<Checkpoint> {
    file.seek(SeekFrom::Start(0))
        .map_err(|e| msg(format!("reading {}: {e}", path.display())))?;
    let mut reader = BufReader::new(file);
    let mut no_pid = |_: Value| -> std::result::Result<Value, PickleError> {
        Err(PickleError::Invalid(
            "unexpected persistent id in a header".into(),
        ))
    };
    let mut pos = 0u64;
    let mut next = |reader: &mut BufReader<File>,
                    what: &str,
                    pid: &mut dyn FnMut(Value) -> std::result::Result<Value, PickleError>|
     -> Result<Value> {
        let (v, n) = pickle::load(&mut *reader, pid).map_err(|e| pickle_err(path, what, e))?;
        pos = pos.saturating_add(n);
        Ok(v)
    };
    let magic = next(&mut reader, "magic number", &mut no_pid)?;
    if magic != Value::BigInt(LEGACY_MAGIC.to_vec()) {
        return Err(msg(format!(
            "{} starts with a pickle but not torch's magic number: not a torch.save file",
            path.display()
        )));
    }
    let protocol = next(&mut reader, "protocol version", &mut no_pid)?;
    if protocol.as_int() != Some(1001) {
        return Err(msg(format!(
            "{}: unsupported legacy protocol version {protocol:?}",
            path.display()
        )));
    }
    let sys_info = next(&mut reader, "sys_info", &mut no_pid)?;
    let big_endian = sys_info.get("little_endian") == Some(&Value::Bool(false));

    let mut dtypes: HashMap<String, StorageDtype> = HashMap::new();
    let mut pid = |p: Value| -> std::result::Result<Value, PickleError> {
        let v = storage_from_pid(p)?;
        if let Value::Storage(s) = &v {
            dtypes.insert(s.key.clone(), s.dtype);
        }
        Ok(v)
    };
    let root = next(&mut reader, "main pickle", &mut pid)?;
    let keys = next(&mut reader, "storage keys", &mut no_pid)?;
    let Value::List(keys) = keys else {
        return Err(msg(format!(
            "corrupt checkpoint {}: storage key list is a {}",
            path.display(),
            keys.kind()
        )));
    };

    let mut file = reader.into_inner();
    let mut storages = HashMap::new();
    let mut at = pos;
    for key in keys {
        let key = match key {
            Value::Str(s) => s,
            Value::Int(i) => i.to_string(),
            other => {
                return Err(msg(format!(
                    "corrupt checkpoint {}: storage key is a {}",
                    path.display(),
                    other.kind()
                )))
            }
        };
        let dtype = *dtypes.get(&key).ok_or_else(|| {
            msg(format!(
                "corrupt checkpoint {}: storage `{key}` is listed but no tensor uses it",
                path.display()
            ))
        })?;
        let what = format!("size of storage `{key}`");
        let count = read_at(path, &mut file, file_len, at, 8, &what)?;
        let count = u64_at(&count, 0).unwrap_or(0);
        let len = count.checked_mul(dtype.size() as u64).ok_or_else(|| {
            msg(format!(
                "corrupt checkpoint {}: {what} overflows",
                path.display()
            ))
        })?;
        let offset = at + 8;
        let end = offset.checked_add(len);
        if end.is_none_or(|end| end > file_len) {
            return Err(msg(format!(
                "truncated checkpoint {}: storage `{key}` needs {len} bytes, {} remain",
                path.display(),
                file_len.saturating_sub(offset)
            )));
        }
        storages.insert(key, Span { offset, len });
        at = offset + len;
    }
    Ok(Checkpoint {
        path: path.to_path_buf(),
        format: Format::Legacy,
        root,
        storages,
        big_endian,
        file_len,
    })
}

/// A dict whose values are all tensors (or None, e.g. an absent optional buffer), with at least one tensor.
fn is_state_dict(v: &Value) -> bool {
    v.as_dict().is_some_and(|d| {
        d.iter().any(|(_, v)| matches!(v, Value::Tensor(_)))
            && d.iter()
                .all(|(k, v)| k.as_str().is_some() && matches!(v, Value::Tensor(_) | Value::None))
    })
}

/// Names of a dict's keys, for messages.
fn key_list(v: &Value) -> String {
    match v.as_dict() {
        Some(d) => {
            let names: Vec<String> = d
                .iter()
                .take(20)
                .map(|(k, v)| match k {
                    Value::Str(s) => format!("{s} ({})", v.kind()),
                    other => format!("<{}> ({})", other.kind(), v.kind()),
                })
                .collect();
            let more = if d.len() > 20 { ", …" } else { "" };
            format!("keys: {}{more}", names.join(", "))
        }
        None => format!("a {}", v.kind()),
    }
}

/// Walks a dotted key; a key that itself contains dots is matched as a whole first.
fn lookup<'a>(v: &'a Value, segments: &[&str]) -> Option<&'a Value> {
    if segments.is_empty() {
        return Some(v);
    }
    for i in (1..=segments.len()).rev() {
        let k = segments[..i].join(".");
        if let Some(child) = v.get(&k) {
            if let Some(found) = lookup(child, &segments[i..]) {
                return Some(found);
            }
        }
    }
    None
}

impl Checkpoint {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The whole unpickled object (dicts, ints, strings, tensors as [`TensorRef`]s, …).
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// The value under a dotted key ("model", "state_dict", "model.student").
    pub fn get(&self, key: &str) -> Option<&Value> {
        let segments: Vec<&str> = key.split('.').collect();
        lookup(&self.root, &segments)
    }

    /// Every tensor in the object tree with its dotted path (dict keys and list indices), in file
    /// order: what `inspect` lists.
    pub fn all_tensors(&self) -> Vec<(String, &TensorRef)> {
        fn walk<'a>(v: &'a Value, prefix: &str, out: &mut Vec<(String, &'a TensorRef)>) {
            let join = |k: &str| {
                if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                }
            };
            match v {
                Value::Tensor(t) => out.push((prefix.to_string(), t)),
                Value::Dict(d) => {
                    for (k, v) in d {
                        let k = match k {
                            Value::Str(s) => s.clone(),
                            Value::Int(i) => i.to_string(),
                            other => format!("<{}>", other.kind()),
                        };
                        walk(v, &join(&k), out);
                    }
                }
                Value::List(l) | Value::Tuple(l) => {
                    for (i, v) in l.iter().enumerate() {
                        walk(v, &join(&i.to_string()), out);
                    }
                }
                Value::Object { state: Some(s), .. } => walk(s, prefix, out),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.root, "", &mut out);
        out
    }

    /// The name → tensor references of a state dict (see [`read_state_dict`] for `key`).
    pub fn state_dict_refs(&self, key: Option<&str>) -> Result<Vec<(String, &TensorRef)>> {
        let file = self.path.display();
        let dict = match key {
            Some(k) => self.get(k).ok_or_else(|| {
                msg(format!(
                    "PyTorch checkpoint {file} has no entry `{k}` ({})",
                    key_list(&self.root)
                ))
            })?,
            None if is_state_dict(&self.root) => &self.root,
            None => ["state_dict", "model", "module"]
                .iter()
                .filter_map(|k| self.root.get(k))
                .find(|v| is_state_dict(v))
                .ok_or_else(|| {
                    msg(format!(
                        "PyTorch checkpoint {file} is not a state dict and has no `state_dict`, \
                         `model` or `module` entry that is one; pass a key ({})",
                        key_list(&self.root)
                    ))
                })?,
        };
        let Some(entries) = dict.as_dict() else {
            return Err(msg(format!(
                "PyTorch checkpoint {file}: `{}` is a {}, not a dict",
                key.unwrap_or(""),
                dict.kind()
            )));
        };
        let out: Vec<(String, &TensorRef)> = entries
            .iter()
            .filter_map(|(k, v)| match (k, v) {
                (Value::Str(k), Value::Tensor(t)) => Some((k.clone(), t)),
                _ => None,
            })
            .collect();
        if out.is_empty() {
            return Err(msg(format!(
                "PyTorch checkpoint {file} holds no tensors{} ({})",
                key.map(|k| format!(" under key `{k}`")).unwrap_or_default(),
                key_list(dict)
            )));
        }
        Ok(out)
    }

    /// Named tensors of a state dict, in file order (see [`read_state_dict`]).
    pub fn state_dict(&self, key: Option<&str>) -> Result<Vec<(String, Tensor)>> {
        let refs = self.state_dict_refs(key)?;
        let mut file = File::open(&self.path)
            .map_err(|e| msg(format!("opening {}: {e}", self.path.display())))?;
        refs.into_iter()
            .map(|(name, t)| Ok((name.clone(), self.load_with(&mut file, &name, t)?)))
            .collect()
    }

    /// Reads one tensor's data. `name` is used in error messages.
    pub fn tensor(&self, name: &str, t: &TensorRef) -> Result<Tensor> {
        let mut file = File::open(&self.path)
            .map_err(|e| msg(format!("opening {}: {e}", self.path.display())))?;
        self.load_with(&mut file, name, t)
    }

    fn load_with(&self, file: &mut File, name: &str, t: &TensorRef) -> Result<Tensor> {
        let path = self.path.display();
        let key = &t.storage.key;
        let corrupt =
            |why: String| msg(format!("corrupt checkpoint {path}: tensor `{name}`: {why}"));
        let span = self
            .storages
            .get(key)
            .ok_or_else(|| corrupt(format!("storage `{key}` is missing from the file")))?;
        let es = t.storage.dtype.size();
        let numel = t
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| corrupt(format!("shape {:?} overflows", t.shape)))?;
        let out_bytes = numel
            .checked_mul(es)
            .ok_or_else(|| corrupt(format!("shape {:?} overflows", t.shape)))?;
        let mut data = if numel == 0 {
            Vec::new()
        } else {
            // Highest element index the view touches, relative to the storage start.
            let mut last = t
                .storage
                .offset
                .checked_add(t.offset)
                .ok_or_else(|| corrupt("storage offset overflows".into()))?;
            let first = last;
            for (&d, &s) in t.shape.iter().zip(&t.stride) {
                last = (d - 1)
                    .checked_mul(s)
                    .and_then(|x| x.checked_add(last))
                    .ok_or_else(|| corrupt("stride overflows".into()))?;
            }
            let needed = last
                .checked_add(1)
                .and_then(|n| n.checked_mul(es))
                .ok_or_else(|| corrupt("extent overflows".into()))? as u64;
            if needed > span.len {
                return Err(msg(format!(
                    "truncated checkpoint {path}: tensor `{name}` needs {needed} bytes of storage \
                     `{key}`, which holds {}",
                    span.len
                )));
            }
            // A view with stride 0 could ask for far more memory than the file holds.
            if out_bytes as u64 > self.file_len.saturating_mul(4).saturating_add(1 << 20) {
                return Err(corrupt(format!(
                    "shape {:?} expands to {out_bytes} bytes from a {}-byte file",
                    t.shape, self.file_len
                )));
            }
            let start = span.offset + (first * es) as u64;
            let len = needed - (first * es) as u64;
            let what = format!("storage `{key}`");
            let raw = read_at(&self.path, file, self.file_len, start, len, &what)?;
            if is_row_major(&t.shape, &t.stride) {
                raw
            } else {
                gather(&raw, &t.shape, &t.stride, es)
            }
        };
        if data.len() != out_bytes {
            return Err(corrupt(format!(
                "read {} bytes, expected {out_bytes}",
                data.len()
            )));
        }
        if self.big_endian && es > 1 {
            for chunk in data.chunks_exact_mut(es) {
                chunk.reverse();
            }
        }
        to_tensor(&data, t.storage.dtype, &t.shape)
            .map_err(|e| corrupt(format!("building the tensor: {e}")))
    }
}
