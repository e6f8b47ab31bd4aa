//! XKD's MAE branches and DINO head against the official code (fixtures xkd/video_mae, xkd/audio_mae,
//! xkd/dino_head).

mod common;

use avkd::checkpoint::{keymap, pth};
use avkd::models::xkd::head::DinoHead;
use avkd::models::xkd::mae::{masking_from_noise, MaeDecoder};
use avkd::models::xkd::{
    AudioViT, AudioVitConfig, DinoHeadConfig, MaeDecoderConfig, VideoViT, VideoVitConfig,
};
use avkd::nn::interpolate::AxisRule;
use avkd::nn::vit::TransformerConfig;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use common::*;
use std::collections::HashMap;

fn tensors(rel: &str, rename: impl Fn(&str) -> String) -> HashMap<String, Tensor> {
    pth::read_state_dict(&fixture_path(rel), None)
        .unwrap()
        .into_iter()
        .map(|(k, t)| (rename(&k), t))
        .collect()
}

fn decoder(rel: &str, enc_dim: usize, patches: usize, patch_dim: usize, ratio: f64) -> MaeDecoder {
    let cfg = MaeDecoderConfig {
        transformer: TransformerConfig::xkd(8, 2, 2),
        mask_ratio: ratio,
        norm_pix_loss: true,
    };
    let vb = VarBuilder::from_tensors(tensors(rel, |k| k.to_string()), DType::F32, &Device::Cpu);
    MaeDecoder::new(&cfg, enc_dim, patches, patch_dim, vb).unwrap()
}

fn check_masking(io: &HashMap<String, Tensor>, ratio: f64) -> avkd::models::xkd::mae::Masking {
    let m = masking_from_noise(get(io, "noise"), ratio).unwrap();
    let as_i64 = |t: &Tensor| t.to_dtype(DType::I64).unwrap().to_vec2::<i64>().unwrap();
    assert_eq!(as_i64(&m.ids_keep), as_i64(get(io, "ids_keep")), "ids_keep");
    assert_eq!(
        as_i64(&m.ids_restore),
        as_i64(get(io, "ids_restore")),
        "ids_restore"
    );
    assert_close("mask", &m.mask, get(io, "mask"), 0.0);
    m
}

#[test]
fn video_mae_matches_official() {
    let io = load_fixture("xkd/video_mae/video_mae_io.safetensors");
    let cfg = VideoVitConfig {
        transformer: TransformerConfig::xkd(12, 2, 3),
        in_channels: 3,
        num_frames: 4,
        image_size: [24, 24],
        patch_size: [8, 8],
        tubelet_size: 2,
        pos_embed_axis_rule: AxisRule::Cuda,
    };
    let enc_w = tensors(
        "xkd/video_backbone/video_backbone.pth.tar",
        keymap::xkd_backbone_to_avkd,
    );
    let encoder = VideoViT::new(
        &cfg,
        VarBuilder::from_tensors(enc_w, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let dec = decoder("xkd/video_mae/video_mae_decoder.pth", 12, 18, 384, 0.85);
    let masking = check_masking(&io, 0.85);
    let out = dec
        .forward(&encoder, get(&io, "x"), &masking, None)
        .unwrap();
    assert_close("target", &out.target, get(&io, "target"), 0.0);
    assert_close("latent", &out.latent, get(&io, "latent"), 1e-5);
    assert_close("pred", &out.pred, get(&io, "pred"), 1e-5);
    assert_rel_close("loss", &out.loss, get(&io, "loss"), 1e-5);
}

#[test]
fn audio_mae_matches_official() {
    let io = load_fixture("xkd/audio_mae/audio_mae_io.safetensors");
    let cfg = AudioVitConfig {
        transformer: TransformerConfig::xkd(12, 2, 3),
        in_channels: 1,
        spec_size: [16, 64],
        patch_size: [4, 16],
    };
    let enc_w = tensors(
        "xkd/audio_backbone/audio_backbone.pth.tar",
        keymap::xkd_backbone_to_avkd,
    );
    let encoder = AudioViT::new(
        &cfg,
        VarBuilder::from_tensors(enc_w, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let dec = decoder("xkd/audio_mae/audio_mae_decoder.pth", 12, 16, 64, 0.8);
    let masking = check_masking(&io, 0.8);
    let out = dec
        .forward(&encoder, get(&io, "x"), &masking, None)
        .unwrap();
    assert_close("target", &out.target, get(&io, "target"), 0.0);
    let normalized = avkd::objectives::mae::normalize_patches(&out.target).unwrap();
    assert_close(
        "target_normalized",
        &normalized,
        get(&io, "target_normalized"),
        1e-5,
    );
    assert_close("latent", &out.latent, get(&io, "latent"), 1e-5);
    assert_close("pred", &out.pred, get(&io, "pred"), 1e-5);
    assert_rel_close("loss", &out.loss, get(&io, "loss"), 1e-5);
}

#[test]
fn dino_head_matches_official() {
    let io = load_fixture("xkd/dino_head/dino_head_io.safetensors");
    let w = tensors("xkd/dino_head/dino_head.pth", |k| {
        k.strip_prefix("head.").unwrap().to_string()
    });
    // The official head shares one LayerNorm between mlp.1 and mlp.4: the checkpoint holds it twice.
    assert_close(
        "mlp.4 == mlp.1",
        &w["mlp.4.weight"],
        &w["mlp.1.weight"],
        0.0,
    );
    let cfg = DinoHeadConfig {
        in_dim: 12,
        hidden_dim: 32,
        bottleneck_dim: 16,
        out_dim: 64,
        nlayers: 3,
        layer_norm_eps: 1e-5,
    };
    let head = DinoHead::new(&cfg, VarBuilder::from_tensors(w, DType::F32, &Device::Cpu)).unwrap();
    let x = get(&io, "x");
    let bottleneck = head.bottleneck(x).unwrap();
    assert_close("bottleneck", &bottleneck, get(&io, "bottleneck"), 1e-5);
    assert_close(
        "last_layer_out",
        &head.project(&bottleneck).unwrap(),
        get(&io, "last_layer_out"),
        1e-5,
    );
    assert_close("out", &head.forward(x).unwrap(), get(&io, "out"), 1e-4);
}
