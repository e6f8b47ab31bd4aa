//! avkd: a model zoo for audio-visual video representation learning on Candle.
//!
//! The two published cross-modal distillation methods, XKD (masked audio and video ViT autoencoders
//! with cross-modal teacher-student distillation and MMD alignment, and its modality-agnostic variants
//! XKD-MAS and XKD-MATS) and CCL, as Candle modules that give the same numbers as the official PyTorch
//! code.
//!
//! # Layers
//!
//! Dependencies flow one way: a module imports only modules earlier in this list.
//!
//! 1. [`util`]: general helpers with no domain knowledge (atomic writes, sha256, the safetensors
//!    header, progress bars, device choice, logging setup).
//! 2. [`nn`]: layers Candle lacks, all differentiable, plus the mel filterbank and the EMA update.
//! 3. [`objectives`]: the losses, pure tensor functions (tensors in, scalars out).
//! 4. [`models`]: XKD and CCL networks, the classifier, configs, model folders and the zoo registry.
//! 5. [`checkpoint`]: reading PyTorch files, key maps, convert, verify, export, inspect.
//! 6. [`hub`]: what `--model` names (a folder, a Hub repo, a zoo entry) and, with the `hub`
//!    feature, Hub downloads into the cache shared with Python.
//! 7. [`data`]: splits, media decoding, mel, clip sampling, transforms, the loader, synthetic data,
//!    feature stores and teacher features; it knows nothing of models.
//! 8. [`train`]: optimisers, schedules, clipping, metrics, the trainers.
//! 9. [`eval`]: accuracy, video-level aggregation, reports, linear probe, LinearSVC.
//! 10. [`jobs`]: what users run (fine-tune, evaluate, linear, predict, extract, the quickstart),
//!     CCL's gradient routing, and the clip recipe of a model.
//! 11. [`bench`]: timings of the hot paths.
//! 12. The command line (`src/cli/`, `src/main.rs`), outside the library.
//!
//! Two places depart from the order in DESIGN.md §2:
//! - `objectives` sits below `models`: the losses are pure tensor functions that need no model,
//!   while the XKD net (`models::xkd::net`, `models::xkd::mae`) computes its losses inside its
//!   forward, as the official code does. What needs a model (CCL's composition heads) or an
//!   optimiser's gradient store (CCL's gradient routing) lives in `jobs::distill_routing`.
//! - `eval` sits above `train`: the linear probe trains a head with `train`'s optimisers.

pub mod bench;
pub mod checkpoint;
pub mod data;
pub mod eval;
pub mod hub;
pub mod jobs;
pub mod models;
pub mod nn;
pub mod objectives;
pub mod train;
pub mod util;
