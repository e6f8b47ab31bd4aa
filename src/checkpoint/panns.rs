//! PANNs checkpoints (`{'model': state_dict}`, qiuqiangkong/audioset_tagging_cnn): the tensors of
//! CCL's audio teacher, and the teacher built from them.

use super::pth::read_state_dict;
use crate::models::ccl::cnn14::{Cnn14Config, Cnn14Emb512};
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::Path;

/// The tensors of a PANNs checkpoint (`checkpoint['model']`), without `num_batches_tracked`, in f32.
pub fn panns_state_dict(path: &Path) -> Result<HashMap<String, Tensor>> {
    read_state_dict(path, Some("model"))?
        .into_iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, t)| Ok((k, t.to_dtype(DType::F32)?)))
        .collect()
}

/// Builds `Cnn14_emb512` from a PANNs checkpoint file (`{'model': state_dict}`).
pub fn cnn14_from_checkpoint(
    cfg: &Cnn14Config,
    path: &Path,
    dtype: DType,
    device: &Device,
) -> Result<Cnn14Emb512> {
    let vb = VarBuilder::from_tensors(panns_state_dict(path)?, dtype, device);
    Cnn14Emb512::new(cfg, vb)
}
