//! UCF101 (`ucfTrainTestlist/`) and CCL's UCF51 subset.
//!
//! - `classInd.txt`: `1 ApplyEyeMakeup`, 1-based and consecutive;
//! - `trainlist0N.txt`: `ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1` (1-based label);
//! - `testlist0N.txt`: `ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi`, no label.
//!
//! The label always comes from the folder, as MMAction2 and XKD's author's loaders do (for test
//! lists there is nothing else); a train-list label that disagrees with the folder is an error, since
//! it means the class index and the list do not belong together. The file name is never used for the
//! class: UCF101's `HandstandPushups` folder holds `v_HandStandPushups_*` files.

use super::list_file::{msg, parse_index, relative_video_path, ListFile};
use super::{Sample, Split};
use candle_core::Result;
use std::collections::HashMap;
use std::path::{Component, Path};

/// CCL's UCF51 classes in CCL's label order: the audio feature folders as Python's `sorted` lists
/// them (`util_scripts/ucf101_json.py` writes `labels = sorted(audio_dir.iterdir())`). This is
/// byte order, so `HammerThrow` comes before `Hammering`, unlike UCF101's `classInd.txt`, which has
/// `35 Hammering`, `36 HammerThrow`; following CCL keeps label ids compatible with its heads.
pub const UCF51_CLASSES: [&str; 51] = [
    "ApplyEyeMakeup",
    "ApplyLipstick",
    "Archery",
    "BabyCrawling",
    "BalanceBeam",
    "BandMarching",
    "BasketballDunk",
    "BlowDryHair",
    "BlowingCandles",
    "BodyWeightSquats",
    "Bowling",
    "BoxingPunchingBag",
    "BoxingSpeedBag",
    "BrushingTeeth",
    "CliffDiving",
    "CricketBowling",
    "CricketShot",
    "CuttingInKitchen",
    "FieldHockeyPenalty",
    "FloorGymnastics",
    "FrisbeeCatch",
    "FrontCrawl",
    "Haircut",
    "HammerThrow",
    "Hammering",
    "HandstandPushups",
    "HandstandWalking",
    "HeadMassage",
    "IceDancing",
    "Knitting",
    "LongJump",
    "MoppingFloor",
    "ParallelBars",
    "PlayingCello",
    "PlayingDaf",
    "PlayingDhol",
    "PlayingFlute",
    "PlayingSitar",
    "Rafting",
    "ShavingBeard",
    "Shotput",
    "SkyDiving",
    "SoccerPenalty",
    "StillRings",
    "SumoWrestling",
    "Surfing",
    "TableTennisShot",
    "Typing",
    "UnevenBars",
    "WallPushups",
    "WritingOnBoard",
];

/// The class names of `classInd.txt`, in index order. Indices must run 1, 2, 3, ... and names
/// must be unique.
pub fn read_class_index(path: &Path) -> Result<Vec<String>> {
    let list = ListFile::read(path, "UCF101 class index")?;
    let mut classes: Vec<String> = Vec::with_capacity(list.records.len());
    for r in &list.records {
        let [index, name] = r.fields.as_slice() else {
            return Err(list.malformed(r, "`<index> <ClassName>`"));
        };
        let index = parse_index(&list, r, index, "a class index")?;
        if index != classes.len() + 1 {
            return Err(list.bad_field(
                r,
                &format!(
                    "class index {} (indices run 1, 2, 3, ...)",
                    classes.len() + 1
                ),
                &index.to_string(),
            ));
        }
        if classes.contains(name) {
            return Err(list.error_at(r, &format!("class `{name}` is listed twice")));
        }
        classes.push(name.clone());
    }
    if classes.is_empty() {
        return Err(msg(format!("{} lists no classes", path.display())));
    }
    Ok(classes)
}

/// UCF101 fold `fold` (1, 2 or 3) from the folder holding `classInd.txt`, `trainlist0N.txt` and
/// `testlist0N.txt`.
pub fn ucf101(split_dir: &Path, fold: u8) -> Result<Split> {
    super::Fold::One(fold).numbers()?;
    let classes = read_class_index(&split_dir.join("classInd.txt"))?;
    let index: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let train = read_video_list(
        &split_dir.join(format!("trainlist{fold:02}.txt")),
        &index,
        ListKind::Train,
    )?;
    let test = read_video_list(
        &split_dir.join(format!("testlist{fold:02}.txt")),
        &index,
        ListKind::Test,
    )?;
    Ok(Split {
        name: format!("ucf101 fold {fold}"),
        fold: Some(fold),
        classes,
        train,
        test,
    })
}

/// UCF51 fold `fold`: UCF101's lists limited to [`UCF51_CLASSES`] and relabelled 0..50 in that
/// order. `classInd.txt` must hold all 51 names.
pub fn ucf51(split_dir: &Path, fold: u8) -> Result<Split> {
    ucf101(split_dir, fold)?
        .restrict_classes(&UCF51_CLASSES, &format!("ucf51 fold {fold}"))
        .map_err(|e| msg(format!("UCF51 from {}: {e}", split_dir.display())))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ListKind {
    Train,
    Test,
}

/// One train or test list: `<Class>/<video> [label]`, the class being the folder.
fn read_video_list(
    path: &Path,
    index: &HashMap<&str, usize>,
    kind: ListKind,
) -> Result<Vec<Sample>> {
    let what = match kind {
        ListKind::Train => "UCF101 train list",
        ListKind::Test => "UCF101 test list",
    };
    let list = ListFile::read(path, what)?;
    let expected = match kind {
        ListKind::Train => "`<Class>/<video>.avi <label>`",
        ListKind::Test => "`<Class>/<video>.avi`",
    };
    let mut samples = Vec::with_capacity(list.records.len());
    for r in &list.records {
        let (video, label_field) = match r.fields.as_slice() {
            [video] => (video, None),
            // Test lists have no label; some redistributed copies add one, checked like a train label.
            [video, label] => (video, Some(label)),
            _ => return Err(list.malformed(r, expected)),
        };
        if kind == ListKind::Train && label_field.is_none() {
            return Err(list.malformed(r, expected));
        }
        let video = relative_video_path(&list, r, video)?;
        let components: Vec<&str> = video
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => s.to_str(),
                _ => None,
            })
            .collect();
        let [class, _file] = components.as_slice() else {
            return Err(list.bad_field(
                r,
                "a path `<Class>/<video>`",
                &video.display().to_string(),
            ));
        };
        let label = *index.get(class).ok_or_else(|| {
            list.error_at(
                r,
                &format!(
                    "class folder `{class}` is not in classInd.txt ({} classes)",
                    index.len()
                ),
            )
        })?;
        if let Some(field) = label_field {
            let given = parse_index(&list, r, field, "a 1-based class label")?;
            if given != label + 1 {
                return Err(list.error_at(
                    r,
                    &format!(
                        "label {given} disagrees with the folder `{class}`, which is class {} in classInd.txt",
                        label + 1
                    ),
                ));
            }
        }
        samples.push(Sample { video, label });
    }
    if samples.is_empty() {
        return Err(msg(format!("{} lists no videos", path.display())));
    }
    Ok(samples)
}
