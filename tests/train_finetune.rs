//! The fine-tuning trainer on CPU with a tiny XKD video ViT (8×32×32 clips) and a tiny R(2+1)D, on
//! moving-square clips generated in memory (`data::synth`): exact resume (end of epoch and mid
//! epoch), learning, layer-wise lr decay, checkpoints as model folders, TOML configs and bad
//! checkpoints.

#[path = "train_finetune/support.rs"]
mod support;

use avkd::jobs::finetune::config::{FinetuneConfig, MixupConfig, OptimizerConfig, ScheduleConfig};
use avkd::jobs::finetune::model::FinetuneModel;
use avkd::jobs::finetune::training::{
    finetune, group_learning_rates, scheduled_lr, steps_per_epoch, RunOptions,
};
use avkd::models::config::ModelConfig;
use avkd::models::folder::ModelFolder;
use avkd::models::model::{Model, ModelInputs};
use avkd::models::xkd::net::XkdConfig;
use avkd::nn::param_store::ParamStore;
use avkd::nn::rng::SeededRng;
use avkd::train::param_groups::finetune_groups;
use candle_core::{DType, Device, Result, Tensor, Var};
use std::path::Path;
use support::*;

#[test]
fn vit_resume_after_epoch_is_bit_exact() -> Result<()> {
    let s = Setup {
        start: vit_start()?,
        cfg: vit_config(),
        classes: 4,
        mixup: true,
    };
    let stop = RunOptions {
        stop_after_epochs: Some(1),
        ..Default::default()
    };
    check_resume(&s, "vit-epoch", stop, false)
}

#[test]
fn vit_resume_mid_epoch_is_bit_exact() -> Result<()> {
    let mut cfg = vit_config();
    cfg.save_every_steps = Some(2);
    let s = Setup {
        start: vit_start()?,
        cfg,
        classes: 4,
        mixup: true,
    };
    // 5 batches per epoch, accumulation 2: steps 1-3 in epoch 0, 4-6 in epoch 1. A checkpoint is
    // written after step 4 (epoch 1, batch 2) and the run "crashes" after step 5.
    let stop = RunOptions {
        stop_after_steps: Some(5),
        ..Default::default()
    };
    check_resume(&s, "vit-mid", stop, true)
}

#[test]
fn r2plus1d_sgd_resume_mid_epoch_is_bit_exact() -> Result<()> {
    let mut cfg = r21d_config_ft();
    cfg.save_every_steps = Some(2);
    let s = Setup {
        start: r21d_start()?,
        cfg,
        classes: 3,
        mixup: false,
    };
    let stop = RunOptions {
        stop_after_steps: Some(5),
        ..Default::default()
    };
    check_resume(&s, "r21d-mid", stop, true)
}

#[test]
fn learns_separable_classes() -> Result<()> {
    let mut cfg = r21d_config_ft();
    cfg.epochs = 6;
    cfg.accum_steps = 1;
    cfg.label_smoothing = 0.0;
    cfg.schedule = ScheduleConfig::Multistep {
        milestones: vec![],
        gamma: 0.1,
    };
    let classes = 2;
    let (model, store) = build(&r21d_start()?, &cfg, classes)?;
    let mut train = SynthClips::new(32, classes, 8, 21);
    let held_out = SynthClips::new(16, classes, 16, 22);
    let mut eval = |m: &FinetuneModel, _| eval_top1(m, &held_out);
    let out = temp_dir("learn");
    let opts = RunOptions {
        out_dir: out.clone(),
        ..Default::default()
    };
    let summary = finetune(&model, &store, &cfg, &mut train, None, &mut eval, &opts)?;
    let records = metrics_without_timing(&out.join("metrics.jsonl"));
    let train: Vec<&serde_json::Value> = records.iter().filter(|r| r["kind"] == "train").collect();
    assert_eq!(train.len(), 24);
    let mean = |rs: &[&serde_json::Value], k: &str| {
        rs.iter().map(|r| r[k].as_f64().unwrap()).sum::<f64>() / rs.len() as f64
    };
    let (early, late) = (mean(&train[..4], "loss"), mean(&train[20..], "loss"));
    let late_acc = mean(&train[16..], "accuracy");
    println!("loss {early:.4} -> {late:.4}, late train accuracy {late_acc:.3}, best {summary:?}");
    assert!(late < 0.7 * early, "loss {early} -> {late}");
    assert!(late_acc > 0.75, "train accuracy {late_acc}");
    assert!(summary.best_top1.unwrap() > 0.5, "{summary:?}");
    std::fs::remove_dir_all(&out).ok();
    Ok(())
}

/// ViT-B names with shape-only tensors (1-D vs 2-D is all the rules look at).
fn vit_b_vars() -> Vec<(String, Var)> {
    let v = |rank: usize| Var::zeros(vec![1; rank], DType::F32, &Device::Cpu).unwrap();
    let mut out = vec![
        ("cls_token".to_string(), v(3)),
        ("pos_embed".to_string(), v(3)),
        ("patch_embed.proj.weight".to_string(), v(2)),
        ("patch_embed.proj.bias".to_string(), v(1)),
        ("norm.weight".to_string(), v(1)),
        ("norm.bias".to_string(), v(1)),
        ("head.weight".to_string(), v(2)),
        ("head.bias".to_string(), v(1)),
    ];
    for i in 0..12 {
        for (n, r) in [
            ("norm1.weight", 1),
            ("attn.qkv.weight", 2),
            ("mlp.fc2.bias", 1),
        ] {
            out.push((format!("blocks.{i}.{n}"), v(r)));
        }
    }
    out
}

#[test]
fn layer_wise_lr_follows_the_schedule() -> Result<()> {
    // ViT-B, the UCF101 preset: lr(group) = schedule(step) * 0.45^(13 - layer id).
    let cfg = FinetuneConfig::xkd_ucf101();
    let groups = finetune_groups(&vit_b_vars(), 0.05, cfg.layer_decay, 12)?;
    let spe = steps_per_epoch(&cfg, 400);
    assert_eq!(spe, 400);
    for step in [0u64, 1, 1999, 2000, 2001, 39_999] {
        let lr = scheduled_lr(&cfg, spe, step, step as usize / spe);
        // Independent formula: linear warmup over 5 epochs from 0, then cosine from 5e-4 to 1e-6.
        let w = 5 * 400;
        let expect = if (step as usize) < w {
            5e-4 * step as f64 / (w - 1) as f64
        } else {
            let i = step as f64 - w as f64;
            1e-6 + 0.5
                * (5e-4 - 1e-6)
                * (1.0 + (std::f64::consts::PI * i / (40_000 - w) as f64).cos())
        };
        assert!(
            (lr - expect).abs() <= 1e-15,
            "step {step}: {lr} vs {expect}"
        );
        for (name, glr) in group_learning_rates(&groups, lr) {
            let id: i32 = name.split('_').nth(1).unwrap().parse().unwrap();
            let want = lr * 0.45f64.powi(13 - id);
            assert!(
                (glr - want).abs() <= 1e-12 * want.max(1e-30),
                "{name}: {glr} vs {want}"
            );
        }
    }
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    assert!(names.contains(&"layer_0_no_decay") && names.contains(&"layer_13_decay"));

    // The small model through the trainer's own grouping: depth 4, so decay^(5 - id).
    let mut small = vit_config();
    small.layer_decay = 0.5;
    let (model, store) = build(&vit_start()?, &small, 4)?;
    let groups = model.param_groups(&store, &small)?;
    for g in &groups {
        let id: i32 = g.name.split('_').nth(1).unwrap().parse().unwrap();
        assert_eq!(g.lr_scale, 0.5f64.powi(5 - id), "{}", g.name);
    }
    let n: usize = groups.iter().map(|g| g.vars.len()).sum();
    assert_eq!(n, store.named_vars().len());
    Ok(())
}

fn assert_logits_match(out: &Path, model: &FinetuneModel, x: &Tensor) -> Result<()> {
    let folder = ModelFolder::open(&out.join("last"))?;
    let loaded = folder.load(&Device::Cpu)?;
    let outs = loaded.embed(&ModelInputs {
        input: Some(x.clone()),
        teacher: None,
        video: None,
    })?;
    let want = model.logits_t(x, None)?.flatten_all()?.to_vec1::<f32>()?;
    let got = outs["logits"].flatten_all()?.to_vec1::<f32>()?;
    assert_eq!(want, got);
    Ok(())
}

#[test]
fn checkpoints_reload_as_model_folders() -> Result<()> {
    let x = SynthClips::new(3, 3, 3, 5).tensor(&[0, 1, 2])?;
    // ViT with a fresh head; the folder holds a classifier with class names.
    let mut cfg = vit_config();
    cfg.epochs = 1;
    cfg.mixup = None;
    let (model, store) = build(&vit_start()?, &cfg, 3)?;
    let mut data = SynthClips::new(8, 3, 4, 1);
    let held = SynthClips::new(6, 3, 6, 2);
    let out = temp_dir("reload-vit");
    let id2label = Some((0..3).map(|i| (i, format!("class{i}"))).collect());
    let opts = RunOptions {
        out_dir: out.clone(),
        id2label,
        image_size: Some(32),
        ..Default::default()
    };
    finetune(
        &model,
        &store,
        &cfg,
        &mut data,
        None,
        &mut |m, _| eval_top1(m, &held),
        &opts,
    )?;
    assert_logits_match(&out, &model, &x)?;
    let folder = ModelFolder::open(&out.join("best"))?;
    assert_eq!(folder.config.model.model_type(), "xkd-video-classifier");
    assert_eq!(folder.config.id2label.as_ref().unwrap()[&2], "class2");
    assert_eq!(folder.preprocessor.crop_size, Some(32));
    assert!(out.join("last/README.md").is_file());
    // Continuing from the fine-tuned classifier keeps its head (same class count).
    let start = (folder.config.model.clone(), folder.tensors(&Device::Cpu)?);
    let (again, _) = build(&start, &cfg, 3)?;
    assert_eq!(
        again.logits_t(&x, None)?.to_vec2::<f32>()?,
        model.logits_t(&x, None)?.to_vec2::<f32>()?
    );

    // R(2+1)D: trained BatchNorm running statistics are saved and used by the loaded model.
    let cfg = r21d_config_ft();
    let (model, store) = build(&r21d_start()?, &cfg, 3)?;
    let out = temp_dir("reload-r21d");
    let opts = RunOptions {
        out_dir: out.clone(),
        stop_after_epochs: Some(1),
        ..Default::default()
    };
    finetune(
        &model,
        &store,
        &cfg,
        &mut data,
        None,
        &mut |m, _| eval_top1(m, &held),
        &opts,
    )?;
    let saved = load(&out.join("last/model.safetensors"));
    let rm = saved["bn1.running_mean"].to_vec1::<f32>()?;
    assert!(
        rm.iter().any(|v| *v != 0.0),
        "running mean never updated: {rm:?}"
    );
    assert_logits_match(&out, &model, &x)?;
    match ModelFolder::open(&out.join("last"))?.load(&Device::Cpu)? {
        Model::CclR2Plus1d(m) => assert_eq!(m.config().num_classes, 3),
        _ => panic!("expected a ccl-r2plus1d"),
    }
    Ok(())
}

#[test]
fn config_toml_presets_overrides_and_errors() -> Result<()> {
    for (name, preset) in [
        ("xkd-ucf101", FinetuneConfig::xkd_ucf101()),
        ("xkd-hmdb51", FinetuneConfig::xkd_hmdb51()),
        ("ccl-ucf51", FinetuneConfig::ccl_ucf51()),
    ] {
        assert_eq!(
            FinetuneConfig::from_toml_str(&preset.to_toml_string()?)?,
            preset
        );
        assert_eq!(
            FinetuneConfig::from_toml_str(&format!("preset = \"{name}\""))?,
            preset
        );
    }
    let hmdb = FinetuneConfig::xkd_hmdb51();
    assert_eq!(
        (hmdb.base_lr, hmdb.warmup_epochs, hmdb.layer_decay),
        (1e-4, 20, 0.75)
    );
    let ccl = FinetuneConfig::ccl_ucf51();
    assert_eq!((ccl.epochs, ccl.batch_size, ccl.base_lr), (300, 16, 1e-3));

    let cfg = FinetuneConfig::from_toml_str(
        "preset = \"xkd-ucf101\"\naccum_steps = 4\nmixup = false\n[optimizer]\nweight_decay = 0.1\n",
    )?;
    assert_eq!(cfg.effective_batch(), 96);
    assert_eq!(cfg.mixup, None);
    assert_eq!(
        cfg.optimizer,
        OptimizerConfig::Adamw {
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.1
        }
    );
    let sgd = FinetuneConfig::from_toml_str(
        "preset = \"xkd-ucf101\"\n[optimizer]\nkind = \"sgd\"\nmomentum = 0.9\nweight_decay = 0.0\nnesterov = true\n",
    )?;
    assert!(matches!(
        sgd.optimizer,
        OptimizerConfig::Sgd { nesterov: true, .. }
    ));
    let with_mix = FinetuneConfig::from_toml_str(
        "preset = \"ccl-ucf51\"\n[mixup]\nmixup_alpha = 0.8\ncutmix_alpha = 1.0\nprob = 1.0\nswitch_prob = 0.5\n",
    )?;
    assert_eq!(
        with_mix.mixup,
        Some(MixupConfig {
            mixup_alpha: 0.8,
            cutmix_alpha: 1.0,
            prob: 1.0,
            switch_prob: 0.5
        })
    );

    for (text, key) in [
        ("preset = \"xkd-ucf101\"\nbase_lrr = 1.0\n", "base_lrr"),
        (
            "preset = \"xkd-ucf101\"\n[optimizer]\nbetass = [0.9, 0.9]\n",
            "betass",
        ),
        ("preset = \"xkd-ucf10\"\n", "xkd-ucf10"),
        (
            "preset = \"ccl-ucf51\"\nwarmup_epochs = 2\n",
            "warmup_epochs",
        ),
        ("epochs = 3\n", "batch_size"),
    ] {
        let err = FinetuneConfig::from_toml_str(text).unwrap_err().to_string();
        assert!(err.contains(key), "`{key}` not named in: {err}");
    }

    // The commented example users copy parses.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/finetune.toml");
    let ex = FinetuneConfig::from_toml_file(&example)?;
    assert_eq!(ex.effective_batch(), 96);

    // Resuming with a different lr is refused, naming the key; more epochs are fine.
    let s = Setup {
        start: r21d_start()?,
        cfg: r21d_config_ft(),
        classes: 3,
        mixup: false,
    };
    let out = temp_dir("resume-lr");
    run(
        &s,
        &out,
        false,
        RunOptions {
            stop_after_epochs: Some(1),
            ..Default::default()
        },
    )?;
    let mut changed = Setup {
        cfg: s.cfg.clone(),
        ..s
    };
    changed.cfg.base_lr = 0.1;
    let err = run(&changed, &out, true, RunOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("base_lr"), "{err}");
    changed.cfg.base_lr = s_cfg_lr();
    changed.cfg.epochs = 4;
    let (summary, _) = run(&changed, &out, true, RunOptions::default())?;
    assert_eq!(summary.epochs_run, 3);
    std::fs::remove_dir_all(&out).ok();
    Ok(())
}

fn s_cfg_lr() -> f64 {
    r21d_config_ft().base_lr
}

#[test]
fn missing_or_corrupt_checkpoints_are_clear_errors() -> Result<()> {
    let s = Setup {
        start: r21d_start()?,
        cfg: r21d_config_ft(),
        classes: 3,
        mixup: false,
    };
    let out = temp_dir("corrupt");
    // No checkpoint at all.
    let err = run(&s, &out, true, RunOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("last") && err.contains("no checkpoint"),
        "{err}"
    );

    run(
        &s,
        &out,
        false,
        RunOptions {
            stop_after_epochs: Some(1),
            ..Default::default()
        },
    )?;
    let last = out.join("last");
    let state = std::fs::read(last.join("trainer_state.json"))?;
    let model = std::fs::read(last.join("model.safetensors"))?;
    let optim = std::fs::read(last.join("optimizer.safetensors"))?;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "trainer_state.json",
            b"{\"epoch\": 1".to_vec(),
            "trainer_state.json",
        ),
        (
            "trainer_state.json",
            b"{\"hello\": 1}".to_vec(),
            "trainer_state.json",
        ),
        (
            "model.safetensors",
            model[..model.len() / 2].to_vec(),
            "model.safetensors",
        ),
        (
            "optimizer.safetensors",
            b"not a safetensors file".to_vec(),
            "optimizer.safetensors",
        ),
    ];
    for (file, bytes, named) in cases {
        std::fs::write(last.join(file), &bytes)?;
        let err = run(&s, &out, true, RunOptions::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(named), "{file}: {err}");
        std::fs::write(last.join("trainer_state.json"), &state)?;
        std::fs::write(last.join("model.safetensors"), &model)?;
        if file == "optimizer.safetensors" {
            std::fs::remove_file(last.join(file))?;
            let err = run(&s, &out, true, RunOptions::default())
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.contains("optimizer.safetensors") && err.contains("missing"),
                "{err}"
            );
        }
        std::fs::write(last.join("optimizer.safetensors"), &optim)?;
    }
    // A checkpoint of another model (different class count) names the offending tensor.
    let other = Setup {
        start: r21d_start()?,
        cfg: r21d_config_ft(),
        classes: 4,
        mixup: false,
    };
    let err = run(&other, &out, true, RunOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("linear"), "{err}");
    std::fs::remove_dir_all(&out).ok();
    Ok(())
}

#[test]
fn starts_from_a_full_xkd_net_and_drop_path_is_wired() -> Result<()> {
    use avkd::models::xkd::net::{XkdNet, XkdVariant};
    use avkd::models::xkd::XkdEncoder;
    let x = SynthClips::new(2, 2, 2, 9).tensor(&[0, 1])?;
    for variant in [XkdVariant::Xkd, XkdVariant::Mas] {
        let mut net_cfg = XkdConfig::tiny_synthetic();
        net_cfg.variant = variant;
        let src = ParamStore::new(4, DType::F32, &Device::Cpu);
        let net = XkdNet::new(&net_cfg, &src)?;
        let want = net.video_student().features(&x)?.to_vec2::<f32>()?;
        let start = (ModelConfig::xkd_net(net_cfg), src.tensors()?);
        let (model, _) = build(&start, &vit_config(), 2)?;
        assert_eq!(model.features(&x)?.to_vec2::<f32>()?, want, "{variant:?}");
    }

    // Stochastic depth: training-mode logits depend on the step's generator iff drop_path > 0.
    let mut cfg = vit_config();
    cfg.head_dropout = 0.0;
    for (rate, differ) in [(0.0, false), (0.5, true)] {
        cfg.drop_path = rate;
        let (model, _) = build(&vit_start()?, &cfg, 2)?;
        let a = model
            .logits_t(&x, Some(&mut SeededRng::new(1)))?
            .to_vec2::<f32>()?;
        let b = model
            .logits_t(&x, Some(&mut SeededRng::new(2)))?
            .to_vec2::<f32>()?;
        assert_eq!(a != b, differ, "drop_path {rate}");
    }
    // R(2+1)D has neither knob.
    let err = build(&r21d_start()?, &vit_config(), 2)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("drop path"), "{err}");
    Ok(())
}
