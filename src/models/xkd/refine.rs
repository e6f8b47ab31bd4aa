//! XKD's refine step: the teachers' CLS→patch attentions of both modalities re-weight each other
//! (`XKD_Net.cross_modal_attn`), and the teacher tokens are re-weighted with the result while
//! keeping the energy of their patch mean (`XKD_Net.align_feats`). The pooled tokens feed the
//! teacher heads.

use crate::nn::softmax::softmax_last_dim;
use candle_core::{bail, Result, Tensor, D};
use serde::{Deserialize, Serialize};

/// How the cross-modal attention is normalised (`cross_modal_attn(..., mode)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrossModalAttnMode {
    /// Rescale by the ratio of the two modalities' mean attentions (used by all XKD configs).
    #[default]
    Mean,
    /// Softmax over the patches of the re-weighted attention.
    Softmax,
}

/// Cross-modal attention of the video [B, H, Nv] and audio [B, H, Na] CLS→patch attentions.
///
/// The official code forms the outer product cm[b,h,i,j] = a[b,h,i]·v[b,h,j] and averages one
/// patch axis; since mean_i(a_i·v_j) = v_j·mean_i(a_i), this computes the closed form:
/// - `Mean`:    cv = v·mean_i(a)/mean_j(v),  ca = a·mean_j(v)/mean_i(a);
/// - `Softmax`: cv = softmax_j(v·mean_i(a)), ca = softmax_i(a·mean_j(v)).
///
/// Returns (cvattn [B, H, Nv], caattn [B, H, Na]).
pub fn cross_modal_attn(
    vattn: &Tensor,
    aattn: &Tensor,
    mode: CrossModalAttnMode,
) -> Result<(Tensor, Tensor)> {
    let (vb, vh) = match vattn.dims() {
        [b, h, _] => (*b, *h),
        s => bail!("cross_modal_attn: vattn must be [B, H, Nv], got shape {s:?}"),
    };
    let (ab, ah) = match aattn.dims() {
        [b, h, _] => (*b, *h),
        s => bail!("cross_modal_attn: aattn must be [B, H, Na], got shape {s:?}"),
    };
    if (vb, vh) != (ab, ah) {
        bail!(
            "cross_modal_attn: batch/heads differ, vattn {:?} vs aattn {:?}",
            vattn.dims(),
            aattn.dims()
        );
    }
    let vmean = vattn.mean_keepdim(D::Minus1)?; // [B, H, 1]
    let amean = aattn.mean_keepdim(D::Minus1)?; // [B, H, 1]
    let cv = vattn.broadcast_mul(&amean)?;
    let ca = aattn.broadcast_mul(&vmean)?;
    match mode {
        CrossModalAttnMode::Mean => Ok((cv.broadcast_div(&vmean)?, ca.broadcast_div(&amean)?)),
        CrossModalAttnMode::Softmax => Ok((softmax_last_dim(&cv)?, softmax_last_dim(&ca)?)),
    }
}

/// Re-weights the tokens `tok` [B, N, D] by the head-averaged attention `w` [B, H, N], then rescales
/// each sample so that its patch mean keeps the squared norm it had before the re-weighting:
/// tok' = s·w̄·tok with s = sqrt(‖mean_n tok‖² / ‖mean_n(w̄·tok)‖²). Returns [B, N, D].
pub fn align_feats(tok: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (tb, tn) = match tok.dims() {
        [b, n, _] => (*b, *n),
        s => bail!("align_feats: tokens must be [B, N, D], got shape {s:?}"),
    };
    let (wb, wn) = match w.dims() {
        [b, _, n] => (*b, *n),
        s => bail!("align_feats: attention must be [B, H, N], got shape {s:?}"),
    };
    if (tb, tn) != (wb, wn) {
        bail!(
            "align_feats: tokens {:?} and attention {:?} disagree on B or N",
            tok.dims(),
            w.dims()
        );
    }
    let w = w.mean(1)?.unsqueeze(D::Minus1)?; // [B, N, 1]
    let weighted = tok.broadcast_mul(&w)?; // [B, N, D]
    let eng_org = tok.mean(1)?.sqr()?.sum_keepdim(1)?; // [B, 1]
    let eng_aft = weighted.mean(1)?.sqr()?.sum_keepdim(1)?; // [B, 1]
    let scale = (eng_org / eng_aft)?.sqrt()?.unsqueeze(D::Minus1)?; // [B, 1, 1]
    weighted.broadcast_mul(&scale)
}

/// The full refine step: cross-modal attention, aligned tokens, and their patch means, which are the
/// inputs of the video and audio teacher heads. `vtok` [B, Nv, D] and `atok` [B, Na, D] are the
/// teacher tokens after the final norm without CLS. Returns (vfeat [B, D], afeat [B, D]).
pub fn refine(
    vattn: &Tensor,
    aattn: &Tensor,
    vtok: &Tensor,
    atok: &Tensor,
    mode: CrossModalAttnMode,
) -> Result<(Tensor, Tensor)> {
    let (cv, ca) = cross_modal_attn(vattn, aattn, mode)?;
    let vfeat = align_feats(vtok, &cv)?.mean(1)?;
    let afeat = align_feats(atok, &ca)?.mean(1)?;
    Ok((vfeat, afeat))
}
