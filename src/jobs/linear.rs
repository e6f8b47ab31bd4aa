//! `avkd linear`: frozen-feature evaluation of a student on every fold asked for — a trained linear
//! head (softmax averaged over a video's views), or with `--svm` the papers' protocol: a linear SVM
//! on pooled features of random training clips, decision values averaged over test clips, C swept.
//!
//! Features (xkd.md §5.2–5.3, `strong3crop`): `train_clips` random clips per training video (PIL
//! random resized crop, scale (0.08, 1), flip, ColorJitter(0.4, 0.4, 0.4, 0.2) with one draw per
//! clip, and for the SVM random greyscale 0.2), and for testing `test_clips` clips per video, short
//! side resized to 8/7 of the crop and centre-cropped.

use super::clip_recipe::recipe_for_model;
use super::dataset_spec::DatasetSpec;
use crate::data::clip_dataset::ClipDataset;
use crate::data::loader::{BadSample, Loader, LoaderConfig};
use crate::data::transforms::{ClipArray, ColorJitter, ResizeKind, TestAugment};
use crate::eval::linear_probe::{LinearProbe, LinearProbeConfig};
use crate::eval::linear_svm::{svm_sweep, CSelection, LinearSvcConfig, SvmData};
use crate::eval::report::{EvalReport, FoldResult, Protocol};
use crate::models::folder::ModelFolder;
use crate::nn::rng::SeededRng;
use crate::util::progress::progress_bar;
use candle_core::{Device, Result, Tensor};
use std::sync::Arc;

/// Which classifier is trained on the frozen features.
#[derive(Debug, Clone)]
pub enum LinearClassifier {
    Head(LinearProbeConfig),
    Svm {
        cs: Vec<f64>,
        selection: CSelection,
        cfg: LinearSvcConfig,
    },
}

#[derive(Debug, Clone)]
pub struct LinearJob {
    pub dataset: DatasetSpec,
    pub classifier: LinearClassifier,
    /// Random clips per training video (XKD's SVM: 25).
    pub train_clips: usize,
    /// Clips per test video (XKD: 3).
    pub test_clips: usize,
    /// Crop size (XKD's SVM: 112, the student's own).
    pub crop: Option<usize>,
    pub workers: usize,
    pub skip_bad: bool,
    pub seed: u64,
}

/// Pooled features of many clips, with the label and the video of each row.
pub struct Features {
    pub features: Tensor,
    pub labels: Vec<usize>,
    pub videos: Vec<usize>,
}

impl Features {
    fn as_svm_data(&self) -> SvmData<'_> {
        SvmData {
            features: &self.features,
            labels: &self.labels,
            videos: &self.videos,
        }
    }
}

/// Features of `per_video` clips of every video; `train` draws random augmented clips, otherwise
/// the recipe's test views.
fn extract(
    features: &dyn Fn(&Tensor) -> Result<Tensor>,
    data: ClipDataset,
    per_video: usize,
    train: bool,
    job: &LinearJob,
    dev: &Device,
    label: &str,
) -> Result<Features> {
    let data = Arc::new(data);
    let n = data.len();
    let loader = Loader::new(
        n,
        LoaderConfig {
            batch_size: 1,
            workers: job.workers,
            prefetch_batches: 2 * job.workers.max(1),
            shuffle: false,
            drop_last: false,
            seed: job.seed,
            bad_sample: BadSample::skip_if(job.skip_bad),
        },
        Arc::new(
            move |i, rng: &mut SeededRng| -> Result<(Vec<ClipArray>, usize)> {
                if train {
                    let mut clips = Vec::with_capacity(per_video);
                    let mut label = 0;
                    for _ in 0..per_video {
                        let (clip, l) = data.train_clip(i, rng)?;
                        clips.push(clip);
                        label = l;
                    }
                    Ok((clips, label))
                } else {
                    data.test_views(i)
                }
            },
        ),
    );
    let bar = progress_bar(n as u64, label);
    let (mut rows, mut labels, mut videos) = (Vec::new(), Vec::new(), Vec::new());
    let mut epoch = loader.epoch(0, 0);
    for batch in epoch.by_ref() {
        let batch = batch?;
        for (video, (clips, label)) in batch.indices.iter().zip(batch.items) {
            for chunk in clips.chunks(8) {
                rows.push(features(&ClipArray::stack(chunk, dev)?)?);
                labels.extend(std::iter::repeat_n(label, chunk.len()));
                videos.extend(std::iter::repeat_n(*video, chunk.len()));
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    if epoch.skipped().count > 0 {
        tracing::warn!("{}", epoch.skipped().summary());
    }
    if rows.is_empty() {
        candle_core::bail!("{label}: no readable videos")
    }
    Ok(Features {
        features: Tensor::cat(&rows, 0)?,
        labels,
        videos,
    })
}

/// Runs the linear evaluation of the model in `folder` on every fold of `job.dataset`.
pub fn run_linear(folder: &ModelFolder, job: &LinearJob, dev: &Device) -> Result<EvalReport> {
    let model = folder.load(dev)?;
    let features = |x: &Tensor| model.clip_output(x, "features");
    let mut recipe = recipe_for_model(
        &folder.preprocessor,
        job.crop,
        Some(job.test_clips),
        job.dataset.fps,
    )?;
    let crop = recipe.test.crop;
    // XKD's `strong3crop` for training clips, one centre crop at test.
    recipe.train.scale = (0.08, 1.0);
    recipe.train.ratio = (0.75, 4.0 / 3.0);
    recipe.train.hflip_prob = 0.5;
    recipe.train.rand_augment = None;
    recipe.train.erasing_prob = 0.0;
    recipe.train.resize = ResizeKind::PilBilinear;
    recipe.train.color_jitter = Some(ColorJitter::xkd());
    recipe.train.gray_prob = match job.classifier {
        LinearClassifier::Svm { .. } => 0.2,
        LinearClassifier::Head(_) => 0.0,
    };
    recipe.test = TestAugment {
        short_side: crop * 8 / 7,
        crop,
        crops: 1,
        resize: ResizeKind::PilBilinear,
    };
    let video_root = job.dataset.video_root();
    let mut folds = Vec::new();
    for split in job.dataset.load()? {
        let c = split.num_classes();
        let train = extract(
            &features,
            ClipDataset::new(&video_root, split.train.clone(), recipe.clone()),
            job.train_clips,
            true,
            job,
            dev,
            &format!("features {} train", split.name),
        )?;
        let test = extract(
            &features,
            ClipDataset::new(&video_root, split.test.clone(), recipe.clone()),
            job.test_clips,
            false,
            job,
            dev,
            &format!("features {} test", split.name),
        )?;
        let metrics = match &job.classifier {
            LinearClassifier::Head(cfg) => {
                let probe = LinearProbe::train(&train.features, &train.labels, c, cfg)?;
                probe.evaluate(&test.features, &test.labels, &test.videos)?
            }
            LinearClassifier::Svm { cs, selection, cfg } => {
                let sweep = svm_sweep(
                    &train.as_svm_data(),
                    &test.as_svm_data(),
                    c,
                    cs,
                    cfg,
                    *selection,
                )?;
                tracing::info!(split = %split.name, best_c = sweep.best_c, "SVM sweep done");
                sweep.test
            }
        };
        tracing::info!(split = %split.name, top1 = metrics.top1, "linear evaluation");
        folds.push(FoldResult::new(split.fold.unwrap_or(0), metrics));
    }
    let (classifier, aggregation, selection) = match &job.classifier {
        LinearClassifier::Head(_) => ("linear", "mean_softmax", None),
        LinearClassifier::Svm { selection, .. } => {
            ("svm", "mean_decision", Some(selection.describe()))
        }
    };
    let mut extra = std::collections::BTreeMap::new();
    extra.insert("train_clips".into(), serde_json::json!(job.train_clips));
    if let LinearClassifier::Svm { cs, .. } = &job.classifier {
        extra.insert("c_grid".into(), serde_json::json!(cs));
    }
    EvalReport::new(
        folder.dir.display().to_string(),
        job.dataset.kind.name(),
        Protocol {
            clips: Some(job.test_clips),
            crops: 1,
            input_size: crop,
            classifier: classifier.into(),
            aggregation: aggregation.into(),
            selection,
            extra,
        },
        folds,
    )
}
