//! Parameter counts of a [`ModelConfig`] without allocating its weights.
//!
//! The model is built by its ordinary constructor from a `VarBuilder` whose backend only records the
//! requested names and shapes and hands back a broadcast scalar, so a ViT-B costs a few kilobytes
//! instead of 350 MB and the count always agrees with what the constructor really builds.

use crate::models::ccl::cnn14::Cnn14Emb512;
use crate::models::ccl::composition::CompositionClassifier;
use crate::models::ccl::r2plus1d::R2Plus1d;
use crate::models::ccl::resnet::ResNet;
use crate::models::classifier::VideoClassifier;
use crate::models::config::ModelConfig;
use crate::models::xkd::{AudioViT, VideoViT};
use crate::nn::batch_norm::is_running_stat;
use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

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

/// Records (name -> shape); a name requested twice (shared blocks) is counted once.
#[derive(Clone, Default)]
struct ShapeRecorder(Arc<Mutex<BTreeMap<String, Shape>>>);

impl candle_nn::var_builder::SimpleBackend for ShapeRecorder {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut seen = self
            .0
            .lock()
            .map_err(|_| candle_core::Error::Msg("shape recorder poisoned".into()))?;
        if let Some(prev) = seen.get(name) {
            if prev != &s {
                candle_core::bail!(
                    "parameter `{name}` requested with shapes {:?} and {:?}",
                    prev.dims(),
                    s.dims()
                )
            }
        }
        seen.insert(name.to_string(), s.clone());
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("parameter `{name}`: a shape-only build has no tensors to look up")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        false
    }
}

/// Named shapes of everything the model with this config builds.
pub fn param_shapes(cfg: &ModelConfig) -> Result<BTreeMap<String, Vec<usize>>> {
    let rec = ShapeRecorder::default();
    let vb = VarBuilder::from_backend(Box::new(rec.clone()), DType::F32, Device::Cpu);
    match cfg {
        ModelConfig::XkdVideo(c) => drop(VideoViT::new(c, vb)?),
        ModelConfig::XkdAudio(c) => drop(AudioViT::new(c, vb)?),
        ModelConfig::XkdVideoClassifier(c) => drop(VideoClassifier::new(c, vb)?),
        ModelConfig::CclR2Plus1d(c) => drop(R2Plus1d::new(c, vb)?),
        ModelConfig::CclComposition(c) => {
            drop(CompositionClassifier::new(c.dim, c.num_classes, vb)?)
        }
        ModelConfig::ResNet(c) => drop(ResNet::new(c, vb)?),
        ModelConfig::PannsCnn14(c) => drop(Cnn14Emb512::new(c, vb)?),
        // XkdNet builds into a real ParamStore (its teachers are EMA copies), so it has no
        // shape-only path; the zoo only registers backbones.
        ModelConfig::Xkd(_) | ModelConfig::XkdMas(_) | ModelConfig::XkdMats(_) => {
            candle_core::bail!(
                "parameter counting: `{}` is a full pretraining net; count it with XkdNet::new",
                cfg.model_type()
            )
        }
    }
    let seen = rec
        .0
        .lock()
        .map_err(|_| candle_core::Error::Msg("shape recorder poisoned".into()))?;
    Ok(seen
        .iter()
        .map(|(k, s)| (k.clone(), s.dims().to_vec()))
        .collect())
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
