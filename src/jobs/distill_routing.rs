//! CCL's gradient routing, to be used by the distillation job: one step's losses built with the
//! composition heads (CCL-I, CCL-A, CCL-AI, after `training.py::train_i_epoch`, `train_a_epoch`,
//! `train_ai_epoch`), and the gradients each parameter receives.
//!
//! The loss terms themselves are pure tensor functions in `objectives::ccl`; what lives here needs
//! the composition head (`models::ccl::composition`) or builds a `GradStore` (`train::optim`).
//!
//! The official code calls backward on each head loss, zeroes the student's gradients, calls
//! backward on the video loss, and then steps everything. So the student learns from the video
//! loss only, while each head learns from its own loss plus the video loss (which reaches the head
//! through z and o_z). [`routed_gradients`] reproduces this.

use crate::models::ccl::composition::CompositionClassifier;
use crate::objectives::ccl::{
    check_inputs, select_rows, used_rows, CclLosses, Teacher, TeacherTerms,
};
use crate::objectives::divergence::cross_entropy;
use crate::train::optim::grad_store;
use candle_core::backprop::GradStore;
use candle_core::{bail, Result, Tensor, Var};
use std::collections::HashSet;

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
        return TeacherTerms::zeros(teacher, rows, head.num_classes(), head.dim(), dt, dev);
    }
    let (v, o_v, t, y) = select_rows(
        &rows,
        n,
        video_feature,
        video_logits,
        teacher_feature,
        labels,
    )?;
    let (logits_z, z) = head.forward(&t, &v)?;
    TeacherTerms::from_head_outputs(teacher, rows, &v, &o_v, &t, &y, logits_z, z)
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
/// CE(o_v) + w·(sym_a + sym_i) + w·(KL_a + KL_i), with w = `weight`
/// ([`CCL_AI_WEIGHT`](crate::objectives::ccl::CCL_AI_WEIGHT) = 0.5 in the official scripts). `head` is the sum of the two head losses. Each head's parameters appear
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
