//! Exponential moving average of a student into a teacher (XKD/DINO momentum teachers).
//!
//! XKD's `update_teacher` runs `param_k.data.mul_(m).add_((1 - m) * param_q)` in the parameters'
//! dtype: `t * m` and `s * (1 - m)` are rounded separately before the sum. The same is done here,
//! outside of any autograd graph.

use candle_core::{Result, Tensor, Var};
use std::collections::{HashMap, HashSet};

/// `teacher * m + student * (1 - m)` as a fresh tensor in the teacher's dtype.
fn ema_value(teacher: &Var, student: &Tensor, momentum: f64) -> Result<Tensor> {
    let t = teacher.as_detached_tensor();
    let s = student
        .detach()
        .to_dtype(t.dtype())?
        .to_device(t.device())?;
    t.affine(momentum, 0.0)? + s.affine(1.0 - momentum, 0.0)?
}

/// θt ← m·θt + (1−m)·θs for matching lists, pairwise by position (PyTorch's `zip` over
/// `parameters()`); lengths and shapes must agree.
pub fn ema_update(teacher: &[Var], student: &[Tensor], momentum: f64) -> Result<()> {
    if teacher.len() != student.len() {
        candle_core::bail!(
            "ema_update: {} teacher parameters but {} student tensors",
            teacher.len(),
            student.len()
        )
    }
    for (i, (t, s)) in teacher.iter().zip(student).enumerate() {
        if t.dims() != s.dims() {
            candle_core::bail!(
                "ema_update: parameter {i}: teacher shape {:?}, student shape {:?}",
                t.dims(),
                s.dims()
            )
        }
    }
    for (t, s) in teacher.iter().zip(student) {
        if t.elem_count() > 0 {
            t.set(&ema_value(t, s, momentum)?)?;
        }
    }
    Ok(())
}

/// [`ema_update`] matched by name: every teacher name must exist in the student and vice versa
/// (all problems are checked before anything is updated).
pub fn ema_update_named(
    teacher: &[(String, Var)],
    student: &[(String, Var)],
    momentum: f64,
) -> Result<()> {
    let by_name: HashMap<&str, &Var> = student.iter().map(|(n, v)| (n.as_str(), v)).collect();
    if by_name.len() != student.len() {
        candle_core::bail!("ema_update_named: duplicate names in the student parameters")
    }
    let teacher_names: HashSet<&str> = teacher.iter().map(|(n, _)| n.as_str()).collect();
    if teacher_names.len() != teacher.len() {
        candle_core::bail!("ema_update_named: duplicate names in the teacher parameters")
    }
    let mut pairs = Vec::with_capacity(teacher.len());
    let mut missing = Vec::new();
    for (name, t) in teacher {
        match by_name.get(name.as_str()) {
            Some(s) => {
                if t.dims() != s.dims() {
                    candle_core::bail!(
                        "ema_update_named: `{name}`: teacher shape {:?}, student shape {:?}",
                        t.dims(),
                        s.dims()
                    )
                }
                pairs.push((t, *s));
            }
            None => missing.push(name.as_str()),
        }
    }
    if !missing.is_empty() {
        candle_core::bail!(
            "ema_update_named: teacher parameters missing in the student: {missing:?}"
        )
    }
    if pairs.len() != student.len() {
        let extra: Vec<&str> = student
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !teacher_names.contains(n))
            .collect();
        candle_core::bail!("ema_update_named: student parameters missing in the teacher: {extra:?}")
    }
    for (t, s) in pairs {
        if t.elem_count() > 0 {
            t.set(&ema_value(t, s.as_tensor(), momentum)?)?;
        }
    }
    Ok(())
}
