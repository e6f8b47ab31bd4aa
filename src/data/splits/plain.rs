//! Plain lists, as MMAction2 writes them: `path label` per line (its video lists), or
//! `path n_frames label` (its rawframes lists; the frame count is ignored, the folder is counted when
//! read). Labels are 0-based integers, or class names when a classes file is given. Fields are
//! whitespace-separated, so paths cannot hold spaces (as in MMAction2).
//!
//! The optional classes file holds one class per line, either `<name>` (line i = label i) or
//! `<index> <name>` with indices running from 0 or from 1 (UCF101's `classInd.txt` works as is).

use super::list_file::{msg, parse_index, relative_video_path, ListFile};
use super::{Sample, Split};
use candle_core::Result;
use std::path::Path;

/// A split from a train list, a test list and, optionally, a classes file. Without one, the classes
/// are named by their number, "0" to the largest label.
pub fn plain_list(train: &Path, test: &Path, classes: Option<&Path>) -> Result<Split> {
    let names = classes.map(read_classes).transpose()?;
    let train_samples = read_list(train, names.as_deref())?;
    let test_samples = read_list(test, names.as_deref())?;
    let classes = match names {
        Some(names) => names,
        None => {
            let n = train_samples
                .iter()
                .chain(&test_samples)
                .map(|s| s.label + 1)
                .max()
                .unwrap_or(0);
            (0..n).map(|i| i.to_string()).collect()
        }
    };
    Ok(Split {
        name: format!("list {}", train.display()),
        fold: None,
        classes,
        train: train_samples,
        test: test_samples,
    })
}

fn read_classes(path: &Path) -> Result<Vec<String>> {
    let list = ListFile::read(path, "classes")?;
    // The first line decides the form: bare names, or `<index> <name>` counting from its index.
    let base = match list.records.first().map(|r| r.fields.as_slice()) {
        Some([index, _]) => Some(index.parse::<usize>().unwrap_or(usize::MAX)),
        _ => None,
    };
    let mut names: Vec<String> = Vec::with_capacity(list.records.len());
    for r in &list.records {
        let name = match (r.fields.as_slice(), base) {
            ([name], None) => name,
            ([index, name], Some(base)) => {
                let index = parse_index(&list, r, index, "a class index")?;
                let expected = if names.is_empty() {
                    base.min(1)
                } else {
                    base + names.len()
                };
                if index != expected {
                    return Err(list.bad_field(
                        r,
                        &format!("class index {expected} (indices run from 0 or 1, one per line)"),
                        &index.to_string(),
                    ));
                }
                name
            }
            (_, None) => return Err(list.malformed(r, "`<ClassName>` (as on the first line)")),
            (_, Some(_)) => {
                return Err(list.malformed(r, "`<index> <ClassName>` (as on the first line)"))
            }
        };
        if names.contains(name) {
            return Err(list.error_at(r, &format!("class `{name}` is listed twice")));
        }
        names.push(name.clone());
    }
    if names.is_empty() {
        return Err(msg(format!("{} lists no classes", path.display())));
    }
    Ok(names)
}

fn read_list(path: &Path, classes: Option<&[String]>) -> Result<Vec<Sample>> {
    let list = ListFile::read(path, "video list")?;
    let mut samples = Vec::with_capacity(list.records.len());
    for r in &list.records {
        let (video, label) = match r.fields.as_slice() {
            [video, label] => (video, label),
            [video, frames, label] => {
                parse_index(&list, r, frames, "a frame count")?;
                (video, label)
            }
            _ => return Err(list.malformed(r, "`<path> <label>` or `<path> <n_frames> <label>`")),
        };
        let label = match (label.parse::<usize>(), classes) {
            (Ok(i), Some(names)) if i >= names.len() => {
                return Err(list.bad_field(
                    r,
                    &format!("a label below {} (the classes file's count)", names.len()),
                    label,
                ))
            }
            (Ok(i), _) => i,
            (Err(_), Some(names)) => names.iter().position(|n| n == label).ok_or_else(|| {
                list.error_at(r, &format!("class `{label}` is not in the classes file"))
            })?,
            (Err(_), None) => {
                return Err(list.bad_field(r, "a 0-based integer label", label));
            }
        };
        samples.push(Sample {
            video: relative_video_path(&list, r, video)?,
            label,
        });
    }
    if samples.is_empty() {
        return Err(msg(format!("{} lists no videos", path.display())));
    }
    Ok(samples)
}
