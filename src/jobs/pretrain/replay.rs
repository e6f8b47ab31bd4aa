//! `avkd pretrain --replay DIR`: runs recorded official pre-training steps through avkd's own job
//! and engine, and writes what each step produced under the recording's names, so that they can be
//! compared tensor by tensor (the proof of fidelity, as `convert --verify` is for models).
//!
//! DIR is laid out as the `xkd/pretrain_step` fixture: `config.json` ([`ReplayPlan`]), the views and
//! masking noise of each step (`inputs.safetensors`, `<variant>_inputs.safetensors`) and the
//! starting checkpoint in the official training-resume layout (`checkpoint_init.pth.tar`). The
//! output holds, per step k, `step{k}_loss_<term>`, `step{k}_{vt2as,at2vs}_center`,
//! `step{k}_group_{lr,wd}`, `step{k}_clip_norms`, `step{k}_grad.<param>` (after clipping and
//! cancelling) and `step{k}_state.<key>` (every unique state-dict entry after the step), then the
//! AdamW moments after the last step (`exp_avg.<param>`, `exp_avg_sq.<param>`), all prefixed as
//! the variant's files are (`mas_`).

use super::job::{PretrainBatch, PretrainStepSettings, Pretraining, StepRecord};
use super::replay_config::ReplayPlan;
use super::{adamw_slot, TeacherTemperatures};
use crate::checkpoint::keymap::{xkd_net_to_avkd, XkdNetKey};
use crate::checkpoint::{pth, xkd_net};
use crate::models::xkd::net::XkdNet;
use crate::nn::param_store::ParamStore;
use crate::train::clip::Clipping;
use crate::train::engine::{Engine, LoopSettings, RunOptions};
use crate::train::job::TrainData;
use crate::train::schedule::Schedule;
use crate::train::train_state::OPTIMIZER_FILE;
use candle_core::{DType, Device, Result, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The recorded batches, epoch by epoch.
struct RecordedBatches {
    batches: Vec<PretrainBatch>,
    per_epoch: usize,
}

impl TrainData for RecordedBatches {
    type Batch = PretrainBatch;

    fn num_batches(&self) -> usize {
        self.per_epoch
    }

    fn epoch(
        &mut self,
        epoch: usize,
        start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<PretrainBatch>> + '_>> {
        let first = epoch * self.per_epoch;
        let batches = &self.batches;
        Ok(Box::new(
            (first + start..first + self.per_epoch)
                .filter_map(move |i| batches.get(i).cloned().map(Ok)),
        ))
    }
}

/// Runs every recorded step of `variant` in `dir`; returns the tensors to write. The engine's
/// checkpoints go to `work_dir`, which the caller removes.
pub fn replay(dir: &Path, variant: &str, work_dir: &Path) -> Result<BTreeMap<String, Tensor>> {
    let plan = ReplayPlan::read(dir, variant)?;
    check_contiguous(&plan)?;
    let (mut net, official_names) = load_start(&plan)?;
    let mut data = RecordedBatches {
        batches: recorded_batches(&plan)?,
        per_epoch: plan.batches_per_epoch,
    };
    let table = |f: fn(&super::replay_config::RecordedStep) -> f64| {
        Schedule::Table(plan.steps.iter().map(f).collect())
    };
    let obj = &plan.net.objective;
    let step = PretrainStepSettings {
        clip_grad: plan.clip_grad,
        freeze_last_layer: plan.freeze_last_layer,
        vid_ema: table(|s| s.vid_ema),
        aud_ema: table(|s| s.aud_ema),
        temperatures: TeacherTemperatures::constant(obj.teacher_temp_video, obj.teacher_temp_audio),
        settings: serde_json::json!({"replay": dir.display().to_string(), "variant": variant}),
    };
    let slot = adamw_slot(
        &net,
        plan.betas,
        plan.eps,
        table(|s| s.lr),
        table(|s| s.weight_decay),
    )?;
    let mut job = Pretraining::new(&mut net, step);
    job.records = Some(Vec::new());
    let settings = LoopSettings {
        epochs: plan.steps.len() / plan.batches_per_epoch,
        accum_steps: 1,
        eval_every: 1,
        save_every_steps: None,
        log_every: 1,
        seed: 0,
    };
    let opts = RunOptions {
        out_dir: work_dir.to_path_buf(),
        ..Default::default()
    };
    let run = Engine::new(&mut job, vec![slot], Clipping::None, settings)?.run(&mut data, &opts)?;
    let records = job.records.take().unwrap_or_default();
    let mut out = BTreeMap::new();
    for (k, (record, step)) in records.iter().zip(&plan.steps).enumerate() {
        let prefix = format!("{}step{}_", plan.prefix, k + 1);
        write_step(&mut out, &prefix, record, step, &official_names)?;
    }
    let optimizer = run.last_dir.join(OPTIMIZER_FILE);
    write_moments(&mut out, &plan.prefix, &optimizer, &official_names)?;
    Ok(out)
}

/// The recorded steps must be the run's steps in order: step k at epoch·len + i = k − 1.
fn check_contiguous(plan: &ReplayPlan) -> Result<()> {
    let per_epoch = plan.batches_per_epoch;
    if per_epoch == 0 || !plan.steps.len().is_multiple_of(per_epoch) {
        candle_core::bail!(
            "{} recorded steps do not fill whole epochs of {per_epoch} batches (len_train_loader)",
            plan.steps.len()
        )
    }
    for (k, s) in plan.steps.iter().enumerate() {
        if s.epoch * per_epoch + s.iteration != k {
            candle_core::bail!(
                "recorded step {} is epoch {} iteration {}, not the run's step {k} (len_train_loader {per_epoch})",
                k + 1, s.epoch, s.iteration
            )
        }
    }
    Ok(())
}

/// The net of the starting checkpoint, and the official name of each avkd tensor (the first name
/// the state dict gives it, as `named_parameters()` reports a shared parameter).
fn load_start(plan: &ReplayPlan) -> Result<(XkdNet, HashMap<String, String>)> {
    let path = plan.file("checkpoint_init.pth.tar");
    let ckpt = pth::read_checkpoint(&path)?;
    if let Some(state) = ckpt.get("optimizer").and_then(|o| o.get("state")) {
        let n = state.as_dict().map(|d| d.len()).unwrap_or(0);
        if n > 0 {
            candle_core::bail!(
                "{}: the optimizer holds AdamW moments for {n} parameters; a replay starts from fresh moments (a run's first steps) and does not map official moments yet",
                path.display()
            )
        }
    }
    let entries = ckpt.state_dict(Some("model"))?;
    let (ss, ts) = (
        plan.variant.shares_student_blocks(),
        plan.variant.shares_teacher_blocks(),
    );
    let mut names = HashMap::new();
    for (key, _) in &entries {
        let key = key.strip_prefix("module.").unwrap_or(key);
        let avkd = match xkd_net_to_avkd(key, ss, ts) {
            XkdNetKey::Param(n) | XkdNetKey::Alias(n) => n,
            XkdNetKey::Center(c) => format!("{c}_center"),
        };
        names.entry(avkd).or_insert_with(|| key.to_string());
    }
    let official = xkd_net::xkd_net_from_official(entries, ss, ts)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
    let store = ParamStore::new(0, DType::F32, &Device::Cpu);
    let n = official.params.len();
    store.insert_tensors(official.params)?;
    let mut net = XkdNet::new(&plan.net, &store)?;
    if store.named_vars().len() != n {
        candle_core::bail!(
            "{}: the net of config.json has {} parameters, the checkpoint {n}",
            path.display(),
            store.named_vars().len()
        )
    }
    net.set_centers(official.vt2as_center, official.at2vs_center)?;
    Ok((net, names))
}

/// Reads a safetensors file into a map.
fn load(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))
}

/// The views and masking noise of every step: views from the variant's inputs file when it has
/// them, else from `inputs.safetensors` (the MAS recording reuses XKD's views with its own noise).
fn recorded_batches(plan: &ReplayPlan) -> Result<Vec<PretrainBatch>> {
    let noise_path = plan.file("inputs.safetensors");
    let noise = load(&noise_path)?;
    let shared_path = plan.dir.join("inputs.safetensors");
    let shared = if noise_path == shared_path {
        noise.clone()
    } else {
        load(&shared_path)?
    };
    let p = &plan.prefix;
    let get = |map: &HashMap<String, Tensor>, file: &Path, name: &str| {
        map.get(name).cloned().ok_or_else(|| {
            candle_core::Error::Msg(format!("{}: no tensor `{name}`", file.display()))
        })
    };
    let view = |name: &str| {
        let own = format!("{p}{name}");
        match noise.get(&own) {
            Some(t) => Ok(t.clone()),
            None => get(&shared, &shared_path, name),
        }
    };
    (1..=plan.steps.len())
        .map(|k| {
            let mut frames = vec![view(&format!("step{k}_frames_global"))?];
            let mut specs = vec![view(&format!("step{k}_specs_global"))?];
            frames.push(view(&format!("step{k}_frames_local"))?);
            specs.push(view(&format!("step{k}_specs_local"))?);
            for j in 2.. {
                let (Ok(f), Ok(s)) = (
                    view(&format!("step{k}_frames_local{j}")),
                    view(&format!("step{k}_specs_local{j}")),
                ) else {
                    break;
                };
                frames.push(f);
                specs.push(s);
            }
            let vid = get(&noise, &noise_path, &format!("{p}step{k}_vid_noise"))?;
            let aud = get(&noise, &noise_path, &format!("{p}step{k}_aud_noise"))?;
            Ok(PretrainBatch {
                frames,
                specs,
                masking_noise: Some((vid, aud)),
            })
        })
        .collect()
}

fn official<'a>(names: &'a HashMap<String, String>, avkd: &str) -> Result<&'a str> {
    names.get(avkd).map(String::as_str).ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "avkd tensor `{avkd}` has no name in the starting checkpoint"
        ))
    })
}

/// One step's tensors under the recording's names.
fn write_step(
    out: &mut BTreeMap<String, Tensor>,
    prefix: &str,
    record: &StepRecord,
    step: &super::replay_config::RecordedStep,
    names: &HashMap<String, String>,
) -> Result<()> {
    let cpu = Device::Cpu;
    for (term, value) in &record.losses {
        out.insert(format!("{prefix}loss_{term}"), value.to_dtype(DType::F32)?);
    }
    for center in ["vt2as", "at2vs"] {
        let t = record
            .state
            .get(&format!("{center}_center"))
            .ok_or_else(|| {
                candle_core::Error::Msg(format!("step record without the {center} centre"))
            })?;
        out.insert(format!("{prefix}{center}_center"), t.clone());
    }
    out.insert(
        format!("{prefix}group_lr"),
        Tensor::new(&[step.lr, step.lr], &cpu)?,
    );
    out.insert(
        format!("{prefix}group_wd"),
        Tensor::new(&[0.0, step.weight_decay], &cpu)?,
    );
    out.insert(
        format!("{prefix}clip_norms"),
        Tensor::new(record.clip_norms.as_slice(), &cpu)?,
    );
    for (name, grad) in &record.grads {
        out.insert(
            format!("{prefix}grad.{}", official(names, name)?),
            grad.clone(),
        );
    }
    for (name, t) in &record.state {
        out.insert(
            format!("{prefix}state.{}", official(names, name)?),
            t.clone(),
        );
    }
    Ok(())
}

/// The AdamW moments the engine saved after the last step, for the parameters that have them.
fn write_moments(
    out: &mut BTreeMap<String, Tensor>,
    prefix: &str,
    optimizer: &Path,
    names: &HashMap<String, String>,
) -> Result<()> {
    let state = load(optimizer)?;
    for (key, t) in &state {
        let Some(param) = key
            .strip_prefix("model.")
            .and_then(|k| k.strip_suffix(".step"))
        else {
            continue;
        };
        if t.to_dtype(DType::F64)?.to_scalar::<f64>()? == 0.0 {
            continue;
        }
        for moment in ["exp_avg", "exp_avg_sq"] {
            let m = state
                .get(&format!("model.{param}.{moment}"))
                .ok_or_else(|| {
                    candle_core::Error::Msg(format!(
                        "{}: no `model.{param}.{moment}`",
                        optimizer.display()
                    ))
                })?;
            out.insert(
                format!("{prefix}{moment}.{}", official(names, param)?),
                m.clone(),
            );
        }
    }
    Ok(())
}
