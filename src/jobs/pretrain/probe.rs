//! The frozen-feature probe of a pre-training run (`probe_every = K`): every K epochs the video
//! student is written as a model folder under `OUT/probe/` and evaluated on a labelled dataset
//! with `avkd linear`'s code (the papers' linear SVM, or a trained linear head with
//! `probe_svm = false`), so the representation can be seen improving; the engine keeps the best-probed checkpoint as `best/`.

use super::run::write_backbone;
use crate::eval::linear_probe::LinearProbeConfig;
use crate::eval::linear_svm::{CSelection, LinearSvcConfig};
use crate::jobs::dataset_spec::DatasetSpec;
use crate::jobs::linear::{run_linear, LinearClassifier, LinearJob};
use crate::models::folder::ModelFolder;
use crate::models::xkd::net::XkdNet;
use crate::train::job::EvalOutcome;
use candle_core::{Device, Result};
use std::path::PathBuf;

/// Where and how to probe.
#[derive(Debug, Clone)]
pub struct Probe {
    /// A labelled dataset (fold 1 is used).
    pub dataset: DatasetSpec,
    /// `OUT/probe`.
    pub dir: PathBuf,
    /// Random clips per training video and clips per test video.
    pub train_clips: usize,
    pub test_clips: usize,
    pub workers: usize,
    pub skip_bad: bool,
    pub seed: u64,
    pub device: Device,
    /// The papers' linear SVM (true), or a trained linear head (`avkd linear`'s default).
    pub svm: bool,
}

impl Probe {
    /// The linear SVM of the papers (C swept, chosen on the test set), or a linear head trained
    /// with `avkd linear`'s defaults.
    fn classifier(&self) -> LinearClassifier {
        match self.svm {
            true => LinearClassifier::Svm {
                cs: vec![0.001, 0.01, 0.1, 1.0],
                selection: CSelection::TestSet,
                cfg: LinearSvcConfig::default(),
            },
            false => LinearClassifier::Head(LinearProbeConfig {
                epochs: 100,
                lr: 0.01,
                batch_size: 256,
                warmup_epochs: 10,
                seed: self.seed,
                ..LinearProbeConfig::default()
            }),
        }
    }

    /// Top-1 of the probe on the current video student's frozen features.
    pub fn run(&self, net: &XkdNet) -> Result<EvalOutcome> {
        let folder = self.dir.join("video_student");
        if folder.exists() {
            std::fs::remove_dir_all(&folder)
                .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", folder.display())))?;
        }
        write_backbone(net, "vid_student", &folder, false)?;
        let job = LinearJob {
            dataset: self.dataset.clone(),
            classifier: self.classifier(),
            train_clips: self.train_clips,
            test_clips: self.test_clips,
            crop: None,
            workers: self.workers,
            skip_bad: self.skip_bad,
            seed: self.seed,
        };
        let report = run_linear(&ModelFolder::open(&folder)?, &job, &self.device)?;
        let top1 = report.mean.top1;
        tracing::info!(top1, svm = self.svm, "frozen-feature probe");
        Ok(EvalOutcome {
            top1,
            json: serde_json::json!({ "probe_top1": top1 }),
        })
    }
}
