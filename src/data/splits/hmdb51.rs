//! HMDB51 (`testTrainMulti_7030_splits/`): 153 files `<class>_test_split{1,2,3}.txt`, one per class
//! and fold, each line `<video>.avi <id>` with 1 = train, 2 = test, 0 = unused.
//!
//! Classes are the class names sorted by bytes (Python's `sorted`), the order both MMAction2
//! (`tools/data/parse_file_list.py`: `sorted(os.listdir(rawframes))`, written to its `classInd.txt`)
//! and XKD's author's evaluation loader (`OOD-VSSL datasets/loader/hmdb.py`:
//! `classes = sorted(os.listdir(DATA_PATH))`, label = position) use; the class folders and the
//! split-file prefixes are the same 51 names. Here they come from the split files, so the splits
//! parse without the videos. Videos live under `<root>/<class>/<video>`.

use super::list_file::{msg, parse_index, relative_video_path, ListFile};
use super::{Fold, Sample, Split};
use candle_core::Result;
use std::collections::BTreeSet;
use std::path::Path;

/// The class names for which `split_dir` holds split files (any fold), sorted by bytes.
pub fn hmdb51_classes(split_dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(split_dir).map_err(|e| {
        msg(format!(
            "reading the HMDB51 split folder {}: {e}",
            split_dir.display()
        ))
    })?;
    let mut classes = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(|e| msg(format!("listing {}: {e}", split_dir.display())))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let class = ["1", "2", "3"]
            .iter()
            .find_map(|n| name.strip_suffix(&format!("_test_split{n}.txt")));
        if let Some(class) = class.filter(|c| !c.is_empty()) {
            classes.insert(class.to_string());
        }
    }
    if classes.is_empty() {
        return Err(msg(format!(
            "no HMDB51 split files (`<class>_test_split1.txt`, ...) in {}",
            split_dir.display()
        )));
    }
    // A BTreeSet of Strings iterates in byte order, which is Python's sort order for str.
    Ok(classes.into_iter().collect())
}

/// HMDB51 fold `fold` (1, 2 or 3). Every class must have its `<class>_test_split<fold>.txt`.
pub fn hmdb51(split_dir: &Path, fold: u8) -> Result<Split> {
    Fold::One(fold).numbers()?;
    let classes = hmdb51_classes(split_dir)?;
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (label, class) in classes.iter().enumerate() {
        let list = ListFile::read(
            &split_dir.join(format!("{class}_test_split{fold}.txt")),
            "HMDB51 split",
        )?;
        for r in &list.records {
            let [video, id] = r.fields.as_slice() else {
                return Err(list.malformed(r, "`<video>.avi <0|1|2>`"));
            };
            let file = relative_video_path(&list, r, video)?;
            if file.components().count() != 1 {
                return Err(list.bad_field(r, "a bare file name `<video>.avi`", video));
            }
            let sample = Sample {
                video: Path::new(class).join(file),
                label,
            };
            match parse_index(&list, r, id, "0 (unused), 1 (train) or 2 (test)")? {
                0 => {}
                1 => train.push(sample),
                2 => test.push(sample),
                other => {
                    return Err(list.bad_field(
                        r,
                        "0 (unused), 1 (train) or 2 (test)",
                        &other.to_string(),
                    ))
                }
            }
        }
    }
    Ok(Split {
        name: format!("hmdb51 fold {fold}"),
        fold: Some(fold),
        classes,
        train,
        test,
    })
}
