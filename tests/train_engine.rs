//! The training engine under the fine-tuning job: odd final batches with mixup, exact resume after
//! SIGKILL at random moments of a real `avkd finetune` process, recovery of a checkpoint whose
//! replacement was cut short, logged values read back once per `log_every` steps, and a job with
//! two optimizers and routed gradients (CCL-AI's step).

#[path = "train_finetune/support.rs"]
mod support;

use avkd::checkpoint::export::write_model_folder;
use avkd::checkpoint::export::write_safetensors;
use avkd::data::splits::Fold;
use avkd::data::synth_dataset::{write_synth_dataset, SynthDatasetConfig};
use avkd::jobs::dataset_spec::{DatasetKind, DatasetSpec};
use avkd::jobs::distill_routing::{ccl_ai, routed_gradients};
use avkd::jobs::finetune::config::FinetuneConfig;
use avkd::jobs::finetune::training::RunOptions;
use avkd::jobs::finetune::{run_finetune, FinetuneJob};
use avkd::models::ccl::composition::CompositionClassifier;
use avkd::models::ccl::r2plus1d::{R2Plus1d, R2Plus1dConfig};
use avkd::models::ccl::resnet::{ResNet, ResNetConfig};
use avkd::models::xkd::net::XkdConfig;
use avkd::models::xkd::VideoViT;
use avkd::nn::batch_norm::is_running_stat;
use avkd::nn::param_store::ParamStore;
use avkd::nn::rng::SeededRng;
use avkd::objectives::ccl::CCL_AI_WEIGHT;
use avkd::train::clip::Clipping;
use avkd::train::engine::{Engine, LoopSettings, RunOptions as EngineRunOptions};
use avkd::train::job::{EvalOutcome, Gradients, Job, StepContext, StepOutput, TrainData};
use avkd::train::optim::ParamGroup;
use avkd::train::optimizer::{Optimizer, OptimizerSlot};
use avkd::train::readback;
use avkd::train::schedule::{MultiStepLr, Schedule};
use avkd::train::sgd::{Sgd, SgdConfig};
use avkd::train::train_state::TrainerState;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarBuilder;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn student(dir: &Path) {
    let cfg = XkdConfig::tiny_synthetic().video;
    let store = ParamStore::new(7, DType::F32, &Device::Cpu);
    VideoViT::new(&cfg, store.builder()).unwrap();
    let tensors = store.tensors().unwrap();
    write_model_folder(dir, "xkd-video", &cfg, &tensors, &BTreeMap::new()).unwrap();
}

fn dataset(root: &Path, classes: usize, train_per_class: usize, test_per_class: usize) {
    let cfg = SynthDatasetConfig {
        classes,
        train_per_class,
        test_per_class,
        ..SynthDatasetConfig::default()
    };
    write_synth_dataset(root, &cfg).unwrap();
}

/// Metrics records without the fields that measure time.
fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let fields = v.as_object_mut().unwrap();
            fields.remove("samples_per_s");
            fields.remove("eval_seconds");
            v
        })
        .collect()
}

/// 45 training videos, batch 24, XKD's recipe with mixup: one step per epoch with `drop_last`, two
/// without (the second holds 21 clips, an odd batch that mixup must still train).
#[test]
fn odd_training_set_finetunes_with_and_without_drop_last() {
    let dir = temp_dir("odd");
    let (root, model) = (dir.join("data"), dir.join("student"));
    dataset(&root, 5, 9, 1);
    student(&model);
    for (drop_last, steps) in [(true, 1), (false, 2)] {
        let mut cfg = FinetuneConfig::xkd_ucf101();
        assert!(
            cfg.mixup.is_some() && cfg.drop_last,
            "the XKD preset mixes and drops"
        );
        cfg.epochs = 1;
        cfg.batch_size = 24;
        cfg.drop_last = drop_last;
        let out = dir.join(format!("out-{drop_last}"));
        let job = FinetuneJob {
            model: model.clone(),
            dataset: DatasetSpec::new(DatasetKind::Ucf101, &root, Fold::One(1)),
            config: cfg,
            out: out.clone(),
            resume: false,
            stop_after_epochs: None,
            workers: 2,
            skip_bad: false,
            crop: None,
            test_clips: Some(1),
            eval_views_per_batch: 9,
        };
        let (_, runs) = run_finetune(&job, &Device::Cpu)
            .unwrap_or_else(|e| panic!("drop_last = {drop_last}: {e}"));
        let summary = &runs[0].summary;
        assert_eq!(summary.steps, steps, "drop_last = {drop_last}");
        assert!(summary.final_loss.is_some_and(f64::is_finite));
        let train: Vec<_> = records(&out.join("fold1/metrics.jsonl"))
            .into_iter()
            .filter(|r| r["kind"] == "train")
            .collect();
        assert_eq!(train.len(), steps as usize);
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `avkd finetune` on a small synthetic dataset, with a checkpoint after every step.
fn finetune_command(model: &Path, root: &Path, out: &Path, resume: bool) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_avkd"));
    cmd.args(["finetune", "--model"])
        .arg(model)
        .args(["--dataset", "ucf101", "--root"])
        .arg(root)
        .args(["--fold", "1", "--workers", "2", "--test-clips", "1", "-o"])
        .arg(out)
        .args([
            "--set",
            "epochs=3",
            "--set",
            "batch_size=4",
            "--set",
            "eval_every=1",
        ])
        .args(["--set", "save_every_steps=1", "--set", "warmup_epochs=1"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if resume {
        cmd.arg("--resume");
    }
    cmd
}

/// Waits until `path` exists (the child's first checkpoint), at most `limit`.
fn wait_for(path: &Path, limit: Duration) {
    let start = Instant::now();
    while !path.exists() {
        assert!(start.elapsed() < limit, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A clock-seeded pseudo-random delay in `[0, max)` (printed, so a failure can be replayed).
fn random_delay(max: Duration, salt: u64) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut x = nanos ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    let ms = (max.as_millis() as u64).max(1);
    Duration::from_millis(x % ms)
}

fn assert_same_run(a: &Path, b: &Path) {
    for dir in ["fold1/last", "fold1/best"] {
        for f in ["model.safetensors", "optimizer.safetensors"] {
            let (x, y) = (a.join(dir).join(f), b.join(dir).join(f));
            assert_same_tensors(&load(&x), &load(&y), &format!("{dir}/{f}"));
        }
    }
    assert_eq!(
        records(&a.join("fold1/metrics.jsonl")),
        records(&b.join("fold1/metrics.jsonl")),
        "metrics.jsonl"
    );
    let report = |d: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("eval_report.json")).unwrap()).unwrap()
    };
    let (ra, rb) = (report(a), report(b));
    assert_eq!(ra["folds"], rb["folds"]);
}

/// A real `avkd finetune` process killed with SIGKILL at random moments after its first checkpoint
/// (twice), then resumed to the end, gives the same final and best models, optimizer state,
/// metrics and report as the uninterrupted run.
#[test]
fn sigkill_at_random_moments_then_resume_equals_uninterrupted() {
    let dir = temp_dir("sigkill");
    let (root, model) = (dir.join("data"), dir.join("student"));
    dataset(&root, 4, 6, 3);
    student(&model);
    let full = dir.join("full");
    let started = Instant::now();
    let status = finetune_command(&model, &root, &full, false)
        .status()
        .unwrap();
    assert!(status.success(), "the uninterrupted run failed: {status}");
    let whole = started.elapsed();

    let cut = dir.join("cut");
    let mut kills = 0;
    for round in 0..6u64 {
        if kills == 2 {
            break;
        }
        let mut child = finetune_command(&model, &root, &cut, round > 0)
            .spawn()
            .unwrap();
        wait_for(&cut.join("fold1/last/trainer_state.json"), whole * 4);
        let delay = random_delay(whole.mul_f64(0.5), round);
        std::thread::sleep(delay);
        child.kill().unwrap();
        let status = child.wait().unwrap();
        eprintln!(
            "round {round}: SIGKILL after {delay:?} (the whole run takes {whole:?}): {status}"
        );
        if !status.success() {
            kills += 1;
        } else {
            // It finished before the kill: start over with a fresh run.
            std::fs::remove_dir_all(&cut).unwrap();
        }
    }
    assert_eq!(
        kills, 2,
        "the child always finished before it could be killed"
    );
    let status = finetune_command(&model, &root, &cut, true)
        .status()
        .unwrap();
    assert!(status.success(), "the resumed run failed: {status}");
    assert_same_run(&full, &cut);
    std::fs::remove_dir_all(&dir).ok();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

/// The two states a kill while replacing `last/` can leave, resumed: (1) the new checkpoint half
/// written in its temporary folder, `last/` intact; (2) killed between the renames: `last/` moved
/// aside, the new one complete in its temporary folder but not yet in place. Both resume from the
/// previous checkpoint, clean up, and end equal to the uninterrupted run.
#[test]
fn a_kill_while_a_checkpoint_is_written_leaves_the_previous_one() -> Result<()> {
    let s = Setup {
        start: vit_start()?,
        cfg: vit_config(),
        classes: 4,
        mixup: true,
    };
    let full = temp_dir("ckpt-full");
    let (a, _) = run(&s, &full, false, RunOptions::default())?;
    for case in ["half-written", "between-renames"] {
        let cut = temp_dir(&format!("ckpt-{case}"));
        let stop = RunOptions {
            stop_after_epochs: Some(1),
            ..Default::default()
        };
        run(&s, &cut, false, stop)?;
        let last = cut.join("last");
        let tmp: PathBuf = cut.join(".last.tmp.4242");
        copy_dir(&last, &tmp);
        match case {
            "half-written" => {
                let model = tmp.join("model.safetensors");
                let bytes = std::fs::read(&model).unwrap();
                std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
                std::fs::remove_file(tmp.join("trainer_state.json")).unwrap();
            }
            _ => std::fs::rename(&last, cut.join(".last.old.4242")).unwrap(),
        }
        let (b, _) = run(&s, &cut, true, RunOptions::default())?;
        assert_eq!((a.steps, a.final_loss), (b.steps, b.final_loss), "{case}");
        for f in ["model.safetensors", "optimizer.safetensors"] {
            let (x, y) = (full.join("last").join(f), cut.join("last").join(f));
            assert_same_tensors(&load(&x), &load(&y), &format!("{case}: {f}"));
        }
        let leftovers: Vec<_> = std::fs::read_dir(&cut)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{case}: left behind {leftovers:?}");
        std::fs::remove_dir_all(&cut).ok();
    }
    std::fs::remove_dir_all(&full).ok();
    Ok(())
}

/// Logged values are read back from the device once per `log_every` steps (and at the end of each
/// epoch), while `metrics.jsonl` still has one identical record per step.
#[test]
fn logged_values_are_read_back_once_per_log_every_steps() -> Result<()> {
    let mut results = Vec::new();
    for log_every in [1, 4] {
        let mut cfg = vit_config();
        cfg.log_every = log_every;
        let s = Setup {
            start: vit_start()?,
            cfg,
            classes: 4,
            mixup: true,
        };
        let out = temp_dir(&format!("readback-{log_every}"));
        let before = readback::count();
        let (summary, _) = run(&s, &out, false, RunOptions::default())?;
        let reads = readback::count() - before;
        results.push((reads, summary.steps, records(&out.join("metrics.jsonl"))));
        std::fs::remove_dir_all(&out).ok();
    }
    // 3 epochs of 3 steps: every step with log_every 1; with 4, steps 3 (end of epoch 1), 4,
    // 6 (end of epoch 2), 8 and 9.
    assert_eq!(results[0].1, 9);
    assert_eq!(results[0].0, 9);
    assert_eq!(results[1].0, 5);
    assert_eq!(
        results[0].2, results[1].2,
        "the records do not depend on log_every"
    );
    Ok(())
}

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

    /// The routed gradients of one batch, and the video loss.
    fn gradients(&self, (x, labels, audio): &(Tensor, Tensor, Tensor)) -> (GradStore, Tensor) {
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
        (grads.unwrap(), losses.video)
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
        let (grads, video_loss) = self.gradients(&batch);
        Ok(StepOutput {
            gradients: Gradients::Routed(grads),
            logged: vec![("loss", video_loss)],
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
    let opts = EngineRunOptions {
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
    let state = trainer_state(&out.join("last"));
    let steps: Vec<u64> = state.optimizers.iter().map(|o| o.steps).collect();
    assert_eq!(steps, vec![epochs as u64; 2]);
    let lrs: Vec<f64> = records(&out.join("metrics.jsonl"))
        .iter()
        .map(|r| r["lr"].as_f64().unwrap())
        .collect();
    let expected: Vec<f64> = (0..epochs).map(|e| schedule.value(e)).collect();
    assert_eq!(lrs, expected);
    std::fs::remove_dir_all(&out).ok();
}
