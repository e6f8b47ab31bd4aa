//! The CCL training objectives (`training.py::train_i_epoch`, `train_a_epoch`, `train_ai_epoch`)
//! and their gradient routing.
//!
//! Per teacher (image or audio) a [`CompositionClassifier`] head composes the teacher embedding t
//! with the student's video embedding v into z. With sym(a, b) = NCE(a, b) + NCE(b, a) at the
//! teacher's temperature and KL the symmetric KL of weight 0.5:
//! - video loss = CE(o_v, y) + w·(sym(v, z) + sym(v, t)) + w·KL(o_v, o_z), w = 1 (CCL-I, CCL-A);
//! - head loss = CE(o_z, y) + (sym(v, z) + sym(z, t)) + KL(o_v, o_z), never weighted.
//!
//! CCL-AI uses both teachers with w = 0.5 and counts the video CE once.
//!
//! The official code calls backward on each head loss, zeroes the student's gradients, calls
//! backward on the video loss, and then steps everything. So the student learns from the video
//! loss only, while each head learns from its own loss plus the video loss (which reaches the head
//! through z and o_z). [`routed_gradients`] reproduces this.
//!
//! The audio teacher's embeddings are precomputed, and all-zero rows mean "no audio". Those rows
//! are left out of every audio term; the video CE still uses the whole batch.

use super::divergence::{cross_entropy, symmetric_kl};
use crate::models::ccl::composition::CompositionClassifier;
use crate::train::optim::grad_store;
use candle_core::backprop::GradStore;
use candle_core::{bail, DType, Result, Tensor, Var};
use std::collections::HashSet;

/// Weight of the symmetric-KL ("JSD") term (`JSDLoss(weight=0.5)` in `main.py`).
pub const KL_WEIGHT: f64 = 0.5;

/// Weight `w` of the contrastive and KL terms in CCL-AI's video loss (`--loss_weight 0.5`).
pub const CCL_AI_WEIGHT: f64 = 0.5;

/// The teacher a head distils from. It fixes the NCE temperature and whether rows are filtered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Teacher {
    /// ResNet-34 on one frame of the clip; every row is used.
    Image,
    /// Precomputed PANNs embeddings; all-zero rows (missing audio) are left out.
    Audio,
}

impl Teacher {
    /// NCE temperature, hard-coded in `main.py`: 0.1 for the image teacher, 0.5 for audio.
    pub fn temperature(self) -> f64 {
        match self {
            Teacher::Image => 0.1,
            Teacher::Audio => 0.5,
        }
    }

    /// Prefix of the logged term names (`img_…`, `aud_…`).
    pub fn prefix(self) -> &'static str {
        match self {
            Teacher::Image => "img",
            Teacher::Audio => "aud",
        }
    }
}

/// The losses of one CCL step.
#[derive(Debug, Clone)]
pub struct CclLosses {
    /// The loss the student learns from (it also reaches the heads).
    pub video: Tensor,
    /// The head loss; for CCL-AI the sum of both heads' losses. It is built on the student's
    /// outputs detached, so its backward pass stops at the heads.
    pub head: Tensor,
    /// Named 0-dim values for logging (detached), e.g. `img_nce_v_z`, `aud_jsd`, `cls_v`.
    pub terms: Vec<(String, Tensor)>,
}

impl CclLosses {
    pub fn term(&self, name: &str) -> Option<&Tensor> {
        self.terms.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The terms as f64 values, in order.
    pub fn scalars(&self) -> Result<Vec<(String, f64)>> {
        self.terms
            .iter()
            .map(|(n, t)| Ok((n.clone(), t.to_dtype(DType::F64)?.to_scalar::<f64>()?)))
            .collect()
    }
}

/// Everything one teacher contributes, with the autograd graph to all inputs kept.
#[derive(Debug, Clone)]
pub struct TeacherTerms {
    pub teacher: Teacher,
    /// Batch rows the terms use (all rows, or those with audio).
    pub rows: Vec<u32>,
    /// Head outputs on the used rows: logits o_z [n, C] and composed embedding z [n, D].
    pub logits_z: Tensor,
    pub composed: Tensor,
    /// CE(o_z, y) on the used rows.
    pub cls_z: Tensor,
    /// NCE(anchor, candidates) in both directions for the pairs (v, z), (v, t), (z, t).
    pub nce_v_z: Tensor,
    pub nce_z_v: Tensor,
    pub nce_v_t: Tensor,
    pub nce_t_v: Tensor,
    pub nce_z_t: Tensor,
    pub nce_t_z: Tensor,
    /// sym(v, z), sym(v, t) and sym(z, t).
    pub loss_vm: Tensor,
    pub loss_vt: Tensor,
    pub loss_mt: Tensor,
    /// Symmetric KL (weight 0.5) between o_v and o_z on the used rows.
    pub jsd: Tensor,
}

impl TeacherTerms {
    /// The contrastive part of the video loss: sym(v, z) + sym(v, t).
    pub fn contrastive_video(&self) -> Result<Tensor> {
        &self.loss_vm + &self.loss_vt
    }

    /// The contrastive part of the head loss: sym(v, z) + sym(z, t).
    pub fn contrastive_head(&self) -> Result<Tensor> {
        &self.loss_vm + &self.loss_mt
    }

    /// Single-teacher video loss CE(o_v) + w·(sym(v,z) + sym(v,t)) + w·KL, summed in the
    /// official order; `cls_v` is CE(o_v, y) over the whole batch.
    pub fn video_loss(&self, cls_v: &Tensor, weight: f64) -> Result<Tensor> {
        (cls_v + (self.contrastive_video()? * weight)?)? + (&self.jsd * weight)?
    }

    /// Head loss CE(o_z) + (sym(v,z) + sym(z,t)) + KL, summed in the official order.
    pub fn head_loss(&self) -> Result<Tensor> {
        (&self.cls_z + self.contrastive_head()?)? + &self.jsd
    }

    /// The named terms (`{prefix}_cls_z`, `{prefix}_nce_v_z`, …), detached.
    fn named(&self) -> Result<Vec<(String, Tensor)>> {
        let p = self.teacher.prefix();
        let head = self.head_loss()?;
        let items = [
            ("cls_z", &self.cls_z),
            ("nce_v_z", &self.nce_v_z),
            ("nce_z_v", &self.nce_z_v),
            ("nce_v_t", &self.nce_v_t),
            ("nce_t_v", &self.nce_t_v),
            ("nce_z_t", &self.nce_z_t),
            ("nce_t_z", &self.nce_t_z),
            ("loss_vm", &self.loss_vm),
            ("loss_vt", &self.loss_vt),
            ("loss_mt", &self.loss_mt),
            ("jsd", &self.jsd),
            ("total_loss_head", &head),
        ];
        Ok(items
            .into_iter()
            .map(|(n, t)| (format!("{p}_{n}"), t.detach()))
            .collect())
    }
}

/// Checks the shapes of one step's inputs and returns the batch size.
fn check_inputs(
    video_feature: &Tensor,
    video_logits: &Tensor,
    teacher_feature: &Tensor,
    labels: &Tensor,
) -> Result<usize> {
    let (n, d) = match video_feature.dims() {
        [n, d] => (*n, *d),
        s => bail!("ccl: video feature must be [N, D], got {s:?}"),
    };
    match video_logits.dims() {
        [m, _] if *m == n => {}
        s => bail!("ccl: video logits must be [{n}, C], got {s:?}"),
    }
    if teacher_feature.dims() != [n, d] {
        bail!(
            "ccl: teacher feature {:?} must match the video feature {:?}",
            teacher_feature.dims(),
            video_feature.dims()
        )
    }
    if labels.dims() != [n] {
        bail!("ccl: labels must be [{n}], got {:?}", labels.dims())
    }
    if n == 0 {
        bail!("ccl: empty batch")
    }
    Ok(n)
}

/// Rows used by a teacher's terms: all of them for the image teacher; for the audio teacher those
/// whose embedding does not sum to 0 (`audios.sum(dim=1) != 0`, evaluated in the input dtype).
fn used_rows(teacher: Teacher, teacher_feature: &Tensor) -> Result<Vec<u32>> {
    let n = teacher_feature.dim(0)?;
    match teacher {
        Teacher::Image => Ok((0..n as u32).collect()),
        Teacher::Audio => {
            let sums = teacher_feature
                .sum(1)?
                .to_dtype(DType::F64)?
                .to_vec1::<f64>()?;
            Ok((0..n as u32).filter(|&i| sums[i as usize] != 0.0).collect())
        }
    }
}

/// One teacher's terms, with gradients flowing to every input (nothing is detached here).
///
/// [`ccl_single`] and [`ccl_ai`] build on this; it is public so that the gradients of each loss
/// with respect to each input can be inspected. If the audio teacher leaves no row, every term is
/// a constant 0 and a warning is logged (the official code gives NaN).
pub fn teacher_terms(
    teacher: Teacher,
    video_feature: &Tensor,
    video_logits: &Tensor,
    teacher_feature: &Tensor,
    head: &CompositionClassifier,
    labels: &Tensor,
) -> Result<TeacherTerms> {
    let n = check_inputs(video_feature, video_logits, teacher_feature, labels)?;
    let rows = used_rows(teacher, teacher_feature)?;
    let (dt, dev) = (video_feature.dtype(), video_feature.device());
    if rows.is_empty() {
        tracing::warn!(
            "ccl: no row of the batch has audio; the audio terms are set to 0 (the official code \
             gives NaN)"
        );
        let zero = Tensor::zeros((), dt, dev)?;
        return Ok(TeacherTerms {
            teacher,
            rows,
            logits_z: Tensor::zeros((0, head.num_classes()), dt, dev)?,
            composed: Tensor::zeros((0, head.dim()), dt, dev)?,
            cls_z: zero.clone(),
            nce_v_z: zero.clone(),
            nce_z_v: zero.clone(),
            nce_v_t: zero.clone(),
            nce_t_v: zero.clone(),
            nce_z_t: zero.clone(),
            nce_t_z: zero.clone(),
            loss_vm: zero.clone(),
            loss_vt: zero.clone(),
            loss_mt: zero.clone(),
            jsd: zero,
        });
    }
    let (v, o_v, t, y) = if rows.len() == n {
        (
            video_feature.clone(),
            video_logits.clone(),
            teacher_feature.clone(),
            labels.clone(),
        )
    } else {
        let idx = Tensor::new(rows.as_slice(), dev)?;
        (
            video_feature.index_select(&idx, 0)?,
            video_logits.index_select(&idx, 0)?,
            teacher_feature.index_select(&idx, 0)?,
            labels.index_select(&idx, 0)?,
        )
    };
    let tau = teacher.temperature();
    let (logits_z, z) = head.forward(&t, &v)?;
    let cls_z = cross_entropy(&logits_z, &y)?;
    let nce = |a: &Tensor, b: &Tensor| super::contrastive::nce_loss(a, b, &y, tau);
    let (nce_v_z, nce_z_v) = (nce(&v, &z)?, nce(&z, &v)?);
    let (nce_v_t, nce_t_v) = (nce(&v, &t)?, nce(&t, &v)?);
    let (nce_z_t, nce_t_z) = (nce(&z, &t)?, nce(&t, &z)?);
    let loss_vm = (&nce_v_z + &nce_z_v)?;
    let loss_vt = (&nce_v_t + &nce_t_v)?;
    let loss_mt = (&nce_z_t + &nce_t_z)?;
    let jsd = symmetric_kl(&o_v, &logits_z, KL_WEIGHT)?;
    Ok(TeacherTerms {
        teacher,
        rows,
        logits_z,
        composed: z,
        cls_z,
        nce_v_z,
        nce_z_v,
        nce_v_t,
        nce_t_v,
        nce_z_t,
        nce_t_z,
        loss_vm,
        loss_vt,
        loss_mt,
        jsd,
    })
}

/// The head loss of one teacher on the student's outputs detached: same value, same gradients for
/// the head, and its backward pass does not walk the student's graph a second time (the student's
/// share of the head loss is thrown away by the official code anyway).
fn detached_head_loss(
    teacher: Teacher,
    video_feature: &Tensor,
    video_logits: &Tensor,
    teacher_feature: &Tensor,
    head: &CompositionClassifier,
    labels: &Tensor,
) -> Result<Tensor> {
    teacher_terms(
        teacher,
        &video_feature.detach(),
        &video_logits.detach(),
        teacher_feature,
        head,
        labels,
    )?
    .head_loss()
}

/// CCL-I (`Teacher::Image`) or CCL-A (`Teacher::Audio`): the video loss and the head loss of one
/// step.
///
/// `video_feature` v [N, D] and `video_logits` o_v [N, C] are the student's outputs, and
/// `teacher_feature` t [N, D] is the teacher's embedding. The teacher embedding is treated as a
/// constant and detached here. `labels` [N] is u8/u32/i64. `weight` is w: 1.0 alone, 0.5 inside
/// CCL-AI (but use [`ccl_ai`] for that, which counts the CE once).
pub fn ccl_single(
    teacher: Teacher,
    video_feature: &Tensor,
    video_logits: &Tensor,
    teacher_feature: &Tensor,
    head: &CompositionClassifier,
    labels: &Tensor,
    weight: f64,
) -> Result<CclLosses> {
    let t = teacher_feature.detach();
    let cls_v = cross_entropy(video_logits, labels)?;
    let terms = teacher_terms(teacher, video_feature, video_logits, &t, head, labels)?;
    let video = terms.video_loss(&cls_v, weight)?;
    let head_loss = detached_head_loss(teacher, video_feature, video_logits, &t, head, labels)?;
    let p = teacher.prefix();
    let mut named = vec![(format!("{p}_cls_v"), cls_v.detach())];
    named.extend(terms.named()?);
    named.push((format!("{p}_total_loss_video"), video.detach()));
    Ok(CclLosses {
        video,
        head: head_loss,
        terms: named,
    })
}

/// CCL-AI: both teachers at once. The video loss is
/// CE(o_v) + w·(sym_a + sym_i) + w·(KL_a + KL_i), with w = `weight` ([`CCL_AI_WEIGHT`] = 0.5 in
/// the official scripts). `head` is the sum of the two head losses. Each head's parameters appear
/// in its own loss only, so one backward pass of the sum gives each head its own gradients.
#[allow(clippy::too_many_arguments)]
pub fn ccl_ai(
    video_feature: &Tensor,
    video_logits: &Tensor,
    image_feature: &Tensor,
    image_head: &CompositionClassifier,
    audio_feature: &Tensor,
    audio_head: &CompositionClassifier,
    labels: &Tensor,
    weight: f64,
) -> Result<CclLosses> {
    let t_i = image_feature.detach();
    let t_a = audio_feature.detach();
    let cls_v = cross_entropy(video_logits, labels)?;
    let img = teacher_terms(
        Teacher::Image,
        video_feature,
        video_logits,
        &t_i,
        image_head,
        labels,
    )?;
    let aud = teacher_terms(
        Teacher::Audio,
        video_feature,
        video_logits,
        &t_a,
        audio_head,
        labels,
    )?;
    // sum([cls_v, (ct_a + ct_i)·w, (jsd_a + jsd_i)·w]) as in train_ai_epoch.
    let ct = (aud.contrastive_video()? + img.contrastive_video()?)?;
    let kl = (&aud.jsd + &img.jsd)?;
    let video = ((&cls_v + (ct * weight)?)? + (kl * weight)?)?;
    let head_a = detached_head_loss(
        Teacher::Audio,
        video_feature,
        video_logits,
        &t_a,
        audio_head,
        labels,
    )?;
    let head_i = detached_head_loss(
        Teacher::Image,
        video_feature,
        video_logits,
        &t_i,
        image_head,
        labels,
    )?;
    let head = (&head_a + &head_i)?;
    let mut named = vec![("cls_v".to_string(), cls_v.detach())];
    named.extend(aud.named()?);
    named.extend(img.named()?);
    named.push(("total_loss_video".to_string(), video.detach()));
    named.push(("total_loss_head".to_string(), head.detach()));
    Ok(CclLosses {
        video,
        head,
        terms: named,
    })
}

/// The gradients of one CCL step with the official routing: `student_vars` get ∂(video loss)
/// only; `head_vars` get ∂(head loss) + ∂(video loss). Runs `video.backward()` and
/// `head.backward()`. A variable that neither loss reaches gets no entry (an optimiser then skips
/// it, as PyTorch skips a parameter whose `.grad` is None).
pub fn routed_gradients(
    losses: &CclLosses,
    student_vars: &[Var],
    head_vars: &[Var],
) -> Result<GradStore> {
    let student_ids: HashSet<_> = student_vars.iter().map(|v| v.id()).collect();
    if let Some(v) = head_vars.iter().find(|v| student_ids.contains(&v.id())) {
        bail!(
            "routed_gradients: a variable of shape {:?} is listed as both a student and a head \
             parameter",
            v.dims()
        )
    }
    let video = losses.video.backward()?;
    let head = losses.head.backward()?;
    let mut out: Vec<(&Var, Tensor)> = Vec::new();
    for var in student_vars {
        if let Some(g) = video.get(var) {
            out.push((var, g.clone()));
        }
    }
    for var in head_vars {
        // The head's own gradient is accumulated first, then the video loss's, as in training.py.
        let g = match (head.get(var), video.get(var)) {
            (Some(h), Some(v)) => (h + v)?,
            (Some(g), None) | (None, Some(g)) => g.clone(),
            (None, None) => continue,
        };
        out.push((var, g));
    }
    grad_store(out)
}
