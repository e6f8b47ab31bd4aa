//! `convert`, `verify`, `embed` and `export` on every fixture checkpoint: recognition, key and shape
//! checks, the written folder, numbers against the official outputs, and the official-layout round
//! trip.

mod common;

use avkd::checkpoint::convert::{convert, sha256_file, ConvertOptions, ConvertReport, Role};
use avkd::checkpoint::export::{export_model, Layout};
use avkd::checkpoint::keymap::Modality;
use avkd::checkpoint::pth::read_state_dict;
use avkd::checkpoint::verify::{verify, VerifyOptions};
use avkd::models::folder::ModelFolder;
use candle_core::{DType, Device, Tensor};
use common::*;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("avkd-convert-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn video_cfg(size: usize) -> serde_json::Value {
    json!({"transformer": {"num_heads": 3}, "num_frames": 4, "image_size": [size, size],
           "patch_size": [8, 8], "tubelet_size": 2, "pos_embed_axis_rule": "cpu"})
}

fn net_cfg() -> serde_json::Value {
    json!({"video": {"transformer": {"num_heads": 2}, "num_frames": 4, "image_size": [24, 24],
                     "patch_size": [8, 8], "tubelet_size": 2, "pos_embed_axis_rule": "cpu"},
           "audio": {"transformer": {"num_heads": 2}, "spec_size": [8, 64], "patch_size": [4, 16]},
           "video_decoder": {"transformer": {"embed_dim": 6, "depth": 4, "num_heads": 2}},
           "audio_decoder": {"transformer": {"embed_dim": 6, "depth": 4, "num_heads": 2}},
           "head": {"in_dim": 4, "hidden_dim": 8, "bottleneck_dim": 4, "out_dim": 16}})
}

fn finetune_cfg() -> serde_json::Value {
    json!({"backbone": {"transformer": {"num_heads": 2}, "num_frames": 4, "image_size": [16, 16],
                        "patch_size": [8, 8], "tubelet_size": 2, "pos_embed_axis_rule": "cpu"}})
}

fn with_config(cfg: serde_json::Value) -> ConvertOptions {
    ConvertOptions {
        config_overrides: Some(cfg),
        ..Default::default()
    }
}

fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// (source, options, expected model type, reference, reference keys).
type Case = (
    &'static str,
    ConvertOptions,
    &'static str,
    &'static str,
    BTreeMap<String, String>,
);

/// Every fixture checkpoint.
fn cases() -> Vec<Case> {
    let vio = "xkd/video_backbone/video_backbone_io.safetensors";
    vec![
        (
            "xkd/video_backbone/video_backbone.pth.tar",
            with_config(video_cfg(24)),
            "xkd-video",
            vio,
            keys(&[]),
        ),
        (
            "xkd/video_backbone/video_backbone.legacy.pth",
            with_config(video_cfg(24)),
            "xkd-video",
            vio,
            keys(&[]),
        ),
        // The pos-embed resampled for a larger clip, as the official code does.
        (
            "xkd/video_backbone/video_backbone.pth.tar",
            with_config(video_cfg(24)),
            "xkd-video",
            vio,
            keys(&[
                ("input", "x_interp"),
                ("tokens", "tokens_interp"),
                ("features", "pooled_interp"),
            ]),
        ),
        (
            "xkd/audio_backbone/audio_backbone.pth.tar",
            with_config(
                json!({"transformer": {"num_heads": 3}, "spec_size": [16, 64], "patch_size": [4, 16]}),
            ),
            "xkd-audio",
            "xkd/audio_backbone/audio_backbone_io.safetensors",
            keys(&[
                ("input", "x_long"),
                ("tokens", "tokens_long"),
                ("features", "pooled_long"),
            ]),
        ),
        (
            "xkd/finetune_step/model_init_eval_names.pth",
            with_config(finetune_cfg()),
            "xkd-video-classifier",
            "xkd/finetune_step/finetune_step1.safetensors",
            keys(&[
                ("input", "x1"),
                ("logits", "logits1"),
                ("features", "pooled1"),
            ]),
        ),
        (
            "ccl/r21d_student/save_2.pth",
            ConvertOptions::default(),
            "ccl-r2plus1d",
            "ccl/r21d_student/r21d_io.safetensors",
            keys(&[]),
        ),
        (
            "ccl/r21d_student/save_2.legacy.pth",
            ConvertOptions::default(),
            "ccl-r2plus1d",
            "ccl/r21d_student/r21d_io.safetensors",
            keys(&[]),
        ),
        (
            "ccl/composition_losses/save_2_image.pth",
            ConvertOptions::default(),
            "ccl-composition",
            "ccl/composition_losses/composition_losses_io.safetensors",
            keys(&[
                ("teacher", "image_feature"),
                ("video", "video_feature"),
                ("logits", "img_head_logits"),
                ("features", "img_composed"),
            ]),
        ),
        (
            "ccl/resnet34_teacher/resnet34.pth",
            ConvertOptions::default(),
            "resnet",
            "ccl/resnet34_teacher/resnet34_io.safetensors",
            keys(&[]),
        ),
        // PANNs' hop size is not in its weights.
        (
            "ccl/panns_cnn14_emb512/Cnn14_emb512_reduced.pth",
            with_config(json!({"hop_size": 160})),
            "panns-cnn14",
            "ccl/panns_cnn14_emb512/panns_io.safetensors",
            keys(&[]),
        ),
    ]
}

#[test]
fn every_fixture_checkpoint_converts_and_verifies() {
    for (i, (src, opts, kind, reference, ref_keys)) in cases().into_iter().enumerate() {
        let out = temp_dir(&format!("case{i}"));
        let report =
            convert(&fixture_path(src), &out, &opts).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(report.model_type, kind, "{src}");
        let sha = sha256_file(&fixture_path(src)).unwrap();
        assert_eq!(report.source_sha256, sha);
        for file in [
            "config.json",
            "model.safetensors",
            "preprocessor_config.json",
            "README.md",
        ] {
            assert!(out.join(file).is_file(), "{src}: {file} missing");
        }
        let folder = ModelFolder::open(&out).unwrap();
        assert_eq!(folder.config.model.model_type(), kind);
        assert_eq!(folder.metadata["source_sha256"], sha);
        assert_eq!(folder.metadata["model_type"], kind);
        assert!(!folder
            .tensors(&Device::Cpu)
            .unwrap()
            .keys()
            .any(|k| k.contains("num_batches_tracked")));
        let opts = VerifyOptions {
            ref_keys,
            ..Default::default()
        };
        let v =
            verify(&out, &fixture_path(reference), &opts).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert!(v.passed, "{src}: {v}");
        assert!(!v.checks.is_empty());
        for c in &v.checks {
            assert!(c.max_rel_error <= 1e-5, "{src}: {c:?}");
        }
        std::fs::remove_dir_all(&out).ok();
    }
}

#[test]
fn fp16_checkpoint_becomes_f32_and_verification_sees_the_rounding() {
    let out = temp_dir("fp16");
    convert(
        &fixture_path("xkd/video_backbone/video_backbone.fp16.pth.tar"),
        &out,
        &with_config(video_cfg(24)),
    )
    .unwrap();
    let converted = ModelFolder::open(&out)
        .unwrap()
        .tensors(&Device::Cpu)
        .unwrap();
    let fp32 = read_state_dict(
        &fixture_path("xkd/video_backbone/video_backbone.pth.tar"),
        None,
    )
    .unwrap();
    for (name, t) in fp32 {
        let avkd_name = avkd::checkpoint::keymap::xkd_backbone_to_avkd(&name);
        let got = &converted[&avkd_name];
        assert_eq!(got.dtype(), DType::F32);
        let rounded = t
            .to_dtype(DType::F16)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        assert_eq!(max_abs_diff(got, &rounded), 0.0, "{name}");
    }
    let reference = fixture_path("xkd/video_backbone/video_backbone_io.safetensors");
    let strict = verify(&out, &reference, &VerifyOptions::default()).unwrap();
    assert!(
        !strict.passed,
        "fp16 weights cannot match the fp32 outputs to 1e-4: {strict}"
    );
    let loose = VerifyOptions {
        atol: 1e-2,
        rtol: 1e-2,
        ..Default::default()
    };
    assert!(verify(&out, &reference, &loose).unwrap().passed);

    // --dtype f16 keeps half precision.
    let half = temp_dir("fp16-kept");
    let opts = ConvertOptions {
        dtype: Some(DType::F16),
        ..with_config(video_cfg(24))
    };
    convert(
        &fixture_path("xkd/video_backbone/video_backbone.fp16.pth.tar"),
        &half,
        &opts,
    )
    .unwrap();
    let kept = ModelFolder::open(&half)
        .unwrap()
        .tensors(&Device::Cpu)
        .unwrap();
    assert!(kept.values().all(|t| t.dtype() == DType::F16));
    std::fs::remove_dir_all(&out).ok();
    std::fs::remove_dir_all(&half).ok();
}

fn tensors_of(dir: &Path) -> HashMap<String, Tensor> {
    ModelFolder::open(dir)
        .unwrap()
        .tensors(&Device::Cpu)
        .unwrap()
}

fn assert_same_tensors(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>, what: &str) {
    let (ka, kb): (Vec<_>, Vec<_>) = (a.keys().collect(), b.keys().collect());
    assert_eq!(ka.len(), kb.len(), "{what}: tensor counts differ");
    for (k, t) in a {
        let u = b.get(k).unwrap_or_else(|| panic!("{what}: `{k}` missing"));
        assert_eq!(t.dims(), u.dims(), "{what}: {k}");
        assert_eq!(max_abs_diff(t, u), 0.0, "{what}: {k}");
    }
}

#[test]
fn full_nets_convert_whole_or_one_backbone() {
    let src = fixture_path("xkd/xkd_net/checkpoint.pth.tar");
    let net = temp_dir("net");
    assert_eq!(
        convert(&src, &net, &with_config(net_cfg()))
            .unwrap()
            .model_type,
        "xkd"
    );
    let t = tensors_of(&net);
    assert!(t.contains_key("vt2as_center") && t.contains_key("vid_teacher.backbone.cls_token"));

    // The video student picked out of the net is the backbone file XKD saves beside it.
    let picked = temp_dir("net-video-student");
    let vcfg = json!({"transformer": {"num_heads": 2}, "num_frames": 4, "image_size": [24, 24],
                      "patch_size": [8, 8], "tubelet_size": 2});
    let opts = ConvertOptions {
        pick: Some(Role::Student),
        modality: Some(Modality::Video),
        ..with_config(vcfg.clone())
    };
    assert_eq!(
        convert(&src, &picked, &opts).unwrap().model_type,
        "xkd-video"
    );
    let saved = temp_dir("net-saved-student");
    convert(
        &fixture_path("xkd/xkd_net/XKD_pretext_kinetics400_ep0vid_student.pth.tar"),
        &saved,
        &with_config(vcfg),
    )
    .unwrap();
    assert_same_tensors(
        &tensors_of(&picked),
        &tensors_of(&saved),
        "picked vs saved student",
    );

    // XKD-MAS is recognised from its shared student blocks.
    let mas = temp_dir("mas");
    let report = convert(
        &fixture_path("xkd/xkd_mas_net/checkpoint.pth.tar"),
        &mas,
        &with_config(net_cfg()),
    )
    .unwrap();
    assert_eq!(report.model_type, "xkd-mas");
    assert!(tensors_of(&mas)
        .keys()
        .any(|k| k.starts_with("shared_student_blocks.")));
    let no_modality = ConvertOptions {
        pick: Some(Role::Teacher),
        ..with_config(net_cfg())
    };
    let err = convert(&src, &temp_dir("net-no-modality"), &no_modality)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--modality"), "{err}");
    for d in [net, picked, saved, mas] {
        std::fs::remove_dir_all(d).ok();
    }
}

/// Official names of a checkpoint's state dict, as its loader sees them.
fn official_keys(rel: &str, key: Option<&str>) -> Vec<String> {
    let mut k: Vec<String> = read_state_dict(&fixture_path(rel), key)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k.strip_prefix("module.").unwrap_or(&k).to_string())
        .collect();
    k.sort();
    k
}

#[test]
fn official_layout_round_trips_and_matches_the_official_key_set() {
    let cases: Vec<(&str, ConvertOptions, Option<&str>)> = vec![
        (
            "xkd/xkd_net/checkpoint.pth.tar",
            with_config(net_cfg()),
            Some("model"),
        ),
        (
            "xkd/xkd_mas_net/checkpoint.pth.tar",
            with_config(net_cfg()),
            Some("model"),
        ),
        (
            "xkd/video_backbone/video_backbone.pth.tar",
            with_config(video_cfg(24)),
            None,
        ),
        (
            "xkd/finetune_step/model_init_eval_names.pth",
            with_config(finetune_cfg()),
            None,
        ),
        (
            "ccl/r21d_student/save_2.pth",
            ConvertOptions::default(),
            Some("state_dict"),
        ),
        (
            "ccl/resnet34_teacher/resnet34.pth",
            ConvertOptions::default(),
            None,
        ),
        (
            "ccl/panns_cnn14_emb512/Cnn14_emb512_reduced.pth",
            with_config(json!({"hop_size": 160})),
            Some("model"),
        ),
        (
            "ccl/composition_losses/save_2_image.pth",
            ConvertOptions::default(),
            Some("state_dict"),
        ),
    ];
    for (i, (src, opts, key)) in cases.into_iter().enumerate() {
        let first = temp_dir(&format!("rt{i}-a"));
        convert(&fixture_path(src), &first, &opts).unwrap();
        let exported = temp_dir(&format!("rt{i}-official")).join("weights.safetensors");
        export_model(
            &ModelFolder::open(&first).unwrap(),
            &exported,
            Layout::Official,
            DType::F32,
        )
        .unwrap();
        // Exactly the official key set: `load_state_dict(strict=True)` accepts it.
        let bytes = std::fs::read(&exported).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
        names.sort();
        assert_eq!(names, official_keys(src, key), "{src}: official key set");
        // ... and converting it back gives the same tensors.
        let back = temp_dir(&format!("rt{i}-b"));
        convert(&exported, &back, &opts).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_same_tensors(&tensors_of(&first), &tensors_of(&back), src);
        for d in [first, back, exported.parent().unwrap().to_path_buf()] {
            std::fs::remove_dir_all(d).ok();
        }
    }
}

#[test]
fn avkd_layout_export_changes_dtype_and_keeps_the_folder_complete() {
    let src = temp_dir("export-src");
    convert(
        &fixture_path("ccl/r21d_student/save_2.pth"),
        &src,
        &ConvertOptions::default(),
    )
    .unwrap();
    for (dtype, name) in [(DType::BF16, "bf16"), (DType::F16, "f16")] {
        let out = temp_dir(&format!("export-{name}"));
        export_model(&ModelFolder::open(&src).unwrap(), &out, Layout::Avkd, dtype).unwrap();
        let folder = ModelFolder::open(&out).unwrap();
        assert_eq!(folder.metadata["dtype"], name);
        assert!(out.join("README.md").is_file() && out.join("preprocessor_config.json").is_file());
        assert!(folder
            .tensors(&Device::Cpu)
            .unwrap()
            .values()
            .all(|t| t.dtype() == dtype));
        // A half-precision export still runs (weights upcast at load).
        let opts = VerifyOptions {
            atol: 5e-2,
            rtol: 5e-2,
            ..Default::default()
        };
        assert!(
            verify(
                &out,
                &fixture_path("ccl/r21d_student/r21d_io.safetensors"),
                &opts
            )
            .unwrap()
            .passed
        );
        std::fs::remove_dir_all(&out).ok();
    }
    std::fs::remove_dir_all(&src).ok();
}

fn convert_err(src: &str, opts: &ConvertOptions) -> String {
    let out = temp_dir("err");
    let err = convert(&fixture_path(src), &out, opts)
        .map(|_: ConvertReport| ())
        .unwrap_err()
        .to_string();
    assert!(
        !out.join("model.safetensors").exists(),
        "a failed conversion wrote weights"
    );
    err
}

#[test]
fn mismatches_are_refused_with_every_name() {
    // The classifier checkpoint read as a bare backbone: its head is not part of the architecture.
    let opts = ConvertOptions {
        kind: Some("xkd-video".into()),
        ..with_config(finetune_cfg()["backbone"].clone())
    };
    let err = convert_err("xkd/finetune_step/model_init_eval_names.pth", &opts);
    assert!(
        err.contains("head.classifier.weight") && err.contains("--allow-unexpected"),
        "{err}"
    );
    let ok = ConvertOptions {
        allow_unexpected: vec!["head.*".into()],
        ..opts
    };
    let out = temp_dir("allow-unexpected");
    let report = convert(
        &fixture_path("xkd/finetune_step/model_init_eval_names.pth"),
        &out,
        &ok,
    )
    .unwrap();
    assert!(
        report.dropped.iter().any(|d| d == "head.classifier.weight"),
        "{:?}",
        report.dropped
    );
    std::fs::remove_dir_all(&out).ok();

    // A backbone as a classifier: the head is missing unless allowed; then it is initialised.
    let mut cfg = finetune_cfg();
    cfg["num_classes"] = json!(7);
    let opts = ConvertOptions {
        kind: Some("xkd-video-classifier".into()),
        ..with_config(cfg)
    };
    let err = convert_err("xkd/finetune_step/pretrained_backbone.pth.tar", &opts);
    assert!(
        err.contains("head.weight") && err.contains("head.bias") && err.contains("--allow-missing"),
        "{err}"
    );
    let ok = ConvertOptions {
        allow_missing: vec!["head.*".into()],
        ..opts
    };
    let out = temp_dir("allow-missing");
    let report = convert(
        &fixture_path("xkd/finetune_step/pretrained_backbone.pth.tar"),
        &out,
        &ok,
    )
    .unwrap();
    assert_eq!(
        report.initialised,
        vec!["head.bias".to_string(), "head.weight".to_string()]
    );
    assert_eq!(tensors_of(&out)["head.weight"].dims(), &[7, 16]);
    std::fs::remove_dir_all(&out).ok();

    // A config that does not fit the shapes: every mismatch named with both shapes.
    let mut wrong = video_cfg(24);
    wrong["patch_size"] = json!([4, 4]);
    let err = convert_err(
        "xkd/video_backbone/video_backbone.pth.tar",
        &with_config(wrong),
    );
    assert!(
        err.contains("shape mismatches")
            && err.contains("patch_embed.proj.weight")
            && err.contains("[12, 384]"),
        "{err}"
    );

    // Unknown kinds and unrecognisable sources.
    let err = convert_err(
        "ccl/r21d_student/save_2.pth",
        &ConvertOptions {
            kind: Some("vit-huge".into()),
            ..Default::default()
        },
    );
    assert!(
        err.contains("vit-huge") && err.contains("ccl-r2plus1d"),
        "{err}"
    );
    let err = convert_err("xkd/dino_head/dino_head.pth", &ConvertOptions::default());
    assert!(err.contains("--kind"), "{err}");
}

#[test]
fn malicious_and_corrupt_sources_are_refused() {
    let marker = std::env::temp_dir().join("avkd_pwned");
    let _ = std::fs::remove_file(&marker);
    let err = convert_err(
        "ccl/malicious_pickle/malicious.pth",
        &ConvertOptions::default(),
    );
    assert!(err.contains("posix.system"), "{err}");
    assert!(!marker.exists() && !Path::new("/tmp/avkd_pwned").exists());

    let bytes = std::fs::read(fixture_path("ccl/r21d_student/save_2.pth")).unwrap();
    let dir = temp_dir("truncated");
    std::fs::create_dir_all(&dir).unwrap();
    for cut in [10, bytes.len() / 3, bytes.len() - 30] {
        let src = dir.join(format!("cut{cut}.pth"));
        std::fs::write(&src, &bytes[..cut]).unwrap();
        let out = dir.join(format!("out{cut}"));
        let err = convert(&src, &out, &ConvertOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("cut{cut}.pth")), "{err}");
        assert!(!out.join("model.safetensors").exists());
    }
    std::fs::remove_dir_all(&dir).ok();
}

fn avkd(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_avkd"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn command_line_convert_verify_embed() {
    let out = temp_dir("cli");
    let src = fixture_path("ccl/r21d_student/save_2.pth");
    let reference = fixture_path("ccl/r21d_student/r21d_io.safetensors");
    let o = avkd(&[
        "convert",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--verify",
        reference.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("\"model_type\": \"ccl-r2plus1d\"") && stdout.contains("\"passed\": true"),
        "{stdout}"
    );

    // embed: the tensor `input` in, tokens/features/logits out.
    let io = load_fixture("ccl/r21d_student/r21d_io.safetensors");
    let input = out.join("in.safetensors");
    candle_core::safetensors::save(
        &HashMap::from([("input".to_string(), get(&io, "x").clone())]),
        &input,
    )
    .unwrap();
    let emb = out.join("emb.safetensors");
    let o = avkd(&[
        "embed",
        "--model",
        out.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        emb.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = candle_core::safetensors::load(&emb, &Device::Cpu).unwrap();
    assert_close("embed logits", &got["logits"], get(&io, "logits"), 1e-5);
    assert_close(
        "embed features",
        &got["features"],
        get(&io, "feature"),
        1e-5,
    );

    // verify exits non-zero past the tolerance (fp16 weights against fp32 outputs).
    let half = temp_dir("cli-fp16");
    let cfg = video_cfg(24).to_string();
    let fp16 = fixture_path("xkd/video_backbone/video_backbone.fp16.pth.tar");
    assert!(avkd(&[
        "convert",
        fp16.to_str().unwrap(),
        "-o",
        half.to_str().unwrap(),
        "--config",
        &cfg
    ])
    .status
    .success());
    let vref = fixture_path("xkd/video_backbone/video_backbone_io.safetensors");
    let o = avkd(&["verify", half.to_str().unwrap(), vref.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("FAILED"));
    assert!(avkd(&[
        "verify",
        half.to_str().unwrap(),
        vref.to_str().unwrap(),
        "--atol",
        "1e-2"
    ])
    .status
    .success());
    std::fs::remove_dir_all(&out).ok();
    std::fs::remove_dir_all(&half).ok();
}
