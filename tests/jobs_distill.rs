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
        layers: [3, 4, 6, 3],
        widths: [4, 6, 8, 16],
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
            // One frame tells the class too, so the image teacher (which sees one frame) carries
            // class information, as an ImageNet teacher does on real videos. With motion alone it
            // teaches only each video's look, and CCL-I's student memorises it.
            class_colours: true,
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

/// Distils with `method`; `min_top1`: the video-level top-1 the student must reach.
fn check_method(method: &str, heads: &[&str], min_top1: Option<f64>) {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join(method);
    distill(method, &out, &[]);
    let t = top1(&out);
    eprintln!(
        "{method}: video-level top-1 {:.1} % (chance 25 %)",
        100.0 * t
    );
    // 4 classes: chance is 25 %.
    if let Some(min) = min_top1 {
        assert!(
            t >= min,
            "{method}: video-level top-1 {t} is not clearly above chance"
        );
    }
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
    let again_path = out.join("eval_again.json");
    run(&[
        "eval",
        "--model",
        s(&out.join("student")),
        "--dataset",
        "ucf101",
        "--root",
        s(&st.data),
        "--report",
        s(&again_path),
    ]);
    let again = EvalReport::read_json(&again_path).unwrap().mean.top1;
    assert!(
        (again - t).abs() < 1e-9,
        "{method}: eval {again} vs report {t}"
    );
}

#[test]
fn ccl_a_distils_a_student_above_chance() {
    check_method("ccl-a", &["audio_head"], Some(0.6));
}

// CCL-I and CCL-AI run end to end here, but their accuracy is not asserted: the image teacher is a
// ResNet with random weights (no trained one can be shipped), whose features of one frame carry
// little of the class; with it the student lands anywhere from below chance to 65 % on these 20
// test videos depending on the last bits of the arithmetic (measured: 0-65 % over seeds, lr and
// builds). The audio teacher, whose tone is the class, gives 75-95 % (above).
#[test]
fn ccl_i_distils_end_to_end() {
    check_method("ccl-i", &["image_head"], None);
}

#[test]
fn ccl_ai_distils_end_to_end() {
    check_method("ccl-ai", &["audio_head", "image_head"], None);
}

fn distill_command(method: &str, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_avkd"));
    cmd.args(distill_args(method, out, extra))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

fn load(path: &Path) -> std::collections::HashMap<String, candle_core::Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every tensor of `file` is bit-identical under `a` and `b`.
fn assert_same_file(a: &Path, b: &Path, file: &str) {
    let (x, y) = (load(&a.join(file)), load(&b.join(file)));
    assert_eq!(x.len(), y.len(), "{file}: tensor count");
    for (name, t) in &x {
        let bits = |t: &candle_core::Tensor| -> Vec<u32> {
            let v: Vec<f32> = t
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            v.into_iter().map(f32::to_bits).collect()
        };
        assert_eq!(bits(t), bits(&y[name]), "{file}: `{name}` differs");
    }
}

/// A real `avkd distill` process killed with SIGKILL at random moments after its first checkpoint
/// (twice), then resumed to the end, ends with the uninterrupted run's student, heads and
/// optimizer states.
#[test]
fn sigkill_mid_run_then_resume_equals_uninterrupted() {
    let work = tempfile::tempdir().unwrap();
    let extra = [
        "--set",
        "epochs=2",
        "--set",
        "eval_every=2",
        "--set",
        "save_every_steps=1",
    ];
    let full = work.path().join("full");
    let started = std::time::Instant::now();
    assert!(distill_command("ccl-ai", &full, &extra)
        .status()
        .unwrap()
        .success());
    let whole = started.elapsed();
    let cut = work.path().join("cut");
    kill_twice(
        |resume| {
            let mut args = extra.to_vec();
            if resume {
                args.push("--resume");
            }
            distill_command("ccl-ai", &cut, &args)
        },
        &cut,
        &cut.join("last/trainer_state.json"),
        whole,
    );
    let mut args = extra.to_vec();
    args.push("--resume");
    assert!(distill_command("ccl-ai", &cut, &args)
        .status()
        .unwrap()
        .success());
    for file in [
        "last/model.safetensors",
        "last/optimizer.safetensors",
        "last/audio_head/model.safetensors",
        "last/image_head/model.safetensors",
        "student/model.safetensors",
        "image_head/model.safetensors",
    ] {
        assert_same_file(&full, &cut, file);
    }
    let folds = |d: &Path| {
        let r = EvalReport::read_json(&d.join("eval_report.json")).unwrap();
        serde_json::to_string(&r.folds).unwrap()
    };
    assert_eq!(folds(&full), folds(&cut));
}

/// Writes `values` as a NumPy v1 `.npy` file of float32 with shape (len,).
fn write_npy(path: &Path, values: &[f32]) {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        values.len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for v in values {
        bytes.extend(v.to_le_bytes());
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// The official release layout (`audiocnn14embed512_features/<Class>/<video>.npy`) holding the same
/// vectors as the extracted store trains the same student bit for bit; a missing file is a video
/// without audio (a zero row, as the official loader), said in the log; `--export-official`
/// writes CCL's own key names.
#[test]
fn official_feature_layout_and_official_export() {
    let st = setup();
    let work = tempfile::tempdir().unwrap();
    let features = avkd::data::teacher_features::TeacherFeatures::open(&st.features).unwrap();
    let release = work.path().join("release/audiocnn14embed512_features");
    let videos = avkd::data::synth_dataset::synth_videos(&st.data).unwrap();
    for video in &videos {
        let class = video.parent().unwrap().file_name().unwrap();
        let stem = video.file_stem().unwrap().to_str().unwrap();
        let listed = Path::new(class).join(format!("{stem}.avi"));
        let f = features
            .get(&listed)
            .unwrap_or_else(|| panic!("no feature for {listed:?}"));
        write_npy(&release.join(class).join(format!("{stem}.npy")), f);
    }
    let one_epoch = ["--set", "epochs=1", "--set", "eval_every=1"];
    let from_store = work.path().join("store");
    distill("ccl-a", &from_store, &one_epoch);
    let from_release = work.path().join("release-run");
    let mut args = distill_args("ccl-a", &from_release, &one_epoch);
    let at = args.iter().position(|a| a == "--audio-features").unwrap();
    // The release's parent folder is accepted too.
    args[at + 1] = s(release.parent().unwrap()).to_string();
    args.push("--export-official".into());
    run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_same_file(&from_store, &from_release, "student/model.safetensors");
    assert_same_file(&from_store, &from_release, "audio_head/model.safetensors");

    // CCL's names: the official student's 146-key layout (widths aside), the heads' 4 keys.
    let official = from_release.join("official");
    let student = load(&official.join("save_1.safetensors"));
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_path("ccl/r21d_student/config.json")).unwrap(),
    )
    .unwrap();
    let want = &fixture["checkpoints"]["save_2.pth"]["nested"]["state_dict"]["keys"];
    let mut want: Vec<&String> = want.as_object().unwrap().keys().collect();
    let mut got: Vec<&String> = student.keys().collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(student["conv1.bn.num_batches_tracked"].dtype(), DType::I64);
    let meta =
        avkd::models::folder::safetensors_metadata(&official.join("save_1.safetensors")).unwrap();
    assert_eq!(meta["arch"], "r21d-18");
    assert_eq!(meta["epoch"], "1");
    let head = load(&official.join("save_1_audio.safetensors"));
    let mut keys: Vec<&String> = head.keys().collect();
    keys.sort();
    assert_eq!(keys, ["fc.bias", "fc.weight", "mlp.bias", "mlp.weight"]);

    // A video without its .npy trains with a zero row, and the log says how many.
    // The last video is a training one (fold 1 tests on the first group of each class).
    let last = videos.last().unwrap();
    let class = last.parent().unwrap().file_name().unwrap();
    let stem = last.file_stem().unwrap().to_str().unwrap();
    assert!(!stem.contains("_g01_"), "{stem}");
    std::fs::remove_file(release.join(class).join(format!("{stem}.npy"))).unwrap();
    let text = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        text.contains("without an audio-teacher feature") && text.contains("missing=1"),
        "{text}"
    );
}

#[test]
fn mismatched_or_missing_teachers_are_clear_errors() {
    let st = setup();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    // A student whose features are not the teachers' width.
    let wide = work.path().join("wide.json");
    std::fs::write(
        &wide,
        r#"{"model_type": "ccl-r2plus1d", "depth": 18, "widths": [8, 8, 16, 32]}"#,
    )
    .unwrap();
    let mut args = distill_args("ccl-a", &out, &[]);
    let at = args.iter().position(|a| a == "--student").unwrap();
    args[at + 1] = s(&wide).to_string();
    let err = run_err(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("16-d but the student's are 32-d"), "{err}");
    // CCL-I without an image teacher.
    let err = run_err(&[
        "distill",
        "--method",
        "ccl-i",
        "--dataset",
        "ucf101",
        "--root",
        s(&st.data),
        "-o",
        s(&out),
    ]);
    assert!(err.contains("needs --image-teacher"), "{err}");
    // An audio model given as the image teacher.
    let mut args = distill_args("ccl-i", &out, &[]);
    let at = args.iter().position(|a| a == "--image-teacher").unwrap();
    args[at + 1] = s(&st.features.parent().unwrap().join("panns")).to_string();
    let err = run_err(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("image teacher is a ResNet"), "{err}");
    // An unknown setting names itself.
    let err = run_err(&[
        "distill",
        "--method",
        "ccl-a",
        "--dataset",
        "ucf101",
        "--root",
        s(&st.data),
        "--set",
        "epoch=3",
        "-o",
        s(&out),
    ]);
    assert!(err.contains("epoch"), "{err}");
}
