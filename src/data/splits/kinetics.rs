//! Kinetics (400/600/700) lists for pre-training: the official CSV files (`train.csv`,
//! `validate.csv`, `test.csv`) with a header naming the columns, e.g.
//!
//! ```text
//! label,youtube_id,time_start,time_end,split
//! abseiling,--07WQ2iBlw,1,11,train
//! "passing American football (in game)",-0Jha1NOfE4,40,50,train
//! ```
//!
//! Columns are found by name, so `is_cc` and other extra columns are ignored; `youtube_id`,
//! `time_start` and `time_end` are required, `label` and `split` optional (the test lists of
//! later releases have no label). Times are whole seconds.
//!
//! Each entry's video is `<youtube_id>_<time_start:06>_<time_end:06>` (the ActivityNet
//! downloader's naming, also the CVDF archives'), as a container with any of the usual extensions
//! or a frame folder, looked for in this order under the video root:
//! `<label>/`, `<label with spaces as _>/`, `<split>/<label>/`, `<split>/<label with _>/`,
//! `<split>/`, then the root itself. Classes are the distinct labels, sorted (as XKD's loader
//! sorts its class folders).

use super::csv::{CsvFile, CsvRow};
use super::pretrain_list::{
    find_listed, sorted_classes, MissingVideo, PretrainList, PretrainSample,
};
use candle_core::Result;
use std::path::{Path, PathBuf};

/// Column positions from the header.
struct Columns {
    count: usize,
    label: Option<usize>,
    youtube_id: usize,
    time_start: usize,
    time_end: usize,
    split: Option<usize>,
}

fn columns(csv: &CsvFile) -> Result<Columns> {
    let header = csv.rows.first().ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "{} lists no videos (it is empty)",
            csv.path.display()
        ))
    })?;
    let find = |name: &str| {
        header
            .fields
            .iter()
            .position(|f| f.eq_ignore_ascii_case(name))
    };
    let required = |name: &str| {
        find(name).ok_or_else(|| {
            csv.error_at(
                header,
                &format!(
                    "expected a header naming the columns youtube_id, time_start and time_end \
                     (and label, split), found `{}` without `{name}`",
                    header.fields.join(",")
                ),
            )
        })
    };
    Ok(Columns {
        count: header.fields.len(),
        label: find("label"),
        youtube_id: required("youtube_id")?,
        time_start: required("time_start")?,
        time_end: required("time_end")?,
        split: find("split"),
    })
}

/// A whole number of seconds (`3` or `3.0`).
fn whole_seconds(csv: &CsvFile, row: &CsvRow, field: &str) -> Result<u64> {
    field
        .parse::<u64>()
        .ok()
        .or_else(|| {
            let v = field.parse::<f64>().ok()?;
            (v >= 0.0 && v.fract() == 0.0 && v < 1e15).then_some(v as u64)
        })
        .ok_or_else(|| csv.bad_field(row, "a whole number of seconds", field))
}

/// The names looked for, in order (see the module documentation).
fn candidates(stem: &str, label: Option<&str>, split: Option<&str>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let label_dirs: Vec<String> = label
        .map(|l| {
            let underscored = l.replace(' ', "_");
            if underscored == l {
                vec![l.to_string()]
            } else {
                vec![l.to_string(), underscored]
            }
        })
        .unwrap_or_default();
    dirs.extend(label_dirs.iter().map(PathBuf::from));
    if let Some(split) = split {
        dirs.extend(label_dirs.iter().map(|l| Path::new(split).join(l)));
        dirs.push(PathBuf::from(split));
    }
    dirs.push(PathBuf::new());
    dirs.into_iter().map(|d| d.join(stem)).collect()
}

/// A Kinetics CSV list with its videos under `root`; entries whose video is not found are in
/// [`PretrainList::missing`].
pub fn kinetics(csv_path: &Path, root: &Path) -> Result<PretrainList> {
    let csv = CsvFile::read(csv_path, "Kinetics list")?;
    let cols = columns(&csv)?;
    let rows = &csv.rows[1..];
    let non_empty = |s: &str| (!s.is_empty()).then_some(s.to_string());
    // (row, label, stem, names) per entry.
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        if row.fields.len() != cols.count {
            return Err(csv.error_at(
                row,
                &format!(
                    "expected {} fields as in the header, found {}: `{}`",
                    cols.count,
                    row.fields.len(),
                    row.fields.join(",")
                ),
            ));
        }
        let id = &row.fields[cols.youtube_id];
        if id.is_empty() || id.contains(['/', '\\']) {
            return Err(csv.bad_field(row, "a YouTube id", id));
        }
        let start = whole_seconds(&csv, row, &row.fields[cols.time_start])?;
        let end = whole_seconds(&csv, row, &row.fields[cols.time_end])?;
        let label = cols.label.and_then(|i| non_empty(&row.fields[i]));
        let split = cols.split.and_then(|i| non_empty(&row.fields[i]));
        let stem = format!("{id}_{start:06}_{end:06}");
        let names = candidates(&stem, label.as_deref(), split.as_deref());
        entries.push((row.line, label, names));
    }
    let classes = sorted_classes(entries.iter().filter_map(|(_, l, _)| l.as_deref()));
    let mut samples = Vec::with_capacity(entries.len());
    let mut missing = Vec::new();
    for (line, label, names) in entries {
        let labels = label
            .and_then(|l| classes.binary_search(&l).ok())
            .into_iter()
            .collect();
        match find_listed(root, &names) {
            Some(video) => samples.push(PretrainSample { video, labels }),
            None => missing.push(MissingVideo {
                line,
                looked_for: names,
            }),
        }
    }
    if samples.is_empty() && missing.is_empty() {
        candle_core::bail!("{} lists no videos", csv_path.display())
    }
    let file = csv_path.file_name().unwrap_or_default().to_string_lossy();
    Ok(PretrainList {
        name: format!("kinetics {file}"),
        classes,
        samples,
        missing,
    })
}
