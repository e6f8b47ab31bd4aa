//! CCL's networks against the official code: the R(2+1)D student (eval and training mode, from the
//! official training checkpoint) and the ResNet-34 image teacher (fixtures ccl/r21d_student,
//! ccl/resnet34_teacher).

mod common;

use avkd::checkpoint::pth;
use avkd::models::ccl::r2plus1d::{intermediate_width, R2Plus1d, R2Plus1dConfig};
use avkd::models::ccl::resnet::{ResNet, ResNetConfig};
use avkd::nn::batch_norm::is_running_stat;
use avkd::nn::conv3d::from_frames;
use avkd::nn::param_store::ParamStore;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use common::*;

fn official(rel: &str, key: Option<&str>) -> Vec<(String, Tensor)> {
    pth::read_state_dict(&fixture_path(rel), key)
        .unwrap()
        .into_iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, t)| (k, t.to_dtype(DType::F32).unwrap()))
        .collect()
}

fn student_config() -> R2Plus1dConfig {
    R2Plus1dConfig {
        depth: 18,
        widths: [3, 5, 7, 9],
        in_channels: 3,
        num_classes: 5,
    }
}

fn student() -> (ParamStore, R2Plus1d, usize) {
    let store = ParamStore::new(0, DType::F32, &Device::Cpu);
    let weights = official("ccl/r21d_student/save_2.pth", Some("state_dict"));
    let n = weights.len();
    store.insert_tensors(weights).unwrap();
    let model = R2Plus1d::new(&student_config(), store.builder()).unwrap();
    (store, model, n)
}

#[test]
fn intermediate_widths_are_the_official_ones() {
    // ccl.md §2.1 (official widths) and the fixture's reduced widths.
    assert_eq!(intermediate_width([3, 7, 7], 3, 64), 83);
    assert_eq!(intermediate_width([3, 3, 3], 256, 512), 921);
    assert_eq!(intermediate_width([1, 1, 1], 256, 512), 170);
    assert_eq!(intermediate_width([3, 7, 7], 3, 3), 8);
    assert_eq!(intermediate_width([1, 1, 1], 7, 9), 3);
}

#[test]
fn r2plus1d_eval_matches_official() {
    let io = load_fixture("ccl/r21d_student/r21d_io.safetensors");
    let (store, model, n) = student();
    assert_eq!(
        store.named_vars().len(),
        n,
        "the model asked for tensors the official checkpoint does not have"
    );
    let x = get(&io, "x");
    let stages = model.stages_t(x, false).unwrap();
    let (conv1, t1) = &stages[0];
    assert_close(
        "stage_conv1",
        &from_frames(conv1, *t1).unwrap(),
        get(&io, "stage_conv1"),
        1e-5,
    );
    let (conv5, t5) = &stages[4];
    assert_close(
        "stage_conv5",
        &from_frames(conv5, *t5).unwrap(),
        get(&io, "stage_conv5"),
        1e-5,
    );
    let out = model.forward_t(x, false).unwrap();
    assert_close("feature", &out.feature, get(&io, "feature"), 1e-5);
    assert_close("logits", &out.logits, get(&io, "logits"), 1e-5);
}

#[test]
fn r2plus1d_training_mode_matches_official_and_updates_running_stats() {
    let io = load_fixture("ccl/r21d_student/r21d_io.safetensors");
    let (store, model, _) = student();
    let before = store
        .get("conv2.block1.bn1.running_mean")
        .unwrap()
        .as_tensor()
        .copy()
        .unwrap();
    let out = model.forward_t(get(&io, "x"), true).unwrap();
    assert_close(
        "feature_train_mode",
        &out.feature,
        get(&io, "feature_train_mode"),
        1e-4,
    );
    assert_close(
        "logits_train_mode",
        &out.logits,
        get(&io, "logits_train_mode"),
        1e-4,
    );
    let after = store.get("conv2.block1.bn1.running_mean").unwrap();
    assert!(
        max_abs_diff(&before, after.as_tensor()) > 0.0,
        "training mode must update the running statistics"
    );

    // Every trainable parameter gets a gradient; running statistics are not trainable.
    let grads = out
        .logits
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (name, var) in store.named_vars() {
        if is_running_stat(&name) {
            assert!(
                grads.get(&var).is_none(),
                "running statistic `{name}` got a gradient"
            );
        } else {
            assert!(grads.get(&var).is_some(), "`{name}` received no gradient");
        }
    }
}

#[test]
fn r2plus1d_official_shapes_and_parameter_count() {
    // ccl.md §2.1: 14,391,466 parameters with 51 classes (running statistics excluded).
    let store = ParamStore::new(0, DType::F32, &Device::Cpu);
    let model = R2Plus1d::new(&R2Plus1dConfig::official(18, 51), store.builder()).unwrap();
    let params: usize = store
        .named_vars()
        .iter()
        .filter(|(n, _)| !is_running_stat(n))
        .map(|(_, v)| v.elem_count())
        .sum();
    assert_eq!(params, 14_391_466);
    let x = Tensor::zeros((1, 3, 8, 32, 32), DType::F32, &Device::Cpu).unwrap();
    let out = model.forward_t(&x, false).unwrap();
    assert_eq!(out.feature.dims(), &[1, 512]);
    assert_eq!(out.logits.dims(), &[1, 51]);
    let bad = Tensor::zeros((1, 1, 8, 32, 32), DType::F32, &Device::Cpu).unwrap();
    assert!(model
        .forward_t(&bad, false)
        .unwrap_err()
        .to_string()
        .contains("[1, 1, 8, 32, 32]"));
}

#[test]
fn resnet34_teacher_matches_official() {
    let io = load_fixture("ccl/resnet34_teacher/resnet34_io.safetensors");
    let weights: std::collections::HashMap<_, _> =
        official("ccl/resnet34_teacher/resnet34.pth", None)
            .into_iter()
            .collect();
    let cfg = ResNetConfig {
        layers: [3, 4, 6, 3],
        widths: [4, 6, 8, 10],
        num_classes: Some(10),
    };
    let model = ResNet::new(
        &cfg,
        VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let x = get(&io, "x");
    // Values reach 12.6 (layer4) and 6.1 (feature); f32 accumulation through 34 layers leaves ~2e-6
    // relative, so the 1e-4 absolute bound applies.
    assert_close(
        "stage_layer4",
        &model.feature_map_t(x, false).unwrap(),
        get(&io, "stage_layer4"),
        1e-4,
    );
    assert_close(
        "feature",
        &model.features(x).unwrap(),
        get(&io, "feature"),
        1e-4,
    );
    assert_close(
        "fc_logits",
        &model.logits(x).unwrap(),
        get(&io, "fc_logits"),
        1e-4,
    );
}
