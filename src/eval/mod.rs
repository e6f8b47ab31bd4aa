//! Evaluation: video-level multi-view accuracy, reports over folds, linear probes on frozen
//! features (a trained linear head, and the papers' `LinearSVC`).
//!
//! Above `train` (DESIGN.md §2 puts it below): the linear probe trains its head with `train`'s
//! optimisers and schedules. Below `jobs`.

pub mod linear_probe;
pub mod linear_svm;
pub mod report;
pub mod video_level;

pub use linear_probe::{FeatureNorm, LinearProbe, LinearProbeConfig, ProbeOptimizer, ProbeStep};
pub use linear_svm::{
    svm_sweep, svm_video_metrics, CResult, CSelection, LinearSvc, LinearSvcConfig, SvmData,
    SvmSweep,
};
pub use report::{EvalReport, FoldResult, Protocol, Summary};
pub use video_level::{ClassificationMetrics, VideoPrediction, VideoScores};
