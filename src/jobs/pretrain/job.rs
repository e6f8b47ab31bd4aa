//! XKD pre-training as a [`Job`] on the training engine, each step in the official order
//! (`main_xkd.py::train_one_epoch`):
//!
//! 1. forward: MAE reconstruction, teachers on the first local view, refine, students on the masked
//!    global view and every local view, MMD alignment, cross-modal DINO (centres updated inside);
//! 2. backward (the engine);
//! 3. DINO's per-parameter clipping of the two students (backbones and heads, in the official
//!    `named_parameters()` order, XKD-MAS's shared blocks visited once per student); the MAE
//!    decoders are never clipped;
//! 4. the students' last head layer loses its gradient while `epoch < freeze_last_layer`;
//! 5. AdamW with the two official groups (the engine), lr, weight decay scheduled per step;
//! 6. the teachers follow their students by EMA, with one momentum schedule per modality.
//!
//! Teacher temperatures follow their per-epoch warmup. Checkpoints hold the whole net with its
//! DINO centres.

use super::config::TeacherTemperatures;
use super::probe::Probe;
use crate::checkpoint::export::write_model_folder;
use crate::data::synth::AvBatch;
use crate::models::xkd::mae::masking_from_noise;
use crate::models::xkd::net::XkdNet;
use crate::nn::rng::SeededRng;
use crate::train::clip::clip_per_param;
use crate::train::job::{EvalOutcome, Gradients, Job, StepContext, StepOutput};
use crate::train::resume_check::check_same_settings;
use crate::train::schedule::Schedule;
use crate::train::train_state::{read_model_tensors, TrainerState, MODEL_FILE};
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Settings a resumed pre-training may change: how long it goes on, and how often it saves, logs
/// and probes (as fine-tuning's).
pub const RESUME_FREE_KEYS: [&str; 5] = [
    "epochs",
    "save_every_steps",
    "log_every",
    "probe_every",
    "probe_svm",
];

/// One micro-batch of pre-training views.
#[derive(Debug, Clone)]
pub struct PretrainBatch {
    /// [global [B,3,T,H,W], local_1, ...]
    pub frames: Vec<Tensor>,
    /// [global [B,1,F,S], local_1, ...]
    pub specs: Vec<Tensor>,
    /// Recorded MAE masking noise (video [B, Lv], audio [B, La]); drawn from the step's generator
    /// when `None`.
    pub masking_noise: Option<(Tensor, Tensor)>,
}

impl From<AvBatch> for PretrainBatch {
    fn from(b: AvBatch) -> Self {
        Self {
            frames: b.frames,
            specs: b.specs,
            masking_noise: None,
        }
    }
}

/// What one step did, kept when a run is recorded (`avkd pretrain --replay`), in avkd names.
#[derive(Debug, Clone, Default)]
pub struct StepRecord {
    pub losses: Vec<(&'static str, Tensor)>,
    /// Every trainable parameter's gradient after clipping and cancelling (those without one are
    /// absent).
    pub grads: Vec<(String, Tensor)>,
    /// The norm of each clipping visit, in visit order.
    pub clip_norms: Vec<f64>,
    /// Every parameter and both centres after the step.
    pub state: HashMap<String, Tensor>,
}

/// XKD pre-training as the engine sees it.
pub struct Pretraining<'a> {
    net: &'a mut XkdNet,
    settings: serde_json::Value,
    clip_grad: f64,
    freeze_last_layer: usize,
    /// The students' parameters in the official clipping visit order.
    clip_order: Vec<Var>,
    /// The students' `last_layer.weight_v`.
    last_layers: Vec<Var>,
    vid_ema: Schedule,
    aud_ema: Schedule,
    temperatures: TeacherTemperatures,
    clip_norms: Vec<f64>,
    /// Set to keep a [`StepRecord`] of every step.
    pub records: Option<Vec<StepRecord>>,
    /// Evaluates the frozen video student when the engine asks (every `probe_every` epochs).
    pub probe: Option<Probe>,
}

/// How a [`Pretraining`] job steps, besides what the engine schedules.
pub struct PretrainStepSettings {
    /// Per-parameter clipping limit; 0 disables clipping.
    pub clip_grad: f64,
    pub freeze_last_layer: usize,
    pub vid_ema: Schedule,
    pub aud_ema: Schedule,
    pub temperatures: TeacherTemperatures,
    /// Saved in checkpoints; a resumed run must bring the same.
    pub settings: serde_json::Value,
}

impl<'a> Pretraining<'a> {
    pub fn new(net: &'a mut XkdNet, step: PretrainStepSettings) -> Self {
        let clip_order = official_clip_order(net);
        let last_layers = net
            .trainable_vars()
            .into_iter()
            .filter(|(n, _)| n.contains("_student.head.last_layer"))
            .map(|(_, v)| v)
            .collect();
        Self {
            net,
            settings: step.settings,
            clip_grad: step.clip_grad,
            freeze_last_layer: step.freeze_last_layer,
            clip_order,
            last_layers,
            vid_ema: step.vid_ema,
            aud_ema: step.aud_ema,
            temperatures: step.temperatures,
            clip_norms: Vec::new(),
            records: None,
            probe: None,
        }
    }

    fn current_record(&mut self) -> Option<&mut StepRecord> {
        self.records.as_mut().and_then(|r| r.last_mut())
    }
}

/// Where a student parameter comes in the official `named_parameters()` of its wrapper
/// (`MultiViewWrapper(backbone, head)`): tokens, patch embedding, blocks (in block order), final
/// norm, then the head's MLP, then its last layer.
fn official_position(name: &str) -> (usize, usize, usize) {
    const BLOCK: [&str; 12] = [
        "norm1.weight",
        "norm1.bias",
        "attn.qkv.weight",
        "attn.qkv.bias",
        "attn.proj.weight",
        "attn.proj.bias",
        "norm2.weight",
        "norm2.bias",
        "mlp.fc1.weight",
        "mlp.fc1.bias",
        "mlp.fc2.weight",
        "mlp.fc2.bias",
    ];
    let rest = name.split_once("blocks.").map(|(_, r)| r);
    if let Some((block, param)) = rest.and_then(|r| r.split_once('.')) {
        let i = block.parse().unwrap_or(usize::MAX);
        let j = BLOCK
            .iter()
            .position(|p| *p == param)
            .unwrap_or(BLOCK.len());
        return (1, i, j);
    }
    let leaf = name.split_once(".backbone.").map(|(_, r)| r);
    let head = name.split_once(".head.").map(|(_, r)| r);
    match (leaf, head) {
        (Some("cls_token"), _) => (0, 0, 0),
        (Some("pos_embed"), _) => (0, 0, 1),
        (Some("patch_embed.proj.weight"), _) => (0, 0, 2),
        (Some("patch_embed.proj.bias"), _) => (0, 0, 3),
        (Some("norm.weight"), _) => (2, 0, 0),
        (Some("norm.bias"), _) => (2, 0, 1),
        (_, Some(h)) if h.starts_with("mlp.") => {
            let (idx, param) = h["mlp.".len()..].split_once('.').unwrap_or(("", ""));
            (
                3,
                idx.parse().unwrap_or(usize::MAX),
                (param == "bias") as usize,
            )
        }
        (_, Some(h)) => (4, 0, (h == "last_layer.weight_v") as usize),
        _ => (5, 0, 0),
    }
}

/// The students' trainable parameters in the order the official `clip_gradients` visits them:
/// `vid_student.named_parameters()` then `aud_student.named_parameters()`. In XKD-MAS/MATS both
/// students hold the shared blocks, so those are visited twice, as in the official code.
pub fn official_clip_order(net: &XkdNet) -> Vec<Var> {
    let trainable = net.trainable_vars();
    let mut order = Vec::new();
    for student in ["vid_student.", "aud_student."] {
        let mut own: Vec<(String, Var)> = trainable
            .iter()
            .filter(|(n, _)| n.starts_with(student) || n.starts_with("shared_student_blocks."))
            .map(|(n, v)| {
                // Shared blocks sort as this student's own blocks.
                let name = match n.strip_prefix("shared_student_blocks.") {
                    Some(rest) => format!("{student}backbone.blocks.{rest}"),
                    None => n.clone(),
                };
                (name, v.clone())
            })
            .collect();
        own.sort_by_key(|(n, _)| official_position(n));
        order.extend(own.into_iter().map(|(_, v)| v));
    }
    order
}

impl Job for Pretraining<'_> {
    type Batch = PretrainBatch;

    fn name(&self) -> &str {
        "pre-training"
    }

    fn config_json(&self) -> serde_json::Value {
        self.settings.clone()
    }

    fn check_resumable(&self, saved: &serde_json::Value) -> Result<()> {
        check_same_settings(&self.settings, saved, &RESUME_FREE_KEYS)
    }

    fn training_step(
        &mut self,
        batch: PretrainBatch,
        ctx: &StepContext,
        rng: &mut SeededRng,
    ) -> Result<StepOutput> {
        let samples = batch
            .frames
            .first()
            .map(|f| f.dim(0))
            .transpose()?
            .unwrap_or(0);
        let (video_temp, audio_temp) = self.temperatures.at(ctx.epoch);
        self.net.set_teacher_temperatures(video_temp, audio_temp);
        let out = match &batch.masking_noise {
            Some((vn, an)) => {
                let cfg = self.net.config();
                let vmask = masking_from_noise(vn, cfg.video_decoder.mask_ratio)?;
                let amask = masking_from_noise(an, cfg.audio_decoder.mask_ratio)?;
                self.net
                    .forward(&batch.frames, &batch.specs, &vmask, &amask, Some(rng))?
            }
            None => self.net.forward_rng(&batch.frames, &batch.specs, rng)?,
        };
        let logged = vec![
            ("loss", out.loss.clone()),
            ("vid_recon_loss", out.vid_recon),
            ("aud_recon_loss", out.aud_recon),
            ("recon_loss", out.recon),
            ("as2vs_align_loss", out.as2vs_align),
            ("vt2at_align_loss", out.vt2at_align),
            ("alignment_loss", out.alignment),
            ("vt2as_kd_loss", out.vt2as_kd),
            ("at2vs_kd_loss", out.at2vs_kd),
            ("cmkd_loss", out.cmkd),
        ];
        if let Some(records) = self.records.as_mut() {
            records.push(StepRecord {
                losses: logged.clone(),
                ..Default::default()
            });
        }
        Ok(StepOutput {
            gradients: Gradients::Loss(out.loss),
            logged,
            samples,
        })
    }

    fn before_optimizer_step(&mut self, grads: &mut GradStore, ctx: &StepContext) -> Result<()> {
        self.clip_norms = match self.clip_grad > 0.0 {
            true => clip_per_param(&self.clip_order, grads, self.clip_grad)?,
            false => Vec::new(),
        };
        if ctx.epoch < self.freeze_last_layer {
            for var in &self.last_layers {
                grads.remove(var);
            }
        }
        if self.records.is_some() {
            let clipped: Vec<(String, Tensor)> = self
                .net
                .trainable_vars()
                .into_iter()
                .filter_map(|(n, v)| grads.get(&v).map(|g| (n, g.clone())))
                .collect();
            let norms = self.clip_norms.clone();
            if let Some(record) = self.current_record() {
                record.grads = clipped;
                record.clip_norms = norms;
            }
        }
        Ok(())
    }

    fn after_optimizer_step(&mut self, ctx: &StepContext) -> Result<Vec<(&'static str, f64)>> {
        let vm = self.vid_ema.value(ctx.global_step, ctx.epoch);
        let am = self.aud_ema.value(ctx.global_step, ctx.epoch);
        self.net.ema_update_modal(vm, am)?;
        if self.records.is_some() {
            let state = net_tensors(self.net)?;
            if let Some(record) = self.current_record() {
                record.state = state;
            }
        }
        let (tv, ta) = self.temperatures.at(ctx.epoch);
        let mut logged = vec![
            ("vid_ema", vm),
            ("aud_ema", am),
            ("teacher_temp_video", tv),
            ("teacher_temp_audio", ta),
        ];
        if !self.clip_norms.is_empty() {
            let total = self.clip_norms.iter().map(|n| n * n).sum::<f64>().sqrt();
            logged.push(("student_grad_norm", total));
        }
        Ok(logged)
    }

    fn evaluate(&mut self, _epoch_number: usize) -> Result<Option<EvalOutcome>> {
        self.probe.as_ref().map(|p| p.run(self.net)).transpose()
    }

    fn save(&self, dir: &Path, state: &TrainerState) -> Result<()> {
        let tensors = net_tensors(self.net)?;
        let meta = BTreeMap::from([
            ("source".to_string(), "avkd XKD pre-training".to_string()),
            ("global_step".to_string(), state.global_step.to_string()),
        ]);
        let cfg = self.net.config();
        write_model_folder(dir, cfg.variant.model_type(), cfg, &tensors, &meta)
    }

    fn restore(&mut self, dir: &Path) -> Result<()> {
        let mut tensors = read_model_tensors(dir, self.net.store().device())?;
        let mut center = |k: &str| {
            tensors.remove(k).ok_or_else(|| {
                candle_core::Error::Msg(format!("{}: no `{k}`", dir.join(MODEL_FILE).display()))
            })
        };
        let (vt2as, at2vs) = (center("vt2as_center")?, center("at2vs_center")?);
        self.net.set_centers(vt2as, at2vs)?;
        self.net.store().insert_tensors(tensors)
    }
}

/// Every parameter of the net and its two DINO centres (`vt2as_center`, `at2vs_center`).
pub fn net_tensors(net: &XkdNet) -> Result<HashMap<String, Tensor>> {
    let mut tensors = net.store().tensors()?;
    let (vt2as, at2vs) = net.centers();
    tensors.insert("vt2as_center".into(), vt2as.clone());
    tensors.insert("at2vs_center".into(), at2vs.clone());
    Ok(tensors)
}
