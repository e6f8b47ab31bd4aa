//! One (and a second) XKD fine-tuning step against the official engine (fixture xkd/finetune_step):
//! the evaluation model built from the renamed pretraining checkpoint, the pos-embed resampled inside
//! the differentiable forward, label-smoothed cross-entropy, every parameter's gradient, and AdamW
//! with layer-wise lr decay and the no-decay rules.

mod common;

use avkd::checkpoint::{keymap, pth};
use avkd::models::classifier::{VideoClassifier, VideoClassifierConfig};
use avkd::models::xkd::VideoVitConfig;
use avkd::nn::interpolate::AxisRule;
use avkd::nn::param_store::ParamStore;
use avkd::nn::vit::TransformerConfig;
use avkd::objectives::smoothing::label_smoothing_ce;
use avkd::train::optim::{AdamW, AdamWConfig};
use avkd::train::param_groups::finetune_groups;
use candle_core::{DType, Device, Module};
use common::*;

fn config() -> VideoClassifierConfig {
    VideoClassifierConfig {
        backbone: VideoVitConfig {
            transformer: TransformerConfig::xkd(16, 2, 2),
            in_channels: 3,
            num_frames: 4,
            image_size: [16, 16],
            patch_size: [8, 8],
            tubelet_size: 2,
            // The fixture ran on CPU: the unchanged time axis is copied.
            pos_embed_axis_rule: AxisRule::Cpu,
        },
        num_classes: 5,
        head_dropout: 0.0,
    }
}

#[test]
fn finetune_steps_match_official() {
    let s1 = load_fixture("xkd/finetune_step/finetune_step1.safetensors");
    let s2 = load_fixture("xkd/finetune_step/finetune_step2.safetensors");
    let init = pth::read_state_dict(
        &fixture_path("xkd/finetune_step/model_init_eval_names.pth"),
        None,
    )
    .unwrap();
    let store = ParamStore::new(0, DType::F32, &Device::Cpu);
    store
        .insert_tensors(
            init.into_iter()
                .map(|(k, t)| (keymap::xkd_eval_to_avkd(&k), t)),
        )
        .unwrap();
    let model = VideoClassifier::new(&config(), store.builder()).unwrap();
    let params = store.named_vars();
    assert_eq!(
        params.len(),
        30,
        "the model asked for parameters the official checkpoint does not have"
    );

    // The official pretraining checkpoint, renamed as the fine-tune engine does, is the same backbone.
    for (k, t) in pth::read_state_dict(
        &fixture_path("xkd/finetune_step/pretrained_backbone.pth.tar"),
        None,
    )
    .unwrap()
    {
        let name = keymap::xkd_backbone_to_avkd(&k);
        assert_close(&name, store.get(&name).unwrap().as_tensor(), &t, 0.0);
    }

    // Step 1: forward, loss, gradients.
    let x1 = get(&s1, "x1");
    let grid = model.backbone().grid_of(x1).unwrap();
    assert_close(
        "pos_embed_used",
        &model.backbone().pos_embed_for(grid).unwrap(),
        get(&s1, "pos_embed_used"),
        1e-6,
    );
    assert_close(
        "pooled1",
        &model.features(x1, None).unwrap(),
        get(&s1, "pooled1"),
        1e-5,
    );
    let logits = model.forward(x1).unwrap();
    assert_close("logits1", &logits, get(&s1, "logits1"), 1e-5);
    let loss = label_smoothing_ce(&logits, get(&s1, "y1"), 0.1).unwrap();
    assert_rel_close("loss1", &loss, get(&s1, "loss1"), 1e-5);
    let grads = loss.backward().unwrap();
    for (name, var) in &params {
        let official = keymap::avkd_to_xkd_eval(name);
        let g = grads
            .get(var)
            .unwrap_or_else(|| panic!("`{name}` received no gradient"));
        assert_rel_close(
            &format!("grad {official}"),
            g,
            get(&s1, &format!("grad1.{official}")),
            1e-4,
        );
    }

    // AdamW with the official groups: lr = 1e-3 * lr_scale, wd 0.05 except 1-D / pos_embed / cls_token.
    let groups = finetune_groups(&params, 0.05, 0.75, 2).unwrap();
    let mut opt = AdamW::new(
        groups,
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
    )
    .unwrap();
    opt.step(&grads).unwrap();
    for (name, var) in &params {
        let official = keymap::avkd_to_xkd_eval(name);
        assert_close(
            &format!("after step 1: {official}"),
            var.as_tensor(),
            get(&s1, &format!("param_after1.{official}")),
            1e-6,
        );
    }

    // Step 2 with the updated parameters.
    let logits = model.forward(get(&s2, "x2")).unwrap();
    assert_close("logits2", &logits, get(&s2, "logits2"), 1e-5);
    let loss = label_smoothing_ce(&logits, get(&s2, "y2"), 0.1).unwrap();
    assert_rel_close("loss2", &loss, get(&s2, "loss2"), 1e-5);
    opt.step(&loss.backward().unwrap()).unwrap();
    for (name, var) in &params {
        let official = keymap::avkd_to_xkd_eval(name);
        assert_close(
            &format!("after step 2: {official}"),
            var.as_tensor(),
            get(&s2, &format!("param_after2.{official}")),
            1e-6,
        );
    }
}

#[test]
fn every_parameter_of_every_encoder_gets_a_gradient() {
    use avkd::models::xkd::{AudioViT, AudioVitConfig, VideoViT, XkdEncoder};
    use avkd::nn::rng::SeededRng;
    let mut rng = SeededRng::new(4);
    let dev = Device::Cpu;
    // Drop path on, so the training path is the one exercised.
    let mut t = TransformerConfig::xkd(16, 2, 2);
    t.drop_path_rate = 0.1;
    let store = ParamStore::new(1, DType::F32, &dev);
    let mut vcfg = config().backbone;
    vcfg.transformer = t;
    let video = VideoViT::new(&vcfg, store.builder().pp("video")).unwrap();
    let audio = AudioViT::new(
        &AudioVitConfig {
            transformer: t,
            in_channels: 1,
            spec_size: [8, 32],
            patch_size: [4, 16],
        },
        store.builder().pp("audio"),
    )
    .unwrap();
    let clf_store = ParamStore::new(2, DType::F32, &dev);
    let mut ccfg = config();
    ccfg.head_dropout = 0.5;
    let clf = VideoClassifier::new(&ccfg, clf_store.builder()).unwrap();
    // A 24-px clip also exercises the resampled positional embedding.
    let x = rng.normal((2, 3, 4, 24, 24), 0., 1., &dev).unwrap();
    let a = rng.normal((2, 1, 8, 48), 0., 1., &dev).unwrap();
    let loss = (video
        .forward_train(&x, &mut rng)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        + audio
            .forward_train(&a, &mut rng)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap())
    .unwrap();
    let loss = (loss
        + clf
            .forward_t(&x, Some(&mut rng))
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap())
    .unwrap();
    let grads = loss.backward().unwrap();
    for (name, var) in store.named_vars().into_iter().chain(clf_store.named_vars()) {
        assert!(grads.get(&var).is_some(), "`{name}` received no gradient");
    }
}
