//! `avkd pretrain` end to end on the synthetic audio-visual dataset (frame folders with a WAV per
//! video): a tiny XKD net pre-trains on the official views, exports its four backbones as model
//! folders that `avkd linear --svm` takes, resumes to the same weights as an uninterrupted run, and
//! reports the videos it leaves out for want of audio.

use candle_core::Device;
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
    let mut args = vec![
        "pretrain",
        "--method",
        "xkd",
        "--size",
        size.to_str().unwrap(),
        "--dataset",
        "ucf101",
        "--root",
        data.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--workers",
        "2",
    ];
    for s in SETTINGS {
        args.extend(["--set", s]);
    }
    args.extend(extra);
    avkd(&args)
}

fn weights(dir: &Path) -> std::collections::HashMap<String, candle_core::Tensor> {
    candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap()
}

#[test]
fn pretrain_exports_resumes_and_reports_videos_without_audio() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    avkd(&[
        "synth",
        "--out",
        data.to_str().unwrap(),
        "--classes",
        "4",
        "--train-per-class",
        "6",
        "--test-per-class",
        "2",
        "--frames",
        "40",
        "--size",
        "40",
    ]);
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
