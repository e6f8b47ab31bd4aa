//! `avkd predict`: the top-k classes of one video, from the model's own test protocol (every view,
//! softmax averaged), named by the model's `id2label`.

use super::clip_recipe::recipe_for_model;
use super::evaluate::{classifier_logits, evaluate_views, EvalOptions};
use crate::data::clip_dataset::ClipDataset;
use crate::data::splits::Sample;
use crate::data::video_source::VideoSource;
use crate::models::folder::ModelFolder;
use candle_core::{Device, Result};
use std::path::Path;

/// One predicted class.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Prediction {
    pub class: usize,
    pub label: String,
    pub score: f32,
}

/// The `k` best classes for `video` (a container, or a folder of frames). `fps` (`--fps`) is its
/// frame rate when it states none (a frame folder without `meta.json`).
pub fn predict(
    folder: &ModelFolder,
    video: &Path,
    fps: Option<f64>,
    k: usize,
    opts: &EvalOptions,
    dev: &Device,
) -> Result<Vec<Prediction>> {
    // `v.avi` may also name its extracted frame folder `v/` (the rawframes layout).
    if crate::data::media::resolve_media(Path::new(""), video).is_none() {
        candle_core::bail!("{}: no such video file or frame folder", video.display())
    }
    let recipe = recipe_for_model(&folder.preprocessor, opts.crop, opts.test_clips, fps)?;
    // A video whose frame rate is unknown is named before the model loads.
    recipe.source_fps(&VideoSource::open(Path::new(""), video, fps)?)?;
    let model = folder.load(dev)?;
    let logits = classifier_logits(&model)?;
    let num_classes = folder.config.model.num_classes().ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "{}: the model has no classifier",
            folder.dir.display()
        ))
    })?;
    let data = ClipDataset::new(
        Path::new(""),
        vec![Sample {
            video: video.to_path_buf(),
            label: 0,
        }],
        recipe,
    );
    let run = evaluate_views(&logits, &data, num_classes, opts, dev, "predict")?;
    let Some(first) = run.scores.predictions(k).into_iter().next() else {
        candle_core::bail!("{}: no views could be made from it", video.display())
    };
    Ok(first
        .topk
        .into_iter()
        .map(|(class, score)| Prediction {
            class,
            label: folder
                .config
                .id2label
                .as_ref()
                .and_then(|m| m.get(&class).cloned())
                .unwrap_or_else(|| format!("class_{class}")),
            score,
        })
        .collect())
}
