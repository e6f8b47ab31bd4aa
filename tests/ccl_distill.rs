//! One CCL-AI distillation step wired end to end, as `training.py::train_ai_epoch` does it: the
//! R(2+1)D student in training mode, the frozen ResNet teacher on one frame of the clip, audio-teacher
//! features with a missing row, both composition heads, the official gradient routing and the three
//! SGD optimisers (MultiStepLR on the student only).

use avkd::jobs::distill_routing::{ccl_ai, routed_gradients};
use avkd::models::ccl::composition::CompositionClassifier;
use avkd::models::ccl::r2plus1d::{R2Plus1d, R2Plus1dConfig};
use avkd::models::ccl::resnet::{ResNet, ResNetConfig};
use avkd::nn::batch_norm::is_running_stat;
use avkd::nn::param_store::ParamStore;
use avkd::nn::rng::SeededRng;
use avkd::objectives::ccl::CCL_AI_WEIGHT;
use avkd::train::optim::ParamGroup;
use avkd::train::schedule::MultiStepLr;
use avkd::train::sgd::{Sgd, SgdConfig};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;

fn trainable(store: &ParamStore) -> Vec<(String, Var)> {
    store
        .named_vars()
        .into_iter()
        .filter(|(n, _)| !is_running_stat(n))
        .collect()
}

#[test]
fn ccl_ai_step_routes_gradients_and_learns() {
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(11);
    let student_store = ParamStore::new(1, DType::F32, &dev);
    let student = R2Plus1d::new(
        &R2Plus1dConfig {
            depth: 18,
            widths: [4, 6, 8, 10],
            in_channels: 3,
            num_classes: 3,
        },
        student_store.builder(),
    )
    .unwrap();
    // The teacher is frozen: plain tensors, never in an optimiser.
    let teacher_init = ParamStore::new(2, DType::F32, &dev);
    let cfg = ResNetConfig {
        layers: [3, 4, 6, 3],
        widths: [4, 6, 8, 10],
        num_classes: None,
    };
    ResNet::new(&cfg, teacher_init.builder()).unwrap();
    let teacher = ResNet::new(
        &cfg,
        VarBuilder::from_tensors(teacher_init.tensors().unwrap(), DType::F32, &dev),
    )
    .unwrap();
    let head_store = ParamStore::new(3, DType::F32, &dev);
    let img_head = CompositionClassifier::new(10, 3, head_store.builder().pp("image")).unwrap();
    let aud_head = CompositionClassifier::new(10, 3, head_store.builder().pp("audio")).unwrap();

    let x = rng.normal((6, 3, 8, 32, 32), 0., 1., &dev).unwrap();
    let labels = Tensor::new(&[0i64, 1, 2, 0, 1, 2], &dev).unwrap();
    // Post-ReLU audio features; sample 1 has no audio (all zeros) and is left out of the audio terms.
    let mut audio = rng.normal((6, 10), 0., 1., &dev).unwrap().relu().unwrap();
    audio = audio
        .slice_assign(
            &[1..2, 0..10],
            &Tensor::zeros((1, 10), DType::F32, &dev).unwrap(),
        )
        .unwrap();
    // One frame of the (already normalised) clip, the same index for the whole batch.
    let frame = x.narrow(2, 3, 1).unwrap().squeeze(2).unwrap();

    let student_vars = trainable(&student_store);
    let head_vars: Vec<(String, Var)> = head_store.named_vars();
    let mut sched = MultiStepLr::new(1e-2, vec![150, 225], 0.1);
    let mut opt_video = Sgd::new(
        vec![ParamGroup::new("student", student_vars.clone(), 5e-4)],
        SgdConfig {
            lr: sched.value(0),
            ..Default::default()
        },
    )
    .unwrap();
    let mut opt_heads = Sgd::new(
        vec![ParamGroup::new("heads", head_vars.clone(), 5e-4)],
        SgdConfig {
            lr: 1e-2,
            ..Default::default()
        },
    )
    .unwrap();

    let mut video_losses = Vec::new();
    for step in 0..8 {
        let image = teacher.features(&frame).unwrap();
        let out = student.forward_t(&x, true).unwrap();
        let losses = ccl_ai(
            &out.feature,
            &out.logits,
            &image,
            &img_head,
            &audio,
            &aud_head,
            &labels,
            CCL_AI_WEIGHT,
        )
        .unwrap();
        video_losses.push(losses.video.to_scalar::<f32>().unwrap());
        let s: Vec<Var> = student_vars.iter().map(|(_, v)| v.clone()).collect();
        let h: Vec<Var> = head_vars.iter().map(|(_, v)| v.clone()).collect();
        let grads = routed_gradients(&losses, &s, &h).unwrap();
        if step == 0 {
            // The student learns from the video loss only; every student and head parameter gets a gradient.
            let video_only = losses.video.backward().unwrap();
            for (name, var) in &student_vars {
                let g = grads
                    .get(var)
                    .unwrap_or_else(|| panic!("student `{name}` got no gradient"));
                let d = (g - video_only.get(var).unwrap())
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(
                    d < 1e-6,
                    "student `{name}` gradient is not the video loss's alone (differs by {d})"
                );
            }
            for (name, var) in &head_vars {
                assert!(grads.get(var).is_some(), "head `{name}` got no gradient");
            }
        }
        opt_heads.step(&grads).unwrap();
        opt_video.step(&grads).unwrap();
        opt_video.set_learning_rate(sched.value(step + 1));
    }
    assert!(video_losses.iter().all(|l| l.is_finite()));
    assert!(
        video_losses.last().unwrap() < video_losses.first().unwrap(),
        "the video loss did not go down: {video_losses:?}"
    );
    // MultiStepLR: x0.1 at epochs 150 and 225, on the student's optimiser only.
    sched = MultiStepLr::new(1e-3, vec![150, 225], 0.1);
    assert!(
        (sched.value(149) - 1e-3).abs() < 1e-12
            && (sched.value(150) - 1e-4).abs() < 1e-12
            && (sched.value(225) - 1e-5).abs() < 1e-12
    );
}
