//! CCL composition heads and objectives against the official PyTorch outputs (fixture
//! `ccl/composition_losses`): head outputs, every NCE / KL / CE term and total, every gradient of
//! the video and head losses and the gradients as the official backward order leaves them. Plus
//! CCL-AI built from the same references, the head checkpoint, degenerate batches and
//! finite-difference checks of the two losses.

mod common;

use avkd::checkpoint::pth::read_state_dict;
use avkd::jobs::distill_routing::{ccl_ai, ccl_single, routed_gradients, teacher_terms};
use avkd::models::ccl::composition::CompositionClassifier;
use avkd::nn::param_store::ParamStore;
use avkd::objectives::ccl::{CclLosses, Teacher, CCL_AI_WEIGHT};
use avkd::objectives::contrastive::{nce_loss, sym_nce};
use avkd::objectives::divergence::{cross_entropy, symmetric_kl};
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor, Var};
use common::{assert_close, assert_rel_close, get, load_fixture, max_abs, max_abs_diff, scalar};
use std::collections::HashMap;

const DIR: &str = "ccl/composition_losses";
const D: usize = 16;
const C: usize = 5;
const HEAD_PARAMS: [&str; 4] = ["mlp.weight", "mlp.bias", "fc.weight", "fc.bias"];
/// Every scalar term the fixture stores per teacher (`img_…`, `aud_…`).
const TERMS: [&str; 14] = [
    "cls_v",
    "cls_z",
    "nce_v_z",
    "nce_z_v",
    "nce_v_t",
    "nce_t_v",
    "nce_z_t",
    "nce_t_z",
    "loss_vm",
    "loss_vt",
    "loss_mt",
    "jsd",
    "total_loss_video",
    "total_loss_head",
];

fn fixture() -> HashMap<String, Tensor> {
    load_fixture(&format!("{DIR}/composition_losses_io.safetensors"))
}

/// Activation check: max abs error <= 1e-5.
#[track_caller]
fn check_act(what: &str, got: &Tensor, want: &Tensor) {
    println!("act  {what}: max abs err {:.3e}", max_abs_diff(got, want));
    assert_close(what, got, want, 1e-5);
}

/// Loss check: 0-dim, relative error <= 1e-5.
#[track_caller]
fn check_loss(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(
        got.rank(),
        0,
        "{what}: loss must be 0-dim, got {:?}",
        got.dims()
    );
    let (g, w) = (scalar(got), scalar(want));
    println!(
        "loss {what}: got {g:.8} want {w:.8} rel err {:.3e}",
        (g - w).abs() / w.abs()
    );
    assert_rel_close(what, got, want, 1e-5);
}

/// Gradient check: max abs error <= 1e-4 · max|ref|.
#[track_caller]
fn check_grad(what: &str, got: Option<&Tensor>, want: &Tensor) {
    let got = got.unwrap_or_else(|| panic!("{what}: no gradient"));
    println!(
        "grad {what}: max abs err {:.3e}, relative to max|ref| {:.3e}",
        max_abs_diff(got, want),
        max_abs_diff(got, want) / max_abs(want)
    );
    assert_rel_close(what, got, want, 1e-4);
}

/// A head loaded from the fixture's `{prefix}.*` tensors, and its parameters by name.
fn load_head(
    fx: &HashMap<String, Tensor>,
    prefix: &str,
) -> Result<(CompositionClassifier, HashMap<String, Var>)> {
    let store = ParamStore::new(0, DType::F32, &Device::Cpu);
    store.insert_tensors(
        HEAD_PARAMS.map(|k| (k.to_string(), get(fx, &format!("{prefix}.{k}")).clone())),
    )?;
    let head = CompositionClassifier::new(D, C, store.builder())?;
    let vars: HashMap<String, Var> = store.named_vars().into_iter().collect();
    assert_eq!(
        vars.len(),
        4,
        "the head must use exactly the 4 loaded tensors"
    );
    Ok((head, vars))
}

fn head_var_list(vars: &HashMap<String, Var>) -> Vec<Var> {
    HEAD_PARAMS.iter().map(|k| vars[*k].clone()).collect()
}

/// The student's outputs and a teacher embedding as leaf variables.
struct Inputs {
    v: Var,
    o_v: Var,
    t: Var,
    labels: Tensor,
}

fn inputs(fx: &HashMap<String, Tensor>, teacher_key: &str) -> Result<Inputs> {
    Ok(Inputs {
        v: Var::from_tensor(get(fx, "video_feature"))?,
        o_v: Var::from_tensor(get(fx, "video_logits"))?,
        t: Var::from_tensor(get(fx, teacher_key))?,
        labels: get(fx, "labels").clone(),
    })
}

fn keep_rows(fx: &HashMap<String, Tensor>) -> Result<Vec<u32>> {
    let mask = get(fx, "aud_keep_mask").to_vec1::<i64>()?;
    Ok((0..mask.len() as u32)
        .filter(|&i| mask[i as usize] == 1)
        .collect())
}

fn check_terms(p: &str, losses: &CclLosses, fx: &HashMap<String, Tensor>) {
    for name in TERMS {
        let key = format!("{p}_{name}");
        let got = losses
            .term(&key)
            .unwrap_or_else(|| panic!("term `{key}` missing"));
        check_loss(&key, got, get(fx, &key));
    }
    check_loss(
        &format!("{p} video"),
        &losses.video,
        get(fx, &format!("{p}_total_loss_video")),
    );
    check_loss(
        &format!("{p} head"),
        &losses.head,
        get(fx, &format!("{p}_total_loss_head")),
    );
}

#[test]
fn composition_head_forward() -> Result<()> {
    let fx = fixture();
    let (img, _) = load_head(&fx, "img_head")?;
    let (logits, z) = img.forward(get(&fx, "image_feature"), get(&fx, "video_feature"))?;
    check_act("img_head_logits", &logits, get(&fx, "img_head_logits"));
    check_act("img_composed", &z, get(&fx, "img_composed"));

    let (aud, _) = load_head(&fx, "aud_head")?;
    let idx = Tensor::new(keep_rows(&fx)?.as_slice(), &Device::Cpu)?;
    let (logits, z) = aud.forward(
        &get(&fx, "audio_feature").index_select(&idx, 0)?,
        &get(&fx, "video_feature").index_select(&idx, 0)?,
    )?;
    check_act("aud_head_logits", &logits, get(&fx, "aud_head_logits"));
    check_act("aud_composed", &z, get(&fx, "aud_composed"));
    Ok(())
}

/// The terms, the gradients of each loss w.r.t. every input and parameter, and the routed
/// gradients, for one teacher.
fn check_teacher(teacher: Teacher) -> Result<()> {
    let fx = fixture();
    let p = teacher.prefix();
    let (teacher_key, head_key) = match teacher {
        Teacher::Image => ("image_feature", "img_head"),
        Teacher::Audio => ("audio_feature", "aud_head"),
    };
    let (head, vars) = load_head(&fx, head_key)?;
    let x = inputs(&fx, teacher_key)?;

    // Values through the public objective.
    let losses = ccl_single(teacher, &x.v, &x.o_v, &x.t, &head, &x.labels, 1.0)?;
    check_terms(p, &losses, &fx);

    // Gradients of each loss on its own, with the graph to every input (teacher_terms detaches
    // nothing, unlike ccl_single).
    let terms = teacher_terms(teacher, &x.v, &x.o_v, &x.t, &head, &x.labels)?;
    if teacher == Teacher::Audio {
        assert_eq!(terms.rows, keep_rows(&fx)?);
        check_act(
            "aud_head_logits (terms)",
            &terms.logits_z,
            get(&fx, "aud_head_logits"),
        );
        check_act(
            "aud_composed (terms)",
            &terms.composed,
            get(&fx, "aud_composed"),
        );
    } else {
        check_act(
            "img_head_logits (terms)",
            &terms.logits_z,
            get(&fx, "img_head_logits"),
        );
        check_act(
            "img_composed (terms)",
            &terms.composed,
            get(&fx, "img_composed"),
        );
    }
    let cls_v = cross_entropy(&x.o_v, &x.labels)?;
    let video = terms.video_loss(&cls_v, 1.0)?;
    let head_loss = terms.head_loss()?;
    check_loss(
        &format!("{p} video (terms)"),
        &video,
        get(&fx, &format!("{p}_total_loss_video")),
    );
    check_loss(
        &format!("{p} head (terms)"),
        &head_loss,
        get(&fx, &format!("{p}_total_loss_head")),
    );
    for (loss_name, loss) in [("video_loss", &video), ("head_loss", &head_loss)] {
        let grads = loss.backward()?;
        let mut inputs = vec![("video_feature", &x.v), ("video_logits", &x.o_v)];
        if teacher == Teacher::Image {
            inputs.push(("image_feature", &x.t));
        }
        for (name, var) in inputs {
            let key = format!("{p}_grad_{loss_name}.{name}");
            check_grad(&key, grads.get(var), get(&fx, &key));
        }
        for name in HEAD_PARAMS {
            let key = format!("{p}_grad_{loss_name}.{name}");
            check_grad(&key, grads.get(&vars[name]), get(&fx, &key));
        }
    }

    // Routed gradients: the student gets the video loss's only, the head the sum.
    assert!(
        losses.head.backward()?.get(&x.v).is_none(),
        "the head loss must not reach the student"
    );
    let student = [x.v.clone(), x.o_v.clone()];
    let routed = routed_gradients(&losses, &student, &head_var_list(&vars))?;
    for (name, var) in [("video_feature", &x.v), ("video_logits", &x.o_v)] {
        let key = format!("{p}_grad_video_loss.{name}");
        check_grad(&format!("routed {name}"), routed.get(var), get(&fx, &key));
    }
    assert!(
        routed.get(&x.t).is_none(),
        "the teacher must get no gradient"
    );
    for name in HEAD_PARAMS {
        let want = match teacher {
            Teacher::Image => get(&fx, &format!("img_grad_as_trained.head.{name}")).clone(),
            // No as-trained reference for audio: the sum of the two references.
            Teacher::Audio => {
                (get(&fx, &format!("aud_grad_head_loss.{name}"))
                    + get(&fx, &format!("aud_grad_video_loss.{name}")))?
            }
        };
        check_grad(
            &format!("routed {p} head {name}"),
            routed.get(&vars[name]),
            &want,
        );
    }
    Ok(())
}

#[test]
fn ccl_i_terms_and_gradients() -> Result<()> {
    check_teacher(Teacher::Image)
}

#[test]
fn ccl_a_terms_and_gradients() -> Result<()> {
    check_teacher(Teacher::Audio)
}

/// The NCE terms called directly, and the u32 label path.
#[test]
fn nce_terms_direct_and_u32_labels() -> Result<()> {
    let fx = fixture();
    let (head, _) = load_head(&fx, "img_head")?;
    let v = get(&fx, "video_feature");
    let t = get(&fx, "image_feature");
    let y = get(&fx, "labels");
    let y32 = y.to_dtype(DType::U32)?;
    let (_, z) = head.forward(t, v)?;
    let tau = Teacher::Image.temperature();
    for (name, a, b) in [
        ("v_z", v, &z),
        ("z_v", &z, v),
        ("v_t", v, t),
        ("t_v", t, v),
        ("z_t", &z, t),
        ("t_z", t, &z),
    ] {
        let got = nce_loss(a, b, y, tau)?;
        check_loss(
            &format!("img_nce_{name} (direct)"),
            &got,
            get(&fx, &format!("img_nce_{name}")),
        );
        assert_eq!(scalar(&got), scalar(&nce_loss(a, b, &y32, tau)?));
    }
    check_loss(
        "img_loss_vm (sym_nce)",
        &sym_nce(v, &z, y, tau)?,
        get(&fx, "img_loss_vm"),
    );
    let jsd = symmetric_kl(get(&fx, "video_logits"), get(&fx, "img_head_logits"), 0.5)?;
    check_loss("img_jsd (direct)", &jsd, get(&fx, "img_jsd"));
    check_loss(
        "img_cls_z (direct)",
        &cross_entropy(get(&fx, "img_head_logits"), &y32)?,
        get(&fx, "img_cls_z"),
    );
    Ok(())
}

/// CCL-AI from the single-teacher references: the video loss is
/// CE + 0.5·(ct_a + ct_i) + 0.5·(KL_a + KL_i); each head gets ∂(its loss) + 0.5·∂(its teacher's
/// CCL video loss) (the CE does not reach the heads).
#[test]
fn ccl_ai_from_single_teacher_references() -> Result<()> {
    let fx = fixture();
    let (img_head, img_vars) = load_head(&fx, "img_head")?;
    let (aud_head, aud_vars) = load_head(&fx, "aud_head")?;
    let x = inputs(&fx, "image_feature")?;
    let t_a = get(&fx, "audio_feature");
    let losses = ccl_ai(
        &x.v,
        &x.o_v,
        &x.t,
        &img_head,
        t_a,
        &aud_head,
        &x.labels,
        CCL_AI_WEIGHT,
    )?;
    let s = |k: &str| scalar(get(&fx, k));
    let w = CCL_AI_WEIGHT;
    let want_video = s("img_cls_v")
        + w * (s("aud_loss_vm") + s("aud_loss_vt") + s("img_loss_vm") + s("img_loss_vt"))
        + w * (s("aud_jsd") + s("img_jsd"));
    let want_head = s("aud_total_loss_head") + s("img_total_loss_head");
    let close = |what: &str, got: &Tensor, want: f64| {
        let rel = (scalar(got) - want).abs() / want.abs();
        println!(
            "loss {what}: got {:.8} want {want:.8} rel err {rel:.3e}",
            scalar(got)
        );
        assert!(rel <= 1e-5, "{what}: relative error {rel:.3e}");
    };
    close("ai video", &losses.video, want_video);
    close("ai head", &losses.head, want_head);
    for p in ["img", "aud"] {
        for name in &TERMS[1..12] {
            let key = format!("{p}_{name}");
            check_loss(
                &format!("ai {key}"),
                losses.term(&key).unwrap(),
                get(&fx, &key),
            );
        }
    }

    let student = [x.v.clone(), x.o_v.clone()];
    let mut heads = head_var_list(&img_vars);
    heads.extend(head_var_list(&aud_vars));
    let routed = routed_gradients(&losses, &student, &heads)?;
    // ∂CE/∂o_v, which both single-teacher video losses contain once.
    let ce_grad = cross_entropy(&x.o_v, &x.labels)?.backward()?;
    let ce_grad = ce_grad.get(&x.o_v).unwrap();
    let want_o = ((ce_grad + ((get(&fx, "img_grad_video_loss.video_logits") - ce_grad)? * w)?)?
        + ((get(&fx, "aud_grad_video_loss.video_logits") - ce_grad)? * w)?)?;
    check_grad("ai video_logits", routed.get(&x.o_v), &want_o);
    let want_v = ((get(&fx, "img_grad_video_loss.video_feature")
        + get(&fx, "aud_grad_video_loss.video_feature"))?
        * w)?;
    check_grad("ai video_feature", routed.get(&x.v), &want_v);
    for (p, vars) in [("img", &img_vars), ("aud", &aud_vars)] {
        for name in HEAD_PARAMS {
            let want = (get(&fx, &format!("{p}_grad_head_loss.{name}"))
                + (get(&fx, &format!("{p}_grad_video_loss.{name}")) * w)?)?;
            check_grad(
                &format!("ai {p} head {name}"),
                routed.get(&vars[name]),
                &want,
            );
        }
    }
    Ok(())
}

/// The image head checkpoint as main.py writes it ({epoch, arch, state_dict, optimizer,
/// scheduler with a collections.Counter}) loads through the state_dict key.
#[test]
fn image_head_checkpoint_loads() -> Result<()> {
    let fx = fixture();
    let path = common::fixture_path(&format!("{DIR}/save_2_image.pth"));
    let sd: HashMap<String, Tensor> = read_state_dict(&path, Some("state_dict"))?
        .into_iter()
        .collect();
    let mut keys: Vec<&String> = sd.keys().collect();
    keys.sort();
    assert_eq!(keys, ["fc.bias", "fc.weight", "mlp.bias", "mlp.weight"]);
    for k in HEAD_PARAMS {
        assert_eq!(
            max_abs_diff(&sd[k], get(&fx, &format!("img_head.{k}"))),
            0.0,
            "{k} differs from the fixture"
        );
    }
    let store = ParamStore::new(0, DType::F32, &Device::Cpu);
    store.insert_tensors(sd)?;
    let head = CompositionClassifier::new(D, C, store.builder())?;
    let (logits, _) = head.forward(get(&fx, "image_feature"), get(&fx, "video_feature"))?;
    check_act(
        "img_head_logits (checkpoint)",
        &logits,
        get(&fx, "img_head_logits"),
    );
    Ok(())
}

#[track_caller]
fn assert_finite(what: &str, t: &Tensor) {
    let v = t
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    assert!(v.iter().all(|x| x.is_finite()), "{what}: not finite: {v:?}");
}

fn assert_grads_finite(what: &str, grads: &GradStore, vars: &[Var]) {
    for (i, v) in vars.iter().enumerate() {
        if let Some(g) = grads.get(v) {
            assert_finite(&format!("{what} grad {i}"), g);
        }
    }
}

/// Batches where the official code gives NaN give finite values here.
#[test]
fn degenerate_batches_are_finite() -> Result<()> {
    let fx = fixture();
    let (head, vars) = load_head(&fx, "aud_head")?;
    let heads = head_var_list(&vars);
    let x = inputs(&fx, "audio_feature")?;
    let student = [x.v.clone(), x.o_v.clone()];
    let dev = Device::Cpu;

    // Single class: no row has a negative.
    let one_class = Tensor::new(&[2i64; 8], &dev)?;
    for teacher in [Teacher::Image, Teacher::Audio] {
        let l = ccl_single(teacher, &x.v, &x.o_v, &x.t, &head, &one_class, 1.0)?;
        assert_finite("single class video", &l.video);
        assert_finite("single class head", &l.head);
        let g = routed_gradients(&l, &student, &heads)?;
        assert_grads_finite("single class", &g, &student);
        assert_grads_finite("single class", &g, &heads);
    }
    let n = nce_loss(&x.v, &x.t, &one_class, 0.5)?;
    assert_finite("single class nce", &n);

    // No audio row: the audio terms are 0, the video loss is the CE.
    let no_audio = x.t.zeros_like()?;
    let l = ccl_single(
        Teacher::Audio,
        &x.v,
        &x.o_v,
        &no_audio,
        &head,
        &x.labels,
        1.0,
    )?;
    let ce = cross_entropy(&x.o_v, &x.labels)?;
    assert_eq!(scalar(&l.video), scalar(&ce));
    assert_eq!(scalar(&l.head), 0.0);
    let g = routed_gradients(&l, &student, &heads)?;
    assert!(g.get(&x.o_v).is_some());
    assert_grads_finite("no audio", &g, &student);
    assert!(heads.iter().all(|h| g.get(h).is_none()));

    // One audio row: N = 1 inside every audio term.
    let mut mask = vec![0f32; 8 * D];
    mask[3 * D..4 * D].iter_mut().for_each(|m| *m = 1.0);
    let one_row = (x.t.as_tensor() * Tensor::from_vec(mask, (8, D), &dev)?)?;
    let l = ccl_single(
        Teacher::Audio,
        &x.v,
        &x.o_v,
        &one_row,
        &head,
        &x.labels,
        1.0,
    )?;
    assert_finite("one audio row video", &l.video);
    assert_finite("one audio row head", &l.head);
    let g = routed_gradients(&l, &student, &heads)?;
    assert_grads_finite("one audio row", &g, &student);
    assert_grads_finite("one audio row", &g, &heads);
    let (img_head, _) = load_head(&fx, "img_head")?;
    let t_i = get(&fx, "image_feature");
    let ai = ccl_ai(
        &x.v, &x.o_v, t_i, &img_head, &one_row, &head, &x.labels, 0.5,
    )?;
    assert_finite("one audio row ai video", &ai.video);
    assert_finite("one audio row ai head", &ai.head);

    // N = 1 gives -log(1 + 1e-10) ≈ 0; N = 0 gives 0.
    let row = x.v.as_tensor().narrow(0, 0, 1)?;
    let n1 = nce_loss(&row, &row, &Tensor::new(&[0u32], &dev)?, 0.1)?;
    assert!(scalar(&n1).abs() < 1e-6, "{}", scalar(&n1));
    let empty = Tensor::zeros((0, D), DType::F32, &dev)?;
    let n0 = nce_loss(&empty, &empty, &Tensor::zeros(0, DType::I64, &dev)?, 0.1)?;
    assert_eq!(scalar(&n0), 0.0);
    let kl0 = symmetric_kl(
        &Tensor::zeros((0, C), DType::F32, &dev)?,
        &Tensor::zeros((0, C), DType::F32, &dev)?,
        0.5,
    )?;
    assert_eq!(scalar(&kl0), 0.0);

    // Shape errors are errors, not panics.
    assert!(nce_loss(&x.v, &x.o_v, &x.labels, 0.1).is_err());
    assert!(head.forward(&x.v, &x.o_v).is_err());
    assert!(ccl_single(Teacher::Image, &x.v, &x.o_v, &x.o_v, &head, &x.labels, 1.0).is_err());
    Ok(())
}

/// Deterministic, irregular test values in f64.
fn values(n: usize, salt: f64) -> Vec<f64> {
    (0..n)
        .map(|k| (1.7 * k as f64 + salt).sin() * 1.5 + 0.3 * (0.37 * k as f64 * salt).cos())
        .collect()
}

/// Central differences of `f` at `x` against the autograd gradient `g`.
fn check_fd(
    what: &str,
    x: &[f64],
    shape: (usize, usize),
    g: &Tensor,
    f: &dyn Fn(&Tensor) -> Result<f64>,
) -> Result<()> {
    let h = 1e-6;
    let g = g.flatten_all()?.to_vec1::<f64>()?;
    let scale = g.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-3);
    let mut worst = 0f64;
    for i in 0..x.len() {
        let mut xp = x.to_vec();
        xp[i] += h;
        let mut xm = x.to_vec();
        xm[i] -= h;
        let fp = f(&Tensor::from_vec(xp, shape, &Device::Cpu)?)?;
        let fm = f(&Tensor::from_vec(xm, shape, &Device::Cpu)?)?;
        let fd = (fp - fm) / (2.0 * h);
        worst = worst.max((fd - g[i]).abs());
    }
    println!("fd   {what}: max abs err {worst:.3e} (max|grad| {scale:.3e})");
    assert!(
        worst <= 1e-6 * scale,
        "{what}: finite differences differ by {worst:.3e}"
    );
    Ok(())
}

#[test]
fn finite_differences_f64() -> Result<()> {
    let dev = Device::Cpu;
    let (n, d, c) = (6, 4, 3);
    let labels = Tensor::new(&[0i64, 1, 0, 2, 1, 0], &dev)?;
    let a0 = values(n * d, 0.3);
    let b0 = values(n * d, 1.1);
    for tau in [0.1, 0.5] {
        let a = Var::from_vec(a0.clone(), (n, d), &dev)?;
        let b = Var::from_vec(b0.clone(), (n, d), &dev)?;
        let grads = nce_loss(&a, &b, &labels, tau)?.backward()?;
        let bt = b.as_tensor().clone();
        check_fd(
            &format!("nce da tau={tau}"),
            &a0,
            (n, d),
            grads.get(&a).unwrap(),
            &|x| nce_loss(x, &bt, &labels, tau)?.to_scalar::<f64>(),
        )?;
        let at = a.as_tensor().clone();
        check_fd(
            &format!("nce db tau={tau}"),
            &b0,
            (n, d),
            grads.get(&b).unwrap(),
            &|x| nce_loss(&at, x, &labels, tau)?.to_scalar::<f64>(),
        )?;
    }
    let p0 = values(n * c, 2.3);
    let q0 = values(n * c, 0.9);
    let p = Var::from_vec(p0.clone(), (n, c), &dev)?;
    let q = Var::from_vec(q0.clone(), (n, c), &dev)?;
    let grads = symmetric_kl(&p, &q, 0.5)?.backward()?;
    let qt = q.as_tensor().clone();
    check_fd(
        "symmetric_kl dp",
        &p0,
        (n, c),
        grads.get(&p).unwrap(),
        &|x| symmetric_kl(x, &qt, 0.5)?.to_scalar::<f64>(),
    )?;
    let pt = p.as_tensor().clone();
    check_fd(
        "symmetric_kl dq",
        &q0,
        (n, c),
        grads.get(&q).unwrap(),
        &|x| symmetric_kl(&pt, x, 0.5)?.to_scalar::<f64>(),
    )?;
    Ok(())
}
