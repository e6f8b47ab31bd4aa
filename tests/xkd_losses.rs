//! XKD losses and refine step against the official PyTorch outputs (fixture `xkd/losses`), plus
//! gradient checks.

mod common;

use avkd::models::xkd::refine::{align_feats, cross_modal_attn, refine, CrossModalAttnMode};
use avkd::objectives::dino::DinoLoss;
use avkd::objectives::mmd::{gaussian_kernel, mmd};
use candle_core::{DType, Device, Result, Tensor, Var};
use common::{assert_close, assert_rel_close, get, load_fixture, max_abs, max_abs_diff, scalar};
use std::collections::HashMap;

const FIXTURE: &str = "xkd/losses/losses_io.safetensors";

fn fixture() -> HashMap<String, Tensor> {
    load_fixture(FIXTURE)
}

/// Activation check: max abs error <= 1e-5·max|ref| (and never looser than 1e-4 absolute).
#[track_caller]
fn check_act(what: &str, got: &Tensor, want: &Tensor) {
    let atol = (1e-5 * max_abs(want)).min(1e-4);
    println!(
        "{what}: max abs err {:.3e} (max|ref| {:.3e}, atol {atol:.1e})",
        max_abs_diff(got, want),
        max_abs(want)
    );
    assert_close(what, got, want, atol);
}

/// Loss check: relative error <= 1e-5.
#[track_caller]
fn check_loss(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(
        got.rank(),
        0,
        "{what}: loss must be 0-dim, got {:?}",
        got.dims()
    );
    println!(
        "{what}: got {:.8} want {:.8} rel err {:.3e}",
        scalar(got),
        scalar(want),
        (scalar(got) - scalar(want)).abs() / scalar(want).abs()
    );
    assert_rel_close(what, got, want, 1e-5);
}

/// Relative tolerance of the MMD values per fixture case.
///
/// MMD(X,Y) includes the diagonals of K(X,X) and K(Y,Y), whose distances are exactly 0 but come out
/// of the expanded form ‖x‖² + ‖x‖² − 2·x·x as f32 rounding noise of one ulp of ‖x‖² or so, and the
/// γ = 1000 kernel amplifies that noise: for case b (‖x‖² ≈ 64, ulp 7.6e-6) a one-ulp distance
/// moves K_ii by 1111·7.6e-6 ≈ 8.5e-3. Which diagonal entries get the ulp depends on the BLAS
/// summation order, so the value is reproducible only to that band: torch 2.15 with MKL on another
/// CPU gives exactly the reference for case b but misses case a by 1.1e-6 relative; the exact (f64)
/// value is 3.5e-4 away from the case-b reference, this crate 2.4e-4. Case a (‖x‖² ≈ 0.3) is well
/// conditioned and keeps the 1e-5 tolerance; the kernel matrices K(X,Y), whose entries are all well
/// conditioned, are checked tightly for both cases.
const MMD_VALUE_RTOL: [(&str, f64); 2] = [("a", 1e-5), ("b", 1e-3)];

#[test]
fn mmd_matches_reference() -> Result<()> {
    let f = fixture();
    for (case, rtol) in MMD_VALUE_RTOL {
        let x = get(&f, &format!("mmd_{case}_x"));
        let y = get(&f, &format!("mmd_{case}_y"));
        let kxy = gaussian_kernel(x, y)?;
        check_act(
            &format!("mmd_{case}_kxy"),
            &kxy,
            get(&f, &format!("mmd_{case}_kxy")),
        );
        let want = get(&f, &format!("mmd_{case}_value"));
        let v = mmd(x, y)?;
        assert_eq!(v.rank(), 0);
        let exact = scalar(&mmd(&x.to_dtype(DType::F64)?, &y.to_dtype(DType::F64)?)?);
        let rel = |a: f64| (a - scalar(want)).abs() / scalar(want).abs();
        println!(
            "mmd_{case}_value: got {:.8} want {:.8} rel err {:.3e} (f64 value {exact:.8}, rel {:.3e})",
            scalar(&v),
            scalar(want),
            rel(scalar(&v)),
            rel(exact)
        );
        assert_rel_close(&format!("mmd_{case}_value"), &v, want, rtol);
        // The reference itself lies within the same band around the rounding-free value.
        assert!(
            rel(exact) <= rtol,
            "mmd_{case}: f64 value {exact} vs reference"
        );
    }
    Ok(())
}

#[test]
fn dino_matches_reference_over_two_calls() -> Result<()> {
    let f = fixture();
    let mut loss = DinoLoss::from_center(get(&f, "dino_center0").clone(), 0.9)?;
    for call in 1..=2 {
        let student = get(&f, &format!("dino_student{call}"));
        let teacher = get(&f, &format!("dino_teacher{call}"));
        let l = loss.forward(student, teacher, 0.1, 0.07, 2, 1)?;
        check_loss(
            &format!("dino_loss{call}"),
            &l,
            get(&f, &format!("dino_loss{call}")),
        );
        check_act(
            &format!("dino_center{call}"),
            loss.center(),
            get(&f, &format!("dino_center{call}")),
        );
    }
    Ok(())
}

#[test]
fn dino_new_starts_from_zero_center_and_rejects_bad_views() -> Result<()> {
    let dev = Device::Cpu;
    let mut loss = DinoLoss::new(8, 0.9, &dev)?;
    assert_eq!(loss.center().dims(), &[1, 8]);
    assert_eq!(max_abs(loss.center()), 0.0);
    let student = Tensor::zeros((5, 8), DType::F32, &dev)?;
    let teacher = Tensor::zeros((2, 8), DType::F32, &dev)?;
    let err = loss.forward(&student, &teacher, 0.1, 0.07, 2, 1);
    assert!(err.is_err(), "5 student rows cannot split into 2 views");
    let student = Tensor::zeros((4, 8), DType::F32, &dev)?;
    let teacher = Tensor::zeros((2, 7), DType::F32, &dev)?;
    assert!(loss.forward(&student, &teacher, 0.1, 0.07, 2, 1).is_err());
    assert!(loss
        .set_center(Tensor::zeros((1, 9), DType::F32, &dev)?)
        .is_err());
    Ok(())
}

#[test]
fn dino_gradient_reaches_student_not_teacher() -> Result<()> {
    let f = fixture();
    let student = Var::from_tensor(get(&f, "dino_student1"))?;
    let teacher = Var::from_tensor(get(&f, "dino_teacher1"))?;
    let mut loss = DinoLoss::from_center(get(&f, "dino_center0").clone(), 0.9)?;
    let l = loss.forward(&student, &teacher, 0.1, 0.07, 2, 1)?;
    let grads = l.backward()?;
    let gs = grads
        .get(&student)
        .expect("the student must receive a gradient");
    assert_eq!(gs.dims(), student.dims());
    assert!(max_abs(gs) > 0.0, "student gradient is all zero");
    assert!(
        grads.get(&teacher).is_none(),
        "the teacher must not receive a gradient"
    );
    // The stored centre is detached: a loss on it has no path back to the teacher.
    let g2 = loss.center().sum_all()?.backward()?;
    assert!(g2.get(&teacher).is_none());
    Ok(())
}

#[test]
fn mmd_is_differentiable_and_zero_on_identical_samples() -> Result<()> {
    let f = fixture();
    let x = Var::from_tensor(get(&f, "mmd_a_x"))?;
    let y = Var::from_tensor(get(&f, "mmd_a_y"))?;
    let grads = mmd(&x, &y)?.backward()?;
    for (name, v) in [("x", &x), ("y", &y)] {
        let g = grads
            .get(v)
            .unwrap_or_else(|| panic!("mmd: no gradient for {name}"));
        assert_eq!(g.dims(), v.dims());
        assert!(max_abs(g) > 0.0, "mmd: zero gradient for {name}");
    }
    let same = scalar(&mmd(&x, &x)?);
    assert!(same.abs() < 1e-6, "MMD(X,X) = {same}");
    let xb = get(&f, "mmd_b_x");
    let same = scalar(&mmd(xb, xb)?);
    assert!(same.abs() < 1e-6, "MMD(X,X) = {same}");
    Ok(())
}

#[test]
fn refine_matches_reference() -> Result<()> {
    let f = fixture();
    let vattn = get(&f, "refine_vattn");
    let aattn = get(&f, "refine_aattn");
    let vtok = get(&f, "refine_vtok");
    let atok = get(&f, "refine_atok");

    let (cv, ca) = cross_modal_attn(vattn, aattn, CrossModalAttnMode::Mean)?;
    check_act("refine_cvattn", &cv, get(&f, "refine_cvattn"));
    check_act("refine_caattn", &ca, get(&f, "refine_caattn"));

    let vt = align_feats(vtok, &cv)?;
    let at = align_feats(atok, &ca)?;
    check_act("refine_vtok_aligned", &vt, get(&f, "refine_vtok_aligned"));
    check_act("refine_atok_aligned", &at, get(&f, "refine_atok_aligned"));

    let (vfeat, afeat) = refine(vattn, aattn, vtok, atok, CrossModalAttnMode::default())?;
    check_act("refine_vfeat", &vfeat, get(&f, "refine_vfeat"));
    check_act("refine_afeat", &afeat, get(&f, "refine_afeat"));

    let (cvs, cas) = cross_modal_attn(vattn, aattn, CrossModalAttnMode::Softmax)?;
    check_act(
        "refine_cvattn_softmax",
        &cvs,
        get(&f, "refine_cvattn_softmax"),
    );
    check_act(
        "refine_caattn_softmax",
        &cas,
        get(&f, "refine_caattn_softmax"),
    );
    Ok(())
}

#[test]
fn cross_modal_attn_mode_serde_names() {
    let m: CrossModalAttnMode = serde_json::from_str("\"softmax\"").unwrap();
    assert_eq!(m, CrossModalAttnMode::Softmax);
    assert_eq!(
        serde_json::to_string(&CrossModalAttnMode::Mean).unwrap(),
        "\"mean\""
    );
    assert_eq!(CrossModalAttnMode::default(), CrossModalAttnMode::Mean);
}

/// Central-difference check of d(f)/d(input) at a few coordinates, in f64.
fn finite_diff_check(
    what: &str,
    inputs: &[Tensor],
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    coords: &[(usize, usize)],
) -> Result<()> {
    let vars: Vec<Var> = inputs.iter().map(Var::from_tensor).collect::<Result<_>>()?;
    let as_tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let grads = f(&as_tensors)?.backward()?;
    let h = 1e-5;
    for &(which, flat) in coords {
        let g = grads
            .get(&vars[which])
            .unwrap_or_else(|| panic!("{what}: no gradient for input {which}"))
            .flatten_all()?
            .get(flat)?
            .to_scalar::<f64>()?;
        let eval = |delta: f64| -> Result<f64> {
            let mut ins: Vec<Tensor> = inputs.to_vec();
            let mut v = ins[which].flatten_all()?.to_vec1::<f64>()?;
            v[flat] += delta;
            ins[which] = Tensor::from_vec(v, ins[which].dims(), ins[which].device())?;
            f(&ins)?.to_scalar::<f64>()
        };
        let fd = (eval(h)? - eval(-h)?) / (2.0 * h);
        let rel = (g - fd).abs() / g.abs().max(fd.abs()).max(1e-12);
        println!(
            "{what}: input {which} coord {flat}: analytic {g:.10e} fd {fd:.10e} rel {rel:.2e}"
        );
        assert!(
            rel < 1e-6,
            "{what}: input {which} coord {flat}: analytic {g} vs finite difference {fd} (rel {rel:.2e})"
        );
    }
    Ok(())
}

#[test]
fn mmd_gradient_matches_finite_differences() -> Result<()> {
    let f = fixture();
    let x = get(&f, "mmd_a_x").to_dtype(DType::F64)?;
    let y = get(&f, "mmd_a_y").to_dtype(DType::F64)?;
    // Scale down so that the narrow kernels (γ = 10..1000) contribute to the gradient too.
    let x = (x * 0.3)?;
    let y = (y * 0.3)?;
    let loss = |t: &[Tensor]| mmd(&t[0], &t[1]);
    finite_diff_check(
        "mmd",
        &[x, y],
        &loss,
        &[(0, 0), (0, 17), (0, 63), (1, 5), (1, 40)],
    )
}

#[test]
fn align_feats_gradient_matches_finite_differences() -> Result<()> {
    let f = fixture();
    let tok = get(&f, "refine_vtok").to_dtype(DType::F64)?;
    let (cv, _) = cross_modal_attn(
        &get(&f, "refine_vattn").to_dtype(DType::F64)?,
        &get(&f, "refine_aattn").to_dtype(DType::F64)?,
        CrossModalAttnMode::Mean,
    )?;
    let probe = Tensor::arange(0u32, tok.elem_count() as u32, &Device::Cpu)?
        .to_dtype(DType::F64)?
        .affine(0.37, 0.0)?
        .sin()?
        .reshape(tok.dims())?;
    let loss = |t: &[Tensor]| align_feats(&t[0], &t[1])?.mul(&probe)?.sum_all();
    finite_diff_check(
        "align_feats",
        &[tok, cv],
        &loss,
        &[(0, 0), (0, 100), (0, 300), (1, 3), (1, 60)],
    )
}
