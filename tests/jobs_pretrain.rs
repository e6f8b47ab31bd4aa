//! `avkd pretrain` end to end on the synthetic audio-visual dataset (frame folders with a WAV per
//! video): a tiny XKD net pre-trains on the official views, exports its four backbones as model
//! folders that `avkd linear --svm` takes, resumes to the same weights as an uninterrupted run, and
//! reports the videos it leaves out for want of audio.

mod common;

use candle_core::Device;
use common::kill_twice;
use std::path::Path;
use std::process::Command;

fn avkd(args: &[&str]) -> String {
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

const SIZE: &str = r#"{"encoder": {"embed_dim": 32, "depth": 2, "num_heads": 2},
 "decoder": {"embed_dim": 16, "depth": 1, "num_heads": 2},
 "projector": {"out_dim": 64, "hidden_dim": 32, "bottleneck_dim": 16, "nlayers": 3},
 "vid_patch_spatial": [8, 8], "vid_patch_temporal": 2}"#;

/// Small views: 8 frames at 8 fps (1 s, 32 px), 4-frame 24-px local views, 0.28 s of local audio
/// (32 log-mel frames, a multiple of the 16-frame patch).
const SETTINGS: [&str; 9] = [
    "epochs=2",
    "batch_size=4",
    "views.global_frames=8",
    "views.crop=32",
    "views.local_frames=4",
    "views.local_crop=24",
    "views.local_audio_seconds=0.28",
    "warmup_epochs=1",
    "warmup_teacher_temp_epochs=1",
];

fn pretrain(data: &Path, size: &Path, out: &Path, extra: &[&str]) -> String {
    pretrain_with(data, size, out, &SETTINGS, extra)
}

/// The arguments of `avkd pretrain` of XKD with the small size `size` on `dataset` (e.g.
/// `--dataset ucf101 --root R`), `settings` (`--set` each) and `extra` arguments.
fn pretrain_args(
    dataset: &[&str],
    size: &Path,
    out: &Path,
    settings: &[&str],
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = ["pretrain", "--method", "xkd", "--workers", "2", "--size"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    args.push(size.display().to_string());
    args.extend(dataset.iter().map(|a| a.to_string()));
    args.extend(["-o".to_string(), out.display().to_string()]);
    for s in settings {
        args.extend(["--set".to_string(), s.to_string()]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// `--dataset ucf101 --root data`.
fn ucf101(data: &Path) -> [&str; 4] {
    ["--dataset", "ucf101", "--root", data.to_str().unwrap()]
}

/// `avkd pretrain` on the synthetic `data` with `settings` and `extra` arguments.
fn pretrain_with(
    data: &Path,
    size: &Path,
    out: &Path,
    settings: &[&str],
    extra: &[&str],
) -> String {
    let args = pretrain_args(&ucf101(data), size, out, settings, extra);
    avkd(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `avkd synth` into `data`: 4 classes of 40-frame, 40-px videos with audio.
fn synth(data: &Path, train_per_class: usize, test_per_class: usize) {
    let (train, test) = (train_per_class.to_string(), test_per_class.to_string());
    avkd(&[
        "synth",
        "--out",
        data.to_str().unwrap(),
        "--classes",
        "4",
        "--train-per-class",
        &train,
        "--test-per-class",
        &test,
        "--frames",
        "40",
        "--size",
        "40",
    ]);
}

fn weights(dir: &Path) -> std::collections::HashMap<String, candle_core::Tensor> {
    candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap()
}

#[test]
fn pretrain_exports_resumes_and_reports_videos_without_audio() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    synth(&data, 6, 2);
    // One training video loses its audio: XKD leaves it out, and the run must say so.
    let list = std::fs::read_to_string(data.join("ucfTrainTestlist/trainlist01.txt")).unwrap();
    let first = list
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let silent = data.join("UCF-101").join(first.trim_end_matches(".avi"));
    std::fs::remove_file(silent.join("audio.wav")).unwrap();
    let size = work.path().join("size.json");
    std::fs::write(&size, SIZE).unwrap();

    let full = work.path().join("full");
    let text = pretrain(&data, &size, &full, &["--export-official"]);
    assert!(text.contains("1 videos left out"), "{text}");
    let filtered = std::fs::read_to_string(full.join("filtered_videos.json")).unwrap();
    assert!(
        filtered.contains(first.trim_end_matches(".avi")),
        "{filtered}"
    );
    for backbone in [
        "video_student",
        "video_teacher",
        "audio_student",
        "audio_teacher",
    ] {
        let folder = full.join("export").join(backbone);
        assert!(folder.join("config.json").is_file() && folder.join("model.safetensors").is_file());
        assert!(folder.join("official.safetensors").is_file());
    }
    let official = candle_core::safetensors::load(
        full.join("export/xkd_net_official.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    assert!(
        official.contains_key("vid_ae.encoder.cls_token")
            && official.contains_key("vt2as_ce_loss.center")
    );
    let metrics = std::fs::read_to_string(full.join("metrics.jsonl")).unwrap();
    let last = metrics
        .lines()
        .rfind(|l| l.contains("\"kind\":\"train\""))
        .unwrap();
    for key in [
        "vid_recon_loss",
        "as2vs_align_loss",
        "at2vs_kd_loss",
        "vid_ema",
        "weight_decay",
        "teacher_temp_audio",
    ] {
        assert!(last.contains(key), "metrics lack {key}: {last}");
    }
    assert!(full.join("curves.svg").is_file());

    // The exported student is a model folder the evaluation verbs take.
    let student = full.join("export/video_student");
    let report = avkd(&[
        "linear",
        "--svm",
        "--model",
        student.to_str().unwrap(),
        "--dataset",
        "ucf101",
        "--root",
        data.to_str().unwrap(),
        "--train-clips",
        "1",
        "--test-clips",
        "1",
    ]);
    assert!(report.contains("top1_acc"), "{report}");

    // `avkd export` writes the official names the run's --export-official wrote, and `avkd embed`
    // runs the exported audio student on a spectrogram of the run's size (80 × 112: 1 s at hop 143).
    let exported = work.path().join("video_official.safetensors");
    avkd(&[
        "export",
        student.to_str().unwrap(),
        "--layout",
        "official",
        "-o",
        exported.to_str().unwrap(),
    ]);
    let load = |p: &Path| candle_core::safetensors::load(p, &Device::Cpu).unwrap();
    let (a, b) = (load(&exported), load(&student.join("official.safetensors")));
    let mut keys: Vec<_> = a.keys().collect();
    keys.sort();
    let mut other: Vec<_> = b.keys().collect();
    other.sort();
    assert_eq!(keys, other);
    assert!(a.contains_key("cuboid_embed.proj.weight") && a.contains_key("encoder_norm.weight"));
    let spec = work.path().join("spec.safetensors");
    let input =
        candle_core::Tensor::zeros((2, 1, 80, 112), candle_core::DType::F32, &Device::Cpu).unwrap();
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("input".to_string(), input)]),
        &spec,
    )
    .unwrap();
    let embedded = work.path().join("embedded.safetensors");
    avkd(&[
        "embed",
        "--model",
        full.join("export/audio_student").to_str().unwrap(),
        "--input",
        spec.to_str().unwrap(),
        "--output",
        embedded.to_str().unwrap(),
    ]);
    assert_eq!(load(&embedded)["features"].dims(), &[2, 32]);

    // Stopping after the first epoch and resuming gives the uninterrupted run's weights.
    let split = work.path().join("split");
    pretrain(&data, &size, &split, &["--stop-after-epochs", "1"]);
    pretrain(&data, &size, &split, &["--resume"]);
    let (a, b) = (weights(&full.join("last")), weights(&split.join("last")));
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        let diff = (t - &b[name])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0, "{name} differs after resume");
    }
}

/// `avkd pretrain` on `data`, writing `last/` after every step (for the kill test).
fn pretrain_command(data: &Path, size: &Path, out: &Path, resume: bool) -> Command {
    let extra: &[&str] = if resume { &["--resume"] } else { &[] };
    let mut settings = SETTINGS.to_vec();
    settings.push("save_every_steps=1");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_avkd"));
    cmd.args(pretrain_args(&ucf101(data), size, out, &settings, extra))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

/// A real `avkd pretrain` process killed with SIGKILL at random moments after its first checkpoint
/// (twice), then resumed to the end, ends with the uninterrupted run's net, optimizer state and
/// exports.
#[test]
fn sigkill_mid_run_then_resume_equals_uninterrupted() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    synth(&data, 5, 1);
    let size = work.path().join("size.json");
    std::fs::write(&size, SIZE).unwrap();
    let full = work.path().join("full");
    let started = std::time::Instant::now();
    assert!(pretrain_command(&data, &size, &full, false)
        .status()
        .unwrap()
        .success());
    let whole = started.elapsed();

    let cut = work.path().join("cut");
    kill_twice(
        |resume| pretrain_command(&data, &size, &cut, resume),
        &cut,
        &cut.join("last/trainer_state.json"),
        whole,
    );
    assert!(pretrain_command(&data, &size, &cut, true)
        .status()
        .unwrap()
        .success());
    for file in [
        "last/model.safetensors",
        "last/optimizer.safetensors",
        "export/video_student/model.safetensors",
    ] {
        let load = |d: &Path| candle_core::safetensors::load(d.join(file), &Device::Cpu).unwrap();
        let (a, b) = (load(&full), load(&cut));
        assert_eq!(a.len(), b.len(), "{file}");
        for (name, t) in &a {
            let diff = (t.to_dtype(candle_core::DType::F64).unwrap()
                - b[name].to_dtype(candle_core::DType::F64).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
            assert_eq!(
                diff, 0.0,
                "{file}: {name} differs after the kills and resume"
            );
        }
    }
}

/// The last probe top-1 of a run's `metrics.jsonl`.
fn last_probe(out: &Path) -> f64 {
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let probe = metrics.lines().rfind(|l| l.contains("probe_top1")).unwrap();
    let record: serde_json::Value = serde_json::from_str(probe).unwrap();
    record["probe_top1"].as_f64().unwrap()
}

/// With `probe_every`, the engine probes the frozen video student after every K epochs, logs
/// `probe_top1`, and keeps the best-probed checkpoint as `best/`.
#[test]
fn the_probe_runs_every_k_epochs_and_keeps_the_best() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    synth(&data, 4, 2);
    let size = work.path().join("size.json");
    std::fs::write(&size, SIZE).unwrap();
    let out = work.path().join("probed");
    let text = pretrain(
        &data,
        &size,
        &out,
        &["--set", "probe_every=1", "--set", "probe_svm=false"],
    );
    assert!(text.contains("best probe top-1"), "{text}");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let probes: Vec<serde_json::Value> = metrics
        .lines()
        .filter(|l| l.contains("probe_top1"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(probes.len(), 2, "one probe per epoch: {metrics}");
    for p in &probes {
        let top1 = p["probe_top1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&top1), "{p}");
    }
    assert!(last_probe(&out) >= 0.0);
    assert!(out.join("best/model.safetensors").is_file());
    assert!(out.join("probe/video_student/model.safetensors").is_file());
}

/// `avkd linear`'s top-1 (trained linear head, 3 random clips per training video) on a model folder.
fn linear_head_top1(model: &Path, data: &Path) -> f64 {
    let out = Command::new(env!("CARGO_BIN_EXE_avkd"))
        .args(["linear", "--model"])
        .arg(model)
        .args(["--dataset", "ucf101", "--root"])
        .arg(data)
        .args(["--train-clips", "3", "--test-clips", "3", "--json"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["mean"]["top1"].as_f64().unwrap()
}

/// Three hundred steps of XKD on the synthetic dataset make the exported video student's frozen
/// features far better for a linear probe than the same net untrained (lr 0). (The synthetic
/// split tests on whole groups of clips that share a colour, one group per class, so an untrained
/// net, which mostly sees colour, lands anywhere from 0 % to 50 % by the luck of the colours.) The classes are
/// motion directions, which flips and heavy crops destroy at 32 px, so the views are lightly
/// augmented here, and the probe is `avkd linear`'s trained head: the papers' SVM protocol trains
/// on `strong3crop` clips (flips, crops from 8 % of the frame), which leaves both nets at chance on
/// this toy task.
#[test]
fn pretraining_improves_the_frozen_video_features() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    synth(&data, 12, 6);
    let size = work.path().join("size.json");
    std::fs::write(
        &size,
        r#"{"encoder": {"embed_dim": 64, "depth": 4, "num_heads": 4},
            "decoder": {"embed_dim": 32, "depth": 2, "num_heads": 4},
            "projector": {"out_dim": 256, "hidden_dim": 128, "bottleneck_dim": 32, "nlayers": 3},
            "vid_patch_spatial": [8, 8], "vid_patch_temporal": 2}"#,
    )
    .unwrap();
    let light = [
        "batch_size=8",
        "warmup_teacher_temp_epochs=0",
        "weight_decay=0.05",
        "weight_decay_end=0.05",
        "vid_ema=0.99",
        "aud_ema=0.99",
        "log_every=10",
        "views.global_frames=8",
        "views.crop=32",
        "views.local_frames=4",
        "views.local_crop=24",
        "views.local_audio_seconds=0.28",
        "views.global_scale=[0.8, 1.0]",
        "views.local_scale=[0.4, 0.8]",
        "views.hflip_prob=0",
        "views.color_jitter=[0, 0, 0, 0]",
        "views.local_gray_prob=0",
        "views.local_blur_prob=0",
    ];
    let run = |name: &str, schedule: &[&str]| {
        let out = work.path().join(name);
        let settings: Vec<&str> = light.iter().chain(schedule).copied().collect();
        pretrain_with(&data, &size, &out, &settings, &[]);
        linear_head_top1(&out.join("export/video_student"), &data)
    };
    let trained = run("trained", &["epochs=50", "warmup_epochs=5", "base_lr=1e-3"]);
    let untrained = run("untrained", &["epochs=1", "warmup_epochs=0", "base_lr=0"]);
    eprintln!(
        "linear-head top-1: pre-trained {trained:.3}, untrained {untrained:.3} (chance 0.25)"
    );
    assert!(trained >= 0.4, "pre-trained {trained}");
    assert!(
        trained >= untrained + 0.2,
        "pre-trained {trained} vs untrained {untrained}"
    );
}

/// Kinetics' own layout: the official CSV (`label,youtube_id,time_start,time_end,split`, a label
/// with spaces quoted) and videos under `<label>/<youtube_id>_<start:06>_<end:06>`; a listed video
/// that is not on disk is reported, not fatal.
#[test]
fn pretrains_on_a_kinetics_csv() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    synth(&data, 2, 1);
    let kinetics = work.path().join("k400");
    let mut csv = String::from("label,youtube_id,time_start,time_end,split\n");
    let mut moved = 0;
    for (i, class) in std::fs::read_dir(data.join("UCF-101")).unwrap().enumerate() {
        let class = class.unwrap().path();
        let label = format!("moving thing {i}");
        std::fs::create_dir_all(kinetics.join(&label)).unwrap();
        for (j, video) in std::fs::read_dir(&class).unwrap().enumerate() {
            let id = format!("vid{i}x{j}");
            std::fs::rename(
                video.unwrap().path(),
                kinetics.join(&label).join(format!("{id}_000010_000020")),
            )
            .unwrap();
            csv.push_str(&format!("\"{label}\",{id},10,20,train\n"));
            moved += 1;
        }
    }
    csv.push_str("\"moving thing 0\",absent,0,10,train\n");
    let list = work.path().join("train.csv");
    std::fs::write(&list, csv).unwrap();
    let size = work.path().join("size.json");
    std::fs::write(&size, SIZE).unwrap();
    let out = work.path().join("run");
    let dataset = [
        "--dataset",
        "kinetics",
        "--root",
        kinetics.to_str().unwrap(),
        "--splits",
        list.to_str().unwrap(),
    ];
    let mut settings = SETTINGS.to_vec();
    settings.push("epochs=1");
    let args = pretrain_args(&dataset, &size, &out, &settings, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = avkd(&args);
    assert!(text.contains(&format!("on {moved} videos")), "{text}");
    assert!(
        text.contains("absent"),
        "the missing video must be reported:\n{text}"
    );
    assert!(out.join("export/video_student/model.safetensors").is_file());
}
