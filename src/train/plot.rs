//! Training curves from `metrics.jsonl` drawn to an SVG (plotters' SVG backend needs no fonts or
//! system libraries): the training loss per step with a smoothed line, and evaluation top-1/top-5 per
//! epoch.
//!
//! Records used: `{"kind":"train","step","epoch","loss","lr"}` and `{"kind":"eval","epoch","top1",
//! "top5"}`; records of other kinds are skipped, and so is a train record whose loss is `null` (how
//! serde writes a non-finite loss). Anything else that is not well-formed is an error naming the
//! line.

use crate::util::atomic::write_atomic;
use candle_core::Result;
use plotters::prelude::*;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Weight of TensorBoard-style debiased exponential smoothing of the loss.
const SMOOTHING: f64 = 0.9;

/// Loss points `(step, loss)` and evaluation points `(epoch, top1, top5)`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Curves {
    pub loss: Vec<(f64, f64)>,
    pub eval: Vec<(f64, f64, Option<f64>)>,
}

fn line_err(path: &Path, line: usize, msg: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{}:{line}: {msg}", path.display()))
}

fn number(
    rec: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    path: &Path,
    line: usize,
) -> Result<f64> {
    match rec.get(key).and_then(|v| v.as_f64()) {
        Some(v) => Ok(v),
        None => Err(line_err(
            path,
            line,
            format!("expected a number for `{key}`"),
        )),
    }
}

/// Reads the curves of a `metrics.jsonl` file (blank lines are allowed).
pub fn read_curves(metrics_jsonl: &Path) -> Result<Curves> {
    let text = std::fs::read_to_string(metrics_jsonl).map_err(|e| {
        candle_core::Error::Msg(format!("reading {}: {e}", metrics_jsonl.display()))
    })?;
    let mut curves = Curves::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| line_err(metrics_jsonl, line, format!("not valid JSON ({e})")))?;
        let Some(rec) = value.as_object() else {
            return Err(line_err(metrics_jsonl, line, "expected a JSON object"));
        };
        let Some(kind) = rec.get("kind").and_then(|k| k.as_str()) else {
            return Err(line_err(metrics_jsonl, line, "missing string field `kind`"));
        };
        match kind {
            "train" => {
                let step = number(rec, "step", metrics_jsonl, line)?;
                if rec.get("loss").is_some_and(|v| v.is_null()) {
                    continue;
                }
                let loss = number(rec, "loss", metrics_jsonl, line)?;
                curves.loss.push((step, loss));
            }
            "eval" => {
                let epoch = number(rec, "epoch", metrics_jsonl, line)?;
                let top1 = number(rec, "top1", metrics_jsonl, line)?;
                let top5 = match rec.get("top5") {
                    None | Some(serde_json::Value::Null) => None,
                    Some(_) => Some(number(rec, "top5", metrics_jsonl, line)?),
                };
                curves.eval.push((epoch, top1, top5));
            }
            _ => {}
        }
    }
    // A resumed run may log a step twice; plot in step order (stable, so the later record follows).
    curves.loss.sort_by(|a, b| a.0.total_cmp(&b.0));
    curves.eval.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(curves)
}

/// Debiased exponential moving average (TensorBoard's smoothing).
pub fn smooth(values: &[f64], weight: f64) -> Vec<f64> {
    let mut last = 0.0;
    let mut out = Vec::with_capacity(values.len());
    for (i, &v) in values.iter().enumerate() {
        last = last * weight + (1.0 - weight) * v;
        out.push(last / (1.0 - weight.powi(i as i32 + 1)));
    }
    out
}

/// `[min, max]` of the values padded by 5% (or ±0.5 for a single value).
fn padded_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
    (lo - pad)..(hi + pad)
}

fn draw_err(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("drawing training curves: {e}"))
}

/// Steps and epochs are whole numbers: ticks that fall between them get no label.
fn integer_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        String::new()
    }
}

/// Renders `curves` as an SVG document.
pub fn render_svg(curves: &Curves) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 450)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let (left, right) = root.split_horizontally(600);

        let steps = padded_range(curves.loss.iter().map(|p| p.0));
        let losses = padded_range(curves.loss.iter().map(|p| p.1));
        let mut chart = ChartBuilder::on(&left)
            .caption("training loss", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(steps, losses)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .x_label_formatter(&integer_label)
            .y_desc("loss")
            .draw()
            .map_err(draw_err)?;
        if !curves.loss.is_empty() {
            let raw: Vec<f64> = curves.loss.iter().map(|p| p.1).collect();
            let smoothed = smooth(&raw, SMOOTHING);
            chart
                .draw_series(LineSeries::new(curves.loss.iter().copied(), BLUE.mix(0.3)))
                .map_err(draw_err)?
                .label("loss")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.mix(0.3)));
            let points = curves.loss.iter().map(|p| p.0).zip(smoothed);
            chart
                .draw_series(LineSeries::new(points, BLUE.stroke_width(2)))
                .map_err(draw_err)?
                .label(format!("smoothed (EMA {SMOOTHING})"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
            chart
                .configure_series_labels()
                // A falling loss leaves the upper right free.
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(draw_err)?;
        }

        let epochs = padded_range(curves.eval.iter().map(|p| p.0));
        let accs = padded_range(
            curves
                .eval
                .iter()
                .flat_map(|p| std::iter::once(p.1).chain(p.2)),
        );
        let mut chart = ChartBuilder::on(&right)
            .caption("evaluation accuracy", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(epochs, accs)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .x_label_formatter(&integer_label)
            .y_desc("accuracy")
            .draw()
            .map_err(draw_err)?;
        if !curves.eval.is_empty() {
            chart
                .draw_series(LineSeries::new(
                    curves.eval.iter().map(|p| (p.0, p.1)),
                    RED.stroke_width(2),
                ))
                .map_err(draw_err)?
                .label("top-1")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
            let top5: Vec<(f64, f64)> = curves
                .eval
                .iter()
                .filter_map(|p| p.2.map(|t| (p.0, t)))
                .collect();
            if !top5.is_empty() {
                chart
                    .draw_series(LineSeries::new(top5, GREEN.stroke_width(2)))
                    .map_err(draw_err)?
                    .label("top-5")
                    .legend(|(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], GREEN.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(draw_err)?;
        }
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

/// Draws the curves of `metrics_jsonl` to `out/curves.svg` (or to `out` itself when it ends in
/// `.svg`), atomically, and returns the path written. Fails on a malformed line (naming it) and when
/// the file holds no train or eval record.
pub fn plot_metrics(metrics_jsonl: &Path, out: &Path) -> Result<PathBuf> {
    let curves = read_curves(metrics_jsonl)?;
    if curves.loss.is_empty() && curves.eval.is_empty() {
        candle_core::bail!(
            "{}: no train or eval records to plot",
            metrics_jsonl.display()
        )
    }
    let target = if out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
    {
        out.to_path_buf()
    } else {
        out.join("curves.svg")
    };
    write_atomic(&target, render_svg(&curves)?.as_bytes())?;
    Ok(target)
}
