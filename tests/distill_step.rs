//! One CCL distillation step through the engine (`avkd::jobs::distill`) equals the official step
//! written out by hand, for CCL-A, CCL-I and CCL-AI: the student in training mode, the frozen
//! image teacher on one frame (the same random index for the batch), the objectives and routing of
//! `jobs::distill_routing` (checked against the official code's fixture `ccl/composition_losses` in
//! tests/ccl_objectives.rs), and one `torch.optim.SGD` update per module written out
//! (momentum buffer = g + wd·p on the first step, p ← p − lr·buf), with the lr of each module.

use avkd::jobs::distill::{
    distill, DistillBatch, DistillConfig, DistillMethod, DistillNets, Distillation, StudentStart,
};
use avkd::jobs::distill_routing::{ccl_ai, ccl_single, routed_gradients};
use avkd::models::ccl::r2plus1d::R2Plus1dConfig;
use avkd::models::ccl::resnet::{ResNet, ResNetConfig};
use avkd::models::config::{ModelConfig, PreprocessorConfig};
use avkd::nn::param_store::ParamStore;
use avkd::nn::rng::SeededRng;
use avkd::objectives::ccl::Teacher;
use avkd::train::engine::RunOptions;
use avkd::train::job::TrainData;
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarBuilder;
use std::collections::HashMap;

const SEED: u64 = 5;
const CLASSES: usize = 3;

fn student_cfg() -> R2Plus1dConfig {
    R2Plus1dConfig {
        depth: 18,
        widths: [4, 6, 8, 10],
        in_channels: 3,
        num_classes: CLASSES,
    }
}

/// A frozen ResNet teacher with 10-d features (seeded weights, not variables).
fn teacher() -> ResNet {
    let dev = Device::Cpu;
    let init = ParamStore::new(2, DType::F32, &dev);
    let cfg = ResNetConfig {
        layers: [3, 4, 6, 3],
        widths: [4, 6, 8, 10],
        num_classes: None,
    };
    ResNet::new(&cfg, init.builder()).unwrap();
    ResNet::new(
        &cfg,
        VarBuilder::from_tensors(init.tensors().unwrap(), DType::F32, &dev),
    )
    .unwrap()
}

fn nets(method: DistillMethod) -> DistillNets {
    let start = StudentStart::Scratch(student_cfg());
    let image = method.uses_image().then(teacher);
    let audio = method.uses_audio().then_some(10);
    DistillNets::new(method, &start, CLASSES, image, audio, SEED, &Device::Cpu).unwrap()
}

/// Clips, labels and audio features (row 1 without audio).
fn batch() -> DistillBatch {
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(11);
    let clips = rng.normal((6, 3, 8, 32, 32), 0., 1., &dev).unwrap();
    let labels = Tensor::new(&[0u32, 1, 2, 0, 1, 2], &dev).unwrap();
    let audio = rng.normal((6, 10), 0., 1., &dev).unwrap().relu().unwrap();
    let zeros = Tensor::zeros((1, 10), DType::F32, &dev).unwrap();
    let audio = audio.slice_assign(&[1..2, 0..10], &zeros).unwrap();
    DistillBatch {
        clips,
        labels,
        audio: Some(audio),
    }
}

struct OneBatch(DistillBatch);

impl TrainData for OneBatch {
    type Batch = DistillBatch;

    fn num_batches(&self) -> usize {
        1
    }

    fn epoch(
        &mut self,
        _epoch: usize,
        _start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<DistillBatch>> + '_>> {
        Ok(Box::new(std::iter::once(Ok(self.0.clone()))))
    }
}

fn config() -> DistillConfig {
    DistillConfig {
        epochs: 1,
        batch_size: 6,
        base_lr: 0.05,
        head_lr: 0.02,
        seed: SEED,
        ..Default::default()
    }
}

fn vars(v: Vec<(String, Var)>) -> Vec<Var> {
    v.into_iter().map(|(_, v)| v).collect()
}

/// The official step by hand on `nets`; returns every parameter and buffer after it, by module.
fn by_hand(method: DistillMethod, cfg: &DistillConfig) -> HashMap<String, HashMap<String, Tensor>> {
    let nets = nets(method);
    let b = batch();
    // The engine's generator of step 0, micro-batch 0.
    let mut rng = SeededRng::new(cfg.seed).derive(0).derive(0);
    let out = nets.student.forward_t(&b.clips, true).unwrap();
    let image = nets.image_teacher.as_ref().map(|t| {
        let r = rng.range(0, b.clips.dim(2).unwrap());
        t.features(&b.clips.narrow(2, r, 1).unwrap().squeeze(2).unwrap())
            .unwrap()
    });
    let audio = b.audio.clone().unwrap();
    let head = |t: Teacher| &nets.head(t).unwrap().net;
    let (v, o_v, y) = (&out.feature, &out.logits, &b.labels);
    let losses = match method {
        DistillMethod::CclA => {
            ccl_single(Teacher::Audio, v, o_v, &audio, head(Teacher::Audio), y, 1.0)
        }
        DistillMethod::CclI => ccl_single(
            Teacher::Image,
            v,
            o_v,
            image.as_ref().unwrap(),
            head(Teacher::Image),
            y,
            1.0,
        ),
        DistillMethod::CclAi => ccl_ai(
            v,
            o_v,
            image.as_ref().unwrap(),
            head(Teacher::Image),
            &audio,
            head(Teacher::Audio),
            y,
            cfg.loss_weight,
        ),
    }
    .unwrap();
    let head_vars: Vec<Var> = nets
        .heads
        .iter()
        .flat_map(|h| vars(avkd::jobs::distill::nets::trainable(&h.store)))
        .collect();
    let grads = routed_gradients(&losses, &vars(nets.student_vars()), &head_vars).unwrap();
    let mut modules = vec![("student", &nets.student_store, cfg.base_lr)];
    modules.extend(nets.heads.iter().map(|h| (h.name(), &h.store, cfg.head_lr)));
    let mut after = HashMap::new();
    for (name, store, lr) in modules {
        for (_, var) in avkd::jobs::distill::nets::trainable(store) {
            let g = grads.get(&var).expect("every parameter gets a gradient");
            let p = var.as_tensor();
            let buf = (g + (p * cfg.weight_decay).unwrap()).unwrap();
            var.set(&(p - (buf * lr).unwrap()).unwrap()).unwrap();
        }
        after.insert(name.to_string(), store.tensors().unwrap());
    }
    after
}

fn through_engine(
    method: DistillMethod,
    cfg: &DistillConfig,
) -> HashMap<String, HashMap<String, Tensor>> {
    let nets = nets(method);
    let pre = PreprocessorConfig::for_model(&ModelConfig::CclR2Plus1d(student_cfg()));
    let weight = cfg.video_loss_weight(method);
    let mut job = Distillation::new(nets, weight, serde_json::json!({}), pre, None);
    let out = std::env::temp_dir().join(format!(
        "avkd-distill-step-{}-{}",
        method.name(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out);
    let opts = RunOptions {
        out_dir: out.clone(),
        ..Default::default()
    };
    let summary = distill(&mut job, &mut OneBatch(batch()), cfg, &opts).unwrap();
    assert_eq!(summary.steps, 1);
    let nets = job.into_nets();
    let mut after = HashMap::from([("student".to_string(), nets.student_store.tensors().unwrap())]);
    for h in &nets.heads {
        after.insert(h.name().to_string(), h.store.tensors().unwrap());
    }
    std::fs::remove_dir_all(&out).ok();
    after
}

fn max_rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let d = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let s = b
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
        .max(1e-6);
    d / s
}

fn check(method: DistillMethod) {
    let cfg = config();
    let expected = by_hand(method, &cfg);
    let got = through_engine(method, &cfg);
    let mut names: Vec<&String> = expected.keys().collect();
    names.sort();
    let wanted: Vec<&str> = match method {
        DistillMethod::CclA => vec!["audio_head", "student"],
        DistillMethod::CclI => vec!["image_head", "student"],
        DistillMethod::CclAi => vec!["audio_head", "image_head", "student"],
    };
    assert_eq!(names, wanted, "{}: modules", method.name());
    for (module, tensors) in &expected {
        let engine = &got[module];
        assert_eq!(engine.len(), tensors.len(), "{module}: tensor count");
        for (name, t) in tensors {
            let d = max_rel_diff(&engine[name], t);
            assert!(
                d < 1e-5,
                "{} {module}.{name}: engine step differs from the official step by {d} (relative)",
                method.name()
            );
        }
        // The step moved every parameter (the routing reaches all of them).
        let before = &nets(method);
        let store = if module == "student" {
            &before.student_store
        } else {
            &before
                .heads
                .iter()
                .find(|h| h.name() == module)
                .unwrap()
                .store
        };
        for (name, var) in avkd::jobs::distill::nets::trainable(store) {
            let d = max_rel_diff(&engine[&name], var.as_tensor());
            assert!(d > 0.0, "{} {module}.{name} did not move", method.name());
        }
    }
}

#[test]
fn ccl_a_step_through_the_engine_is_the_official_step() {
    check(DistillMethod::CclA);
}

#[test]
fn ccl_i_step_through_the_engine_is_the_official_step() {
    check(DistillMethod::CclI);
}

#[test]
fn ccl_ai_step_through_the_engine_is_the_official_step() {
    check(DistillMethod::CclAi);
}
