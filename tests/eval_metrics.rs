//! Video-level metrics on hand-computed cases, fold reports, and the training-curve plot.

use avkd::eval::{ClassificationMetrics, EvalReport, FoldResult, Protocol, VideoScores};
use avkd::train::plot::{plot_metrics, read_curves, smooth};
use candle_core::{Device, Tensor};
use std::io::Write;

fn logits(rows: &[&[f32]]) -> Tensor {
    let c = rows[0].len();
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_vec(flat, (rows.len(), c), &Device::Cpu).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn mean_of_softmax_over_views_decides_not_mean_of_logits() {
    // Mean logits would pick class 1 ((10+0)/2 = 5 < (0+12)/2 = 6); the mean of the softmax picks
    // class 0: view 1 gives it ~1, view 2 splits its mass between classes 1 and 2 (0.525 / 0.475).
    let mut s = VideoScores::new(3);
    s.add_logits(0, 0, &logits(&[&[10.0, 0.0, 0.0], &[0.0, 12.0, 11.9]]))
        .unwrap();
    let pred = s.predictions(3);
    assert_eq!(pred[0].topk[0].0, 0);
    let m = s.metrics().unwrap();
    assert!(close(m.top1, 1.0));
    // The scores are the mean of the two softmax vectors.
    let p1 = [
        1.0 / (1.0 + 2.0 * (-10f64).exp()),
        (-10f64).exp() / (1.0 + 2.0 * (-10f64).exp()),
    ];
    let e = (-0.1f64).exp();
    let p2_1 = 1.0 / (1.0 + e + (-12f64).exp());
    assert!((pred[0].topk[0].1 as f64 - (p1[0] + (-12f64).exp() * p2_1) / 2.0).abs() < 1e-6);
}

#[test]
fn views_of_one_video_accumulate_over_calls() {
    let mut one = VideoScores::new(4);
    let mut split = VideoScores::new(4);
    let views: [&[f32]; 3] = [
        &[1.0, 2.0, 0.5, 0.0],
        &[3.0, 0.0, 0.0, 1.0],
        &[0.0, 2.5, 0.1, 0.2],
    ];
    one.add_logits(7, 1, &logits(&views)).unwrap();
    split.add_logits(7, 1, &logits(&views[..1])).unwrap();
    split
        .add_logits(7, 1, &Tensor::new(views[1], &Device::Cpu).unwrap())
        .unwrap();
    split.add_logits(7, 1, &logits(&views[2..])).unwrap();
    assert_eq!(split.len(), 1);
    let (a, b) = (one.predictions(4), split.predictions(4));
    for ((ca, va), (cb, vb)) in a[0].topk.iter().zip(&b[0].topk) {
        assert_eq!(ca, cb);
        assert!((va - vb).abs() < 1e-7);
    }
    // A different label for the same video is an error.
    let err = split.add_logits(7, 2, &logits(&views[..1])).unwrap_err();
    assert!(err.to_string().contains("label 2"), "{err}");
}

#[test]
fn hand_computed_metrics_with_missing_classes_and_ties() {
    // 5 classes; class 3 has no test video. Raw scores (as SVM decisions).
    let mut s = VideoScores::new(5);
    s.add_scores(0, 0, &[0.9, 0.1, 0.0, 0.0, 0.0]).unwrap(); // correct
    s.add_scores(1, 0, &[0.1, 0.8, 0.0, 0.0, 0.0]).unwrap(); // predicted 1
    s.add_scores(2, 1, &[0.0, 0.7, 0.2, 0.0, 0.0]).unwrap(); // correct
                                                             // Tie between classes 2 and 4: the first maximum (class 2) wins.
    s.add_scores(3, 4, &[0.0, 0.0, 0.5, 0.0, 0.5]).unwrap(); // predicted 2, wrong
    s.add_scores(4, 2, &[0.0, 0.0, 0.5, 0.0, 0.5]).unwrap(); // predicted 2, right
                                                             // Two views averaged: (0.2+0.6)/2 = 0.4 for class 4 vs (0.6+0.0)/2 = 0.3 for class 0.
    s.add_scores(5, 4, &[0.6, 0.0, 0.0, 0.0, 0.2]).unwrap();
    s.add_scores(5, 4, &[0.0, 0.0, 0.0, 0.0, 0.6]).unwrap();
    let m: ClassificationMetrics = s.metrics().unwrap();
    assert_eq!(m.num_videos, 6);
    assert!(close(m.top1, 4.0 / 6.0));
    // Every label is in the top-5 of 5 classes.
    assert!(close(m.top5, 1.0));
    // Per class: 0 -> 1/2, 1 -> 1/1, 2 -> 1/1, 3 -> absent, 4 -> 1/2.
    assert_eq!(
        m.per_class,
        vec![Some(0.5), Some(1.0), Some(1.0), None, Some(0.5)]
    );
    assert!(close(m.mean_class, (0.5 + 1.0 + 1.0 + 0.5) / 4.0));
    assert_eq!(m.confusion[0], vec![1, 1, 0, 0, 0]);
    assert_eq!(m.confusion[4], vec![0, 0, 1, 0, 1]);
    assert_eq!(m.confusion[3], vec![0; 5]);
    let p = s.predictions(2);
    assert_eq!(
        p[3].topk.iter().map(|t| t.0).collect::<Vec<_>>(),
        vec![2, 4]
    );
    assert_eq!(p[5].topk[0], (4, 0.4));
}

#[test]
fn top5_with_three_classes_is_top3_and_top5_with_seven_classes() {
    let mut s = VideoScores::new(3);
    s.add_scores(0, 2, &[0.5, 0.3, 0.2]).unwrap(); // label last: in top-3 only
    s.add_scores(1, 0, &[0.5, 0.3, 0.2]).unwrap();
    let m = s.metrics().unwrap();
    assert!(close(m.top1, 0.5));
    assert!(close(m.top5, 1.0));
    assert_eq!(s.predictions(5)[0].topk.len(), 3);

    let mut s = VideoScores::new(7);
    s.add_scores(0, 6, &[7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
        .unwrap(); // rank 7
    s.add_scores(1, 4, &[7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
        .unwrap(); // rank 5
    s.add_scores(2, 5, &[7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
        .unwrap(); // rank 6
    let m = s.metrics().unwrap();
    assert!(close(m.top1, 0.0));
    assert!(close(m.top5, 1.0 / 3.0));
}

#[test]
fn bad_inputs_are_errors() {
    let mut s = VideoScores::new(3);
    let err = s.add_logits(0, 0, &logits(&[&[1.0, 2.0]])).unwrap_err();
    assert!(err.to_string().contains("[views >= 1, 3]"), "{err}");
    let empty = Tensor::zeros((0, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(s.add_logits(0, 0, &empty).is_err());
    let r3 = Tensor::zeros((1, 1, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(s.add_logits(0, 0, &r3).is_err());
    assert!(s.add_scores(0, 0, &[1.0, 2.0]).is_err());
    assert!(s.add_scores(0, 3, &[1.0, 2.0, 3.0]).is_err());
    assert!(s.add_scores(0, 0, &[1.0, f32::NAN, 3.0]).is_err());
    assert!(s
        .add_logits(0, 0, &logits(&[&[1.0, f32::INFINITY, 0.0]]))
        .is_err());
    // Nothing was recorded by the failed calls, so there is nothing to measure.
    assert!(s.is_empty());
    assert!(s.metrics().unwrap_err().to_string().contains("no videos"));
    // Softmax and raw scores cannot be mixed for one video.
    s.add_scores(0, 0, &[1.0, 2.0, 3.0]).unwrap();
    assert!(s.add_logits(0, 0, &logits(&[&[1.0, 2.0, 3.0]])).is_err());
}

fn metrics_with(top1: f64, top5: f64, mean_class: f64) -> ClassificationMetrics {
    ClassificationMetrics {
        top1,
        top5,
        mean_class,
        num_videos: 10,
        per_class: vec![Some(mean_class), None],
        confusion: vec![vec![3, 1], vec![0, 0]],
    }
}

fn protocol() -> Protocol {
    Protocol {
        clips: Some(3),
        crops: 3,
        input_size: 224,
        classifier: "finetune".into(),
        aggregation: "mean_softmax".into(),
        selection: None,
        extra: Default::default(),
    }
}

#[test]
fn report_mean_and_population_std_over_folds_and_json_round_trip() {
    let folds = vec![
        FoldResult::new(1, metrics_with(0.80, 0.95, 0.70)),
        FoldResult::new(2, metrics_with(0.90, 0.97, 0.80)),
        FoldResult::new(3, metrics_with(0.85, 0.99, 0.90)),
    ];
    let r = EvalReport::new("xkd-vit-b", "ucf101", protocol(), folds).unwrap();
    assert!((r.mean.top1 - 0.85).abs() < 1e-12);
    // Population std of (0.80, 0.90, 0.85): sqrt(((0.05)^2 + (0.05)^2 + 0) / 3).
    assert!((r.std.top1 - (0.005f64 / 3.0).sqrt()).abs() < 1e-12);
    assert!((r.std.mean_class - (0.02f64 / 3.0).sqrt()).abs() < 1e-12);
    assert_eq!(r.std_ddof, 0);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/report.json");
    r.write_json_atomic(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"std_ddof\": 0"), "{text}");
    let back = EvalReport::read_json(&path).unwrap();
    // serde_json parses floats to within an ulp (no `float_roundtrip` feature): compare the floats
    // with a tolerance and everything else exactly.
    assert_eq!(
        (&back.model, &back.dataset, &back.protocol),
        (&r.model, &r.dataset, &r.protocol)
    );
    assert_eq!(back.folds, r.folds);
    for (a, b) in [(back.mean, r.mean), (back.std, r.std)] {
        for (x, y) in [
            (a.top1, b.top1),
            (a.top5, b.top5),
            (a.mean_class, b.mean_class),
        ] {
            assert!((x - y).abs() <= 1e-15, "{x} vs {y}");
        }
    }
    assert_eq!(back.std_ddof, 0);
    // No temporary file is left next to the report.
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );

    let table = r.to_string();
    assert!(table.contains("85.00 ± 4.08"), "{table}");
    assert!(table.lines().count() >= 7, "{table}");

    assert!(EvalReport::new("m", "d", protocol(), vec![]).is_err());
    let dup = vec![
        FoldResult::new(1, metrics_with(0.8, 0.9, 0.7)),
        FoldResult::new(1, metrics_with(0.8, 0.9, 0.7)),
    ];
    assert!(EvalReport::new("m", "d", protocol(), dup).is_err());
}

fn write_metrics(path: &std::path::Path, steps: usize, epochs: usize) {
    let mut f = std::fs::File::create(path).unwrap();
    writeln!(f, r#"{{"kind":"config","lr":0.001}}"#).unwrap();
    for epoch in 0..epochs {
        for s in 0..steps / epochs {
            let step = epoch * (steps / epochs) + s;
            let loss =
                3.0 * (-(step as f64) / 40.0).exp() + 0.1 * ((step * 7919) % 13) as f64 / 13.0;
            writeln!(
                f,
                r#"{{"kind":"train","step":{step},"epoch":{epoch},"loss":{loss},"lr":0.001}}"#
            )
            .unwrap();
        }
        let top1 = 0.2 + 0.6 * (epoch + 1) as f64 / epochs as f64;
        writeln!(
            f,
            r#"{{"kind":"eval","epoch":{epoch},"top1":{top1},"top5":{}}}"#,
            (top1 + 0.15).min(1.0)
        )
        .unwrap();
        writeln!(f).unwrap();
    }
}

#[test]
fn plot_writes_an_svg_with_the_curves() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("metrics.jsonl");
    write_metrics(&jsonl, 120, 6);
    let curves = read_curves(&jsonl).unwrap();
    assert_eq!(curves.loss.len(), 120);
    assert_eq!(curves.eval.len(), 6);

    let out = plot_metrics(&jsonl, &dir.path().join("plots")).unwrap();
    assert_eq!(out, dir.path().join("plots/curves.svg"));
    let svg = std::fs::read_to_string(&out).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{}",
        &svg[..200.min(svg.len())]
    );
    for label in [
        "training loss",
        "evaluation accuracy",
        "top-1",
        "top-5",
        "smoothed",
        "step",
        "epoch",
    ] {
        assert!(svg.contains(label), "missing {label}");
    }
    // Four curves (loss, smoothed loss, top-1, top-5) plus the legend samples.
    let polylines: Vec<&str> = svg.split("<polyline").skip(1).collect();
    assert!(polylines.len() >= 4, "{} polylines", polylines.len());
    // The loss curve has one vertex per step, the accuracy curves one per epoch.
    let vertex_counts: Vec<usize> = polylines
        .iter()
        .filter_map(|p| p.split("points=\"").nth(1))
        .map(|p| p.split('"').next().unwrap().split_whitespace().count())
        .collect();
    assert_eq!(
        vertex_counts.iter().filter(|&&n| n == 120).count(),
        2,
        "{vertex_counts:?}"
    );
    assert_eq!(
        vertex_counts.iter().filter(|&&n| n == 6).count(),
        2,
        "{vertex_counts:?}"
    );

    // An explicit .svg path is used as is.
    let named = plot_metrics(&jsonl, &dir.path().join("a.svg")).unwrap();
    assert_eq!(named, dir.path().join("a.svg"));
}

#[test]
fn plot_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("metrics.jsonl");
    std::fs::write(
        &jsonl,
        "{\"kind\":\"train\",\"step\":0,\"epoch\":0,\"loss\":1.0,\"lr\":0.1}\n{\"kind\":\"train\",\"step\":1,\"loss\":\n",
    )
    .unwrap();
    let err = plot_metrics(&jsonl, dir.path()).unwrap_err().to_string();
    assert!(err.contains("metrics.jsonl:2"), "{err}");

    std::fs::write(
        &jsonl,
        "{\"kind\":\"eval\",\"epoch\":0,\"top1\":\"high\"}\n",
    )
    .unwrap();
    let err = plot_metrics(&jsonl, dir.path()).unwrap_err().to_string();
    assert!(err.contains(":1") && err.contains("top1"), "{err}");

    std::fs::write(&jsonl, "[1, 2]\n").unwrap();
    assert!(plot_metrics(&jsonl, dir.path()).is_err());

    std::fs::write(&jsonl, "{\"kind\":\"config\"}\n").unwrap();
    let err = plot_metrics(&jsonl, dir.path()).unwrap_err().to_string();
    assert!(err.contains("no train or eval"), "{err}");
    assert!(!dir.path().join("curves.svg").exists());

    assert!(plot_metrics(&dir.path().join("missing.jsonl"), dir.path()).is_err());
}

#[test]
fn smoothing_is_debiased() {
    let s = smooth(&[2.0, 2.0, 2.0], 0.9);
    assert!(s.iter().all(|v| (v - 2.0).abs() < 1e-12));
    let s = smooth(&[1.0, 3.0], 0.5);
    // (0.5*1 + 0.5*0)/(1-0.5) = 1; (0.5*0.5 + 0.5*3)/(1-0.25) = 1.75/0.75
    assert!((s[1] - 1.75 / 0.75).abs() < 1e-12);
}
