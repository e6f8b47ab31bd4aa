//! The library behind `avkd finetune`, in a few lines: write the synthetic UCF101-layout dataset,
//! make a (random) small XKD video student, fine-tune it on fold 1 with the quickstart's settings,
//! and print the video-level report.
//!
//! ```bash
//! cargo run --release --example finetune_synthetic -- runs/example
//! ```

use avkd::checkpoint::export::write_model_folder;
use avkd::data::splits::Fold;
use avkd::data::synth_dataset::{write_synth_dataset, SynthDatasetConfig};
use avkd::jobs::dataset_spec::{DatasetKind, DatasetSpec};
use avkd::jobs::finetune::config::FinetuneConfig;
use avkd::jobs::finetune::{run_finetune, FinetuneJob};
use avkd::models::xkd::net::XkdConfig;
use avkd::models::xkd::VideoViT;
use avkd::nn::param_store::ParamStore;
use candle_core::{DType, Device};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or("runs/example".into()));
    let data = out.join("data");
    let dataset = SynthDatasetConfig {
        train_per_class: 16,
        ..SynthDatasetConfig::default()
    };
    write_synth_dataset(&data, &dataset)?;

    // A student folder: config.json + model.safetensors, as `avkd convert` or `download` give.
    let student = out.join("student");
    let cfg = XkdConfig::tiny_synthetic().video;
    let store = ParamStore::new(0, DType::F32, &Device::Cpu);
    VideoViT::new(&cfg, store.builder())?;
    write_model_folder(
        &student,
        "xkd-video",
        &cfg,
        &store.tensors()?,
        &BTreeMap::new(),
    )?;

    // From a random start: every layer learns at the full (higher) rate.
    let mut config = FinetuneConfig::xkd_synthetic(30, 0);
    config.layer_decay = 1.0;
    config.base_lr = 2e-3;
    let job = FinetuneJob {
        model: student,
        dataset: DatasetSpec::new(DatasetKind::Ucf101, &data, Fold::One(1)),
        config,
        out: out.join("finetune"),
        resume: false,
        stop_after_epochs: None,
        workers: 2,
        skip_bad: false,
        crop: None,
        test_clips: None,
        eval_views_per_batch: 9,
    };
    let (report, _runs) = run_finetune(&job, &Device::Cpu)?;
    println!("{report}");
    Ok(())
}
