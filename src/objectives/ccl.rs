//! The CCL training objectives (`training.py::train_i_epoch`, `train_a_epoch`, `train_ai_epoch`):
//! the loss terms of one teacher computed from the composition head's outputs, as pure tensor
//! functions. Running the head, building a step's losses and routing their gradients
//! (`jobs::distill_routing`) need a model and an optimiser's gradient store, so they live above.
//!
//! Per teacher (image or audio) a composition head (`models::ccl::composition`) composes the
//! teacher embedding t with the student's video embedding v into z. With sym(a, b) = NCE(a, b) + NCE(b, a) at the
//! teacher's temperature and KL the symmetric KL of weight 0.5:
//! - video loss = CE(o_v, y) + w·(sym(v, z) + sym(v, t)) + w·KL(o_v, o_z), w = 1 (CCL-I, CCL-A);
//! - head loss = CE(o_z, y) + (sym(v, z) + sym(z, t)) + KL(o_v, o_z), never weighted.
//!
//! CCL-AI uses both teachers with w = 0.5 and counts the video CE once.
//!
//! The official code calls backward on each head loss, zeroes the student's gradients, calls
//! backward on the video loss, and then steps everything. So the student learns from the video
//! loss only, while each head learns from its own loss plus the video loss (which reaches the head
//! through z and o_z). `jobs::distill_routing::routed_gradients` reproduces this.
//!
//! The audio teacher's embeddings are precomputed, and all-zero rows mean "no audio". Those rows
//! are left out of every audio term; the video CE still uses the whole batch.

use super::divergence::{cross_entropy, symmetric_kl};
use candle_core::{bail, DType, Device, Result, Tensor};

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
    pub fn named(&self) -> Result<Vec<(String, Tensor)>> {
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
pub fn check_inputs(
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
pub fn used_rows(teacher: Teacher, teacher_feature: &Tensor) -> Result<Vec<u32>> {
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

/// The video feature, video logits, teacher feature and labels on `rows` of a batch of `n` (the
/// inputs themselves when every row is used).
pub fn select_rows(
    rows: &[u32],
    n: usize,
    video_feature: &Tensor,
    video_logits: &Tensor,
    teacher_feature: &Tensor,
    labels: &Tensor,
) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
    if rows.len() == n {
        return Ok((
            video_feature.clone(),
            video_logits.clone(),
            teacher_feature.clone(),
            labels.clone(),
        ));
    }
    let idx = Tensor::new(rows, video_feature.device())?;
    Ok((
        video_feature.index_select(&idx, 0)?,
        video_logits.index_select(&idx, 0)?,
        teacher_feature.index_select(&idx, 0)?,
        labels.index_select(&idx, 0)?,
    ))
}

impl TeacherTerms {
    /// Every term a constant 0: the audio teacher left no row (the official code gives NaN).
    pub fn zeros(
        teacher: Teacher,
        rows: Vec<u32>,
        num_classes: usize,
        dim: usize,
        dt: DType,
        dev: &Device,
    ) -> Result<Self> {
        let zero = Tensor::zeros((), dt, dev)?;
        Ok(TeacherTerms {
            teacher,
            rows,
            logits_z: Tensor::zeros((0, num_classes), dt, dev)?,
            composed: Tensor::zeros((0, dim), dt, dev)?,
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
        })
    }

    /// One teacher's terms from the head's outputs on the used rows: `logits_z` o_z and `composed`
    /// z, with v = `video_feature`, o_v = `video_logits`, t = `teacher_feature` and y = `labels`
    /// on the same rows. Gradients flow to every input (nothing is detached here).
    #[allow(clippy::too_many_arguments)]
    pub fn from_head_outputs(
        teacher: Teacher,
        rows: Vec<u32>,
        video_feature: &Tensor,
        video_logits: &Tensor,
        teacher_feature: &Tensor,
        labels: &Tensor,
        logits_z: Tensor,
        composed: Tensor,
    ) -> Result<Self> {
        let (v, o_v, t, y, z) = (
            video_feature,
            video_logits,
            teacher_feature,
            labels,
            &composed,
        );
        let tau = teacher.temperature();
        let cls_z = cross_entropy(&logits_z, y)?;
        let nce = |a: &Tensor, b: &Tensor| super::contrastive::nce_loss(a, b, y, tau);
        let (nce_v_z, nce_z_v) = (nce(v, z)?, nce(z, v)?);
        let (nce_v_t, nce_t_v) = (nce(v, t)?, nce(t, v)?);
        let (nce_z_t, nce_t_z) = (nce(z, t)?, nce(t, z)?);
        let loss_vm = (&nce_v_z + &nce_z_v)?;
        let loss_vt = (&nce_v_t + &nce_t_v)?;
        let loss_mt = (&nce_z_t + &nce_t_z)?;
        let jsd = symmetric_kl(o_v, &logits_z, KL_WEIGHT)?;
        Ok(TeacherTerms {
            teacher,
            rows,
            logits_z,
            composed,
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
}
