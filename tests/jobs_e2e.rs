//! The dataset jobs end to end on a synthetic dataset written to disk in UCF101's layout (JPEG frame
//! folders): fine-tuning through the parallel loader, video-level evaluation, a reloaded checkpoint,
//! interrupt + resume, linear evaluation, prediction, and bad media.

use avkd::checkpoint::export::write_model_folder;
use avkd::data::splits::Fold;
use avkd::data::synth_dataset::{write_synth_dataset, SynthDatasetConfig};
use avkd::jobs::dataset_spec::{DatasetKind, DatasetSpec};
use avkd::jobs::evaluate::{evaluate_folder, EvalOptions};
use avkd::jobs::finetune::config::FinetuneConfig;
use avkd::jobs::finetune::{run_finetune, FinetuneJob};
use avkd::jobs::linear::{run_linear, LinearClassifier, LinearJob};
use avkd::models::folder::ModelFolder;
use avkd::models::xkd::net::XkdConfig;
use avkd::models::xkd::VideoViT;
use avkd::nn::param_store::ParamStore;
use candle_core::{DType, Device};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("avkd-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 4 classes, 12 training and 3 test videos per class and fold, 32 frames of 64 px at 25 fps.
fn dataset(root: &Path) {
    let cfg = SynthDatasetConfig {
        classes: 4,
        train_per_class: 12,
        test_per_class: 3,
        ..SynthDatasetConfig::default()
    };
    write_synth_dataset(root, &cfg).unwrap();
}

/// A randomly initialised small XKD video student as a model folder.
fn student(dir: &Path) {
    let cfg = XkdConfig::tiny_synthetic().video;
    let store = ParamStore::new(7, DType::F32, &Device::Cpu);
    VideoViT::new(&cfg, store.builder()).unwrap();
    let tensors = store.tensors().unwrap();
    write_model_folder(dir, "xkd-video", &cfg, &tensors, &BTreeMap::new()).unwrap();
}

/// The quickstart's settings for the synthetic data, from a random initialisation: no layer-wise
/// decay and a higher rate.
fn config(epochs: usize) -> FinetuneConfig {
    let mut cfg = FinetuneConfig::xkd_synthetic(epochs, 0);
    cfg.base_lr = 2e-3;
    cfg.layer_decay = 1.0;
    cfg.eval_every = epochs;
    cfg
}

fn job(model: &Path, root: &Path, out: &Path, cfg: FinetuneConfig, workers: usize) -> FinetuneJob {
    FinetuneJob {
        model: model.to_path_buf(),
        dataset: DatasetSpec::new(DatasetKind::Ucf101, root, Fold::One(1)),
        config: cfg,
        out: out.to_path_buf(),
        resume: false,
        stop_after_epochs: None,
        workers,
        skip_bad: false,
        crop: None,
        test_clips: None,
        eval_views_per_batch: 9,
    }
}

#[test]
fn finetune_evaluate_reload_linear_predict() {
    let dir = temp_dir("full");
    let (root, model) = (dir.join("data"), dir.join("student"));
    dataset(&root);
    student(&model);
    let dev = Device::Cpu;
    let (report, runs) = run_finetune(&job(&model, &root, &dir.join("ft"), config(30), 2), &dev)
        .expect("fine-tuning runs");
    let m = &report.folds[0].metrics;
    assert_eq!(m.num_videos, 12);
    eprintln!("fine-tuned top-1 {:.3}, top-5 {:.3}", m.top1, m.top5);
    // Chance is 25 %; a random-init ViT learns motion direction on 48 clips well above it.
    assert!(
        m.top1 >= 0.5,
        "top-1 {} is not clearly above chance",
        m.top1
    );
    assert_eq!(report.protocol.clips, Some(3));
    assert_eq!(report.protocol.crops, 3);
    let run = &runs[0];
    assert!(run.curves.as_ref().is_some_and(|p| p.is_file()));
    assert!(dir.join("ft/eval_report.json").is_file());

    // The saved `last` checkpoint, reloaded from disk, gives exactly the same evaluation.
    let last = ModelFolder::open(&run.out_dir.join("last")).unwrap();
    let id2label = last.config.id2label.clone().expect("class names saved");
    assert_eq!(id2label.get(&0).map(String::as_str), Some("Move000"));
    let spec = DatasetSpec::new(DatasetKind::Ucf101, &root, Fold::One(1));
    let again = evaluate_folder(&last, &spec, &EvalOptions::default(), &dev).unwrap();
    assert_eq!(again.folds[0].metrics, report.folds[0].metrics);

    // Prediction for one test video names a class of the dataset.
    let video = std::fs::read_to_string(root.join("ucfTrainTestlist/testlist01.txt")).unwrap();
    let video = root
        .join("UCF-101")
        .join(video.lines().next().unwrap().trim());
    let preds = avkd::jobs::predict::predict(&last, &video, None, 3, &EvalOptions::default(), &dev)
        .expect("prediction");
    assert_eq!(preds.len(), 3);
    assert!(preds[0].score >= preds[1].score && preds[1].score >= preds[2].score);
    assert!(preds[0].label.starts_with("Move"));
    let missing = root.join("UCF-101/Move000/no_such_video.avi");
    let err = avkd::jobs::predict::predict(&last, &missing, None, 3, &EvalOptions::default(), &dev)
        .expect_err("a missing video");
    assert!(
        err.to_string().contains("no_such_video.avi: no such video"),
        "{err}"
    );

    // Linear evaluation of the student's frozen features (a trained head), all three folds.
    let linear = LinearJob {
        dataset: DatasetSpec::new(DatasetKind::Ucf101, &root, Fold::All),
        classifier: LinearClassifier::Head(avkd::eval::linear_probe::LinearProbeConfig {
            epochs: 20,
            batch_size: 32,
            lr: 0.01,
            warmup_epochs: 2,
            ..Default::default()
        }),
        train_clips: 2,
        test_clips: 2,
        crop: None,
        workers: 2,
        skip_bad: false,
        seed: 0,
    };
    let folder = ModelFolder::open(&model).unwrap();
    let report = run_linear(&folder, &linear, &dev).expect("linear evaluation");
    assert_eq!(report.folds.len(), 3);
    assert_eq!(report.protocol.classifier, "linear");
    assert!(report.folds.iter().all(|f| f.metrics.num_videos == 12));
    std::fs::remove_dir_all(&dir).ok();
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn interrupted_then_resumed_equals_uninterrupted() {
    let dir = temp_dir("resume");
    let (root, model) = (dir.join("data"), dir.join("student"));
    dataset(&root);
    student(&model);
    let mut cfg = config(2);
    cfg.eval_every = 1;
    cfg.mixup = FinetuneConfig::xkd_ucf101().mixup;
    let dev = Device::Cpu;
    run_finetune(
        &job(&model, &root, &dir.join("straight"), cfg.clone(), 2),
        &dev,
    )
    .unwrap();

    // Stopped after one epoch with one thread, resumed with three: the loader's output depends only
    // on the seed, so the two runs must agree bit for bit.
    let mut first = job(&model, &root, &dir.join("resumed"), cfg.clone(), 1);
    first.stop_after_epochs = Some(1);
    run_finetune(&first, &dev).unwrap();
    let mut second = job(&model, &root, &dir.join("resumed"), cfg, 3);
    second.resume = true;
    run_finetune(&second, &dev).unwrap();

    for file in ["model.safetensors", "optimizer.safetensors"] {
        let a = read(&dir.join("straight/fold1/last").join(file));
        let b = read(&dir.join("resumed/fold1/last").join(file));
        assert!(
            a == b,
            "{file} differs between the straight and the resumed run"
        );
    }
    let a = avkd::eval::report::EvalReport::read_json(&dir.join("straight/eval_report.json"));
    let b = avkd::eval::report::EvalReport::read_json(&dir.join("resumed/eval_report.json"));
    assert_eq!(a.unwrap().folds, b.unwrap().folds);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_media_is_named_or_skipped() {
    let dir = temp_dir("bad");
    let (root, model) = (dir.join("data"), dir.join("student"));
    dataset(&root);
    student(&model);
    let list = std::fs::read_to_string(root.join("ucfTrainTestlist/trainlist01.txt")).unwrap();
    let listed = list
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let folder = root.join("UCF-101").join(listed).with_extension("");
    // Every frame of one training video is garbage.
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jpg") {
            std::fs::write(&path, b"not a jpeg").unwrap();
        }
    }
    let dev = Device::Cpu;
    let cfg = config(1);
    let err = run_finetune(&job(&model, &root, &dir.join("fail"), cfg.clone(), 2), &dev)
        .err()
        .expect("a corrupt video stops the run");
    let stem = folder.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        err.to_string().contains(&stem),
        "error does not name the video: {err}"
    );

    let mut skipping = job(&model, &root, &dir.join("skip"), cfg, 2);
    skipping.skip_bad = true;
    let (report, _) = run_finetune(&skipping, &dev).expect("--skip-bad carries on");
    assert_eq!(report.folds[0].metrics.num_videos, 12);
    // The report says which training video was left out, and that the evaluation was complete.
    let fold = &report.folds[0];
    assert_eq!(
        (fold.skipped, fold.skipped_videos.train),
        (1, 1),
        "{fold:?}"
    );
    assert!(!fold.evaluation_incomplete());
    assert!(
        fold.skipped_videos.train_videos[0].contains(&stem),
        "{:?}",
        fold.skipped_videos
    );
    let json = std::fs::read_to_string(dir.join("skip/eval_report.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["folds"][0]["skipped"], 1, "{json}");
    assert!(
        report.to_string().contains("1 training videos skipped"),
        "{report}"
    );

    // A listed test video that is missing on disk is named.
    let test = std::fs::read_to_string(root.join("ucfTrainTestlist/testlist01.txt")).unwrap();
    let missing = root
        .join("UCF-101")
        .join(test.lines().next().unwrap().trim())
        .with_extension("");
    std::fs::remove_dir_all(&missing).unwrap();
    let last = ModelFolder::open(&dir.join("skip/fold1/last")).unwrap();
    let spec = DatasetSpec::new(DatasetKind::Ucf101, &root, Fold::One(1));
    let err = evaluate_folder(&last, &spec, &EvalOptions::default(), &dev)
        .expect_err("a missing video stops the evaluation");
    let stem = missing.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        err.to_string().contains(&stem),
        "error does not name the video: {err}"
    );
    // With --skip-bad the evaluation goes on without it, and the report marks the fold.
    let opts = EvalOptions {
        skip_bad: true,
        ..EvalOptions::default()
    };
    let partial = evaluate_folder(&last, &spec, &opts, &dev).expect("--skip-bad evaluates");
    let fold = &partial.folds[0];
    assert_eq!((fold.skipped, fold.skipped_videos.test), (1, 1), "{fold:?}");
    assert!(fold.evaluation_incomplete());
    assert!(fold.skipped_videos.test_videos[0].contains(&stem));
    assert_eq!(fold.metrics.num_videos, 11);
    let table = partial.to_string();
    assert!(table.contains("\n1*"), "{table}");

    // No split lists at all: the error says where it looked.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = DatasetSpec::new(DatasetKind::Ucf101, &empty, Fold::One(1))
        .load()
        .expect_err("no split lists");
    assert!(err.to_string().contains("classInd.txt"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn ccl_student_finetunes_with_the_ccl_recipe() {
    let dir = temp_dir("ccl");
    let (root, model) = (dir.join("data"), dir.join("student"));
    dataset(&root);
    // A narrow R(2+1)D-18 (the official topology, widths divided by 8), randomly initialised.
    let cfg = avkd::models::ccl::r2plus1d::R2Plus1dConfig {
        widths: [8, 16, 32, 64],
        ..avkd::models::ccl::r2plus1d::R2Plus1dConfig::official(18, 4)
    };
    let store = ParamStore::new(3, DType::F32, &Device::Cpu);
    avkd::models::ccl::r2plus1d::R2Plus1d::new(&cfg, store.builder()).unwrap();
    let tensors = store.tensors().unwrap();
    write_model_folder(&model, "ccl-r2plus1d", &cfg, &tensors, &BTreeMap::new()).unwrap();

    let mut ft = FinetuneConfig::ccl_ucf51();
    ft.epochs = 2;
    ft.base_lr = 0.05;
    ft.augment.hflip_prob = 0.0;
    let mut job = job(&model, &root, &dir.join("ft"), ft, 2);
    job.crop = Some(32);
    let dev = Device::Cpu;
    let (report, runs) = run_finetune(&job, &dev).expect("CCL fine-tuning runs");
    // CCL tests every non-overlapping 16-frame window (2 of a 32-frame video), one centre crop.
    assert_eq!(report.protocol.clips, None);
    assert_eq!(report.protocol.crops, 1);
    assert_eq!(report.protocol.input_size, 32);
    assert_eq!(report.folds[0].metrics.num_videos, 12);
    // 48 training videos in batches of 16, two epochs.
    assert_eq!(runs[0].summary.steps, 2 * 3);

    let last = ModelFolder::open(&runs[0].out_dir.join("last")).unwrap();
    assert_eq!(last.preprocessor.fps, None);
    let spec = DatasetSpec::new(DatasetKind::Ucf101, &root, Fold::One(1));
    let opts = EvalOptions {
        crop: Some(32),
        ..EvalOptions::default()
    };
    let again = evaluate_folder(&last, &spec, &opts, &dev).unwrap();
    assert_eq!(again.folds[0].metrics, report.folds[0].metrics);
    std::fs::remove_dir_all(&dir).ok();
}

/// Without the `ffmpeg` feature a container is refused with a message that says how to proceed.
#[cfg(not(feature = "ffmpeg"))]
#[test]
fn containers_without_ffmpeg_say_how_to_proceed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/media");
    let err =
        avkd::data::video_source::VideoSource::open(&root, Path::new("xvid_mp3_2s.avi"), None)
            .expect_err("an .avi needs the ffmpeg feature");
    let text = err.to_string();
    assert!(
        text.contains("xvid_mp3_2s.avi") && text.contains("--features ffmpeg"),
        "{text}"
    );
}

/// `avkd quickstart` offline, with a shorter pre-training: synthetic data -> a small XKD net
/// pre-trained here with the XKD objective -> fine-tuning -> video-level evaluation -> export ->
/// the reloaded export checked.
#[test]
fn quickstart_offline_pretrains_finetunes_evaluates_and_exports() {
    use avkd::jobs::quickstart::{run, QuickstartOptions, StudentSource};
    let dir = temp_dir("quickstart");
    let opts = QuickstartOptions {
        out: dir.clone(),
        student: None,
        offline: true,
        pretrain_steps: 60,
        finetune_epochs: None,
        seed: 0,
        workers: 2,
    };
    let r = run(&opts, &Device::Cpu).expect("the quickstart runs");
    let StudentSource::Pretrained(small) = &r.student else {
        panic!("offline, the quickstart must pre-train its own student")
    };
    // It says why: --offline, not a network failure.
    assert_eq!(
        r.pretrained_because,
        Some(avkd::jobs::quickstart::PretrainReason::Offline)
    );
    let because = r.pretrained_because.as_ref().unwrap().to_string();
    assert!(
        because.contains("--offline was given") && !because.contains("Hub"),
        "{because}"
    );
    let failed = avkd::jobs::quickstart::PretrainReason::HubFailed("connection refused".into());
    assert!(
        failed.to_string().contains("the Hub did not give")
            && failed.to_string().contains("connection refused"),
        "{failed}"
    );
    assert_eq!(small.summary.steps, 60);
    assert!(small.video_student.join("model.safetensors").is_file());
    assert_eq!(small.probe_reloaded, small.probe_after);

    assert_eq!(
        r.finetune.summary.epochs_run,
        avkd::jobs::quickstart::SMALL_STUDENT_EPOCHS
    );
    let m = &r.report.folds[0].metrics;
    assert_eq!(m.num_videos, 32);
    eprintln!("quickstart (shortened): top-1 {:.3}", m.top1);
    // Chance is 12.5 % (8 classes); this run gives 75 %.
    assert!(
        m.top1 >= 0.5,
        "top-1 {} is not clearly above chance",
        m.top1
    );
    for f in [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ] {
        assert!(r.export_dir.join(f).is_file(), "export lacks {f}");
    }
    assert_eq!(r.reloaded.folds[0].metrics, *m);
    std::fs::remove_dir_all(&dir).ok();
}

/// `avkd predict` on a frame folder that states no frame rate: refused, naming the folder, before
/// any assumption; `--fps` or a `meta.json` supplies the rate.
#[test]
fn predict_needs_the_frame_rate_of_a_bare_frame_folder() {
    use avkd::models::classifier::{VideoClassifier, VideoClassifierConfig};
    let dir = temp_dir("predict-fps");
    let cfg = VideoClassifierConfig {
        backbone: XkdConfig::tiny_synthetic().video,
        num_classes: 3,
        head_dropout: 0.0,
    };
    let store = ParamStore::new(5, DType::F32, &Device::Cpu);
    VideoClassifier::new(&cfg, store.builder()).unwrap();
    let model = dir.join("classifier");
    let tensors = store.tensors().unwrap();
    write_model_folder(
        &model,
        "xkd-video-classifier",
        &cfg,
        &tensors,
        &BTreeMap::new(),
    )
    .unwrap();
    let folder = ModelFolder::open(&model).unwrap();

    let video = dir.join("clip");
    std::fs::create_dir_all(&video).unwrap();
    for i in 0..24u8 {
        avkd::data::video::RgbImage::from_fn(40, 32, |x, y| {
            image::Rgb([(x as u8).wrapping_mul(6), (y as u8) * 7, i * 10])
        })
        .save(video.join(format!("img_{:05}.png", i + 1)))
        .unwrap();
    }
    let (opts, dev) = (EvalOptions::default(), Device::Cpu);
    let predict = |fps| avkd::jobs::predict::predict(&folder, &video, fps, 3, &opts, &dev);
    let err = predict(None)
        .expect_err("no frame rate anywhere")
        .to_string();
    assert!(
        err.contains(&video.display().to_string())
            && err.contains("meta.json")
            && err.contains("--fps"),
        "{err}"
    );
    let given = predict(Some(12.0)).expect("--fps gives the rate");
    assert_eq!(given.len(), 3);
    std::fs::write(video.join("meta.json"), r#"{"fps": 12}"#).unwrap();
    let stated = predict(None).expect("meta.json gives the rate");
    let scores = |p: &[avkd::jobs::predict::Prediction]| {
        p.iter().map(|p| (p.class, p.score)).collect::<Vec<_>>()
    };
    assert_eq!(scores(&stated), scores(&given));
    std::fs::remove_dir_all(&dir).ok();
}
