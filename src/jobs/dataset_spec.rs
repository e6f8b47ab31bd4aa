//! Where a benchmark lives on disk and which folds to use, as the command line gives it:
//! `--dataset ucf101|ucf51|hmdb51|list --root R [--splits S] [--videos V] --fold 1|2|3|all`.
//!
//! The official archives unpack to a video folder and a split folder side by side
//! (`UCF-101/` + `ucfTrainTestlist/`, `hmdb51/` + `testTrainMulti_7030_splits/`); `--root` may be
//! their parent, or the video folder itself with `--splits` pointing at the lists. HMDB51's split
//! folder is whichever folder holds a `<class>_test_split1.txt`: the root, a subfolder or one level
//! below, whatever the classes are called.

use crate::data::splits::{load_folds, plain_list, Fold, Split, SplitFormat};
use candle_core::Result;
use std::path::{Path, PathBuf};

/// Which benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetKind {
    Ucf101,
    Ucf51,
    Hmdb51,
    /// Plain `path label` lists (`--train-list`, `--test-list`).
    List,
}

impl std::str::FromStr for DatasetKind {
    type Err = candle_core::Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.trim().eq_ignore_ascii_case("list") {
            return Ok(Self::List);
        }
        let format: SplitFormat = s.parse().map_err(|_| {
            candle_core::Error::Msg(format!(
                "unknown dataset `{s}`: expected ucf101, ucf51, hmdb51 or list"
            ))
        })?;
        Ok(match format {
            SplitFormat::Ucf101 => Self::Ucf101,
            SplitFormat::Ucf51 => Self::Ucf51,
            SplitFormat::Hmdb51 => Self::Hmdb51,
        })
    }
}

impl DatasetKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ucf101 => "ucf101",
            Self::Ucf51 => "ucf51",
            Self::Hmdb51 => "hmdb51",
            Self::List => "list",
        }
    }

    /// (video folder, split folder) names of the official archives.
    fn official_dirs(self) -> (&'static str, &'static str) {
        match self {
            Self::Hmdb51 => ("hmdb51", "testTrainMulti_7030_splits"),
            _ => ("UCF-101", "ucfTrainTestlist"),
        }
    }
}

/// A dataset on disk and the folds asked for.
#[derive(Debug, Clone)]
pub struct DatasetSpec {
    pub kind: DatasetKind,
    pub root: PathBuf,
    /// The split lists' folder; found under `root` when `None`.
    pub splits: Option<PathBuf>,
    /// The video folder; found under `root` when `None`.
    pub videos: Option<PathBuf>,
    pub fold: Fold,
    /// `list` datasets: the train and test lists and an optional class list.
    pub train_list: Option<PathBuf>,
    pub test_list: Option<PathBuf>,
    pub class_list: Option<PathBuf>,
    /// The frame rate of frame folders that carry no `meta.json` (`--fps`); without it such
    /// folders are refused where the rate matters, never given an assumed one.
    pub fps: Option<f64>,
}

impl DatasetSpec {
    /// A benchmark with official splits under `root`.
    pub fn new(kind: DatasetKind, root: &Path, fold: Fold) -> Self {
        Self {
            kind,
            root: root.to_path_buf(),
            splits: None,
            videos: None,
            fold,
            train_list: None,
            test_list: None,
            class_list: None,
            fps: None,
        }
    }

    /// The folder the listed video paths are relative to.
    pub fn video_root(&self) -> PathBuf {
        if let Some(v) = &self.videos {
            return v.clone();
        }
        let official = self.root.join(self.kind.official_dirs().0);
        if self.kind != DatasetKind::List && official.is_dir() {
            official
        } else {
            self.root.clone()
        }
    }

    fn split_dir(&self) -> Result<PathBuf> {
        if let Some(s) = &self.splits {
            return Ok(s.clone());
        }
        if self.kind == DatasetKind::Hmdb51 {
            return find_hmdb51_split_dir(&self.root);
        }
        let name = self.kind.official_dirs().1;
        let candidates = [
            self.root.join(name),
            self.root.join("splits"),
            self.root.clone(),
        ];
        let marker = "classInd.txt";
        candidates
            .iter()
            .find(|d| d.join(marker).is_file())
            .cloned()
            .ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "no {} split lists under {}: looked for {marker} in {}, splits/ and the root \
                     itself; pass --splits DIR",
                    self.kind.name(),
                    self.root.display(),
                    name
                ))
            })
    }

    /// The splits of the folds asked for (a `list` dataset has one, with no fold number).
    pub fn load(&self) -> Result<Vec<Split>> {
        let format = match self.kind {
            DatasetKind::Ucf101 => SplitFormat::Ucf101,
            DatasetKind::Ucf51 => SplitFormat::Ucf51,
            DatasetKind::Hmdb51 => SplitFormat::Hmdb51,
            DatasetKind::List => {
                let (Some(train), Some(test)) = (&self.train_list, &self.test_list) else {
                    candle_core::bail!("--dataset list needs --train-list and --test-list")
                };
                return Ok(vec![plain_list(train, test, self.class_list.as_deref())?]);
            }
        };
        load_folds(format, &self.split_dir()?, self.fold)
    }
}

/// What marks a folder of HMDB51 split files: any class's fold-1 file.
const HMDB51_SPLIT_PATTERN: &str = "*_test_split1.txt";

/// Whether `dir` holds a `<class>_test_split1.txt` (any class name: a subset of the 51 classes, or
/// classes of another dataset in HMDB51's format).
fn has_hmdb51_split_file(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name()
            .to_str()
            .and_then(|n| n.strip_suffix("_test_split1.txt"))
            .is_some_and(|class| !class.is_empty())
            && e.path().is_file()
    })
}

/// The subfolders of `dir`, sorted (none when it cannot be listed).
fn subfolders(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// How many of the deepest folders searched an error names before it just counts them.
const DEEP_FOLDERS_NAMED: usize = 24;

/// The folder of HMDB51 split files under `root`: the root itself, else one of its subfolders
/// (`testTrainMulti_7030_splits/`), else one level below (`test_train_splits/testTrainMulti_7030_splits/`),
/// whichever first holds a `<class>_test_split1.txt`. Two folders at that depth are ambiguous.
fn find_hmdb51_split_dir(root: &Path) -> Result<PathBuf> {
    let level1 = subfolders(root);
    let level2: Vec<PathBuf> = level1.iter().flat_map(|d| subfolders(d)).collect();
    let levels = [vec![root.to_path_buf()], level1, level2];
    for level in &levels {
        let found: Vec<&PathBuf> = level.iter().filter(|d| has_hmdb51_split_file(d)).collect();
        match found.as_slice() {
            [] => continue,
            [one] => return Ok((*one).clone()),
            many => {
                let names: Vec<String> = many.iter().map(|d| d.display().to_string()).collect();
                return Err(candle_core::Error::Msg(format!(
                    "hmdb51: several folders under {} hold HMDB51 split files \
                     (`{HMDB51_SPLIT_PATTERN}`): {}; pass --splits DIR to choose one",
                    root.display(),
                    names.join(", ")
                )));
            }
        }
    }
    let [top, level1, level2] = &levels;
    let mut searched: Vec<String> = top
        .iter()
        .chain(level1)
        .map(|d| d.display().to_string())
        .collect();
    searched.extend(
        level2
            .iter()
            .take(DEEP_FOLDERS_NAMED)
            .map(|d| d.display().to_string()),
    );
    if level2.len() > DEEP_FOLDERS_NAMED {
        searched.push(format!(
            "and {} more folders two levels below {}",
            level2.len() - DEEP_FOLDERS_NAMED,
            root.display()
        ));
    }
    Err(candle_core::Error::Msg(format!(
        "no hmdb51 split lists under {}: looked for a file `{HMDB51_SPLIT_PATTERN}` in {}; \
         pass --splits DIR",
        root.display(),
        searched.join(", ")
    )))
}
