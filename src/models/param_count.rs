//! Parameter counts of a [`ModelConfig`] without allocating its weights.
//!
//! The model is built by its ordinary constructor on a [`ShapeRecorder`], which records the requested
//! names and shapes and allocates nothing, so a ViT-B costs a few kilobytes instead of 350 MB and
//! the count always agrees with what the constructor really builds.

use crate::models::config::ModelConfig;
use crate::models::model::Model;
use crate::nn::batch_norm::is_running_stat;
use crate::nn::shape_recorder::ShapeRecorder;
use candle_core::Result;
use serde::Serialize;
use std::collections::BTreeMap;

/// What a model holds, counted in scalars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ParamCount {
    /// Every tensor except BatchNorm running statistics (PyTorch's `model.parameters()`; PANNs'
    /// frozen STFT and mel weights are parameters there too).
    pub parameters: usize,
    /// BatchNorm running means and variances.
    pub running_stats: usize,
    /// Number of named tensors, running statistics included.
    pub tensors: usize,
}

/// Named shapes of everything the model with this config builds.
pub fn param_shapes(cfg: &ModelConfig) -> Result<BTreeMap<String, Vec<usize>>> {
    if let ModelConfig::Xkd(_) | ModelConfig::XkdMas(_) | ModelConfig::XkdMats(_) = cfg {
        // XkdNet builds into a real ParamStore (its teachers are EMA copies), so it has no
        // shape-only path; the zoo only registers backbones.
        candle_core::bail!(
            "parameter counting: `{}` is a full pretraining net; count it with XkdNet::new",
            cfg.model_type()
        )
    }
    let recorder = ShapeRecorder::new();
    Model::new(cfg, recorder.builder())?;
    Ok(recorder.shapes())
}

pub fn count_params(cfg: &ModelConfig) -> Result<ParamCount> {
    let shapes = param_shapes(cfg)?;
    let mut count = ParamCount {
        parameters: 0,
        running_stats: 0,
        tensors: shapes.len(),
    };
    for (name, dims) in &shapes {
        let n: usize = dims.iter().product();
        if is_running_stat(name) {
            count.running_stats += n;
        } else {
            count.parameters += n;
        }
    }
    Ok(count)
}
