//! `avkd inspect`'s library side on every kind of file it reads: PyTorch zip and legacy checkpoints
//! (with their scalar entries), safetensors (header only) and avkd model folders.

mod common;

use avkd::checkpoint::export::write_model_folder;
use avkd::checkpoint::inspect::inspect;
use candle_core::{Device, Tensor};
use common::fixture_path;
use std::collections::{BTreeMap, HashMap};

#[test]
fn pytorch_zip_and_legacy_backbones_list_the_same_tensors() {
    let zip = inspect(&fixture_path("xkd/video_backbone/video_backbone.pth.tar")).unwrap();
    let legacy = inspect(&fixture_path(
        "xkd/video_backbone/video_backbone.legacy.pth",
    ))
    .unwrap();
    assert_eq!(zip.format, "pytorch-zip");
    assert_eq!(legacy.format, "pytorch-legacy");
    assert_eq!(zip.tensors.len(), 28);
    let names = |i: &avkd::checkpoint::inspect::Inspection| {
        i.tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone(), t.dtype.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&zip), names(&legacy));
    let pos = zip
        .tensors
        .iter()
        .find(|t| t.name == "enc_pos_embed")
        .unwrap();
    assert_eq!(
        (pos.dtype.as_str(), pos.shape.as_slice()),
        ("float32", &[1, 19, 12][..])
    );
    let fp16 = inspect(&fixture_path(
        "xkd/video_backbone/video_backbone.fp16.pth.tar",
    ))
    .unwrap();
    assert!(fp16.tensors.iter().all(|t| t.dtype == "float16"));
    assert_eq!(fp16.num_elements, zip.num_elements);
}

#[test]
fn training_checkpoints_show_their_scalar_entries() {
    let ccl = inspect(&fixture_path("ccl/r21d_student/save_2.pth")).unwrap();
    assert_eq!(ccl.entries["arch"], "r21d-18");
    assert_eq!(ccl.entries["epoch"], "2");
    assert!(ccl
        .tensors
        .iter()
        .any(|t| t.name == "state_dict.conv1.bn.num_batches_tracked"
            && t.dtype == "int64"
            && t.shape.is_empty()));
    let xkd = inspect(&fixture_path("xkd/xkd_net/checkpoint.pth.tar")).unwrap();
    assert_eq!(xkd.entries["epoch"], "1");
    assert_eq!(
        xkd.tensors
            .iter()
            .filter(|t| t.name.starts_with("model."))
            .count(),
        978
    );
}

#[test]
fn safetensors_and_avkd_folders() {
    let st = inspect(&fixture_path(
        "xkd/video_backbone/video_backbone_io.safetensors",
    ))
    .unwrap();
    assert_eq!(st.format, "safetensors");
    assert!(st
        .tensors
        .iter()
        .any(|t| t.name == "tokens" && t.shape == [2, 19, 12] && t.dtype == "f32"));

    let dir = std::env::temp_dir().join(format!("avkd-inspect-{}", std::process::id()));
    let w = Tensor::zeros((3, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let meta = BTreeMap::from([("source".to_string(), "test".to_string())]);
    write_model_folder(
        &dir,
        "xkd-video",
        &serde_json::json!({"embed_dim": 4}),
        &HashMap::from([("w".to_string(), w)]),
        &meta,
    )
    .unwrap();
    let folder = inspect(&dir).unwrap();
    assert_eq!(folder.format, "avkd-folder");
    assert_eq!(folder.metadata["model_type"], "xkd-video");
    assert_eq!(folder.metadata["source"], "test");
    assert_eq!(folder.num_elements, 12);
    // JSON output for scripts.
    let json = serde_json::to_value(&folder).unwrap();
    assert_eq!(json["tensors"][0]["shape"], serde_json::json!([3, 4]));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unreadable_inputs_are_errors_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("avkd-inspect-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all").unwrap();
    let e = inspect(&junk).unwrap_err().to_string();
    assert!(e.contains("junk.safetensors"), "{e}");
    let e = inspect(&fixture_path("ccl/malicious_pickle/malicious.pth"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("refusing"), "{e}");
    let e = inspect(&dir).unwrap_err().to_string();
    assert!(e.contains("no model.safetensors"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
