//! A streaming safetensors writer: the header first, then each tensor fetched, converted and written
//! one at a time, so converting a checkpoint never holds more than one tensor's bytes beyond what
//! is being read. The file appears atomically (temporary file in the same folder, then a rename).

use crate::util::atomic::temp_path;
use candle_core::{DType, Result, Tensor};
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;

/// One tensor to write: its name, stored dtype and shape, and how to get its data.
pub struct PendingTensor<'a> {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub fetch: Box<dyn FnMut() -> Result<Tensor> + 'a>,
}

impl<'a> PendingTensor<'a> {
    /// A tensor already in memory, written as `dtype`.
    pub fn from_tensor(name: String, t: Tensor, dtype: DType) -> Self {
        Self {
            name,
            dtype,
            shape: t.dims().to_vec(),
            fetch: Box::new(move || Ok(t.clone())),
        }
    }
}

fn dtype_name(dtype: DType) -> Result<&'static str> {
    Ok(match dtype {
        DType::F32 => "F32",
        DType::F16 => "F16",
        DType::BF16 => "BF16",
        DType::F64 => "F64",
        DType::I64 => "I64",
        DType::U8 => "U8",
        DType::U32 => "U32",
        other => candle_core::bail!("cannot write dtype {other:?} to safetensors"),
    })
}

/// Writes the little-endian bytes of `t` (any device) as stored, without an intermediate copy.
fn write_tensor(w: &mut impl Write, t: &Tensor) -> std::io::Result<()> {
    let to_io = |e: candle_core::Error| std::io::Error::other(e.to_string());
    let flat = t
        .flatten_all()
        .and_then(|f| f.to_device(&candle_core::Device::Cpu))
        .map_err(to_io)?;
    fn bytes<T: bytemuck::Pod + candle_core::WithDType>(
        w: &mut impl Write,
        t: &Tensor,
    ) -> std::io::Result<()> {
        let v = t
            .to_vec1::<T>()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        w.write_all(bytemuck::cast_slice(&v))
    }
    match flat.dtype() {
        DType::F32 => bytes::<f32>(w, &flat),
        DType::F16 => bytes::<half::f16>(w, &flat),
        DType::BF16 => bytes::<half::bf16>(w, &flat),
        DType::F64 => bytes::<f64>(w, &flat),
        DType::I64 => bytes::<i64>(w, &flat),
        DType::U32 => bytes::<u32>(w, &flat),
        DType::U8 => bytes::<u8>(w, &flat),
        other => Err(std::io::Error::other(format!(
            "cannot write dtype {other:?} to safetensors"
        ))),
    }
}

/// Writes `tensors` (sorted by name in the file) with `metadata` to `path`, atomically.
pub fn write_streaming(
    path: &Path,
    mut tensors: Vec<PendingTensor<'_>>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        serde_json::to_value(metadata).map_err(msg)?,
    );
    let mut offset = 0usize;
    for t in &tensors {
        let len = t.shape.iter().product::<usize>() * t.dtype.size_in_bytes();
        header.insert(
            t.name.clone(),
            serde_json::json!({
                "dtype": dtype_name(t.dtype)?,
                "shape": t.shape,
                "data_offsets": [offset, offset + len],
            }),
        );
        offset += len;
    }
    let mut header = serde_json::to_vec(&header).map_err(msg)?;
    // The data must start 8-byte aligned; the format pads the header with spaces.
    header.resize(header.len().div_ceil(8) * 8, b' ');

    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    let tmp = temp_path(path);
    let result = (|| -> Result<()> {
        let file = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 22, file);
        w.write_all(&(header.len() as u64).to_le_bytes())
            .and_then(|_| w.write_all(&header))
            .map_err(|e| io(&tmp, e))?;
        for t in &mut tensors {
            let data = (t.fetch)()?;
            if data.dims() != t.shape.as_slice() {
                candle_core::bail!(
                    "tensor `{}`: expected shape {:?}, found {:?}",
                    t.name,
                    t.shape,
                    data.dims()
                )
            }
            let data = if data.dtype() == t.dtype {
                data
            } else {
                data.to_dtype(t.dtype)?
            };
            write_tensor(&mut w, &data).map_err(|e| io(&tmp, format!("`{}`: {e}", t.name)))?;
        }
        let file = w.into_inner().map_err(|e| io(&tmp, e.error()))?;
        file.sync_all().map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| io(path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn msg(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

fn io(path: &Path, e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("writing {}: {e}", path.display()))
}
