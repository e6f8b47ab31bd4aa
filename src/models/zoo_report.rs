//! What `avkd zoo list` and `avkd zoo show` print: a one-line row per entry, and an entry's full card,
//! as text or as JSON-serialisable values.

use crate::models::registry::ZooEntry;
use candle_core::{Error, Result};
use serde::Serialize;
use std::fmt::Write;

/// One row of `avkd zoo list`.
#[derive(Debug, Clone, Serialize)]
pub struct ZooRow {
    pub name: String,
    pub kind: String,
    pub method: String,
    pub role: String,
    pub params: usize,
    pub released: bool,
    /// "yes", "yes (unverified)" or "no".
    pub weights: String,
    pub hub_repo: String,
    /// e.g. "UCF101 fine-tune top-1 94.1".
    pub headline: Option<String>,
}

impl ZooRow {
    pub fn new(e: &ZooEntry) -> Self {
        Self {
            name: e.name.clone(),
            kind: e.model_type().to_string(),
            method: e.method.clone(),
            role: e.role.clone(),
            params: e.param_count().parameters,
            released: e.weights.released,
            weights: e.weights.status().to_string(),
            hub_repo: e.hub_repo.clone(),
            headline: e.headline().map(|r| r.summary()),
        }
    }
}

/// 87691008 -> "87.7M".
pub fn short_count(n: usize) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// 87691008 -> "87,691,008".
pub fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The `avkd zoo list` table.
pub fn list_table(rows: &[ZooRow]) -> String {
    let head = ["NAME", "KIND", "PARAMS", "RELEASED", "HUB REPO", "HEADLINE"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.kind.clone(),
                short_count(r.params),
                r.weights.clone(),
                r.hub_repo.clone(),
                r.headline.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = head.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cols: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            if i + 1 == cols.len() {
                s.push_str(c);
            } else {
                let _ = write!(s, "{c:w$}  ");
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&head.map(String::from));
    for row in &cells {
        line(row);
    }
    out
}

/// Word-wraps `text` at 100 columns, every line indented by `indent`.
fn wrap(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + word.len() > 100 {
            let _ = writeln!(out, "{pad}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{pad}{line}");
    }
    out
}

fn field(out: &mut String, key: &str, value: &str) {
    let wrapped = wrap(value, 16);
    let _ = write!(out, "  {key:<13} {}", wrapped.trim_start());
}

fn pretty_toml<T: Serialize>(value: &T, what: &str) -> Result<String> {
    toml::to_string(value).map_err(|e| Error::Msg(format!("{what}: {e}")))
}

/// The `avkd zoo show` card.
pub fn show_text(e: &ZooEntry) -> Result<String> {
    let params = e.param_count();
    let mut o = String::new();
    let _ = writeln!(o, "{}  ({})", e.name, e.model_type());
    o.push_str(&wrap(&e.description, 2));
    o.push('\n');
    field(&mut o, "method", &format!("{}, {}", e.method, e.role));
    field(&mut o, "pretraining", &e.pretraining);
    let stats = match params.running_stats {
        0 => String::new(),
        n => format!(", plus {} BatchNorm running statistics", grouped(n)),
    };
    let count = format!(
        "{}{stats} ({} tensors)",
        grouped(params.parameters),
        params.tensors
    );
    field(&mut o, "parameters", &count);
    field(&mut o, "hub repo", &e.hub_repo);
    field(&mut o, "license", &e.license);
    field(&mut o, "paper", &e.paper.citation);
    if let Some(url) = &e.paper.url {
        field(&mut o, "", url);
    }
    if let Some(code) = &e.paper.code {
        field(&mut o, "code", code);
    }

    let w = &e.weights;
    o.push_str("\nweights\n");
    field(&mut o, "released", w.status());
    for (key, value) in [("url", &w.url), ("file", &w.file), ("key", &w.key)] {
        if let Some(v) = value {
            field(&mut o, key, v);
        }
    }
    if let Some(f) = w.format {
        field(
            &mut o,
            "format",
            &serde_json::to_string(&f)
                .unwrap_or_default()
                .replace('"', ""),
        );
    }
    if let Some(l) = w.layout {
        field(
            &mut o,
            "layout",
            &serde_json::to_string(&l)
                .unwrap_or_default()
                .replace('"', ""),
        );
    }
    if !w.drop.is_empty() {
        field(&mut o, "dropped keys", &format!("{}*", w.drop.join("*, ")));
    }
    let sha = match (&w.sha256, &w.sha256_prefix) {
        (Some(h), _) => h.clone(),
        (None, Some(p)) => format!("unknown (starts with {p})"),
        (None, None) => "unknown".into(),
    };
    if w.released {
        field(&mut o, "sha256", &sha);
    }
    if let Some(n) = &w.note {
        field(&mut o, "note", n);
    }
    if let Some(m) = &w.make {
        field(&mut o, "make them", m);
    }

    o.push_str("\narchitecture (config.json)\n");
    o.push_str(&indent(&pretty_toml(&e.config, "config")?, 2));
    o.push_str("\npreprocessing (preprocessor_config.json");
    if !e.preprocessing_overrides.is_empty() {
        let keys: Vec<&str> = e
            .preprocessing_overrides
            .keys()
            .map(String::as_str)
            .collect();
        let _ = write!(o, "; the entry sets {}", keys.join(", "));
    }
    o.push_str(")\n");
    o.push_str(&indent(&pretty_toml(&e.preprocessor, "preprocessing")?, 2));

    o.push_str("\nprotocol\n");
    field(&mut o, "training", &e.protocol.training);
    for ev in &e.protocol.evaluations {
        let _ = writeln!(o, "  {}: {}", ev.kind, ev.datasets.join(", "));
        for (k, v) in [
            ("splits", &ev.splits),
            ("input", &ev.input),
            ("views", &ev.views),
            ("recipe", &ev.recipe),
            ("source", &ev.source),
        ] {
            field(&mut o, &format!("  {k}"), v);
        }
    }

    o.push_str("\nresults (values in %)\n");
    for r in &e.results {
        let value = r.value_text();
        let split = r
            .split
            .as_deref()
            .map(|s| format!(" [{s}]"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {} {} {}: {value}{split}",
            r.dataset, r.protocol, r.metric
        );
        field(&mut o, "  source", &r.source);
        if let Some(n) = &r.note {
            field(&mut o, "  note", n);
        }
    }
    if let Some(n) = &e.results_note {
        o.push_str(&wrap(&format!("Note: {n}"), 2));
    }
    Ok(o)
}

fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines()
        .map(|l| match l {
            "" => "\n".to_string(),
            l => format!("{pad}{l}\n"),
        })
        .collect()
}
