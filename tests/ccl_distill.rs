//! CCL-AI distillation steps wired end to end, as `training.py::train_ai_epoch` does it: the
//! R(2+1)D student in training mode, the frozen ResNet teacher on one frame of the clip, audio-teacher
//! features with a missing row, both composition heads, the official gradient routing and the SGD
//! optimisers (MultiStepLR on the student only) — by hand, and as a job on the training engine.

use avkd::checkpoint::export::write_safetensors;
use avkd::jobs::distill_routing::{ccl_ai, routed_gradients};
use avkd::models::ccl::composition::CompositionClassifier;
use avkd::models::ccl::r2plus1d::{R2Plus1d, R2Plus1dConfig};
use avkd::models::ccl::resnet::{ResNet, ResNetConfig};
use avkd::nn::batch_norm::is_running_stat;
use avkd::nn::param_store::ParamStore;
use avkd::nn::rng::SeededRng;
use avkd::objectives::ccl::{CclLosses, CCL_AI_WEIGHT};
use avkd::train::clip::Clipping;
use avkd::train::engine::{Engine, LoopSettings, RunOptions};
use avkd::train::job::{EvalOutcome, Gradients, Job, StepContext, StepOutput, TrainData};
use avkd::train::optim::ParamGroup;
use avkd::train::optimizer::{Optimizer, OptimizerSlot};
use avkd::train::schedule::{MultiStepLr, Schedule};
use avkd::train::sgd::{Sgd, SgdConfig};
use avkd::train::train_state::TrainerState;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarBuilder;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// CCL-AI's routed step (tests/ccl_distill.rs) as a job: the student and the composition heads in
/// two SGD slots, gradients routed by the job.
struct CclAiJob {
    student: R2Plus1d,
    teacher: ResNet,
    img_head: CompositionClassifier,
    aud_head: CompositionClassifier,
    student_store: ParamStore,
    head_store: ParamStore,
}

/// A tiny CCL setup: R(2+1)D student, frozen ResNet teacher, both composition heads.
fn ccl_ai_setup() -> CclAiJob {
    let dev = Device::Cpu;
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
    CclAiJob {
        student,
        teacher,
        img_head,
        aud_head,
        student_store,
        head_store,
    }
}

/// Clips, labels and audio features (row 1 without audio), the same every step.
fn ccl_batch() -> (Tensor, Tensor, Tensor) {
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(11);
    let x = rng.normal((6, 3, 8, 32, 32), 0., 1., &dev).unwrap();
    let labels = Tensor::new(&[0i64, 1, 2, 0, 1, 2], &dev).unwrap();
    let audio = rng.normal((6, 10), 0., 1., &dev).unwrap().relu().unwrap();
    let zeros = Tensor::zeros((1, 10), DType::F32, &dev).unwrap();
    let audio = audio.slice_assign(&[1..2, 0..10], &zeros).unwrap();
    (x, labels, audio)
}

impl CclAiJob {
    fn student_vars(&self) -> Vec<(String, Var)> {
        self.student_store
            .named_vars()
            .into_iter()
            .filter(|(n, _)| !is_running_stat(n))
            .collect()
    }

    fn head_vars(&self) -> Vec<(String, Var)> {
        self.head_store.named_vars()
    }

    /// The routed gradients of one batch, and the losses (the official `train_ai_epoch`: the
    /// frozen teacher on one frame of the clip, the same index for the whole batch).
    fn gradients(&self, (x, labels, audio): &(Tensor, Tensor, Tensor)) -> (GradStore, CclLosses) {
        let frame = x.narrow(2, 3, 1).unwrap().squeeze(2).unwrap();
        let image = self.teacher.features(&frame).unwrap();
        let out = self.student.forward_t(x, true).unwrap();
        let (img_head, aud_head) = (&self.img_head, &self.aud_head);
        let losses = ccl_ai(
            &out.feature,
            &out.logits,
            &image,
            img_head,
            audio,
            aud_head,
            labels,
            CCL_AI_WEIGHT,
        )
        .unwrap();
        let vars = |v: Vec<(String, Var)>| v.into_iter().map(|(_, v)| v).collect::<Vec<_>>();
        let grads = routed_gradients(&losses, &vars(self.student_vars()), &vars(self.head_vars()));
        (grads.unwrap(), losses)
    }

    fn sgd(vars: Vec<(String, Var)>, name: &str, lr: f64) -> Sgd {
        let group = ParamGroup::new(name, vars, 5e-4);
        Sgd::new(
            vec![group],
            SgdConfig {
                lr,
                ..Default::default()
            },
        )
        .unwrap()
    }
}

impl Job for CclAiJob {
    type Batch = (Tensor, Tensor, Tensor);

    fn name(&self) -> &str {
        "ccl-ai-test"
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    fn check_resumable(&self, _saved: &serde_json::Value) -> Result<()> {
        Ok(())
    }

    fn training_step(
        &mut self,
        batch: Self::Batch,
        _ctx: &StepContext,
        _rng: &mut SeededRng,
    ) -> Result<StepOutput> {
        let (grads, losses) = self.gradients(&batch);
        Ok(StepOutput {
            gradients: Gradients::Routed(grads),
            logged: vec![("loss", losses.video)],
            samples: 6,
        })
    }

    fn evaluate(&mut self, _epoch_number: usize) -> Result<Option<EvalOutcome>> {
        Ok(None)
    }

    fn save(&self, dir: &Path, _state: &TrainerState) -> Result<()> {
        let mut tensors = self.student_store.tensors()?;
        tensors.extend(self.head_store.tensors()?);
        write_safetensors(&dir.join("model.safetensors"), &tensors, &BTreeMap::new())
    }

    fn restore(&mut self, _dir: &Path) -> Result<()> {
        candle_core::bail!("not resumed in this test")
    }
}

/// The same batch every epoch, one batch per epoch.
struct SameBatch((Tensor, Tensor, Tensor));

impl TrainData for SameBatch {
    type Batch = (Tensor, Tensor, Tensor);

    fn num_batches(&self) -> usize {
        1
    }

    fn epoch(
        &mut self,
        _epoch: usize,
        _start: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<Self::Batch>> + '_>> {
        Ok(Box::new(std::iter::once(Ok(self.0.clone()))))
    }
}

#[test]
fn ccl_ai_step_routes_gradients_and_learns() {
    let setup = ccl_ai_setup();
    let batch = ccl_batch();
    let student_vars = setup.student_vars();
    let head_vars = setup.head_vars();
    let mut sched = MultiStepLr::new(1e-2, vec![150, 225], 0.1);
    let mut opt_video = CclAiJob::sgd(student_vars.clone(), "student", sched.value(0));
    let mut opt_heads = CclAiJob::sgd(head_vars.clone(), "heads", 1e-2);

    let mut video_losses = Vec::new();
    for step in 0..8 {
        let (grads, losses) = setup.gradients(&batch);
        video_losses.push(losses.video.to_scalar::<f32>().unwrap());
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

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("avkd-ccl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn read_trainer_state(dir: &Path) -> TrainerState {
    serde_json::from_str(&std::fs::read_to_string(dir.join("trainer_state.json")).unwrap()).unwrap()
}

fn metrics_records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn assert_same_tensors(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: tensor count");
    for (k, x) in a {
        let bits = |t: &Tensor| -> Vec<u32> {
            let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            v.into_iter().map(f32::to_bits).collect()
        };
        assert_eq!(bits(x), bits(&b[k]), "{what}: `{k}` differs");
    }
}

/// Two optimizers over disjoint parameters in one step, gradients routed by the job, a per-epoch
/// schedule on one slot and none on the other: the engine's run equals the hand-written loop of
/// the official `train_ai_epoch` (tests/ccl_distill.rs) bit for bit.
#[test]
fn routed_gradients_and_two_optimizers_equal_the_hand_written_loop() {
    let epochs = 6;
    let schedule = MultiStepLr::new(1e-2, vec![2, 4], 0.1);
    // By hand.
    let manual = ccl_ai_setup();
    let batch = ccl_batch();
    let mut opt_video = CclAiJob::sgd(manual.student_vars(), "student", schedule.value(0));
    let mut opt_heads = CclAiJob::sgd(manual.head_vars(), "heads", 1e-2);
    for epoch in 0..epochs {
        opt_video.set_learning_rate(schedule.value(epoch));
        let (grads, _) = manual.gradients(&batch);
        opt_heads.step(&grads).unwrap();
        opt_video.step(&grads).unwrap();
    }
    // Through the engine.
    let mut job = ccl_ai_setup();
    let slots = vec![
        OptimizerSlot::new(
            "student",
            Optimizer::Sgd(CclAiJob::sgd(job.student_vars(), "student", 1.0)),
            Schedule::PerEpoch(schedule.clone()),
        ),
        OptimizerSlot::new(
            "heads",
            Optimizer::Sgd(CclAiJob::sgd(job.head_vars(), "heads", 1.0)),
            Schedule::Constant(1e-2),
        ),
    ];
    let settings = LoopSettings {
        epochs,
        accum_steps: 1,
        eval_every: 1,
        save_every_steps: None,
        log_every: 1,
        seed: 0,
    };
    let out = temp_dir("ccl-engine");
    let opts = RunOptions {
        out_dir: out.clone(),
        ..Default::default()
    };
    let summary = Engine::new(&mut job, slots, Clipping::None, settings)
        .unwrap()
        .run(&mut SameBatch(batch), &opts)
        .unwrap();
    assert_eq!(summary.steps, epochs as u64);
    for (a, b, what) in [
        (&manual.student_store, &job.student_store, "student"),
        (&manual.head_store, &job.head_store, "heads"),
    ] {
        assert_same_tensors(&a.tensors().unwrap(), &b.tensors().unwrap(), what);
    }
    let state = read_trainer_state(&out.join("last"));
    let steps: Vec<u64> = state.optimizers.iter().map(|o| o.steps).collect();
    assert_eq!(steps, vec![epochs as u64; 2]);
    let lrs: Vec<f64> = metrics_records(&out.join("metrics.jsonl"))
        .iter()
        .map(|r| r["lr"].as_f64().unwrap())
        .collect();
    let expected: Vec<f64> = (0..epochs).map(|e| schedule.value(e)).collect();
    assert_eq!(lrs, expected);
    std::fs::remove_dir_all(&out).ok();
}
