//! AudioSet segment lists for pre-training (`balanced_train_segments.csv`,
//! `unbalanced_train_segments.csv`, `eval_segments.csv`):
//!
//! ```text
//! # Segments csv created Sun Mar  5 10:54:31 2017
//! # num_ytids=22160, num_segs=22160, num_unique_labels=527, num_positive_labels=52882
//! # YTID, start_seconds, end_seconds, positive_labels
//! --PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"
//! ```
//!
//! `#` lines are comments; a first line starting `YTID` (a copy with a plain header) is skipped.
//! The labels column is optional. Labels are the `positive_labels` MIDs; with the ontology's
//! `class_labels_indices.csv` (`index,mid,display_name`) the classes are its display names in
//! index order, else the distinct MIDs sorted.
//!
//! What is accepted on disk, directly under the video root, as a container with any of the usual
//! extensions or a frame folder, in this order:
//! 1. `<YTID>_<start>_<end>` with the times as the list writes them (`--PJHxphWEs_30.000_40.000`);
//! 2. `<YTID>_<start>_<end>` with whole-second times as integers (`--PJHxphWEs_30_40`);
//! 3. `<YTID>` alone (one segment per video, as AudioSet has).

use super::csv::{CsvFile, CsvRow};
use super::pretrain_list::{
    find_listed, sorted_classes, MissingVideo, PretrainList, PretrainSample,
};
use candle_core::Result;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `30.000` -> `30`; `None` when the value is not a whole number of seconds.
fn whole(text: &str) -> Option<u64> {
    let v = text.parse::<f64>().ok()?;
    (v >= 0.0 && v.fract() == 0.0 && v < 1e15).then_some(v as u64)
}

fn seconds<'a>(csv: &CsvFile, row: &CsvRow, field: &'a str) -> Result<&'a str> {
    match field.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(field),
        _ => Err(csv.bad_field(row, "a time in seconds", field)),
    }
}

/// The class names and MID -> index of `class_labels_indices.csv`.
fn read_class_index(path: &Path) -> Result<(Vec<String>, HashMap<String, usize>)> {
    let csv = CsvFile::read(path, "AudioSet class index")?;
    let mut names = Vec::new();
    let mut by_mid = HashMap::new();
    for row in &csv.rows {
        let [index, mid, name] = row.fields.as_slice() else {
            return Err(csv.bad_field(row, "`index,mid,display_name`", &row.fields.join(",")));
        };
        if index.eq_ignore_ascii_case("index") && names.is_empty() {
            continue;
        }
        if index.parse::<usize>().ok() != Some(names.len()) {
            return Err(csv.bad_field(row, &format!("class index {}", names.len()), index));
        }
        if by_mid.insert(mid.clone(), names.len()).is_some() {
            return Err(csv.error_at(row, &format!("MID `{mid}` is listed twice")));
        }
        names.push(name.clone());
    }
    if names.is_empty() {
        candle_core::bail!("{} lists no classes", path.display())
    }
    Ok((names, by_mid))
}

/// An AudioSet segment list with its videos under `root`, labelled through `class_index`
/// (`class_labels_indices.csv`) when given. Entries whose video is not found are in
/// [`PretrainList::missing`].
pub fn audioset(csv_path: &Path, root: &Path, class_index: Option<&Path>) -> Result<PretrainList> {
    let csv = CsvFile::read(csv_path, "AudioSet segment list")?;
    let mut rows: &[CsvRow] = &csv.rows;
    if rows
        .first()
        .is_some_and(|r| r.fields[0].eq_ignore_ascii_case("ytid"))
    {
        rows = &rows[1..];
    }
    // (line, MIDs, names) per entry.
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let (id, start, end, mids) = match row.fields.as_slice() {
            [id, start, end] => (id, start, end, Vec::new()),
            [id, start, end, labels] => {
                let mids: Vec<String> = labels
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect();
                (id, start, end, mids)
            }
            _ => {
                return Err(csv.bad_field(
                    row,
                    "`YTID, start_seconds, end_seconds[, \"positive_labels\"]`",
                    &row.fields.join(","),
                ))
            }
        };
        if id.is_empty() || id.contains(['/', '\\']) {
            return Err(csv.bad_field(row, "a YouTube id", id));
        }
        let (start, end) = (seconds(&csv, row, start)?, seconds(&csv, row, end)?);
        let mut names = vec![PathBuf::from(format!("{id}_{start}_{end}"))];
        if let (Some(s), Some(e)) = (whole(start), whole(end)) {
            let integral = PathBuf::from(format!("{id}_{s}_{e}"));
            if integral != names[0] {
                names.push(integral);
            }
        }
        names.push(PathBuf::from(id));
        entries.push((row, mids, names));
    }
    let (classes, by_mid) = match class_index {
        Some(path) => read_class_index(path)?,
        None => {
            let classes = sorted_classes(
                entries
                    .iter()
                    .flat_map(|(_, m, _)| m.iter().map(String::as_str)),
            );
            let by_mid = classes
                .iter()
                .enumerate()
                .map(|(i, m)| (m.clone(), i))
                .collect();
            (classes, by_mid)
        }
    };
    let mut samples = Vec::with_capacity(entries.len());
    let mut missing = Vec::new();
    for (row, mids, names) in entries {
        let labels = mids
            .iter()
            .map(|m| {
                by_mid.get(m).copied().ok_or_else(|| {
                    csv.error_at(row, &format!("label `{m}` is not in the class index"))
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        match find_listed(root, &names) {
            Some(video) => samples.push(PretrainSample { video, labels }),
            None => missing.push(MissingVideo {
                line: row.line,
                looked_for: names,
            }),
        }
    }
    if samples.is_empty() && missing.is_empty() {
        candle_core::bail!("{} lists no segments", csv_path.display())
    }
    let file = csv_path.file_name().unwrap_or_default().to_string_lossy();
    Ok(PretrainList {
        name: format!("audioset {file}"),
        classes,
        samples,
        missing,
    })
}
