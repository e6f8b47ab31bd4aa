//! The model a fine-tuning run trains: an XKD video ViT with a classifier head, or CCL's R(2+1)D,
//! built in a [`ParamStore`] so every parameter is a named, trainable `Var`.
//!
//! Starting points: an XKD video student (`xkd-video`, or the video student of a full `xkd*` net)
//! gets a fresh head with the official orthogonal init; an `xkd-video-classifier` keeps its head when
//! the class count matches; a `ccl-r2plus1d` keeps its `linear` classifier when the class count
//! matches. Anything else is an error naming the model type. Whatever the model does not use, or
//! would have to invent beyond the classifier, is reported by name instead of being ignored.

use super::config::{FinetuneConfig, OptimizerConfig};
use crate::models::ccl::r2plus1d::{R2Plus1d, R2Plus1dConfig};
use crate::models::classifier::{VideoClassifier, VideoClassifierConfig};
use crate::models::config::{ModelConfig, PreprocessorConfig, SavedConfig};
use crate::models::folder::ModelFolder;
use crate::models::xkd::VideoVitConfig;
use crate::nn::batch_norm::is_running_stat;
use crate::nn::param_store::ParamStore;
use crate::nn::rng::SeededRng;
use crate::train::optim::ParamGroup;
use crate::train::param_groups::{finetune_groups, pretrain_groups};
use candle_core::{bail, Result, Tensor, Var};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What the fine-tuned model looks like beyond its starting weights.
#[derive(Debug, Clone, PartialEq)]
pub struct FinetuneModelOptions {
    pub num_classes: usize,
    /// Dropout before the ViT head (XKD: 0.5); R(2+1)D has none and rejects a non-zero value.
    pub head_dropout: f64,
    /// Highest drop-path rate of the ViT blocks (XKD fine-tuning: 0).
    pub drop_path: f64,
    /// Training crop size in pixels (XKD fine-tunes at 224 with positional embeddings resampled on
    /// the fly; CCL at 112). `None`: the model's native size. Written to `preprocessor_config.json`.
    pub image_size: Option<usize>,
}

impl FinetuneModelOptions {
    /// The options a [`FinetuneConfig`] implies.
    pub fn from_config(
        cfg: &FinetuneConfig,
        num_classes: usize,
        image_size: Option<usize>,
    ) -> Self {
        Self {
            num_classes,
            head_dropout: cfg.head_dropout,
            drop_path: cfg.drop_path,
            image_size,
        }
    }
}

pub enum FinetuneModel {
    Vit(VideoClassifier),
    R2Plus1d(R2Plus1d),
}

/// The tensors of a full XKD net that make its video student, renamed to a plain encoder's names.
fn video_student_tensors(tensors: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    tensors
        .into_iter()
        .filter_map(|(k, t)| {
            if let Some(rest) = k.strip_prefix("vid_student.backbone.") {
                Some((rest.to_string(), t))
            } else {
                k.strip_prefix("shared_student_blocks.")
                    .map(|rest| (format!("blocks.{rest}"), t))
            }
        })
        .collect()
}

fn drop_prefix(tensors: &mut HashMap<String, Tensor>, prefix: &str) {
    tensors.retain(|k, _| !k.starts_with(prefix));
}

impl FinetuneModel {
    /// Builds the model from a starting config and its tensors into `store` (which should be empty).
    pub fn from_config(
        cfg: &ModelConfig,
        tensors: HashMap<String, Tensor>,
        opts: &FinetuneModelOptions,
        store: &ParamStore,
    ) -> Result<Self> {
        if opts.num_classes == 0 {
            bail!("fine-tuning needs at least one class")
        }
        let mut tensors = tensors;
        let (model_cfg, fresh_prefix) = match cfg {
            ModelConfig::XkdVideo(c) => (vit_config(c, opts), "head."),
            ModelConfig::Xkd(c) | ModelConfig::XkdMas(c) | ModelConfig::XkdMats(c) => {
                tensors = video_student_tensors(tensors);
                (vit_config(&c.video, opts), "head.")
            }
            ModelConfig::XkdVideoClassifier(c) => {
                if c.num_classes != opts.num_classes {
                    drop_prefix(&mut tensors, "head.");
                }
                (vit_config(&c.backbone, opts), "head.")
            }
            ModelConfig::CclR2Plus1d(c) => {
                if opts.head_dropout != 0.0 || opts.drop_path != 0.0 {
                    bail!("R(2+1)D has no head dropout or drop path; set both to 0")
                }
                if c.num_classes != opts.num_classes {
                    drop_prefix(&mut tensors, "linear.");
                }
                let mut r = c.clone();
                r.num_classes = opts.num_classes;
                (ModelConfig::CclR2Plus1d(r), "linear.")
            }
            other => bail!(
                "cannot fine-tune a `{}` model: expected xkd-video, xkd-video-classifier, a full xkd net or ccl-r2plus1d",
                other.model_type()
            ),
        };
        let loaded: BTreeSet<String> = tensors.keys().cloned().collect();
        store.insert_tensors(tensors)?;
        let model = match &model_cfg {
            ModelConfig::XkdVideoClassifier(c) => {
                if let Some(size) = opts.image_size {
                    check_image_size(&c.backbone, size)?;
                }
                Self::Vit(VideoClassifier::new(c, store.builder())?)
            }
            ModelConfig::CclR2Plus1d(c) => Self::R2Plus1d(R2Plus1d::new(c, store.builder())?),
            other => bail!("internal: no fine-tune model for `{}`", other.model_type()),
        };
        let requested = store.requested_names();
        let unused: Vec<&String> = loaded.difference(&requested).collect();
        if !unused.is_empty() {
            bail!(
                "the starting weights hold {} tensors the {} model does not use, e.g. {:?}",
                unused.len(),
                model_cfg.model_type(),
                &unused[..unused.len().min(5)]
            )
        }
        let invented: Vec<&String> = requested
            .difference(&loaded)
            .filter(|n| !n.starts_with(fresh_prefix))
            .collect();
        if !invented.is_empty() {
            bail!(
                "the starting weights lack {} tensors of the backbone, e.g. {:?}",
                invented.len(),
                &invented[..invented.len().min(5)]
            )
        }
        Ok(model)
    }

    /// Builds the model from an avkd model folder, reading the weights onto the store's device.
    pub fn from_model_folder(
        folder: &ModelFolder,
        opts: &FinetuneModelOptions,
        store: &ParamStore,
    ) -> Result<Self> {
        let tensors = folder.tensors(store.device())?;
        Self::from_config(&folder.config.model, tensors, opts, store).map_err(|e| {
            candle_core::Error::Msg(format!("fine-tuning from {}: {e}", folder.dir.display()))
        })
    }

    pub fn num_classes(&self) -> usize {
        match self {
            Self::Vit(m) => m.config().num_classes,
            Self::R2Plus1d(m) => m.config().num_classes,
        }
    }

    /// Logits [B, classes]. `train = Some(rng)`: training mode (drop path and head dropout drawn
    /// from `rng`; BatchNorm on batch statistics, updating its running statistics).
    pub fn logits_t(&self, x: &Tensor, train: Option<&mut SeededRng>) -> Result<Tensor> {
        match self {
            Self::Vit(m) => m.forward_t(x, train),
            Self::R2Plus1d(m) => Ok(m.forward_t(x, train.is_some())?.logits),
        }
    }

    /// Evaluation-mode pooled features [B, D] (linear probes): the mean patch token of the ViT, the
    /// pooled 512-d feature of R(2+1)D.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Vit(m) => m.features(x, None),
            Self::R2Plus1d(m) => Ok(m.forward_t(x, false)?.feature),
        }
    }

    /// The parameters an optimiser updates: every store entry but BatchNorm running statistics.
    pub fn trainable_vars(store: &ParamStore) -> Vec<(String, Var)> {
        store
            .named_vars()
            .into_iter()
            .filter(|(n, _)| !is_running_stat(n))
            .collect()
    }

    /// Optimiser groups. ViT: XKD's layer-wise lr decay (1-D tensors, `pos_embed`, `cls_token`
    /// undecayed). R(2+1)D with SGD: one group, every parameter decayed (CCL's `SGD(params, wd)`);
    /// with AdamW: biases and 1-D tensors undecayed.
    pub fn param_groups(
        &self,
        store: &ParamStore,
        cfg: &FinetuneConfig,
    ) -> Result<Vec<ParamGroup>> {
        let vars = Self::trainable_vars(store);
        let wd = match cfg.optimizer {
            OptimizerConfig::Adamw { weight_decay, .. } => weight_decay,
            OptimizerConfig::Sgd { weight_decay, .. } => weight_decay,
        };
        Ok(match (self, &cfg.optimizer) {
            (Self::Vit(m), _) => {
                let depth = m.config().backbone.transformer.depth;
                finetune_groups(&vars, wd, cfg.layer_decay, depth)?
            }
            (Self::R2Plus1d(_), OptimizerConfig::Sgd { .. }) => {
                vec![ParamGroup::new("all", vars, wd)]
            }
            (Self::R2Plus1d(_), OptimizerConfig::Adamw { .. }) => pretrain_groups(&vars, wd)
                .into_iter()
                .filter(|g| !g.vars.is_empty())
                .collect(),
        })
    }

    /// The architecture as a model folder's `config.json` (with class names when given).
    pub fn config(&self, id2label: Option<BTreeMap<usize, String>>) -> SavedConfig {
        let model = match self {
            Self::Vit(m) => ModelConfig::XkdVideoClassifier(m.config().clone()),
            Self::R2Plus1d(m) => ModelConfig::CclR2Plus1d(m.config().clone()),
        };
        SavedConfig { model, id2label }
    }

    /// `preprocessor_config.json`: the kind's defaults with the training crop size.
    pub fn preprocessor(&self, image_size: Option<usize>) -> PreprocessorConfig {
        let mut pre = PreprocessorConfig::for_model(&self.config(None).model);
        if let Some(size) = image_size {
            pre.crop_size = Some(size);
            pre.resize_short_side = Some(size);
        }
        pre
    }

    pub fn r2plus1d_config(&self) -> Option<&R2Plus1dConfig> {
        match self {
            Self::R2Plus1d(m) => Some(m.config()),
            Self::Vit(_) => None,
        }
    }
}

fn vit_config(backbone: &VideoVitConfig, opts: &FinetuneModelOptions) -> ModelConfig {
    let mut backbone = backbone.clone();
    backbone.transformer.drop_path_rate = opts.drop_path;
    ModelConfig::XkdVideoClassifier(VideoClassifierConfig {
        backbone,
        num_classes: opts.num_classes,
        head_dropout: opts.head_dropout,
    })
}

fn check_image_size(cfg: &VideoVitConfig, size: usize) -> Result<()> {
    if size == 0
        || !size.is_multiple_of(cfg.patch_size[0])
        || !size.is_multiple_of(cfg.patch_size[1])
    {
        bail!(
            "image_size {size} is not a multiple of the {:?} patch size",
            cfg.patch_size
        )
    }
    Ok(())
}
