//! The networks of a CCL run: the R(2+1)D student (from scratch, or from a model folder), the
//! frozen image teacher, and one composition head per teacher, each in its own parameter store
//! (the official code has one SGD optimiser per module).

use super::config::DistillMethod;
use crate::jobs::finetune::model::{FinetuneModel, FinetuneModelOptions};
use crate::models::ccl::composition::CompositionClassifier;
use crate::models::ccl::r2plus1d::{R2Plus1d, R2Plus1dConfig};
use crate::models::ccl::resnet::ResNet;
use crate::models::config::ModelConfig;
use crate::models::folder::ModelFolder;
use crate::models::model::Model;
use crate::nn::batch_norm::is_running_stat;
use crate::nn::param_store::ParamStore;
use crate::objectives::ccl::Teacher;
use candle_core::{bail, DType, Device, Result, Var};
use std::path::Path;

/// Where the student starts.
pub enum StudentStart {
    /// A fresh student with PyTorch's default initialisation (the official runs).
    Scratch(R2Plus1dConfig),
    /// A model folder's weights (its classifier replaced when the class count differs).
    Folder(Box<ModelFolder>),
}

impl StudentStart {
    /// `--student`: a model folder, or a JSON architecture (`{"model_type": "ccl-r2plus1d",
    /// "depth": 18, "widths": [...], ...}`, `num_classes` optional) for a student from scratch.
    pub fn open(reference: &Path) -> Result<Self> {
        if reference.is_dir() {
            return Ok(Self::Folder(Box::new(ModelFolder::open(reference)?)));
        }
        let text = std::fs::read_to_string(reference).map_err(|e| {
            candle_core::Error::Msg(format!("--student {}: {e}", reference.display()))
        })?;
        let mut json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            candle_core::Error::Msg(format!("--student {}: not JSON ({e})", reference.display()))
        })?;
        if let Some(obj) = json.as_object_mut() {
            obj.entry("num_classes").or_insert(0.into());
            obj.entry("in_channels").or_insert(3.into());
        }
        match serde_json::from_value::<ModelConfig>(json) {
            Ok(ModelConfig::CclR2Plus1d(cfg)) => Ok(Self::Scratch(cfg)),
            Ok(other) => bail!(
                "--student {}: a `{}` architecture; CCL distils into a `ccl-r2plus1d` student",
                reference.display(),
                other.model_type()
            ),
            Err(e) => bail!(
                "--student {}: not a ccl-r2plus1d architecture ({e}); expected e.g. {{\"model_type\": \"ccl-r2plus1d\", \"depth\": 18, \"widths\": [64, 128, 256, 512]}}",
                reference.display()
            ),
        }
    }
}

/// One composition head and the teacher it composes with.
pub struct Head {
    pub teacher: Teacher,
    pub net: CompositionClassifier,
    pub store: ParamStore,
}

impl Head {
    /// The slot name of its optimiser, and its folder name in outputs.
    pub fn name(&self) -> &'static str {
        match self.teacher {
            Teacher::Audio => "audio_head",
            Teacher::Image => "image_head",
        }
    }
}

/// Everything a run trains or consults.
pub struct DistillNets {
    pub method: DistillMethod,
    pub student: R2Plus1d,
    pub student_store: ParamStore,
    /// The frozen image teacher (CCL-I, CCL-AI).
    pub image_teacher: Option<ResNet>,
    /// The heads in the official step order: audio, then image.
    pub heads: Vec<Head>,
}

/// The image teacher of a model folder: a ResNet (its classifier, if any, unused).
pub fn image_teacher(folder: &ModelFolder, dev: &Device) -> Result<ResNet> {
    match folder.load(dev)? {
        Model::ResNet(r) => Ok(r),
        _ => bail!(
            "--image-teacher {}: a `{}` model; CCL's image teacher is a ResNet (`resnet`, e.g. converted from torchvision's resnet34-b627a593.pth)",
            folder.dir.display(),
            folder.config.model.model_type()
        ),
    }
}

fn student(start: &StudentStart, num_classes: usize, store: &ParamStore) -> Result<R2Plus1d> {
    match start {
        StudentStart::Scratch(cfg) => {
            let cfg = R2Plus1dConfig {
                num_classes,
                ..cfg.clone()
            };
            R2Plus1d::new(&cfg, store.builder())
        }
        StudentStart::Folder(folder) => {
            let opts = FinetuneModelOptions {
                num_classes,
                head_dropout: 0.0,
                drop_path: 0.0,
                image_size: None,
            };
            match FinetuneModel::from_model_folder(folder, &opts, store)? {
                FinetuneModel::R2Plus1d(m) => Ok(m),
                FinetuneModel::Vit(_) => bail!(
                    "--student {}: a `{}` model; CCL distils into a `ccl-r2plus1d` student",
                    folder.dir.display(),
                    folder.config.model.model_type()
                ),
            }
        }
    }
}

impl DistillNets {
    /// Builds the student and the heads of `method` (parameters from `seed`), with the image
    /// teacher given and audio features of `audio_dim` dimensions; every teacher's feature must
    /// have the student's dimension, since CCL composes them in one space.
    pub fn new(
        method: DistillMethod,
        start: &StudentStart,
        num_classes: usize,
        image_teacher: Option<ResNet>,
        audio_dim: Option<usize>,
        seed: u64,
        dev: &Device,
    ) -> Result<Self> {
        let student_store = ParamStore::new(seed, DType::F32, dev);
        let student = student(start, num_classes, &student_store)?;
        let dim = student.config().widths[3];
        let mut teachers = Vec::new();
        if method.uses_audio() {
            let Some(d) = audio_dim else {
                bail!(
                    "--method {} needs audio-teacher features (--audio-features)",
                    method.name()
                )
            };
            teachers.push((Teacher::Audio, d, "the audio-teacher features"));
        }
        if method.uses_image() {
            let Some(t) = &image_teacher else {
                bail!(
                    "--method {} needs an image teacher (--image-teacher)",
                    method.name()
                )
            };
            teachers.push((
                Teacher::Image,
                t.feature_dim(),
                "the image teacher's features",
            ));
        }
        let mut heads = Vec::new();
        for (k, (teacher, teacher_dim, what)) in teachers.into_iter().enumerate() {
            if teacher_dim != dim {
                bail!(
                    "{what} are {teacher_dim}-d but the student's are {dim}-d (its widths[3]); CCL composes both in one space, so they must match"
                )
            }
            let store = ParamStore::new(seed + 1 + k as u64, DType::F32, dev);
            let net = CompositionClassifier::new(dim, num_classes, store.builder())?;
            heads.push(Head {
                teacher,
                net,
                store,
            });
        }
        Ok(Self {
            method,
            student,
            student_store,
            image_teacher: image_teacher.filter(|_| method.uses_image()),
            heads,
        })
    }

    /// The student's trainable parameters (BatchNorm running statistics excluded).
    pub fn student_vars(&self) -> Vec<(String, Var)> {
        trainable(&self.student_store)
    }

    pub fn head(&self, teacher: Teacher) -> Option<&Head> {
        self.heads.iter().find(|h| h.teacher == teacher)
    }
}

/// A store's parameters an optimiser updates.
pub fn trainable(store: &ParamStore) -> Vec<(String, Var)> {
    store
        .named_vars()
        .into_iter()
        .filter(|(n, _)| !is_running_stat(n))
        .collect()
}
