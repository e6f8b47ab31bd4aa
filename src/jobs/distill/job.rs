//! CCL distillation as a [`Job`] on the training engine, one step as `training.py::train_a_epoch`,
//! `train_i_epoch` and `train_ai_epoch` do it:
//!
//! 1. the student in training mode on the clips (BatchNorm on batch statistics);
//! 2. the frozen image teacher on ONE frame of the normalised clip, the same random index for the
//!    whole batch (`inputs[:, :, r]`); the audio teacher's features come with the batch;
//! 3. the composition heads and the official losses (`objectives::ccl`, `distill_routing`);
//! 4. the official gradient routing: the student learns from the video loss only, each head from
//!    its own loss plus the video loss ([`routed_gradients`]);
//! 5. one SGD step per module (the engine's slots: audio head, image head, student).
//!
//! Checkpoints are the student's model folder with each head's folder inside it.

use super::config::{DistillMethod, RESUME_FREE_KEYS};
use super::data::DistillBatch;
use super::nets::{trainable, DistillNets, Head};
use crate::checkpoint::export::{write_folder_descriptions, write_safetensors};
use crate::checkpoint::model_card::CardSource;
use crate::jobs::distill_routing::{ccl_ai, ccl_single, routed_gradients};
use crate::models::ccl::r2plus1d::R2Plus1d;
use crate::models::config::{CompositionConfig, ModelConfig, PreprocessorConfig, SavedConfig};
use crate::nn::param_store::ParamStore;
use crate::nn::rng::SeededRng;
use crate::objectives::ccl::{CclLosses, Teacher};
use crate::train::job::{EvalOutcome, Gradients, Job, StepContext, StepOutput};
use crate::train::resume_check::check_same_settings;
use crate::train::train_state::{restore_store, TrainerState, MODEL_FILE};
use candle_core::{bail, DType, Result, Tensor, Var, D};
use std::collections::BTreeMap;
use std::path::Path;

/// The evaluation callback: the student and the number (from 1) of the epoch just finished.
pub type DistillEvalFn<'a> = Box<dyn FnMut(&R2Plus1d, usize) -> Result<EvalOutcome> + 'a>;

/// The logged loss terms (a fixed set, so their names are `'static`).
const LOGGED_TERMS: [&str; 10] = [
    "aud_cls_z",
    "aud_loss_vm",
    "aud_loss_vt",
    "aud_loss_mt",
    "aud_jsd",
    "img_cls_z",
    "img_loss_vm",
    "img_loss_vt",
    "img_loss_mt",
    "img_jsd",
];

/// CCL distillation as the engine sees it.
pub struct Distillation<'a> {
    nets: DistillNets,
    settings: serde_json::Value,
    /// The video loss's weight of the distillation terms (CCL-AI: `loss_weight`; else 1).
    weight: f64,
    student_vars: Vec<Var>,
    head_vars: Vec<Var>,
    eval: Option<DistillEvalFn<'a>>,
    id2label: Option<BTreeMap<usize, String>>,
    preprocessor: PreprocessorConfig,
}

impl<'a> Distillation<'a> {
    /// `settings` (the run's config as JSON) go into every checkpoint; `preprocessor` into the
    /// student's folders.
    pub fn new(
        nets: DistillNets,
        weight: f64,
        settings: serde_json::Value,
        preprocessor: PreprocessorConfig,
        id2label: Option<BTreeMap<usize, String>>,
    ) -> Self {
        let vars = |v: Vec<(String, Var)>| v.into_iter().map(|(_, v)| v).collect::<Vec<_>>();
        let student_vars = vars(nets.student_vars());
        let head_vars = nets
            .heads
            .iter()
            .flat_map(|h| vars(trainable(&h.store)))
            .collect();
        Self {
            nets,
            settings,
            weight,
            student_vars,
            head_vars,
            eval: None,
            id2label,
            preprocessor,
        }
    }

    /// Evaluates the student when the engine asks (every `eval_every` epochs).
    pub fn with_eval(mut self, eval: DistillEvalFn<'a>) -> Self {
        self.eval = Some(eval);
        self
    }

    pub fn nets(&self) -> &DistillNets {
        &self.nets
    }

    /// The image teacher's input: frame `r` of every clip, `r` drawn once for the batch.
    fn teacher_frame(clips: &Tensor, rng: &mut SeededRng) -> Result<Tensor> {
        let frames = clips.dim(2)?;
        clips.narrow(2, rng.range(0, frames), 1)?.squeeze(2)
    }

    /// The step's losses for the job's method.
    fn losses(&self, batch: &DistillBatch, rng: &mut SeededRng) -> Result<(CclLosses, Tensor)> {
        let nets = &self.nets;
        let dev = nets.student_store.device();
        let clips = batch.clips.to_device(dev)?;
        let labels = batch.labels.to_device(dev)?;
        let out = nets.student.forward_t(&clips, true)?;
        let image = match &nets.image_teacher {
            Some(teacher) => Some(teacher.features(&Self::teacher_frame(&clips, rng)?)?),
            None => None,
        };
        let audio = batch.audio.as_ref().map(|a| a.to_device(dev)).transpose()?;
        let head = |t: Teacher| -> Result<&Head> {
            nets.head(t)
                .ok_or_else(|| candle_core::Error::Msg(format!("no {t:?} head")))
        };
        let need = |x: Option<Tensor>, what: &str| {
            x.ok_or_else(|| candle_core::Error::Msg(format!("the batch has no {what} feature")))
        };
        let (v, o_v) = (&out.feature, &out.logits);
        let losses = match nets.method {
            DistillMethod::CclA => {
                let t = need(audio, "audio")?;
                let h = &head(Teacher::Audio)?.net;
                ccl_single(Teacher::Audio, v, o_v, &t, h, &labels, self.weight)?
            }
            DistillMethod::CclI => {
                let t = need(image, "image")?;
                let h = &head(Teacher::Image)?.net;
                ccl_single(Teacher::Image, v, o_v, &t, h, &labels, self.weight)?
            }
            DistillMethod::CclAi => {
                let (t_i, t_a) = (need(image, "image")?, need(audio, "audio")?);
                let (h_i, h_a) = (&head(Teacher::Image)?.net, &head(Teacher::Audio)?.net);
                ccl_ai(v, o_v, &t_i, h_i, &t_a, h_a, &labels, self.weight)?
            }
        };
        let accuracy = o_v
            .argmax(D::Minus1)?
            .eq(&labels.to_dtype(DType::U32)?)?
            .to_dtype(DType::F32)?
            .mean_all()?;
        Ok((losses, accuracy))
    }

    /// Gives the networks back (after a run).
    pub fn into_nets(self) -> DistillNets {
        self.nets
    }

    /// Writes the student's model folder into `dir` and each head's folder into `heads_dir`
    /// (`audio_head/`, `image_head/`).
    pub fn write_folders(&self, dir: &Path, heads_dir: &Path, source: &str) -> Result<()> {
        let student = SavedConfig {
            model: ModelConfig::CclR2Plus1d(self.nets.student.config().clone()),
            id2label: self.id2label.clone(),
        };
        write_folder(
            dir,
            &self.nets.student_store,
            &student,
            &self.preprocessor,
            source,
        )?;
        for head in &self.nets.heads {
            let cfg = SavedConfig::new(ModelConfig::CclComposition(CompositionConfig {
                dim: head.net.dim(),
                num_classes: head.net.num_classes(),
            }));
            let pre = PreprocessorConfig::for_model(&cfg.model);
            write_folder(
                &heads_dir.join(head.name()),
                &head.store,
                &cfg,
                &pre,
                source,
            )?;
        }
        Ok(())
    }
}

/// One model folder: weights, config, preprocessing and card.
fn write_folder(
    dir: &Path,
    store: &ParamStore,
    cfg: &SavedConfig,
    pre: &PreprocessorConfig,
    source: &str,
) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| candle_core::Error::Msg(format!("creating {}: {e}", dir.display())))?;
    let tensors = store.tensors()?;
    let meta = BTreeMap::from([
        ("model_type".to_string(), cfg.model.model_type().to_string()),
        ("source_file".to_string(), source.to_string()),
    ]);
    write_safetensors(&dir.join(MODEL_FILE), &tensors, &meta)?;
    let card = CardSource {
        file: source.to_string(),
        sha256: String::new(),
        parameters: tensors.values().map(|t| t.elem_count()).sum(),
        tensors: tensors.len(),
        initialised: Vec::new(),
    };
    write_folder_descriptions(dir, cfg, pre, &card)
}

impl Job for Distillation<'_> {
    type Batch = DistillBatch;

    fn name(&self) -> &str {
        "distillation"
    }

    fn config_json(&self) -> serde_json::Value {
        self.settings.clone()
    }

    fn check_resumable(&self, saved: &serde_json::Value) -> Result<()> {
        check_same_settings(&self.settings, saved, &RESUME_FREE_KEYS)
    }

    fn training_step(
        &mut self,
        batch: DistillBatch,
        _ctx: &StepContext,
        rng: &mut SeededRng,
    ) -> Result<StepOutput> {
        let samples = batch.labels.dim(0)?;
        if batch.clips.dim(0)? != samples {
            bail!(
                "a batch has {} clips but {samples} labels",
                batch.clips.dim(0)?
            )
        }
        let (losses, accuracy) = self.losses(&batch, rng)?;
        let grads = routed_gradients(&losses, &self.student_vars, &self.head_vars)?;
        let mut logged = vec![
            ("loss", losses.video.detach()),
            ("head_loss", losses.head.detach()),
            ("accuracy", accuracy),
        ];
        // CCL-A and CCL-I name the video CE after their teacher (`aud_cls_v`); log it as `cls_v`.
        let cls_v = ["cls_v", "aud_cls_v", "img_cls_v"]
            .iter()
            .find_map(|n| losses.term(n));
        if let Some(t) = cls_v {
            logged.push(("cls_v", t.clone()));
        }
        for name in LOGGED_TERMS {
            if let Some(t) = losses.term(name) {
                logged.push((name, t.clone()));
            }
        }
        Ok(StepOutput {
            gradients: Gradients::Routed(grads),
            logged,
            samples,
        })
    }

    fn evaluate(&mut self, epoch_number: usize) -> Result<Option<EvalOutcome>> {
        match &mut self.eval {
            Some(eval) => eval(&self.nets.student, epoch_number).map(Some),
            None => Ok(None),
        }
    }

    fn save(&self, dir: &Path, state: &TrainerState) -> Result<()> {
        let source = format!(
            "avkd {} distillation, epoch {} step {}",
            self.nets.method.name(),
            state.epoch,
            state.global_step
        );
        self.write_folders(dir, dir, &source)
    }

    fn restore(&mut self, dir: &Path) -> Result<()> {
        restore_store(&self.nets.student_store, dir)?;
        for head in &self.nets.heads {
            restore_store(&head.store, &dir.join(head.name()))?;
        }
        Ok(())
    }
}
