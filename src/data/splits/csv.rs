//! The comma-separated lists of Kinetics and AudioSet: one record per line, fields split at commas
//! outside double quotes, `""` inside quotes for a quote. Whitespace around a field is dropped, so
//! AudioSet's `, `-separated lines with a quoted field after the space (`abc, 30.000, 40.000,
//! "/m/09x0r,/m/05zppz"`) read as four fields. Blank lines and lines starting with `#` (AudioSet's
//! comment header) are skipped; a UTF-8 byte-order mark and CRLF endings are accepted. Errors name
//! the file and the 1-based line.

use super::list_file::msg;
use candle_core::Result;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub(super) struct CsvFile {
    pub path: PathBuf,
    pub rows: Vec<CsvRow>,
}

#[derive(Debug)]
pub(super) struct CsvRow {
    /// 1-based, counting skipped lines too.
    pub line: usize,
    pub fields: Vec<String>,
}

/// The fields of one line, or what is wrong with it.
pub(super) fn split_csv_line(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c != ',' && c.is_whitespace()) {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err("a quoted field is not closed".into()),
                }
            }
            while chars.peek().is_some_and(|c| *c != ',' && c.is_whitespace()) {
                chars.next();
            }
            if chars.peek().is_some_and(|c| *c != ',') {
                return Err(format!("text after the quoted field `{field}`"));
            }
        } else {
            while let Some(c) = chars.peek().filter(|c| **c != ',') {
                field.push(*c);
                chars.next();
            }
            field.truncate(field.trim_end().len());
        }
        fields.push(field);
        if chars.next().is_none() {
            return Ok(fields);
        }
    }
}

impl CsvFile {
    /// Reads `path`; `what` names the file's role ("Kinetics list") in errors.
    pub fn read(path: &Path, what: &str) -> Result<Self> {
        let text = super::list_file::read_text(path, what)?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let mut rows = Vec::new();
        for (i, line) in text.split('\n').enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv_line(line)
                .map_err(|why| msg(format!("{}:{}: {why} in `{line}`", path.display(), i + 1)))?;
            rows.push(CsvRow {
                line: i + 1,
                fields,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            rows,
        })
    }

    /// An error about one row: "<file>:<line>: <why>".
    pub fn error_at(&self, row: &CsvRow, why: &str) -> candle_core::Error {
        msg(format!("{}:{}: {why}", self.path.display(), row.line))
    }

    /// An error about one field: "<file>:<line>: expected <expected>, found `<found>`".
    pub fn bad_field(&self, row: &CsvRow, expected: &str, found: &str) -> candle_core::Error {
        self.error_at(row, &format!("expected {expected}, found `{found}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::split_csv_line;

    #[test]
    fn quotes_commas_and_spaces() {
        assert_eq!(
            split_csv_line(r#""passing American football (in game)",abc-_1,3,13,train"#).unwrap(),
            [
                "passing American football (in game)",
                "abc-_1",
                "3",
                "13",
                "train"
            ]
        );
        assert_eq!(
            split_csv_line(r#"--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088""#).unwrap(),
            ["--PJHxphWEs", "30.000", "40.000", "/m/09x0r,/t/dd00088"]
        );
        assert_eq!(
            split_csv_line(r#"a,"say ""hi""",,"#).unwrap(),
            ["a", r#"say "hi""#, "", ""]
        );
        assert!(split_csv_line(r#"a,"open"#).is_err());
        assert!(split_csv_line(r#"a,"x"y"#).is_err());
    }
}
