//! Reading the text lists that describe splits: one record per line, whitespace-separated fields.
//!
//! The official files differ in small ways that must not matter: UCF101's lists end lines with CRLF,
//! HMDB51's lines end with a trailing space, some copies start with a UTF-8 byte-order mark, and
//! most end with a blank line. Errors name the file, and the line (1-based) for malformed records.

use candle_core::Result;
use std::path::{Path, PathBuf};

pub(super) fn msg(s: String) -> candle_core::Error {
    candle_core::Error::Msg(s)
}

/// The non-blank lines of a list file, each split into whitespace-separated fields.
#[derive(Debug)]
pub(super) struct ListFile {
    pub path: PathBuf,
    pub records: Vec<Record>,
}

#[derive(Debug)]
pub(super) struct Record {
    /// 1-based, counting blank lines too, so it matches what an editor shows.
    pub line: usize,
    pub fields: Vec<String>,
}

/// The UTF-8 text of a list file; `what` says what the file is for ("UCF101 class index") in
/// the error when it is missing or unreadable. A byte-order mark is the caller's to strip.
pub fn read_text(path: &Path, what: &str) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => msg(format!("missing {what} file {}", path.display())),
        _ => msg(format!("reading {what} file {}: {e}", path.display())),
    })?;
    String::from_utf8(bytes).map_err(|e| msg(format!("{} is not UTF-8 text: {e}", path.display())))
}

impl ListFile {
    /// Reads `path`; `what` says what the file is for ("UCF101 class index") in the error when it
    /// is missing.
    pub fn read(path: &Path, what: &str) -> Result<Self> {
        let text = read_text(path, what)?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let records = text
            .split('\n')
            .enumerate()
            .filter_map(|(i, line)| {
                let fields: Vec<String> = line.split_whitespace().map(str::to_string).collect();
                (!fields.is_empty()).then_some(Record {
                    line: i + 1,
                    fields,
                })
            })
            .collect();
        Ok(Self {
            path: path.to_path_buf(),
            records,
        })
    }

    /// An error about one record: "<file>:<line>: expected <expected>, found `<the line>`".
    pub fn malformed(&self, r: &Record, expected: &str) -> candle_core::Error {
        msg(format!(
            "{}:{}: expected {expected}, found `{}`",
            self.path.display(),
            r.line,
            r.fields.join(" ")
        ))
    }

    /// An error about one field of a record.
    pub fn bad_field(&self, r: &Record, expected: &str, found: &str) -> candle_core::Error {
        msg(format!(
            "{}:{}: expected {expected}, found `{found}`",
            self.path.display(),
            r.line
        ))
    }

    /// An error about one record with a free-form explanation.
    pub fn error_at(&self, r: &Record, why: &str) -> candle_core::Error {
        msg(format!("{}:{}: {why}", self.path.display(), r.line))
    }
}

/// A list's video path as a relative path: Windows separators become `/`, a leading `./` goes.
/// Absolute paths and `..` are refused, since every video must live under the video root.
pub(super) fn relative_video_path(list: &ListFile, r: &Record, field: &str) -> Result<PathBuf> {
    let normalised = field.replace('\\', "/");
    let parts: Vec<&str> = normalised
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if normalised.starts_with('/') || parts.is_empty() || parts.contains(&"..") {
        return Err(list.malformed(r, "a video path relative to the video root"));
    }
    Ok(parts.iter().collect())
}

/// Parses a non-negative integer field, or explains what was expected.
pub(super) fn parse_index(list: &ListFile, r: &Record, field: &str, what: &str) -> Result<usize> {
    field
        .parse::<usize>()
        .map_err(|_| list.bad_field(r, &format!("{what} (a non-negative integer)"), field))
}
