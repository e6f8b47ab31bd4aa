//! The XKD video and audio encoders against the official code's outputs (fixtures xkd/video_backbone,
//! xkd/audio_backbone): tokens, pooled features, last-layer attention and resampled positional
//! embeddings, loading the official pretraining checkpoints.

mod common;

use avkd::checkpoint::{keymap, pth};
use avkd::models::xkd::{AudioViT, AudioVitConfig, VideoViT, VideoVitConfig, XkdEncoder};
use avkd::nn::interpolate::AxisRule;
use avkd::nn::vit::TransformerConfig;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use common::*;
use std::collections::HashMap;

const ATOL: f64 = 1e-5;

fn official_backbone(rel: &str) -> HashMap<String, Tensor> {
    pth::read_state_dict(&fixture_path(rel), None)
        .unwrap()
        .into_iter()
        .map(|(k, t)| {
            (
                keymap::xkd_backbone_to_avkd(&k),
                t.to_dtype(DType::F32).unwrap(),
            )
        })
        .collect()
}

fn video_cfg(rule: AxisRule) -> VideoVitConfig {
    VideoVitConfig {
        transformer: TransformerConfig::xkd(12, 2, 3),
        in_channels: 3,
        num_frames: 4,
        image_size: [24, 24],
        patch_size: [8, 8],
        tubelet_size: 2,
        pos_embed_axis_rule: rule,
    }
}

fn video_model(rel: &str, rule: AxisRule) -> VideoViT {
    let vb = VarBuilder::from_tensors(official_backbone(rel), DType::F32, &Device::Cpu);
    VideoViT::new(&video_cfg(rule), vb).unwrap()
}

#[test]
fn video_backbone_matches_official() {
    let io = load_fixture("xkd/video_backbone/video_backbone_io.safetensors");
    let model = video_model("xkd/video_backbone/video_backbone.pth.tar", AxisRule::Cpu);
    let x = get(&io, "x");
    let patches = model
        .patch_embed()
        .forward(&model.patchify(x).unwrap())
        .unwrap();
    assert_close(
        "patch_embed_out",
        &patches,
        get(&io, "patch_embed_out"),
        ATOL,
    );
    let (tokens, attn) = model.forward_with_attn(x).unwrap();
    assert_close("tokens", &tokens, get(&io, "tokens"), ATOL);
    assert_close("attn_last", &attn, get(&io, "attn_last"), ATOL);
    assert_close(
        "pooled",
        &model.features(x).unwrap(),
        get(&io, "pooled"),
        ATOL,
    );

    // A 40x40 input resamples the positional embedding (the time axis keeps its size: CPU rule).
    let xi = get(&io, "x_interp");
    let grid = model.grid_of(xi).unwrap();
    assert_close(
        "pos_embed_interp",
        &model.pos_embed_for(grid).unwrap(),
        get(&io, "pos_embed_interp"),
        ATOL,
    );
    let (tokens, attn) = model.forward_with_attn(xi).unwrap();
    assert_close("tokens_interp", &tokens, get(&io, "tokens_interp"), ATOL);
    assert_close(
        "attn_last_interp",
        &attn,
        get(&io, "attn_last_interp"),
        ATOL,
    );
    assert_close(
        "pooled_interp",
        &model.features(xi).unwrap(),
        get(&io, "pooled_interp"),
        ATOL,
    );
}

#[test]
fn video_pos_embed_cuda_rule_resamples_the_unchanged_time_axis() {
    let io = load_fixture("xkd/video_backbone/video_backbone_io.safetensors");
    let cuda = video_model("xkd/video_backbone/video_backbone.pth.tar", AxisRule::Cuda);
    let grid = cuda.grid_of(get(&io, "x_interp")).unwrap();
    let pos = cuda.pos_embed_for(grid).unwrap();
    assert_close(
        "pos_embed_interp_cuda_formula",
        &pos,
        get(&io, "pos_embed_interp_cuda_formula"),
        ATOL,
    );
    // The two rules really differ here, so the test above tells them apart.
    assert!(max_abs_diff(&pos, get(&io, "pos_embed_interp")) > 1e-3);
    // The CUDA rule is the default (what the published models were fine-tuned with).
    assert_eq!(
        VideoVitConfig::xkd(avkd::models::xkd::VitSize::Base).pos_embed_axis_rule,
        AxisRule::Cuda
    );
}

#[test]
fn half_precision_checkpoint_loads_as_f32() {
    let io = load_fixture("xkd/video_backbone/video_backbone_io.safetensors");
    let model = video_model(
        "xkd/video_backbone/video_backbone.fp16.pth.tar",
        AxisRule::Cpu,
    );
    // fp16 weights: the reference was computed with the fp32 ones, so only fp16 rounding separates them.
    assert_close(
        "tokens (fp16 weights)",
        &model.forward(get(&io, "x")).unwrap(),
        get(&io, "tokens"),
        2e-2,
    );
}

fn audio_model() -> AudioViT {
    let cfg = AudioVitConfig {
        transformer: TransformerConfig::xkd(12, 2, 3),
        in_channels: 1,
        spec_size: [16, 64],
        patch_size: [4, 16],
    };
    let vb = VarBuilder::from_tensors(
        official_backbone("xkd/audio_backbone/audio_backbone.pth.tar"),
        DType::F32,
        &Device::Cpu,
    );
    AudioViT::new(&cfg, vb).unwrap()
}

#[test]
fn audio_backbone_matches_official() {
    let io = load_fixture("xkd/audio_backbone/audio_backbone_io.safetensors");
    let model = audio_model();
    let x = get(&io, "x");
    assert_close(
        "patches",
        &model.patchify(x).unwrap(),
        get(&io, "patches"),
        0.0,
    );
    let patches = model
        .patch_embed()
        .forward(&model.patchify(x).unwrap())
        .unwrap();
    assert_close(
        "patch_embed_out",
        &patches,
        get(&io, "patch_embed_out"),
        ATOL,
    );
    let (tokens, attn) = model.forward_with_attn(x).unwrap();
    assert_close("tokens", &tokens, get(&io, "tokens"), ATOL);
    assert_close("attn_last", &attn, get(&io, "attn_last"), ATOL);
    assert_close(
        "pooled",
        &model.features(x).unwrap(),
        get(&io, "pooled"),
        ATOL,
    );
    for case in ["long", "short"] {
        let xs = get(&io, &format!("x_{case}"));
        let pos = model.pos_embed_for(model.grid_of(xs).unwrap()).unwrap();
        assert_close(
            &format!("pos_embed_interp_{case}"),
            &pos,
            get(&io, &format!("pos_embed_interp_{case}")),
            ATOL,
        );
        let (tokens, attn) = model.forward_with_attn(xs).unwrap();
        assert_close(
            &format!("tokens_{case}"),
            &tokens,
            get(&io, &format!("tokens_{case}")),
            ATOL,
        );
        assert_close(
            &format!("attn_last_{case}"),
            &attn,
            get(&io, &format!("attn_last_{case}")),
            ATOL,
        );
        assert_close(
            &format!("pooled_{case}"),
            &model.features(xs).unwrap(),
            get(&io, &format!("pooled_{case}")),
            ATOL,
        );
    }
}

#[test]
fn wrong_input_shapes_are_clear_errors() {
    let model = audio_model();
    let bad = Tensor::zeros((1, 1, 15, 64), DType::F32, &Device::Cpu).unwrap();
    let err = model.forward(&bad).unwrap_err().to_string();
    assert!(
        err.contains("[1, 1, 15, 64]") && err.contains("16 mel bins"),
        "{err}"
    );
    let video = video_model("xkd/video_backbone/video_backbone.pth.tar", AxisRule::Cuda);
    let bad = Tensor::zeros((1, 3, 3, 24, 24), DType::F32, &Device::Cpu).unwrap();
    let err = video.forward(&bad).unwrap_err().to_string();
    assert!(err.contains("multiple of 2"), "{err}");
}
