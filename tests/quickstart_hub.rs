//! `avkd quickstart` when the Hub answers: it downloads the zoo's default student (here a small XKD
//! video student served by a real HTTP server on 127.0.0.1 standing in for the Hub, found through
//! `HF_ENDPOINT`) into the Hugging Face cache and fine-tunes that instead of pre-training one.
//! One test in its own binary, because it sets process environment variables.
#![cfg(feature = "hub")]

#[path = "common/hub_server.rs"]
mod hub_server;

use avkd::checkpoint::export::write_model_folder;
use avkd::jobs::quickstart::{run, QuickstartOptions, StudentSource, DEFAULT_STUDENT};
use avkd::models::registry;
use avkd::models::xkd::net::XkdConfig;
use avkd::models::xkd::VideoViT;
use avkd::nn::param_store::ParamStore;
use candle_core::{DType, Device};
use hub_server::{HubServer, ServedFile, ServedRepo};
use std::collections::BTreeMap;

#[test]
fn quickstart_downloads_the_zoo_student_when_the_hub_answers() {
    let dir = tempfile::tempdir().unwrap();
    // The student: a randomly initialised small XKD video student, as an avkd model folder.
    let folder = dir.path().join("student");
    let cfg = XkdConfig::tiny_synthetic().video;
    let store = ParamStore::new(5, DType::F32, &Device::Cpu);
    VideoViT::new(&cfg, store.builder()).unwrap();
    let tensors = store.tensors().unwrap();
    write_model_folder(&folder, "xkd-video", &cfg, &tensors, &BTreeMap::new()).unwrap();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let bytes = std::fs::read(&path).unwrap();
        files.push(if name.ends_with(".safetensors") {
            ServedFile::lfs(&name, &bytes)
        } else {
            ServedFile::git(&name, &bytes)
        });
    }
    let weights = files
        .iter()
        .find(|f| f.path == "model.safetensors")
        .cloned()
        .unwrap();
    let repo_id = registry::find(DEFAULT_STUDENT)
        .unwrap()
        .hub_repo()
        .to_string();
    let commit = "5".repeat(40);
    let server = HubServer::start(vec![ServedRepo {
        id: repo_id.clone(),
        commits: vec![(commit.clone(), files)],
        branches: vec![("main".into(), commit.clone())],
    }]);
    let cache = dir.path().join("hf-cache");
    std::env::set_var("HF_ENDPOINT", &server.url);
    std::env::set_var("HF_HUB_CACHE", &cache);
    std::env::set_var("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1");
    std::env::remove_var("HF_HUB_OFFLINE");

    let opts = QuickstartOptions {
        out: dir.path().join("run"),
        student: None,
        offline: false,
        pretrain_steps: 300,
        finetune_epochs: None,
        seed: 0,
        workers: 2,
    };
    let r = run(&opts, &Device::Cpu).expect("the quickstart runs");
    let StudentSource::Downloaded { spec, dir: got } = &r.student else {
        panic!("the Hub answered, so the quickstart must use the downloaded student")
    };
    assert_eq!(spec, DEFAULT_STUDENT);
    assert_eq!(r.pretrained_because, None);
    let snapshot = cache
        .join(format!("models--{}", repo_id.replace('/', "--")))
        .join("snapshots")
        .join(&commit);
    assert_eq!(got, &snapshot);
    assert_eq!(server.content_gets(&weights), 1, "{:?}", server.hits());
    // Nothing was pre-trained; the downloaded student was fine-tuned, evaluated and exported.
    assert!(!opts.out.join("pretrain").exists());
    assert_eq!(
        r.finetune.summary.epochs_run,
        avkd::jobs::quickstart::DOWNLOADED_STUDENT_EPOCHS
    );
    assert_eq!(r.report.folds[0].metrics.num_videos, 32);
    assert_eq!(r.reloaded.folds[0].metrics, r.report.folds[0].metrics);
}
