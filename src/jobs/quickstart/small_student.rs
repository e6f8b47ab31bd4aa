//! The quickstart's own student when none can be downloaded: a small XKD net pre-trained briefly
//! with the full XKD objective (MAE reconstruction, cross-modal distillation from EMA teachers, MMD
//! alignment) on generated audio-visual clips of the synthetic dataset's classes. The video
//! student's frozen features are probed with a nearest-centroid classifier before and after; both
//! students are exported as avkd model folders, and the video student is reloaded to check that the
//! export reproduces the probe.

use crate::checkpoint::export::write_model_folder;
use crate::data::synth::SyntheticAv;
use crate::jobs::pretrain::{
    pretrain_synthetic, PretrainConfig, PretrainSummary, SyntheticAvBatches,
};
use crate::models::xkd::encoder::XkdEncoder;
use crate::models::xkd::net::{XkdConfig, XkdNet};
use crate::models::xkd::VideoViT;
use crate::nn::norm::l2_normalize;
use crate::nn::param_store::ParamStore;
use crate::nn::rng::SeededRng;
use crate::train::plot::plot_metrics;
use candle_core::{DType, Device, Result, Tensor, D};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub struct SmallStudent {
    /// The video student's model folder.
    pub video_student: PathBuf,
    pub out_dir: PathBuf,
    pub metrics: PathBuf,
    pub summary: PretrainSummary,
    pub probe_before: f64,
    pub probe_after: f64,
    pub probe_reloaded: f64,
    pub chance: f64,
}

/// Nearest-centroid accuracy of pooled video features: centroids from `train`, scored on `test`.
fn probe_accuracy(
    model: &VideoViT,
    train: &(Tensor, Vec<usize>),
    test: &(Tensor, Vec<usize>),
    classes: usize,
) -> Result<f64> {
    let normed = |x: &Tensor| -> Result<Tensor> { l2_normalize(&model.features(x)?) };
    let (ftr, fte) = (normed(&train.0)?, normed(&test.0)?);
    let mut centroids = Vec::with_capacity(classes);
    for c in 0..classes {
        let idx: Vec<u32> = train
            .1
            .iter()
            .enumerate()
            .filter(|(_, &l)| l == c)
            .map(|(i, _)| i as u32)
            .collect();
        let idx = Tensor::new(idx.as_slice(), ftr.device())?;
        centroids.push(ftr.index_select(&idx, 0)?.mean_keepdim(0)?);
    }
    let pred = fte
        .matmul(&Tensor::cat(&centroids, 0)?.t()?)?
        .argmax(D::Minus1)?
        .to_vec1::<u32>()?;
    let correct = pred
        .iter()
        .zip(&test.1)
        .filter(|(p, l)| **p as usize == **l)
        .count();
    Ok(correct as f64 / test.1.len() as f64)
}

fn probe_set(
    data: &SyntheticAv,
    per_class: usize,
    rng: &mut SeededRng,
    dev: &Device,
) -> Result<(Tensor, Vec<usize>)> {
    let mut clips = Vec::new();
    let mut labels = Vec::new();
    for c in 0..data.num_classes {
        for _ in 0..per_class {
            clips.extend(data.sample(c, rng).0);
            labels.push(c);
        }
    }
    let n = labels.len();
    Ok((
        Tensor::from_vec(clips, (n, 3, data.frames, data.size, data.size), dev)?,
        labels,
    ))
}

/// Pre-trains the small XKD net for `steps` steps and writes `video_student/` and `audio_student/`
/// under `out_dir`.
pub(crate) fn pretrain_small_student(
    out_dir: &Path,
    steps: usize,
    seed: u64,
    dev: &Device,
) -> Result<SmallStudent> {
    let cfg = XkdConfig::tiny_synthetic();
    let data = SyntheticAv {
        num_classes: 8,
        frames: cfg.video.num_frames,
        size: cfg.video.image_size[0],
        mel_bins: cfg.audio.spec_size[0],
        spec_frames: cfg.audio.spec_size[1],
    };
    let mut probe_rng = SeededRng::new(seed ^ 0x5eed);
    let train = probe_set(&data, 6, &mut probe_rng, dev)?;
    let test = probe_set(&data, 6, &mut probe_rng, dev)?;

    let store = ParamStore::new(seed, DType::F32, dev);
    let mut net = XkdNet::new(&cfg, &store)?;
    let probe_before = probe_accuracy(net.video_student(), &train, &test, data.num_classes)?;
    tracing::info!(params = store.num_params(), "built a small XKD net");

    // Ten epochs of a tenth of the steps: a one-epoch warmup is the first 10 % of the run.
    let epochs = 10;
    let pcfg = PretrainConfig {
        epochs,
        batch_size: 8,
        base_lr: 1e-3,
        warmup_epochs: 1,
        weight_decay: 0.05,
        weight_decay_end: 0.05,
        vid_ema: 0.99,
        aud_ema: 0.99,
        clip_grad: 0.3,
        warmup_teacher_temp_epochs: 0,
        log_every: 1,
        seed,
        ..PretrainConfig::default()
    };
    let mut batches = SyntheticAvBatches {
        batch_size: pcfg.batch_size,
        batches: steps / epochs,
        tubelet: cfg.video.tubelet_size,
        patch: cfg.video.patch_size[0],
        spec_patch: cfg.audio.patch_size[1],
        seed,
        device: dev.clone(),
        data: data.clone(),
    };
    // A fresh run each time: the quickstart does not resume its pre-training.
    for stale in ["metrics.jsonl", "last"] {
        let path = out_dir.join(stale);
        if path.is_dir() {
            std::fs::remove_dir_all(&path).ok();
        } else {
            std::fs::remove_file(&path).ok();
        }
    }
    let summary = pretrain_synthetic(&mut net, &mut batches, &pcfg, out_dir, true)?;
    let metrics_path = out_dir.join("metrics.jsonl");
    if let Err(e) = plot_metrics(&metrics_path, &out_dir.join("curves.svg")) {
        tracing::warn!("could not draw the pre-training curves: {e}");
    }
    let probe_after = probe_accuracy(net.video_student(), &train, &test, data.num_classes)?;

    // Export the students as avkd folders, then reload the video student from disk.
    let tensors = store.tensors()?;
    let meta = BTreeMap::from([
        (
            "source".to_string(),
            "avkd quickstart (synthetic pretraining)".to_string(),
        ),
        ("seed".to_string(), seed.to_string()),
    ]);
    for (name, prefix) in [
        ("video_student", "vid_student.backbone."),
        ("audio_student", "aud_student.backbone."),
    ] {
        let part: HashMap<String, Tensor> = tensors
            .iter()
            .filter_map(|(k, t)| k.strip_prefix(prefix).map(|r| (r.to_string(), t.clone())))
            .collect();
        let dir = out_dir.join(name);
        if name == "video_student" {
            write_model_folder(&dir, "xkd-video", &cfg.video, &part, &meta)?;
        } else {
            write_model_folder(&dir, "xkd-audio", &cfg.audio, &part, &meta)?;
        }
    }
    let reloaded =
        candle_core::safetensors::load(out_dir.join("video_student/model.safetensors"), dev)?;
    let reloaded = VideoViT::new(
        &cfg.video,
        candle_nn::VarBuilder::from_tensors(reloaded, DType::F32, dev),
    )?;
    let probe_reloaded = probe_accuracy(&reloaded, &train, &test, data.num_classes)?;
    if (probe_reloaded - probe_after).abs() > 1e-9 {
        candle_core::bail!(
            "the reloaded video student does not reproduce the probe ({probe_reloaded} vs {probe_after})"
        )
    }
    Ok(SmallStudent {
        video_student: out_dir.join("video_student"),
        out_dir: out_dir.to_path_buf(),
        metrics: metrics_path,
        summary,
        probe_before,
        probe_after,
        probe_reloaded,
        chance: 1.0 / data.num_classes as f64,
    })
}
