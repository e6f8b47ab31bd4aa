//! The whole XKD pretraining net against the official `XKD_Net.forward` (fixture xkd/xkd_net), the
//! official full-net checkpoints (XKD, XKD-MAS) loading into avkd's modules, gradient routing, and
//! the parameter sharing of XKD-MAS/MATS.

mod common;

use avkd::checkpoint::{keymap, pth, xkd_net};
use avkd::models::xkd::mae::masking_from_noise;
use avkd::models::xkd::net::{XkdConfig, XkdNet, XkdObjectiveConfig, XkdVariant};
use avkd::models::xkd::{AudioVitConfig, DinoHeadConfig, MaeDecoderConfig, VideoVitConfig};
use avkd::nn::interpolate::AxisRule;
use avkd::nn::param_store::ParamStore;
use avkd::nn::rng::SeededRng;
use avkd::nn::vit::TransformerConfig;
use candle_core::{DType, Device};
use common::*;

fn fixture_config(variant: XkdVariant) -> XkdConfig {
    XkdConfig {
        variant,
        video: VideoVitConfig {
            transformer: TransformerConfig::xkd(4, 12, 2),
            in_channels: 3,
            num_frames: 4,
            image_size: [24, 24],
            patch_size: [8, 8],
            tubelet_size: 2,
            pos_embed_axis_rule: AxisRule::Cpu,
        },
        audio: AudioVitConfig {
            transformer: TransformerConfig::xkd(4, 12, 2),
            in_channels: 1,
            spec_size: [8, 64],
            patch_size: [4, 16],
        },
        video_decoder: MaeDecoderConfig {
            transformer: TransformerConfig::xkd(6, 4, 2),
            mask_ratio: 0.85,
            norm_pix_loss: true,
        },
        audio_decoder: MaeDecoderConfig {
            transformer: TransformerConfig::xkd(6, 4, 2),
            mask_ratio: 0.8,
            norm_pix_loss: true,
        },
        head: DinoHeadConfig {
            in_dim: 4,
            hidden_dim: 8,
            bottleneck_dim: 4,
            out_dim: 16,
            nlayers: 3,
            layer_norm_eps: 1e-5,
        },
        objective: XkdObjectiveConfig::default(),
    }
}

fn load_official(rel: &str, variant: XkdVariant) -> XkdNet {
    let entries = pth::read_state_dict(&fixture_path(rel), Some("model")).unwrap();
    let official = xkd_net::xkd_net_from_official(
        entries,
        variant.shares_student_blocks(),
        variant.shares_teacher_blocks(),
    )
    .unwrap();
    let store = ParamStore::new(0, DType::F32, &Device::Cpu);
    let n = official.params.len();
    store.insert_tensors(official.params).unwrap();
    let mut net = XkdNet::new(&fixture_config(variant), &store).unwrap();
    // Building must not have created any parameter the checkpoint lacks.
    assert_eq!(
        store.named_vars().len(),
        n,
        "the model asked for parameters the official checkpoint does not have"
    );
    net.set_centers(official.vt2as_center, official.at2vs_center)
        .unwrap();
    net
}

#[test]
fn xkd_forward_matches_official() {
    let io = load_fixture("xkd/xkd_net/xkd_net_forward.safetensors");
    let mut net = load_official("xkd/xkd_net/checkpoint.pth.tar", XkdVariant::Xkd);
    assert_close(
        "vt2as centre before",
        net.centers().0,
        get(&io, "vt2as_center_before"),
        0.0,
    );
    let vmask = masking_from_noise(get(&io, "vid_noise"), 0.85).unwrap();
    let amask = masking_from_noise(get(&io, "aud_noise"), 0.8).unwrap();
    assert_close("vid_mask", &vmask.mask, get(&io, "vid_mask"), 0.0);
    assert_close("aud_mask", &amask.mask, get(&io, "aud_mask"), 0.0);
    let frames = [
        get(&io, "frames_global").clone(),
        get(&io, "frames_local").clone(),
    ];
    let specs = [
        get(&io, "specs_global").clone(),
        get(&io, "specs_local").clone(),
    ];
    let losses = net.forward(&frames, &specs, &vmask, &amask, None).unwrap();
    for (name, value) in losses.scalars().unwrap() {
        let want = scalar(get(&io, &format!("loss_{name}")));
        // The MMD terms are ill-conditioned in the official form: squared distances use the addmm
        // identity, so the kernel diagonal (exactly 0 in exact arithmetic) holds f32 rounding noise,
        // which the gamma = 1000 kernel turns into ~1e-4..1e-3 of the loss depending on summation
        // order (see tests/xkd_losses.rs). They are held to 1e-3, the total (where they weigh 1/7)
        // to 2e-4, and everything else to 1e-5.
        let rtol = if name.contains("align") {
            1e-3
        } else if name == "loss" {
            2e-4
        } else {
            1e-5
        };
        let rel = ((value as f64 - want) / want).abs();
        assert!(
            rel <= rtol,
            "{name}: {value} vs official {want} (relative {rel:.2e})"
        );
        eprintln!("{name}: relative error {rel:.2e}");
    }
    assert_close(
        "vt2as centre after",
        net.centers().0,
        get(&io, "vt2as_center_after"),
        1e-6,
    );
    assert_close(
        "at2vs centre after",
        net.centers().1,
        get(&io, "at2vs_center_after"),
        1e-6,
    );

    // Gradient routing: every trainable parameter (students, their heads, the MAE decoders) gets a
    // gradient from the total loss; no teacher parameter does.
    let grads = losses.loss.backward().unwrap();
    let trainable = net.trainable_vars();
    // 2 student backbones (138 each), 2 heads (9: no mlp.4 alias, no frozen weight_g), 2 decoders (mid_proj, out_proj, mask_token, dec_pos_embed and 4 blocks of 11 tensors: 50).
    assert_eq!(trainable.len(), 2 * 138 + 2 * 9 + 2 * 50);
    for (name, var) in &trainable {
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("`{name}` received no gradient"));
        assert!(
            g.abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0,
            "`{name}` has an all-zero gradient"
        );
    }
    for (name, var) in net.store().named_vars() {
        if name.contains("_teacher") {
            assert!(
                grads.get(&var).is_none(),
                "teacher parameter `{name}` received a gradient"
            );
        }
    }
}

#[test]
fn official_backbone_file_equals_the_net_student() {
    let net = load_official("xkd/xkd_net/checkpoint.pth.tar", XkdVariant::Xkd);
    let file = pth::read_state_dict(
        &fixture_path("xkd/xkd_net/XKD_pretext_kinetics400_ep0vid_student.pth.tar"),
        None,
    )
    .unwrap();
    assert_eq!(file.len(), 138, "a saved backbone holds 138 tensors");
    for (key, t) in file {
        let name = format!(
            "vid_student.backbone.{}",
            keymap::xkd_backbone_to_avkd(&key)
        );
        let var = net
            .store()
            .get(&name)
            .unwrap_or_else(|| panic!("`{name}` missing"));
        assert_close(&name, var.as_tensor(), &t, 0.0);
    }
}

#[test]
fn mas_checkpoint_loads_with_one_set_of_student_blocks() {
    let mut net = load_official("xkd/xkd_mas_net/checkpoint.pth.tar", XkdVariant::Mas);
    let names: Vec<String> = net
        .store()
        .named_vars()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(names
        .iter()
        .any(|n| n.starts_with("shared_student_blocks.11.")));
    assert!(!names
        .iter()
        .any(|n| n.starts_with("vid_student.backbone.blocks")
            || n.starts_with("aud_student.backbone.blocks")));
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("vid_teacher.backbone.blocks.11.")),
        "MAS keeps modality-specific teachers"
    );
    // Official unique storages (562) = avkd parameters + the two centre buffers.
    assert_eq!(names.len() + 2, 562);
    // The shared blocks learn from both modalities.
    let mut rng = SeededRng::new(3);
    let frames = [
        rng.normal((2, 3, 4, 24, 24), 0., 1., &Device::Cpu).unwrap(),
        rng.normal((2, 3, 2, 16, 16), 0., 1., &Device::Cpu).unwrap(),
    ];
    let specs = [
        rng.normal((2, 1, 8, 64), 0., 1., &Device::Cpu).unwrap(),
        rng.normal((2, 1, 8, 16), 0., 1., &Device::Cpu).unwrap(),
    ];
    let losses = net.forward_rng(&frames, &specs, &mut rng).unwrap();
    let shared = net
        .store()
        .get("shared_student_blocks.0.attn.qkv.weight")
        .unwrap();
    let g_video = losses.vid_recon.backward().unwrap();
    let g_audio = losses.aud_recon.backward().unwrap();
    assert!(g_video.get(&shared).is_some() && g_audio.get(&shared).is_some());
}

#[test]
fn xkd_net_has_the_official_parameter_count() {
    // 694 unique official storages = avkd parameters + 2 centres.
    let net = load_official("xkd/xkd_net/checkpoint.pth.tar", XkdVariant::Xkd);
    assert_eq!(net.store().named_vars().len() + 2, 694);
}

#[test]
fn mats_shares_teacher_blocks_and_ema_follows_the_official_double_update() {
    let store = ParamStore::new(7, DType::F32, &Device::Cpu);
    let net = XkdNet::new(&fixture_config(XkdVariant::Mats), &store).unwrap();
    let names: Vec<String> = store.named_vars().into_iter().map(|(n, _)| n).collect();
    assert!(names
        .iter()
        .any(|n| n.starts_with("shared_teacher_blocks.0.")));
    assert!(!names.iter().any(|n| n.contains("teacher.backbone.blocks")));
    // A fresh net's teachers start as copies of the students.
    let t = store.get("vid_teacher.backbone.pos_embed").unwrap();
    let s = store.get("vid_student.backbone.pos_embed").unwrap();
    assert_close("teacher init", t.as_tensor(), s.as_tensor(), 0.0);
    // Perturb the student, then one EMA step: plain teacher params move by (1-m), shared blocks by (1-m²).
    let m = 0.9;
    for name in [
        "vid_student.backbone.pos_embed",
        "shared_student_blocks.0.norm1.bias",
    ] {
        let v = store.get(name).unwrap();
        v.set(&(v.as_tensor() + 1.0).unwrap()).unwrap();
    }
    let before_plain = store
        .get("vid_teacher.backbone.pos_embed")
        .unwrap()
        .as_tensor()
        .copy()
        .unwrap();
    let before_shared = store
        .get("shared_teacher_blocks.0.norm1.bias")
        .unwrap()
        .as_tensor()
        .copy()
        .unwrap();
    net.ema_update(m).unwrap();
    let moved_plain = (store
        .get("vid_teacher.backbone.pos_embed")
        .unwrap()
        .as_tensor()
        - &before_plain)
        .unwrap();
    let moved_shared = (store
        .get("shared_teacher_blocks.0.norm1.bias")
        .unwrap()
        .as_tensor()
        - &before_shared)
        .unwrap();
    assert_close(
        "plain EMA",
        &moved_plain,
        &(moved_plain.ones_like().unwrap() * (1.0 - m)).unwrap(),
        1e-6,
    );
    assert_close(
        "shared EMA",
        &moved_shared,
        &(moved_shared.ones_like().unwrap() * (1.0 - m * m)).unwrap(),
        1e-6,
    );
}
