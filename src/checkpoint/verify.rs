//! `avkd verify` and `avkd embed`: run a model on the tensors of a safetensors file; compare its
//! outputs with reference outputs (those the official code produced on the same inputs).

use crate::models::folder::ModelFolder;
use crate::models::model::{Model, ModelInputs};
use candle_core::{bail, DType, Device, Result, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Names a reference file may use for each role, tried in order (`--ref-key ROLE=KEY` overrides).
/// The fixtures' names (`x`, `pooled`, `feature`, `embedding`, `fc_logits`) are recognised.
const ROLE_ALIASES: &[(&str, &[&str])] = &[
    ("input", &["input", "x", "waveform", "images"]),
    ("teacher", &["teacher"]),
    ("video", &["video"]),
    ("tokens", &["tokens"]),
    ("features", &["features", "pooled", "feature", "embedding"]),
    ("logits", &["logits", "fc_logits"]),
    ("clipwise_output", &["clipwise_output"]),
];

/// The tensor playing `role` in `file`, if any.
fn find<'a>(
    file: &'a HashMap<String, Tensor>,
    role: &str,
    overrides: &BTreeMap<String, String>,
) -> Result<Option<(String, &'a Tensor)>> {
    if let Some(key) = overrides.get(role) {
        return match file.get(key) {
            Some(t) => Ok(Some((key.clone(), t))),
            None => bail!("--ref-key {role}={key}: the file has no tensor `{key}`"),
        };
    }
    let aliases = ROLE_ALIASES
        .iter()
        .find(|(r, _)| *r == role)
        .map(|(_, a)| *a)
        .unwrap_or(&[]);
    Ok(aliases
        .iter()
        .find_map(|k| file.get(*k).map(|t| (k.to_string(), t))))
}

pub fn read_inputs(
    file: &HashMap<String, Tensor>,
    overrides: &BTreeMap<String, String>,
) -> Result<ModelInputs> {
    let get =
        |role| Ok::<_, candle_core::Error>(find(file, role, overrides)?.map(|(_, t)| t.clone()));
    Ok(ModelInputs {
        input: get("input")?,
        teacher: get("teacher")?,
        video: get("video")?,
    })
}

fn load_safetensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, device)
        .map_err(|e| candle_core::Error::Msg(format!("reading {}: {e}", path.display())))
}

/// Runs `model` on the inputs of `input` and writes its outputs (`tokens`, `features`, `logits`, …)
/// to `output`, atomically.
pub fn embed_file(
    model: &Model,
    input: &Path,
    output: &Path,
    device: &Device,
) -> Result<Vec<(String, Vec<usize>)>> {
    let file = load_safetensors(input, device)?;
    let outputs = model
        .embed(&read_inputs(&file, &BTreeMap::new())?)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", input.display())))?;
    let shapes = outputs
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    let meta = BTreeMap::from([(
        "input_file".to_string(),
        input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )]);
    super::export::write_safetensors(output, &outputs.into_iter().collect(), &meta)?;
    Ok(shapes)
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OutputCheck {
    pub output: String,
    pub reference_key: String,
    pub shape: Vec<usize>,
    pub max_abs_error: f64,
    /// max |out − ref| / max |ref|: the error relative to the reference's scale.
    pub max_rel_error: f64,
    pub reference_max_abs: f64,
    pub passed: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub model_type: String,
    pub checks: Vec<OutputCheck>,
    pub atol: f64,
    pub rtol: f64,
    pub passed: bool,
}

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Pass when max |out − ref| ≤ atol + rtol · max |ref| for every output.
    pub atol: f64,
    pub rtol: f64,
    /// `ROLE -> key` for reference files that use other names.
    pub ref_keys: BTreeMap<String, String>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            atol: 1e-4,
            rtol: 1e-4,
            ref_keys: BTreeMap::new(),
        }
    }
}

/// Runs the model of `folder` on the reference inputs and compares every output the reference holds.
pub fn verify(folder: &Path, reference: &Path, opts: &VerifyOptions) -> Result<VerifyReport> {
    let device = Device::Cpu;
    let model_folder = ModelFolder::open(folder)?;
    let model = model_folder.load(&device)?;
    let file = load_safetensors(reference, &device)?;
    let inputs = read_inputs(&file, &opts.ref_keys)?;
    let outputs = model
        .embed(&inputs)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", reference.display())))?;
    let mut checks = Vec::new();
    for (name, out) in &outputs {
        let Some((key, want)) = find(&file, name, &opts.ref_keys)? else {
            continue;
        };
        if out.dims() != want.dims() {
            bail!(
                "output `{name}` has shape {:?}, the reference `{key}` in {} has {:?}",
                out.dims(),
                reference.display(),
                want.dims()
            )
        }
        let out = out.to_dtype(DType::F64)?;
        let want = want.to_dtype(DType::F64)?;
        let max_abs = (&out - &want)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f64>()?;
        let scale = want.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?;
        let max_rel = if scale > 0.0 {
            max_abs / scale
        } else {
            max_abs
        };
        checks.push(OutputCheck {
            output: name.clone(),
            reference_key: key,
            shape: out.dims().to_vec(),
            max_abs_error: max_abs,
            max_rel_error: max_rel,
            reference_max_abs: scale,
            passed: max_abs.is_finite() && max_abs <= opts.atol + opts.rtol * scale,
        });
    }
    if checks.is_empty() {
        bail!(
            "{} holds none of the model's outputs ({}); name them with --ref-key ROLE=KEY",
            reference.display(),
            outputs.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    }
    Ok(VerifyReport {
        model_type: model_folder.config.model.model_type().to_string(),
        passed: checks.iter().all(|c| c.passed),
        checks,
        atol: opts.atol,
        rtol: opts.rtol,
    })
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.checks {
            writeln!(
                f,
                "{:16} vs {:16} {:?}: max abs error {:.3e}, max rel error {:.3e} (ref max {:.3e})  {}",
                c.output,
                c.reference_key,
                c.shape,
                c.max_abs_error,
                c.max_rel_error,
                c.reference_max_abs,
                if c.passed { "ok" } else { "FAILED" }
            )?;
        }
        write!(
            f,
            "{}: {} (tolerance: abs ≤ {:e} + {:e} · max|ref|)",
            self.model_type,
            if self.passed {
                "verified"
            } else {
                "NOT verified"
            },
            self.atol,
            self.rtol
        )
    }
}
