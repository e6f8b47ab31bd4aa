//! Comparing a replay's tensors with the official recording (`--reference DIR`): every tensor of
//! the variant's `step{k}.safetensors` files (and `adamw_after_step{N}.safetensors` when present)
//! must exist in the replay and agree within its tolerance.
//!
//! The project's f32 rule (1e-4 of the tensor's largest magnitude, or 1e-6 absolute) holds for
//! everything the MMD alignment does not reach: the MAE decoders' gradients, parameters and
//! moments, the reconstruction and distillation losses, the centres. The MMD is ill-conditioned in
//! its official form (squared distances by the `addmm` identity, kernels with γ up to 1000: an f32
//! rounding of a distance moves a kernel value by up to ~1e-3), so, as documented for the forward
//! (tests/xkd_net.rs):
//! * the MMD terms and the sums that contain them, and every loss from the second step on,
//!   agree to 1e-3 relative;
//! * the students' gradients in the first step (and so their clip norms and AdamW moments), and
//!   every gradient and moment from the second step on (the decoders then see moved students),
//!   carry that noise:
//!   recomputing only the distances in f64 moves avkd's own step-1 student gradients by up to
//!   ~4e-3 of their largest magnitude, and the official code run on this project's machines
//!   misses the recording by as much as avkd does. They are held to [`MMD_REACHED_REL`] of it;
//! * parameters after a step move by AdamW's bounded update whatever the noise in the gradient
//!   direction, so students (and the teachers that follow them) are held to that bound:
//!   2·Σ lr over the steps so far, absolute, per element.

use candle_core::{DType, Device, Result, Tensor};
use std::collections::BTreeMap;
use std::path::Path;

/// How one reference tensor compares.
#[derive(Debug, Clone)]
pub struct TensorCheck {
    pub name: String,
    pub max_abs_err: f64,
    /// The error allowed for this tensor.
    pub tolerance: f64,
    /// `None` when the replay lacks the tensor or its shape differs.
    pub problem: Option<String>,
}

impl TensorCheck {
    pub fn passed(&self) -> bool {
        self.problem.is_none() && self.max_abs_err <= self.tolerance
    }

    /// Error over tolerance (∞ for a missing tensor): how badly it failed, for sorting.
    pub fn severity(&self) -> f64 {
        match &self.problem {
            Some(_) => f64::INFINITY,
            None => self.max_abs_err / self.tolerance,
        }
    }
}

/// The comparison of a whole replay.
#[derive(Debug, Clone)]
pub struct ReplayComparison {
    pub checks: Vec<TensorCheck>,
    /// Reference files read.
    pub files: Vec<String>,
}

impl ReplayComparison {
    pub fn failures(&self) -> Vec<&TensorCheck> {
        self.checks.iter().filter(|c| !c.passed()).collect()
    }

    /// The `n` tensors closest to (or furthest past) their tolerance.
    pub fn worst(&self, n: usize) -> Vec<&TensorCheck> {
        let mut all: Vec<&TensorCheck> = self.checks.iter().collect();
        all.sort_by(|a, b| b.severity().total_cmp(&a.severity()));
        all.truncate(n);
        all
    }
}

/// The largest error allowed relative to the largest magnitude for tensors the MMD noise reaches
/// in the first step, and from the second step on (where the noise has gone through one AdamW
/// update: the official code itself, run on another machine than the recording's, misses XKD-MAS's
/// step-2 gradients and final moments by ~1.1e-1 of their largest magnitude).
pub const MMD_REACHED_REL: [f64; 2] = [5e-2, 0.25];

/// Compares `replayed` with the recording in `reference` for `prefix` (`""` or `mas_`); `lrs` are
/// the learning rates of the recorded steps.
pub fn compare(
    replayed: &BTreeMap<String, Tensor>,
    reference: &Path,
    prefix: &str,
    lrs: &[f64],
) -> Result<ReplayComparison> {
    let steps = lrs.len();
    let mut files: Vec<String> = (1..=steps)
        .map(|k| format!("{prefix}step{k}.safetensors"))
        .collect();
    let moments = format!("{prefix}adamw_after_step{steps}.safetensors");
    if reference.join(&moments).is_file() {
        files.push(moments);
    }
    let mut checks = Vec::new();
    for file in &files {
        let path = reference.join(file);
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        // States after step k (and the final moments) have moved by k AdamW updates.
        let k = step_of(file).unwrap_or(steps);
        let lr_sum: f64 = lrs[..k.min(steps)].iter().sum();
        for name in names {
            checks.push(check(name, &tensors[name], replayed.get(name), k, lr_sum)?);
        }
    }
    Ok(ReplayComparison { checks, files })
}

fn check(
    name: &str,
    reference: &Tensor,
    replayed: Option<&Tensor>,
    step: usize,
    lr_sum: f64,
) -> Result<TensorCheck> {
    let mut result = TensorCheck {
        name: name.to_string(),
        max_abs_err: f64::NAN,
        tolerance: 0.0,
        problem: None,
    };
    let Some(replayed) = replayed else {
        result.problem = Some("missing from the replay".into());
        return Ok(result);
    };
    if replayed.dims() != reference.dims() {
        result.problem = Some(format!(
            "shape {:?}, expected {:?}",
            replayed.dims(),
            reference.dims()
        ));
        return Ok(result);
    }
    let r = reference.to_dtype(DType::F64)?.flatten_all()?;
    let a = replayed.to_dtype(DType::F64)?.flatten_all()?;
    if r.elem_count() == 0 {
        result.max_abs_err = 0.0;
        return Ok(result);
    }
    let scale = r.abs()?.max(0)?.to_scalar::<f64>()?;
    let err = (a - &r)?.abs()?.max(0)?.to_scalar::<f64>()?;
    result.max_abs_err = if err.is_nan() { f64::INFINITY } else { err };
    result.tolerance = tolerance(name, scale, step, lr_sum);
    Ok(result)
}

/// `k` of `<prefix>step{k}.safetensors`.
fn step_of(file: &str) -> Option<usize> {
    let rest = file.split("step").nth(1)?;
    rest.split('.').next()?.parse().ok()
}

/// Whether the MMD's gradient noise reaches this tensor of step `k`: in the first step the
/// students' and (through EMA) the teachers' gradients, states and moments, and the students' clip
/// norms; from the second step on every gradient, state and moment, since the MAE decoders then
/// decode latents of students that moved.
fn mmd_reached(name: &str, k: usize) -> bool {
    let nets = match k {
        1 => &[
            "vid_student.",
            "aud_student.",
            "vid_teacher.",
            "aud_teacher.",
        ][..],
        _ => &[""][..],
    };
    name.ends_with("clip_norms")
        || ["grad.", "state.", "exp_avg.", "exp_avg_sq."]
            .iter()
            .any(|kind| nets.iter().any(|n| name.contains(&format!("{kind}{n}"))))
}

/// The error allowed for the tensor `name` whose largest magnitude is `scale`.
fn tolerance(name: &str, scale: f64, step: usize, lr_sum: f64) -> f64 {
    let strict = (1e-4 * scale).max(1e-6);
    let mmd_loss = ["align_loss", "alignment_loss", "_loss_loss"];
    if name.contains("_loss_") {
        // From the second step on every loss sees students moved by a noisy first update.
        return match step > 1 || mmd_loss.iter().any(|t| name.ends_with(t)) {
            true => 1e-3 * scale,
            false => 1e-4 * scale,
        };
    }
    if !mmd_reached(name, step) {
        return strict;
    }
    if name.contains("state.") {
        return strict.max(2.0 * lr_sum);
    }
    strict.max(MMD_REACHED_REL[(step > 1) as usize] * scale)
}
