//! A whole pre-training run on a dataset (`avkd pretrain --method ... --dataset ...`): the net from
//! the method, size and views; the engine with checkpoints and resume; then the four backbones
//! exported as avkd model folders under `OUT/export/` (and, on request, under the official names).

use super::dataset::AvDatasetBatches;
use super::job::net_tensors;
use super::{pretrain, NetSize, PretrainConfig, Probe};
use crate::checkpoint::export::{write_model_folder, write_tensor_list};
use crate::checkpoint::keymap::avkd_to_official;
use crate::data::loader::{BadSample, LoaderConfig};
use crate::data::mel::{LogMel, LogMelConfig};
use crate::jobs::dataset_spec::DatasetSpec;
use crate::models::config::ModelConfig;
use crate::models::xkd::config::{
    AudioVitConfig, DinoHeadConfig, MaeDecoderConfig, VideoVitConfig,
};
use crate::models::xkd::net::{XkdConfig, XkdNet, XkdObjectiveConfig, XkdVariant};
use crate::nn::interpolate::AxisRule;
use crate::nn::param_store::ParamStore;
use crate::train::engine::{RunOptions, RunSummary};
use crate::train::train_state::recover_checkpoint;
use candle_core::{DType, Device, Result, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// What a pre-training run needs.
pub struct PretrainRun {
    pub variant: XkdVariant,
    pub size: NetSize,
    pub cfg: PretrainConfig,
    pub root: PathBuf,
    /// The videos, relative to `root`.
    pub videos: Vec<PathBuf>,
    /// The rate of frame folders without `meta.json`.
    pub fps: Option<f64>,
    pub out: PathBuf,
    pub resume: bool,
    pub stop_after_epochs: Option<usize>,
    pub workers: usize,
    pub skip_bad: bool,
    pub export_official: bool,
    pub progress: bool,
    /// The labelled dataset the `probe_every` probe evaluates on.
    pub probe_dataset: Option<DatasetSpec>,
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PretrainReport {
    pub summary: RunSummary,
    pub videos: usize,
    /// Videos left out by XKD's rule (no audio, or a stream too short), with why.
    pub filtered: BTreeMap<PathBuf, String>,
    /// `OUT/export/<backbone>/` folders.
    pub exports: Vec<PathBuf>,
}

/// The net of a method and size on the views of `cfg`.
pub fn net_config(variant: XkdVariant, size: &NetSize, cfg: &PretrainConfig) -> Result<XkdConfig> {
    let views = &cfg.views;
    let logmel = LogMel::new(LogMelConfig::xkd())?;
    let spec_frames = logmel.num_frames(views.clip_samples());
    let encoder = size.encoder.transformer();
    let decoder = |mask_ratio| MaeDecoderConfig {
        transformer: size.decoder.transformer(),
        mask_ratio,
        norm_pix_loss: true,
    };
    Ok(XkdConfig {
        variant,
        video: VideoVitConfig {
            transformer: encoder,
            in_channels: 3,
            num_frames: views.global_frames,
            image_size: [views.crop, views.crop],
            patch_size: size.vid_patch_spatial,
            tubelet_size: size.vid_patch_temporal,
            // The official runs interpolate the local views' positional embedding on GPUs.
            pos_embed_axis_rule: AxisRule::Cuda,
        },
        audio: AudioVitConfig {
            transformer: encoder,
            in_channels: 1,
            spec_size: [logmel.config().n_mels, spec_frames],
            patch_size: size.spec_patch_spatial,
        },
        video_decoder: decoder(cfg.vid_mask_ratio),
        audio_decoder: decoder(cfg.aud_mask_ratio),
        head: DinoHeadConfig {
            in_dim: size.encoder.embed_dim,
            hidden_dim: size.projector.hidden_dim,
            bottleneck_dim: size.projector.bottleneck_dim,
            out_dim: size.projector.out_dim,
            nlayers: size.projector.nlayers,
            layer_norm_eps: 1e-5,
        },
        objective: XkdObjectiveConfig {
            teacher_temp_video: cfg.warmup_teacher_temp_video,
            teacher_temp_audio: cfg.warmup_teacher_temp_audio,
            student_temp_video: cfg.student_temp,
            student_temp_audio: cfg.student_temp,
            center_momentum: cfg.center_momentum,
            align_coeff: cfg.align_coeff,
            kd_coeff: cfg.kd_coeff,
            recon_coeff: cfg.recon_coeff,
            ..XkdObjectiveConfig::default()
        },
    })
}

/// Runs (or resumes) a pre-training and exports the backbones.
pub fn run_pretrain(run: &PretrainRun, dev: &Device) -> Result<PretrainReport> {
    run.cfg.validate()?;
    if run.videos.is_empty() {
        candle_core::bail!("no videos to pre-train on under {}", run.root.display())
    }
    let net_cfg = net_config(run.variant, &run.size, &run.cfg)?;
    let store = ParamStore::new(run.cfg.seed, DType::F32, dev);
    let mut net = XkdNet::new(&net_cfg, &store)?;
    tracing::info!(
        params = store.num_params(),
        videos = run.videos.len(),
        "built the {} net",
        run.variant.model_type()
    );
    let loader = LoaderConfig {
        batch_size: run.cfg.batch_size,
        workers: run.workers,
        shuffle: true,
        drop_last: run.cfg.drop_last,
        seed: run.cfg.seed,
        bad_sample: BadSample::skip_if(run.skip_bad),
        ..LoaderConfig::default()
    };
    let mut data = AvDatasetBatches::new(
        run.root.clone(),
        run.videos.clone(),
        run.cfg.views.clone(),
        run.fps,
        loader,
        dev.clone(),
    )?;
    if crate::train::job::TrainData::num_batches(&data) == 0 {
        candle_core::bail!(
            "{} videos make no batch of {} with drop_last = true (set --set drop_last=false or a smaller batch_size)",
            run.videos.len(),
            run.cfg.batch_size
        )
    }
    let last = run.out.join("last");
    // A run killed while replacing `last/` may have left only its aside copy.
    recover_checkpoint(&last)?;
    let resume_from = (run.resume && last.join("trainer_state.json").is_file()).then_some(last);
    if run.resume && resume_from.is_none() {
        tracing::info!(dir = %run.out.display(), "nothing to resume; starting from the beginning");
    }
    let opts = RunOptions {
        out_dir: run.out.clone(),
        resume_from,
        stop_after_epochs: run.stop_after_epochs,
        progress: run.progress,
        ..Default::default()
    };
    let probe = run.probe_dataset.clone().map(|dataset| Probe {
        dataset,
        dir: run.out.join("probe"),
        train_clips: 1,
        test_clips: 1,
        workers: run.workers,
        skip_bad: run.skip_bad,
        seed: run.cfg.seed,
        device: dev.clone(),
        svm: run.cfg.probe_svm,
    });
    let summary = pretrain(&mut net, &mut data, &run.cfg, &opts, probe)?;
    if let Err(e) =
        crate::train::plot::plot_metrics(&summary.metrics_path, &run.out.join("curves.svg"))
    {
        tracing::warn!("could not draw the pre-training curves: {e}");
    }
    let filtered = data
        .filtered()
        .lock()
        .map(|f| f.clone())
        .unwrap_or_default();
    write_filtered(&run.out, &filtered)?;
    let exports = export_backbones(&net, &run.out.join("export"), run.export_official)?;
    Ok(PretrainReport {
        summary,
        videos: run.videos.len(),
        filtered,
        exports,
    })
}

/// `OUT/filtered_videos.json`: every video left out, with why.
fn write_filtered(out: &Path, filtered: &BTreeMap<PathBuf, String>) -> Result<()> {
    let json =
        serde_json::to_vec_pretty(filtered).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    crate::util::atomic::write_atomic(&out.join("filtered_videos.json"), &json)
}

/// The four backbones (video/audio × student/teacher) as avkd model folders under `dir`; with
/// `official`, each also as `official.safetensors` under the official `XKD_Net.save_state_dicts`
/// names, and the whole net (every alias included) as `xkd_net_official.safetensors`.
pub fn export_backbones(net: &XkdNet, dir: &Path, official: bool) -> Result<Vec<PathBuf>> {
    let mut folders = Vec::new();
    for (name, net_name) in [
        ("video_student", "vid_student"),
        ("video_teacher", "vid_teacher"),
        ("audio_student", "aud_student"),
        ("audio_teacher", "aud_teacher"),
    ] {
        let folder = dir.join(name);
        write_backbone(net, net_name, &folder, official)?;
        folders.push(folder);
    }
    if official {
        let cfg = net.config().clone();
        let model = match cfg.variant {
            XkdVariant::Xkd => ModelConfig::Xkd(cfg),
            XkdVariant::Mas => ModelConfig::XkdMas(cfg),
            XkdVariant::Mats => ModelConfig::XkdMats(cfg),
        };
        let sorted: BTreeMap<String, Tensor> = net_tensors(net)?.into_iter().collect();
        let path = dir.join("xkd_net_official.safetensors");
        write_official(&path, avkd_to_official(&model, sorted)?)?;
    }
    Ok(folders)
}

/// One backbone (`vid_student`, `aud_teacher`, ...) of the net as an avkd model folder; with
/// `official`, also `official.safetensors` under the official names.
pub fn write_backbone(net: &XkdNet, net_name: &str, folder: &Path, official: bool) -> Result<()> {
    let cfg = net.config();
    let part = backbone_tensors(&net_tensors(net)?, net_name, cfg.variant)?;
    let source = format!(
        "avkd {} pre-training ({net_name})",
        cfg.variant.model_type()
    );
    let meta = BTreeMap::from([("source".to_string(), source)]);
    let model = if net_name.starts_with("vid") {
        write_model_folder(folder, "xkd-video", &cfg.video, &part, &meta)?;
        ModelConfig::XkdVideo(cfg.video.clone())
    } else {
        write_model_folder(folder, "xkd-audio", &cfg.audio, &part, &meta)?;
        ModelConfig::XkdAudio(cfg.audio.clone())
    };
    if official {
        let sorted: BTreeMap<String, Tensor> = part.into_iter().collect();
        write_official(
            &folder.join("official.safetensors"),
            avkd_to_official(&model, sorted)?,
        )?;
    }
    Ok(())
}

/// One backbone's tensors in avkd's ViT names (shared blocks included).
fn backbone_tensors(
    tensors: &HashMap<String, Tensor>,
    net: &str,
    variant: XkdVariant,
) -> Result<HashMap<String, Tensor>> {
    let prefix = format!("{net}.backbone.");
    let shared = match net.ends_with("_student") {
        true if variant.shares_student_blocks() => Some("shared_student_blocks."),
        false if variant.shares_teacher_blocks() => Some("shared_teacher_blocks."),
        _ => None,
    };
    let mut part = HashMap::new();
    for (k, t) in tensors {
        if let Some(rest) = k.strip_prefix(&prefix) {
            part.insert(rest.to_string(), t.clone());
        } else if let Some(rest) = shared.and_then(|s| k.strip_prefix(s)) {
            part.insert(format!("blocks.{rest}"), t.clone());
        }
    }
    if part.is_empty() {
        candle_core::bail!("the net has no `{prefix}` tensors")
    }
    Ok(part)
}

fn write_official(path: &Path, tensors: Vec<(String, Tensor)>) -> Result<()> {
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    write_tensor_list(path, tensors, &meta)
}
