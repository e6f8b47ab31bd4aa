//! Optimisers, parameter groups, schedules, EMA, clipping and the fine-tune losses.

mod common;

use avkd::nn::ema::{ema_update, ema_update_named};
use avkd::objectives::smoothing::{label_smoothing_ce, one_hot_smoothed, soft_target_ce};
use avkd::train::clip::{clip_grad_norm, clip_per_param};
use avkd::train::optim::{grad_store, AdamW, AdamWConfig, ParamGroup};
use avkd::train::param_groups::finetune_groups;
use avkd::train::schedule::{cosine_scheduler, ema_momentum_schedule, MultiStepLr, WarmupCosine};
use avkd::train::sgd::{Sgd, SgdConfig};
use candle_core::{DType, Device, Result, Tensor, Var};
use common::{assert_close, fixture_path, get, load_fixture, max_abs_diff, scalar};
use std::collections::HashMap;

const CPU: Device = Device::Cpu;

// ---------------------------------------------------------------- fixture: one XKD fine-tune step

fn read_pth(rel: &str) -> Result<Vec<(String, Tensor)>> {
    avkd::checkpoint::pth::read_state_dict(&fixture_path(rel), None)
}

/// One AdamW step of XKD's fine-tuning (LLRD groups, per-group weight decay) on the fixture's
/// gradients reproduces PyTorch's parameters after the step.
#[test]
fn xkd_finetune_adamw_step1_matches_pytorch() -> Result<()> {
    let init = read_pth("xkd/finetune_step/model_init_eval_names.pth")?;
    assert_eq!(init.len(), 30);
    let step1 = load_fixture("xkd/finetune_step/finetune_step1.safetensors");

    // The official eval names are kept: `head.classifier.*` falls in the same "everything else"
    // bucket (layer num_layers) as avkd's `head.*`, so no renaming is needed for the groups.
    let mut named: Vec<(String, Var)> = init
        .iter()
        .map(|(n, t)| Ok((n.clone(), Var::from_tensor(t)?)))
        .collect::<Result<_>>()?;
    named.sort_by(|a, b| a.0.cmp(&b.0));

    let groups = finetune_groups(&named, 0.05, 0.75, 2)?;
    // The (lr_scale, weight_decay) of every parameter equals config.json's table.
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_path("xkd/finetune_step/config.json"))
            .map_err(candle_core::Error::wrap)?,
    )
    .map_err(candle_core::Error::wrap)?;
    let table = &config["param_groups"];
    let mut seen = 0;
    for g in &groups {
        for (n, _) in &g.vars {
            let want = &table[n.as_str()];
            assert_eq!(
                g.lr_scale,
                want["lr_scale"].as_f64().unwrap(),
                "{n} lr_scale"
            );
            assert_eq!(
                g.weight_decay,
                want["weight_decay"].as_f64().unwrap(),
                "{n} weight_decay"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 30);

    let mut opt = AdamW::new(
        groups,
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        },
    )?;
    // The gradient store is built both ways: directly, and through a backward pass of
    // sum_p (p * g_p).sum(), whose gradient is exactly g_p.
    let direct = grad_store(
        named
            .iter()
            .map(|(n, v)| (v, get(&step1, &format!("grad1.{n}")).clone())),
    )?;
    let mut loss = Tensor::zeros((), DType::F32, &CPU)?;
    for (n, v) in &named {
        let g = get(&step1, &format!("grad1.{n}"));
        loss = (loss + (v.as_tensor() * g)?.sum_all()?)?;
    }
    let via_backward = loss.backward()?;
    for (n, v) in &named {
        let a = direct.get(v).unwrap();
        let b = via_backward.get(v).unwrap();
        assert_eq!(max_abs_diff(a, b), 0.0, "{n}: gradient via backward");
    }

    opt.step(&via_backward)?;
    // Most elements are bit-identical; a few differ by 1-4 ulp because PyTorch's CPU `sqrt` of
    // the second moment (vectorised, via MKL VML) is not always correctly rounded, Rust's is.
    let (mut worst, mut differing, mut total) = ((0f64, String::new()), 0usize, 0usize);
    for (n, v) in &named {
        let want = get(&step1, &format!("param_after1.{n}"));
        let d = max_abs_diff(v.as_tensor(), want);
        if d >= worst.0 {
            worst = (d, n.clone());
        }
        let a = v.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        let b = want.flatten_all()?.to_vec1::<f32>()?;
        differing += a.iter().zip(&b).filter(|(x, y)| x != y).count();
        total += a.len();
        assert_close(&format!("param_after1.{n}"), v.as_tensor(), want, 1e-6);
    }
    println!(
        "AdamW step 1 vs PyTorch: max abs error {:.3e} ({}), {differing}/{total} elements not bit-identical",
        worst.0, worst.1
    );
    assert_eq!(opt.step_count(), 1);
    Ok(())
}

/// The fixture's label-smoothed loss from its logits and int64 labels.
#[test]
fn label_smoothing_matches_fixture_loss() -> Result<()> {
    let step1 = load_fixture("xkd/finetune_step/finetune_step1.safetensors");
    let y = get(&step1, "y1");
    assert_eq!(y.dtype(), DType::I64);
    let loss = label_smoothing_ce(get(&step1, "logits1"), y, 0.1)?;
    let want = get(&step1, "loss1");
    let d = (scalar(&loss) - scalar(want)).abs();
    println!("label-smoothed CE vs PyTorch: abs error {d:.3e}");
    assert!(d <= 1e-6, "loss1 error {d:.3e}");
    // u32 labels give the same value.
    let loss_u32 = label_smoothing_ce(get(&step1, "logits1"), &y.to_dtype(DType::U32)?, 0.1)?;
    assert_eq!(scalar(&loss), scalar(&loss_u32));
    Ok(())
}

// ---------------------------------------------------------------- AdamW / SGD unit tests

fn toy_params() -> Result<Vec<(String, Var)>> {
    Ok(vec![
        (
            "w".to_string(),
            Var::new(&[[0.5f32, -1.0], [2.0, 0.25]], &CPU)?,
        ),
        ("b".to_string(), Var::new(&[0.1f32, -0.3], &CPU)?),
    ])
}

fn toy_grads(step: usize) -> Result<Vec<Tensor>> {
    let s = step as f32;
    Ok(vec![
        Tensor::new(&[[0.3f32 * s, -0.2], [0.05, 1.0 / s]], &CPU)?,
        Tensor::new(&[-0.7f32, 0.4 * s], &CPU)?,
    ])
}

fn toy_adamw(params: &[(String, Var)]) -> Result<AdamW> {
    let groups = vec![
        ParamGroup {
            name: "decay".into(),
            vars: vec![params[0].clone()],
            lr_scale: 0.5,
            weight_decay: 0.05,
        },
        ParamGroup::new("no_decay", vec![params[1].clone()], 0.0),
    ];
    AdamW::new(groups, AdamWConfig::default())
}

fn step_with(
    opt_step: &mut dyn FnMut(&candle_core::backprop::GradStore) -> Result<()>,
    params: &[(String, Var)],
    step: usize,
) -> Result<()> {
    let grads = toy_grads(step)?;
    let store = grad_store(params.iter().zip(grads).map(|((_, v), g)| (v, g)))?;
    opt_step(&store)
}

/// AdamW on scalars, written out in f64 (PyTorch's formula).
fn adamw_reference(p0: f64, grads: &[f64], lr: f64, wd: f64) -> f64 {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
    let (mut p, mut m, mut v) = (p0, 0.0, 0.0);
    for (i, g) in grads.iter().enumerate() {
        let t = (i + 1) as f64;
        p *= 1.0 - lr * wd;
        m = b1 * m + (1.0 - b1) * g;
        v = b2 * v + (1.0 - b2) * g * g;
        p -= lr / (1.0 - b1.powf(t)) * m / (v.sqrt() / (1.0 - b2.powf(t)).sqrt() + eps);
    }
    p
}

#[test]
fn adamw_matches_formula_over_three_steps() -> Result<()> {
    let params = toy_params()?;
    let mut opt = toy_adamw(&params)?;
    opt.set_learning_rate(2e-2);
    for s in 1..=3 {
        step_with(&mut |g| opt.step(g), &params, s)?;
    }
    let w = params[0].1.as_tensor().flatten_all()?.to_vec1::<f32>()?;
    let b = params[1].1.as_tensor().to_vec1::<f32>()?;
    let w0 = [0.5, -1.0, 2.0, 0.25];
    let gw = |s: f64| [0.3 * s, -0.2, 0.05, 1.0 / s];
    for k in 0..4 {
        let gs: Vec<f64> = (1..=3).map(|s| gw(s as f64)[k] as f32 as f64).collect();
        let want = adamw_reference(w0[k], &gs, 2e-2 * 0.5, 0.05);
        assert!(
            (w[k] as f64 - want).abs() < 1e-6,
            "w[{k}] {} vs {want}",
            w[k]
        );
    }
    let b0 = [0.1f32 as f64, -0.3f32 as f64];
    for k in 0..2 {
        let gs: Vec<f64> = (1..=3)
            .map(|s| {
                if k == 0 {
                    -0.7f32 as f64
                } else {
                    (0.4f32 * s as f32) as f64
                }
            })
            .collect();
        let want = adamw_reference(b0[k], &gs, 2e-2, 0.0);
        assert!(
            (b[k] as f64 - want).abs() < 1e-6,
            "b[{k}] {} vs {want}",
            b[k]
        );
    }
    Ok(())
}

#[test]
fn adamw_state_export_import_continues_identically() -> Result<()> {
    // Uninterrupted: three steps.
    let a = toy_params()?;
    let mut opt_a = toy_adamw(&a)?;
    for s in 1..=3 {
        step_with(&mut |g| opt_a.step(g), &a, s)?;
    }
    // Interrupted after one step: export params + state, rebuild, import, continue.
    let b = toy_params()?;
    let mut opt_b = toy_adamw(&b)?;
    step_with(&mut |g| opt_b.step(g), &b, 1)?;
    let state = opt_b.state_tensors()?;
    assert!(state.contains_key("w.exp_avg") && state.contains_key("b.exp_avg_sq"));
    let saved: Vec<Tensor> = b
        .iter()
        .map(|(_, v)| v.as_tensor().copy())
        .collect::<Result<_>>()?;
    let steps = opt_b.step_count();
    drop(opt_b);

    let c = toy_params()?;
    for ((_, v), t) in c.iter().zip(&saved) {
        v.set(t)?;
    }
    let mut opt_c = toy_adamw(&c)?;
    opt_c.load_state(&state, steps)?;
    assert_eq!(opt_c.step_count(), 1);
    for s in 2..=3 {
        step_with(&mut |g| opt_c.step(g), &c, s)?;
    }
    for ((n, va), (_, vc)) in a.iter().zip(&c) {
        assert_eq!(max_abs_diff(va.as_tensor(), vc.as_tensor()), 0.0, "{n}");
    }

    // Loading errors are explicit.
    let mut missing: HashMap<String, Tensor> = state.clone();
    missing.remove("w.exp_avg");
    let err = opt_c.load_state(&missing, 1).unwrap_err().to_string();
    assert!(err.contains("missing `w.exp_avg`"), "{err}");
    let mut wrong = state.clone();
    wrong.insert("w.exp_avg".into(), Tensor::zeros(3, DType::F32, &CPU)?);
    let err = opt_c.load_state(&wrong, 1).unwrap_err().to_string();
    assert!(err.contains("shape"), "{err}");
    let mut extra = state.clone();
    extra.insert("z.exp_avg".into(), Tensor::zeros(3, DType::F32, &CPU)?);
    assert!(opt_c.load_state(&extra, 1).is_err());
    Ok(())
}

#[test]
fn sgd_momentum_matches_hand_computation() -> Result<()> {
    // p0 = 1, wd = 5e-4, lr = 1e-3, momentum 0.9, grads 0.5, -1, 2 (torch.optim.SGD, CCL setting).
    let p = Var::new(&[1.0f32], &CPU)?;
    let mut opt = Sgd::new(
        vec![ParamGroup::new("all", vec![("p".into(), p.clone())], 5e-4)],
        SgdConfig::default(),
    )?;
    let (lr, mu, wd) = (1e-3f64, 0.9f64, 5e-4f64);
    let mut want = 1.0f64;
    let mut buf = 0.0f64;
    for (i, g) in [0.5f64, -1.0, 2.0].into_iter().enumerate() {
        let store = grad_store([(&p, Tensor::new(&[g as f32], &CPU)?)])?;
        opt.step(&store)?;
        let d = g + wd * want;
        buf = if i == 0 { d } else { mu * buf + d };
        want -= lr * buf;
        let got = p.as_tensor().to_vec1::<f32>()?[0] as f64;
        assert!((got - want).abs() < 1e-7, "step {}: {got} vs {want}", i + 1);
    }
    // Hand-expanded values of the three steps.
    // step 1: d = 0.5005, buf = 0.5005, p = 0.9994995
    // step 2: d = -1 + 5e-4 * 0.9994995 = -0.99950025025, buf = 0.45045 - 0.99950025025 = -0.54905025025,
    //         p = 0.9994995 + 0.00054905025025 = 1.00004855025025
    // step 3: d = 2 + 5e-4 * 1.00004855025025, buf = 0.9 * buf + d, p -= 1e-3 * buf
    let d3 = 2.0 + 5e-4 * 1.000_048_550_250_25;
    let p3 = 1.000_048_550_250_25 - 1e-3 * (0.9 * -0.549_050_250_25 + d3);
    assert!((want - p3).abs() < 1e-12);
    let got = p.as_tensor().to_vec1::<f32>()?[0] as f64;
    assert!((got - p3).abs() < 1e-7, "{got} vs {p3}");

    // SGD state round trip.
    let state = opt.state_tensors()?;
    assert!(state.contains_key("p.momentum_buffer"));
    let q = Var::new(&[got as f32], &CPU)?;
    let mut opt2 = Sgd::new(
        vec![ParamGroup::new("all", vec![("p".into(), q.clone())], 5e-4)],
        SgdConfig::default(),
    )?;
    opt2.load_state(&state, opt.step_count())?;
    let g4 = Tensor::new(&[0.25f32], &CPU)?;
    opt.step(&grad_store([(&p, g4.clone())])?)?;
    opt2.step(&grad_store([(&q, g4)])?)?;
    assert_eq!(max_abs_diff(p.as_tensor(), q.as_tensor()), 0.0);
    Ok(())
}

// ---------------------------------------------------------------- schedules

#[test]
fn cosine_scheduler_values() {
    // base 1e-3, final 1e-6, 10 epochs x 4 iters, 2 warmup epochs from 0.
    let s = cosine_scheduler(1e-3, 1e-6, 10, 4, 2, 0.0);
    assert_eq!(s.len(), 40);
    // warmup = linspace(0, 1e-3, 8)
    for (i, x) in s.iter().take(8).enumerate() {
        assert!((x - 1e-3 * i as f64 / 7.0).abs() < 1e-18, "warmup {i}");
    }
    assert_eq!(s[7], 1e-3);
    // cosine over 32 iterations: starts at base, quarter way = final + 0.5 (b - f)(1 + cos(pi/4)).
    assert_eq!(s[8], 1e-3);
    let quarter = 1e-6 + 0.5 * (1e-3 - 1e-6) * (1.0 + std::f64::consts::FRAC_1_SQRT_2);
    assert!((s[8 + 8] - quarter).abs() < 1e-15);
    assert!((s[8 + 16] - (1e-6 + 0.5 * (1e-3 - 1e-6))).abs() < 1e-15);
    let last = 1e-6 + 0.5 * (1e-3 - 1e-6) * (1.0 + (std::f64::consts::PI * 31.0 / 32.0).cos());
    assert!((s[39] - last).abs() < 1e-18);

    // EMA momentum schedule: 0.997 -> 1.
    let m = ema_momentum_schedule(0.997, 1.0, 2, 3);
    assert_eq!(m.len(), 6);
    assert_eq!(m[0], 0.997);
    assert!((m[3] - (1.0 + 0.5 * (0.997 - 1.0))).abs() < 1e-15);
    assert!(m.windows(2).all(|w| w[1] > w[0]) && m[5] < 1.0);
}

#[test]
fn warmup_cosine_struct_equals_vector() {
    for &(epochs, ipe, warm, start) in &[
        (10usize, 4usize, 2usize, 0.0f64),
        (5, 7, 0, 0.0),
        (3, 1, 1, 1e-6),
        (4, 3, 4, 1e-5),
        (2, 5, 3, 0.0),
        (0, 5, 0, 0.0),
    ] {
        let v = cosine_scheduler(5e-4, 1e-6, epochs, ipe, warm, start);
        let w = WarmupCosine::new(5e-4, 1e-6, epochs, ipe, warm, start);
        assert_eq!(w.len(), v.len(), "{epochs} {ipe} {warm}");
        for (i, x) in v.iter().enumerate() {
            assert_eq!(w.value(i), *x, "step {i} of ({epochs}, {ipe}, {warm})");
        }
    }
}

#[test]
fn multistep_lr() {
    let s = MultiStepLr::new(1e-3, vec![3, 6, 6], 0.1);
    let want = [1e-3, 1e-3, 1e-3, 1e-4, 1e-4, 1e-4, 1e-6, 1e-6];
    for (e, w) in want.iter().enumerate() {
        assert!((s.value(e) - w).abs() < 1e-18, "epoch {e}: {}", s.value(e));
    }
    assert_eq!(MultiStepLr::new(0.5, vec![], 0.1).value(100), 0.5);
}

// ---------------------------------------------------------------- clipping

#[test]
fn clipping_global_and_per_param() -> Result<()> {
    let a = Var::new(&[0f32, 0.], &CPU)?;
    let b = Var::new(&[0f32], &CPU)?;
    let c = Var::new(&[0f32], &CPU)?; // no gradient
    let make = || {
        grad_store([
            (&a, Tensor::new(&[3f32, 4.], &CPU).unwrap()),
            (&b, Tensor::new(&[12f32], &CPU).unwrap()),
        ])
    };

    // Global: norm = 13, clip to 6.5 -> everything halved (coef 6.5 / (13 + 1e-6)).
    let mut g = make()?;
    let vars = [a.clone(), b.clone(), c.clone()];
    let n = clip_grad_norm(&vars, &mut g, 6.5)?;
    assert!((n - 13.0).abs() < 1e-6);
    let coef = 6.5 / (13.0 + 1e-6);
    assert_close(
        "a",
        g.get(&a).unwrap(),
        &Tensor::new(&[3.0 * coef as f32, 4.0 * coef as f32], &CPU)?,
        1e-6,
    );
    assert_close(
        "b",
        g.get(&b).unwrap(),
        &Tensor::new(&[12.0 * coef as f32], &CPU)?,
        1e-6,
    );
    assert!(g.get(&c).is_none());
    // Below the threshold nothing changes.
    let mut g = make()?;
    clip_grad_norm(&vars, &mut g, 100.0)?;
    assert_eq!(g.get(&a).unwrap().to_vec1::<f32>()?, vec![3., 4.]);

    // Per parameter (DINO): clip 6 -> a (norm 5) untouched, b (norm 12) scaled to norm 6.
    let mut g = make()?;
    let norms = clip_per_param(&vars, &mut g, 6.0)?;
    assert_eq!(norms.len(), 2);
    assert!((norms[0] - 5.0).abs() < 1e-6 && (norms[1] - 12.0).abs() < 1e-6);
    assert_eq!(g.get(&a).unwrap().to_vec1::<f32>()?, vec![3., 4.]);
    assert!((g.get(&b).unwrap().to_vec1::<f32>()?[0] - 6.0).abs() < 1e-5);
    Ok(())
}

// ---------------------------------------------------------------- losses

#[test]
fn label_smoothing_hand_example() -> Result<()> {
    // logits [0, ln 2, ln 5] -> p = [1/8, 2/8, 5/8]; label 1, s = 0.2:
    // 0.8 * ln 4 + 0.2 * mean(ln 8, ln 4, ln 1.6).
    let logits = Tensor::new(&[[0f32, 2f32.ln(), 5f32.ln()], [1.0, 1.0, 1.0]], &CPU)?;
    let labels = Tensor::new(&[1i64, 2], &CPU)?;
    let l1 = 0.8 * 4f64.ln() + 0.2 * (8f64.ln() + 4f64.ln() + 1.6f64.ln()) / 3.0;
    let l2 = 3f64.ln(); // uniform: every term is ln 3
    let got = scalar(&label_smoothing_ce(&logits, &labels, 0.2)?);
    assert!((got - (l1 + l2) / 2.0).abs() < 1e-6, "{got}");
    assert!(label_smoothing_ce(&logits, &Tensor::new(&[1i64, 3], &CPU)?, 0.2).is_err());

    // Soft targets: with smoothed one-hot targets SoftTargetCE = sum_c(-t_c log p_c).
    let t = one_hot_smoothed(&[1, 2], 3, 0.3, &CPU)?;
    let tv = t.to_vec2::<f32>()?;
    assert!(
        (tv[0][0] - 0.1).abs() < 1e-7
            && (tv[0][1] - 0.8).abs() < 1e-7
            && (tv[1][2] - 0.8).abs() < 1e-7
    );
    let s1 = 0.1 * 8f64.ln() + 0.8 * 4f64.ln() + 0.1 * 1.6f64.ln();
    let got = scalar(&soft_target_ce(&logits, &t)?);
    assert!((got - (s1 + l2) / 2.0).abs() < 1e-6, "{got}");

    // The loss is differentiable w.r.t. the logits: d/dx = p - t for soft targets (/ B).
    let x = Var::from_tensor(&logits)?;
    let g = soft_target_ce(x.as_tensor(), &t)?.backward()?;
    let p = candle_nn::ops::softmax(&logits, 1)?;
    let want = ((p - &t)? / 2.0)?;
    assert_close("dCE/dx", g.get(&x).unwrap(), &want, 1e-6);
    Ok(())
}

// ---------------------------------------------------------------- EMA

#[test]
fn ema_updates_teacher() -> Result<()> {
    let t = Var::new(&[1f32, 2.], &CPU)?;
    let s = Tensor::new(&[3f32, -2.], &CPU)?;
    ema_update(std::slice::from_ref(&t), std::slice::from_ref(&s), 0.75)?;
    assert_eq!(t.to_vec1::<f32>()?, vec![1.5, 1.0]);
    let err = ema_update(
        std::slice::from_ref(&t),
        &[Tensor::zeros(3, DType::F32, &CPU)?],
        0.5,
    )
    .unwrap_err();
    assert!(err.to_string().contains("parameter 0"), "{err}");

    let teacher = vec![
        ("x".to_string(), Var::new(&[0f32], &CPU)?),
        ("y".to_string(), Var::new(&[1f32], &CPU)?),
    ];
    let student = vec![
        ("y".to_string(), Var::new(&[3f32], &CPU)?),
        ("x".to_string(), Var::new(&[2f32], &CPU)?),
    ];
    ema_update_named(&teacher, &student, 0.5)?;
    assert_eq!(teacher[0].1.to_vec1::<f32>()?, vec![1.0]);
    assert_eq!(teacher[1].1.to_vec1::<f32>()?, vec![2.0]);
    let other = vec![
        ("x".to_string(), Var::new(&[2f32], &CPU)?),
        ("z".to_string(), Var::new(&[2f32], &CPU)?),
    ];
    let err = ema_update_named(&teacher, &other, 0.5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"y\""), "{err}");
    Ok(())
}
