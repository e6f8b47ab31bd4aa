//! What a replay directory's `config.json` says, laid out as the `xkd/pretrain_step` fixture's:
//! the net (`constructor.kwargs` with `constructor.config_entries`, or the official preset names),
//! the forward arguments (`forward_kwargs`), the loop's constants (`constructor.train_one_epoch`)
//! and every per-step value (`per_step.<variant>.step<k>`: epoch, lr and weight decay per group, EMA
//! momenta). Every value the replay needs must be there: nothing is defaulted.

use super::size::{NetSize, ProjectorEntry, TransformerEntry};
use crate::models::xkd::config::{
    AudioVitConfig, DinoHeadConfig, MaeDecoderConfig, VideoVitConfig,
};
use crate::models::xkd::net::{XkdConfig, XkdObjectiveConfig, XkdVariant};
use crate::models::xkd::refine::CrossModalAttnMode;
use crate::nn::interpolate::AxisRule;
use candle_core::Result;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One recorded optimizer step.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedStep {
    pub epoch: usize,
    /// Position in its epoch.
    pub iteration: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub vid_ema: f64,
    pub aud_ema: f64,
}

/// Everything a replay runs.
#[derive(Debug, Clone)]
pub struct ReplayPlan {
    pub dir: PathBuf,
    pub variant: XkdVariant,
    /// `""` for XKD, `"mas_"` / `"mats_"` for the others: the prefix of their files and tensors.
    pub prefix: String,
    pub net: XkdConfig,
    pub steps: Vec<RecordedStep>,
    pub batches_per_epoch: usize,
    pub clip_grad: f64,
    pub freeze_last_layer: usize,
    pub betas: [f64; 2],
    pub eps: f64,
}

/// A field of `v`, or an error naming the file and the path of the missing key.
fn field<'a>(v: &'a Value, path: &str, file: &Path) -> Result<&'a Value> {
    let mut node = v;
    for part in path.split('.') {
        node = node
            .get(part)
            .ok_or_else(|| candle_core::Error::Msg(format!("{}: no `{path}`", file.display())))?;
    }
    Ok(node)
}

fn f64_at(v: &Value, path: &str, file: &Path) -> Result<f64> {
    let x = field(v, path, file)?;
    x.as_f64().ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "{}: `{path}` should be a number, found {x}",
            file.display()
        ))
    })
}

fn usize_at(v: &Value, path: &str, file: &Path) -> Result<usize> {
    let x = field(v, path, file)?;
    x.as_u64().map(|n| n as usize).ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "{}: `{path}` should be a non-negative integer, found {x}",
            file.display()
        ))
    })
}

fn pair_at<T: serde::de::DeserializeOwned>(v: &Value, path: &str, file: &Path) -> Result<[T; 2]> {
    let x = field(v, path, file)?;
    serde_json::from_value(x.clone()).map_err(|_| {
        candle_core::Error::Msg(format!(
            "{}: `{path}` should be a pair, found {x}",
            file.display()
        ))
    })
}

/// `expected` or an error naming the key and what was found.
fn require(v: &Value, path: &str, expected: &Value, file: &Path) -> Result<()> {
    let found = field(v, path, file)?;
    if found != expected {
        candle_core::bail!(
            "{}: `{path}` is {found}; avkd replays {expected} only",
            file.display()
        )
    }
    Ok(())
}

/// An encoder/decoder/projector entry by name: from `config_entries`, or an official preset.
fn entry(v: &Value, name_path: &str, file: &Path) -> Result<Value> {
    let name = field(v, name_path, file)?.as_str().ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "{}: `{name_path}` should be a name",
            file.display()
        ))
    })?;
    if let Some(e) = v.pointer(&format!("/constructor/config_entries/{name}")) {
        return Ok(e.clone());
    }
    let preset = |size: &str, part: &str| -> Result<Value> {
        let s = serde_json::to_value(NetSize::preset(size)?)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok(s[part].clone())
    };
    match name.rsplit_once('_') {
        Some((size, "encoder")) => preset(size, "encoder"),
        Some((size, "decoder")) => preset(size, "decoder"),
        _ if name == "2048-gelu-3-256-8192-norm3" => preset("base", "projector"),
        _ => candle_core::bail!(
            "{}: `{name_path}` names `{name}`, which is neither in constructor.config_entries nor an official preset",
            file.display()
        ),
    }
}

fn transformer(v: &Value, name_path: &str, file: &Path) -> Result<TransformerEntry> {
    serde_json::from_value(entry(v, name_path, file)?).map_err(|e| {
        candle_core::Error::Msg(format!(
            "{}: the entry `{name_path}` names: {e}",
            file.display()
        ))
    })
}

impl ReplayPlan {
    /// Reads `dir/config.json` for `variant` (`xkd`, `mas` or `mats`).
    pub fn read(dir: &Path, variant: &str) -> Result<Self> {
        let file = dir.join("config.json");
        let text = std::fs::read_to_string(&file)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", file.display())))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", file.display())))?;
        let (xkd_variant, prefix) = match variant {
            "xkd" => (XkdVariant::Xkd, ""),
            "mas" => (XkdVariant::Mas, "mas_"),
            "mats" => (XkdVariant::Mats, "mats_"),
            other => candle_core::bail!("unknown --variant `{other}`: expected xkd, mas or mats"),
        };
        let f = file.as_path();
        let loop_path = "constructor.train_one_epoch";
        require(&v, &format!("{loop_path}.amp"), &Value::Null, f)?;
        require(&v, &format!("{loop_path}.distributed"), &false.into(), f)?;
        let steps = recorded_steps(&v, variant, f)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            variant: xkd_variant,
            prefix: prefix.to_string(),
            net: net_config(&v, xkd_variant, f)?,
            steps,
            batches_per_epoch: usize_at(&v, &format!("{loop_path}.len_train_loader"), f)?,
            clip_grad: f64_at(&v, &format!("{loop_path}.clip_grad"), f)?,
            freeze_last_layer: usize_at(&v, &format!("{loop_path}.freeze_last_layer"), f)?,
            betas: pair_at(&v, &format!("{loop_path}.betas"), f)?,
            eps: f64_at(&v, &format!("{loop_path}.eps"), f)?,
        })
    }

    /// A file of this variant in the replay directory (`mas_inputs.safetensors`, ...).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}{name}", self.prefix))
    }
}

/// `per_step.<variant>.step1, step2, ...` in order.
fn recorded_steps(v: &Value, variant: &str, file: &Path) -> Result<Vec<RecordedStep>> {
    let mut steps = Vec::new();
    for k in 1.. {
        let path = format!("per_step.{variant}.step{k}");
        let Ok(s) = field(v, &path, file) else { break };
        let [lr0, lr1]: [f64; 2] = pair_at(s, "lr", file)?;
        let [wd0, wd1]: [f64; 2] = pair_at(s, "weight_decay", file)?;
        if lr0 != lr1 || wd0 != 0.0 {
            candle_core::bail!(
                "{}: `{path}`: lr {:?} and weight decay {:?} per group; the official loop sets one lr for both groups and decays group 1 only",
                file.display(), [lr0, lr1], [wd0, wd1]
            )
        }
        steps.push(RecordedStep {
            epoch: usize_at(s, "epoch", file)?,
            iteration: usize_at(s, "i", file)?,
            lr: lr0,
            weight_decay: wd1,
            vid_ema: f64_at(s, "vid_ema", file)?,
            aud_ema: f64_at(s, "aud_ema", file)?,
        });
    }
    if steps.is_empty() {
        candle_core::bail!(
            "{}: no `per_step.{variant}.step1`: nothing to replay for this variant",
            file.display()
        )
    }
    Ok(steps)
}

/// The net of `constructor.kwargs` with the objective of `forward_kwargs`.
fn net_config(v: &Value, variant: XkdVariant, file: &Path) -> Result<XkdConfig> {
    let k = "constructor.kwargs";
    require(
        v,
        &format!("{k}.masking_fn"),
        &"random_masking".into(),
        file,
    )?;
    require(v, &format!("{k}.align_loss"), &"mmd".into(), file)?;
    require(v, &format!("{k}.apply_cls_token"), &true.into(), file)?;
    require(v, "forward_kwargs.global_views_number", &1.into(), file)?;
    let student = transformer(v, &format!("{k}.student_cfg"), file)?;
    let teacher = transformer(v, &format!("{k}.teacher_cfg"), file)?;
    if student != teacher {
        candle_core::bail!("{}: teacher_cfg {teacher:?} differs from student_cfg {student:?}; avkd's teachers are copies of their students", file.display())
    }
    let decoder = transformer(v, &format!("{k}.decoder_cfg"), file)?;
    let projector_value = entry(v, &format!("{k}.projector_cfg"), file)?;
    let mut projector_json = serde_json::Map::new();
    for key in ["out_dim", "hidden_dim", "bottleneck_dim", "nlayers"] {
        projector_json.insert(
            key.into(),
            projector_value.get(key).cloned().unwrap_or(Value::Null),
        );
    }
    let projector: ProjectorEntry =
        serde_json::from_value(Value::Object(projector_json)).map_err(|e| {
            candle_core::Error::Msg(format!("{}: projector_cfg entry: {e}", file.display()))
        })?;
    let frame: [usize; 3] = serde_json::from_value(
        field(v, &format!("{k}.frame_size"), file)?.clone(),
    )
    .map_err(|_| {
        candle_core::Error::Msg(format!(
            "{}: `{k}.frame_size` should be [C, H, W]",
            file.display()
        ))
    })?;
    let [vm, am]: [f64; 2] = pair_at(v, &format!("{k}.center_momentum"), file)?;
    if vm != am {
        candle_core::bail!(
            "{}: center_momentum {vm} (video) and {am} (audio) differ; avkd uses one",
            file.display()
        )
    }
    let norm_pix_loss = field(v, &format!("{k}.norm_pix_loss"), file)?
        .as_bool()
        .unwrap_or(true);
    let fk = "forward_kwargs";
    let decoder_cfg = |ratio: f64| MaeDecoderConfig {
        transformer: decoder.transformer(),
        mask_ratio: ratio,
        norm_pix_loss,
    };
    let attn: CrossModalAttnMode =
        serde_json::from_value(field(v, &format!("{fk}.cm_attn_mode"), file)?.clone()).map_err(
            |e| candle_core::Error::Msg(format!("{}: `{fk}.cm_attn_mode`: {e}", file.display())),
        )?;
    Ok(XkdConfig {
        variant,
        video: VideoVitConfig {
            transformer: student.transformer(),
            in_channels: frame[0],
            num_frames: usize_at(v, &format!("{k}.num_frames"), file)?,
            image_size: [frame[1], frame[2]],
            patch_size: pair_at(v, &format!("{k}.vid_patch_spatial"), file)?,
            tubelet_size: usize_at(v, &format!("{k}.vid_patch_temporal"), file)?,
            // The recorded steps ran on CPU (see the fixtures' notes on trilinear interpolation).
            pos_embed_axis_rule: AxisRule::Cpu,
        },
        audio: AudioVitConfig {
            transformer: student.transformer(),
            in_channels: 1,
            spec_size: pair_at(v, &format!("{k}.spec_size"), file)?,
            patch_size: pair_at(v, &format!("{k}.spec_patch_spatial"), file)?,
        },
        video_decoder: decoder_cfg(f64_at(v, &format!("{fk}.vid_mask_ratio"), file)?),
        audio_decoder: decoder_cfg(f64_at(v, &format!("{fk}.aud_mask_ratio"), file)?),
        head: DinoHeadConfig {
            in_dim: student.embed_dim,
            hidden_dim: projector.hidden_dim,
            bottleneck_dim: projector.bottleneck_dim,
            out_dim: projector.out_dim,
            nlayers: projector.nlayers,
            layer_norm_eps: 1e-5,
        },
        objective: XkdObjectiveConfig {
            teacher_temp_video: f64_at(v, &format!("{fk}.teacher_temp.video"), file)?,
            teacher_temp_audio: f64_at(v, &format!("{fk}.teacher_temp.audio"), file)?,
            student_temp_video: f64_at(v, &format!("{fk}.student_temp.video"), file)?,
            student_temp_audio: f64_at(v, &format!("{fk}.student_temp.audio"), file)?,
            center_momentum: vm,
            align_coeff: f64_at(v, &format!("{fk}.align_coeff"), file)?,
            kd_coeff: f64_at(v, &format!("{fk}.cmkd_coeff"), file)?,
            recon_coeff: f64_at(v, &format!("{fk}.recon_coeff"), file)?,
            cross_modal_attn: attn,
        },
    })
}
