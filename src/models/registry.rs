//! The zoo registry: one TOML per entry under `models/`, compiled into the binary so that `avkd zoo`
//! works from any directory. Each entry names an architecture (a [`ModelConfig`]), where the original
//! weights are published, the Hub repo of avkd's converted weights, the preprocessing, the evaluation
//! protocol and the paper's numbers. The file format is documented in `models/README.md`.

use crate::models::config::{ModelConfig, PreprocessorConfig, MODEL_TYPES};
use crate::models::param_count::{count_params, ParamCount};
use candle_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// Registers `models/<name>.toml` files: the one list of zoo entries (a test checks it against the
/// directory, so a new TOML cannot be forgotten).
macro_rules! zoo_files {
    ($($name:literal),* $(,)?) => {
        &[$((
            concat!($name, ".toml"),
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/models/", $name, ".toml")),
        )),*]
    };
}

/// (file name, contents) of every registered entry.
pub const ZOO_FILES: &[(&str, &str)] = zoo_files![
    "xkd-k400-video-student",
    "xkd-k400-video-teacher",
    "xkd-k400-audio-student",
    "xkd-k400-audio-teacher",
    "xkd-mas-k400-video-student",
    "xkd-mas-k400-video-teacher",
    "xkd-mas-k400-audio-student",
    "xkd-mas-k400-audio-teacher",
    "xkd-mats-k400-video-student",
    "xkd-mats-k400-video-teacher",
    "xkd-mats-k400-audio-student",
    "xkd-mats-k400-audio-teacher",
    "xkd-audioset-video-student",
    "xkd-audioset-video-teacher",
    "xkd-audioset-audio-student",
    "xkd-audioset-audio-teacher",
    "ccl-a-ucf51-r2plus1d18",
    "ccl-i-ucf51-r2plus1d18",
    "ccl-ai-ucf51-r2plus1d18",
    "resnet34-imagenet1k-v1",
    "panns-cnn14-emb512",
];

/// How the original checkpoint file is serialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WeightsFormat {
    /// A PyTorch pickle whose container (zip or legacy) is not known; the reader detects it.
    Pth,
    /// `torch.save` zip archive (torch >= 1.6).
    PthZip,
    /// The legacy (pre-1.6) PyTorch format.
    PthLegacy,
    Safetensors,
}

/// Tensor names in the original file, for `checkpoint::keymap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceLayout {
    /// XKD pretraining backbone names (`enc_pos_embed`, `cuboid_embed`, `encoder.blocks`, ...).
    XkdBackbone,
    /// torchvision names (`conv1`, `layerN.M.*`, `fc`).
    Torchvision,
    /// PANNs `audioset_tagging_cnn` names.
    Panns,
    /// CCL's `r21d` names.
    CclR21d,
}

/// Where the original weights are published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weights {
    /// Whether the authors published these weights at all.
    pub released: bool,
    /// The file's download URL, or the page that lists it when the file's own URL is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The file name; a `*` pattern when only the naming scheme is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<WeightsFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<SourceLayout>,
    /// Key of the state_dict inside the checkpoint's top-level dict, if nested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Name prefixes in the file that the architecture does not have (dropped on conversion).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
    /// Full sha256 of the file, only when published; absent = unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The leading hex digits of the sha256 that the file name carries (torch.hub convention).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// How to make the weights with avkd when they were never released (an `avkd` command line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub make: Option<String>,
}

impl Weights {
    /// Whether only the naming scheme of the file is known.
    pub fn file_is_pattern(&self) -> bool {
        self.file.as_deref().is_some_and(|f| f.contains('*'))
    }

    /// "yes", "yes (unverified)" (a release exists, its files were not inspected) or "no".
    pub fn status(&self) -> &'static str {
        match (self.released, self.file_is_pattern()) {
            (false, _) => "no",
            (true, true) => "yes (unverified)",
            (true, false) => "yes",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paper {
    /// Short citation: authors, venue, arXiv id.
    pub citation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The official code, with the commit the specs were written against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// One downstream evaluation the paper's numbers come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    /// "fine-tune", "linear", "linear-svm", "supervised", ...
    pub kind: String,
    pub datasets: Vec<String>,
    pub splits: String,
    /// Input size and sampling, e.g. "32 frames x 224 x 224 at 8 fps".
    pub input: String,
    /// Test views, e.g. "3 clips x 3 crops, softmax averaged".
    pub views: String,
    pub recipe: String,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// How the weights were produced (data, schedule, objective).
    pub training: String,
    #[serde(default)]
    pub evaluations: Vec<Evaluation>,
}

/// One number the paper (or the weights' publisher) reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperResult {
    pub dataset: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// The evaluation `kind` it was measured with.
    pub protocol: String,
    /// "top-1", "top-5", "mAP", "R@1" (all values in percent).
    pub metric: String,
    /// Absent when the number exists but is not known to avkd (then `note` says why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl PaperResult {
    /// "UCF101 fine-tune top-1 94.1".
    pub fn summary(&self) -> String {
        format!(
            "{} {} {} {}",
            self.dataset,
            self.protocol,
            self.metric,
            self.value_text()
        )
    }

    /// The value as the paper prints it ("70.0", "73.314"), or "unknown".
    pub fn value_text(&self) -> String {
        match self.value {
            Some(v) if v.fract() == 0.0 => format!("{v:.1}"),
            Some(v) => format!("{v}"),
            None => "unknown".into(),
        }
    }
}

/// The TOML as written; `config` and `preprocessing` are checked key by key after parsing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: String,
    description: String,
    method: String,
    role: String,
    pretraining: String,
    hub_repo: String,
    license: String,
    paper: Paper,
    config: toml::Table,
    weights: Weights,
    #[serde(default)]
    preprocessing: toml::Table,
    protocol: Protocol,
    results: Vec<PaperResult>,
    #[serde(default)]
    results_note: Option<String>,
}

/// One zoo entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZooEntry {
    pub name: String,
    pub description: String,
    /// "XKD", "XKD-MAS", "CCL-AI", "torchvision", ...
    pub method: String,
    /// "video student", "audio teacher", ...
    pub role: String,
    /// The data the weights were learned from.
    pub pretraining: String,
    pub hub_repo: String,
    pub license: String,
    pub paper: Paper,
    pub config: ModelConfig,
    pub weights: Weights,
    /// The entry's overrides of `PreprocessorConfig::for_model`.
    pub preprocessing_overrides: toml::Table,
    /// The preprocessing with the overrides applied.
    pub preprocessor: PreprocessorConfig,
    pub protocol: Protocol,
    /// The first result with a value is the headline (`avkd zoo list`).
    pub results: Vec<PaperResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results_note: Option<String>,
    /// Counted from the architecture's shapes when the file is parsed (no weights allocated).
    pub params: ParamCount,
    /// `models/<file>` the entry comes from.
    pub file: String,
}

impl ZooEntry {
    pub fn hub_repo(&self) -> &str {
        &self.hub_repo
    }

    pub fn model_config(&self) -> ModelConfig {
        self.config.clone()
    }

    pub fn preprocessor(&self) -> PreprocessorConfig {
        self.preprocessor.clone()
    }

    pub fn model_type(&self) -> &'static str {
        self.config.model_type()
    }

    /// Parameter count of the architecture, from its shapes (no weights allocated).
    pub fn param_count(&self) -> ParamCount {
        self.params
    }

    /// The first result with a value, else the first result (its value unknown).
    pub fn headline(&self) -> Option<&PaperResult> {
        self.results
            .iter()
            .find(|r| r.value.is_some())
            .or(self.results.first())
    }
}

fn msg(file: &str, what: impl std::fmt::Display) -> Error {
    Error::Msg(format!("models/{file}: {what}"))
}

/// Keys of `written` (recursively) that `parsed` does not have: fields serde ignored.
fn unknown_keys(written: &toml::Table, parsed: &toml::Table, path: &str, out: &mut Vec<String>) {
    for (k, v) in written {
        let here = format!("{path}.{k}");
        match (v, parsed.get(k)) {
            (_, None) => out.push(here),
            (toml::Value::Table(w), Some(toml::Value::Table(p))) => unknown_keys(w, p, &here, out),
            _ => {}
        }
    }
}

/// Fails when `[section]` as written has keys that the parsed value does not keep.
fn reject_unknown<T: Serialize>(
    file: &str,
    section: &str,
    written: &toml::Table,
    parsed: &T,
) -> Result<()> {
    let mut unknown = Vec::new();
    unknown_keys(written, &to_table(parsed, file)?, section, &mut unknown);
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(msg(file, format!("unknown keys {}", unknown.join(", "))))
    }
}

fn to_table<T: Serialize>(value: &T, file: &str) -> Result<toml::Table> {
    toml::Table::try_from(value).map_err(|e| msg(file, e))
}

fn parse_config(file: &str, written: &toml::Table) -> Result<ModelConfig> {
    let cfg: ModelConfig = written.clone().try_into().map_err(|e| {
        msg(
            file,
            format!(
                "[config] is not a ModelConfig ({e}); `model_type` must be one of {}",
                MODEL_TYPES.join(", ")
            ),
        )
    })?;
    cfg.validate().map_err(|e| msg(file, e))?;
    reject_unknown(file, "config", written, &cfg)?;
    Ok(cfg)
}

/// `PreprocessorConfig::for_model` with the entry's keys written over it.
fn parse_preprocessing(
    file: &str,
    cfg: &ModelConfig,
    overrides: &toml::Table,
) -> Result<PreprocessorConfig> {
    let mut merged = to_table(&PreprocessorConfig::for_model(cfg), file)?;
    merged.extend(overrides.clone());
    let pre: PreprocessorConfig = merged
        .try_into()
        .map_err(|e| msg(file, format!("[preprocessing]: {e}")))?;
    reject_unknown(file, "preprocessing", overrides, &pre)?;
    Ok(pre)
}

/// Hugging Face repo ids: `owner/name`, letters, digits, `-`, `_`, `.`, at most 96 characters.
pub fn is_valid_repo_id(id: &str) -> bool {
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !p.starts_with(['-', '.'])
            && !p.ends_with(['-', '.'])
            && !p.contains("--")
            && !p.contains("..")
    };
    match id.split_once('/') {
        Some((owner, name)) => id.len() <= 96 && part_ok(owner) && part_ok(name),
        None => false,
    }
}

fn check_weights(file: &str, w: &Weights) -> Result<()> {
    let fail = |what: &str| Err(msg(file, format!("[weights] {what}")));
    let blank = |s: &Option<String>| s.as_deref().is_none_or(|s| s.trim().is_empty());
    let hex = |s: &str| s.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
    if w.released && (blank(&w.url) || blank(&w.file)) {
        return fail("released = true needs `url` and `file`");
    }
    if !w.released && blank(&w.note) {
        return fail("released = false needs a `note` saying so");
    }
    if w.sha256
        .as_deref()
        .is_some_and(|h| h.len() != 64 || !hex(h))
    {
        return fail("sha256 must be 64 lowercase hex digits");
    }
    if w.sha256_prefix
        .as_deref()
        .is_some_and(|p| p.len() < 8 || !hex(p))
    {
        return fail("sha256_prefix: at least 8 lowercase hex digits");
    }
    if w.file_is_pattern() && (w.sha256.is_some() || w.sha256_prefix.is_some()) {
        return fail("a hash belongs to a known file, not a pattern");
    }
    Ok(())
}

/// Parses and checks one registry file (`file` names it in errors and must be `<name>.toml`).
pub fn parse_entry(file: &str, text: &str) -> Result<ZooEntry> {
    let raw: RawEntry = toml::from_str(text).map_err(|e| msg(file, e))?;
    if file != format!("{}.toml", raw.name) {
        return Err(msg(
            file,
            format!("`name = \"{}\"` must match the file name", raw.name),
        ));
    }
    if !raw
        .name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(msg(file, "names use lowercase letters, digits and `-`"));
    }
    if !is_valid_repo_id(&raw.hub_repo) {
        return Err(msg(
            file,
            format!("hub_repo `{}` is not `owner/name`", raw.hub_repo),
        ));
    }
    check_weights(file, &raw.weights)?;
    if raw.results.is_empty() {
        return Err(msg(file, "needs at least one [[results]] row"));
    }
    for r in &raw.results {
        if r.source.trim().is_empty() {
            return Err(msg(file, format!("result `{}` has no source", r.summary())));
        }
        if r.value.is_none() && r.note.as_deref().is_none_or(|n| n.trim().is_empty()) {
            return Err(msg(
                file,
                format!("result `{}`: no value and no note why", r.summary()),
            ));
        }
    }
    let config = parse_config(file, &raw.config)?;
    let preprocessor = parse_preprocessing(file, &config, &raw.preprocessing)?;
    // Building the shapes proves the config describes a model avkd can construct.
    let params = count_params(&config).map_err(|e| msg(file, e))?;
    Ok(ZooEntry {
        name: raw.name,
        description: raw.description,
        method: raw.method,
        role: raw.role,
        pretraining: raw.pretraining,
        hub_repo: raw.hub_repo,
        license: raw.license,
        paper: raw.paper,
        config,
        weights: raw.weights,
        preprocessing_overrides: raw.preprocessing,
        preprocessor,
        protocol: raw.protocol,
        results: raw.results,
        results_note: raw.results_note,
        params,
        file: file.to_string(),
    })
}

fn parse_all() -> std::result::Result<Vec<ZooEntry>, String> {
    let mut entries: Vec<ZooEntry> = Vec::with_capacity(ZOO_FILES.len());
    for (file, text) in ZOO_FILES {
        let entry = parse_entry(file, text).map_err(|e| e.to_string())?;
        if entries.iter().any(|e| e.name == entry.name) {
            return Err(format!("models/{file}: duplicate name `{}`", entry.name));
        }
        if let Some(other) = entries.iter().find(|e| e.hub_repo == entry.hub_repo) {
            return Err(format!(
                "models/{file}: hub_repo `{}` is also {}'s",
                entry.hub_repo, other.name
            ));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Every zoo entry, parsed once.
pub fn zoo() -> Result<&'static [ZooEntry]> {
    static ZOO: OnceLock<std::result::Result<Vec<ZooEntry>, String>> = OnceLock::new();
    match ZOO.get_or_init(parse_all) {
        Ok(entries) => Ok(entries),
        Err(e) => Err(Error::Msg(e.clone())),
    }
}

/// Edit distance (insertions, deletions, substitutions).
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Registered names closest to `query`: those containing it, then the nearest by edit distance.
pub fn close_names(query: &str, names: &[&str]) -> Vec<String> {
    let q = query.to_ascii_lowercase();
    let mut scored: Vec<(usize, &str)> = names
        .iter()
        .map(|n| {
            (
                if n.contains(&q) {
                    0
                } else {
                    1 + levenshtein(&q, n)
                },
                *n,
            )
        })
        .filter(|(d, n)| *d == 0 || *d <= 1 + n.len().max(q.len()) / 3)
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(5)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// The entry called `name`; the error lists close names.
pub fn find(name: &str) -> Result<&'static ZooEntry> {
    let entries = zoo()?;
    if let Some(e) = entries.iter().find(|e| e.name == name) {
        return Ok(e);
    }
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let close = close_names(name, &names);
    let hint = if close.is_empty() {
        "`avkd zoo list` shows every entry".to_string()
    } else {
        format!("did you mean {}?", close.join(", "))
    };
    Err(Error::Msg(format!("no zoo entry `{name}`; {hint}")))
}
