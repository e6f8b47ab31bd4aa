//! The training engine under the fine-tuning job: odd final batches with mixup, exact resume after
//! SIGKILL at random moments of a real `avkd finetune` process, recovery of a checkpoint whose
//! replacement was cut short, and logged values read back once per `log_every` steps. (A job with
//! two optimizers and routed gradients, CCL-AI's step, is tested in tests/ccl_distill.rs.)

mod common;
#[path = "train_finetune/support.rs"]
mod support;

use common::kill_twice;

use avkd::checkpoint::export::write_model_folder;
use avkd::data::splits::Fold;
use avkd::data::synth_dataset::{write_synth_dataset, SynthDatasetConfig};
use avkd::jobs::dataset_spec::{DatasetKind, DatasetSpec};
use avkd::jobs::finetune::config::FinetuneConfig;
use avkd::jobs::finetune::training::RunOptions;
use avkd::jobs::finetune::{run_finetune, FinetuneJob};
use avkd::models::config::ModelConfig;
use avkd::train::readback;
use candle_core::{Device, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use support::*;

/// The tiny XKD video student of the fine-tuning tests, as a model folder.
fn student(dir: &Path) {
    let (ModelConfig::XkdVideo(cfg), tensors) = vit_start().unwrap() else {
        panic!("vit_start gives an xkd-video student")
    };
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
    kill_twice(
        |resume| finetune_command(&model, &root, &cut, resume),
        &cut,
        &cut.join("fold1/last/trainer_state.json"),
        whole,
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
/// epoch), clipping reads all its norms in one copy per step, and `metrics.jsonl` still has one
/// identical record per step.
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
    // 3 epochs of 3 steps, with global-norm clipping: one read per step for the norms of every
    // parameter at once, plus the logged values, every step with log_every 1; with 4, at steps 3
    // (end of epoch 1), 4, 6 (end of epoch 2), 8 and 9.
    assert_eq!(results[0].1, 9);
    assert_eq!(results[0].0, 9 + 9);
    assert_eq!(results[1].0, 9 + 5);
    assert_eq!(
        results[0].2, results[1].2,
        "the records do not depend on log_every"
    );
    Ok(())
}

/// XKD's per-iteration weight-decay cosine: an optimizer slot with a weight-decay schedule sets it
/// on the groups built with a non-zero decay and leaves the undecayed group at 0, step by step, and
/// its steps equal AdamW given the same values by hand.
#[test]
fn a_weight_decay_schedule_applies_to_the_decayed_groups_only() -> Result<()> {
    use avkd::nn::rng::SeededRng;
    use avkd::train::optim::{grad_store, AdamW, AdamWConfig, ParamGroup};
    use avkd::train::optimizer::{Optimizer, OptimizerSlot};
    use avkd::train::schedule::{cosine_scheduler, Schedule, WarmupCosine};
    use candle_core::{Tensor, Var};

    let dev = Device::Cpu;
    let mut rng = SeededRng::new(5);
    let params = |rng: &mut SeededRng| -> Result<Vec<(String, Var)>> {
        ["w", "b"]
            .iter()
            .map(|n| {
                Ok((
                    n.to_string(),
                    Var::from_tensor(&rng.normal((4, 3), 0., 1., &dev)?)?,
                ))
            })
            .collect()
    };
    let (a, b) = (
        params(&mut SeededRng::new(1))?,
        params(&mut SeededRng::new(1))?,
    );
    let adamw = |p: &[(String, Var)]| {
        let groups = vec![
            ParamGroup::new("decay", vec![p[0].clone()], 0.04),
            ParamGroup::new("no_decay", vec![p[1].clone()], 0.0),
        ];
        AdamW::new(
            groups,
            AdamWConfig {
                lr: 1e-2,
                beta1: 0.9,
                beta2: 0.95,
                eps: 1e-8,
            },
        )
    };
    let (steps, wd0, wd1) = (6, 0.04, 0.4);
    let wd = WarmupCosine::new(wd0, wd1, steps, 1, 0, 0.0);
    let mut slot = OptimizerSlot::new(
        "model",
        Optimizer::AdamW(adamw(&a)?),
        Schedule::Constant(1e-2),
    )
    .with_weight_decay(Schedule::PerStep(wd));
    let mut by_hand = adamw(&b)?;
    let expected = cosine_scheduler(wd0, wd1, steps, 1, 0, 0.0);
    for (step, &want) in expected.iter().enumerate() {
        let (_, got) = slot.schedule(step as u64, 0)?;
        assert_eq!(got, Some(want));
        let groups = slot.optimizer.groups();
        assert_eq!(
            (groups[0].weight_decay, groups[1].weight_decay),
            (want, 0.0)
        );
        by_hand.set_weight_decay(0, want)?;
        let g: Vec<Tensor> = (0..2)
            .map(|_| rng.normal((4, 3), 0., 1., &dev))
            .collect::<Result<_>>()?;
        slot.optimizer
            .step(&grad_store(a.iter().map(|(_, v)| v).zip(g.clone()))?)?;
        by_hand.step(&grad_store(b.iter().map(|(_, v)| v).zip(g))?)?;
    }
    for ((n, x), (_, y)) in a.iter().zip(&b) {
        let (x, y): (Vec<f32>, Vec<f32>) = (
            x.as_tensor().flatten_all()?.to_vec1()?,
            y.as_tensor().flatten_all()?.to_vec1()?,
        );
        assert_eq!(x, y, "`{n}`");
    }
    Ok(())
}
