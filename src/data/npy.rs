//! NumPy `.npy` files holding one float vector, as the CCL release ships its audio-teacher features
//! (`audiocnn14embed512_features/<Class>/<video>.npy`, float32 of shape (512,)).
//!
//! The format (numpy/lib/format.py): the magic `\x93NUMPY`, a major and minor version, the header
//! length (u16 little-endian in version 1, u32 in versions 2 and 3), then the header, a Python dict
//! literal such as `{'descr': '<f4', 'fortran_order': False, 'shape': (512,), }` (ASCII/latin-1 in
//! versions 1 and 2, UTF-8 in version 3), then the raw data.
//!
//! Only what a feature vector can be is accepted: little-endian `<f4` (or `<f8`, converted to f32),
//! C order, shape `(D,)` or `(1, D)`. Everything else (Fortran order, big endian, object or
//! structured dtypes, other shapes, a header or data that the file does not hold, trailing bytes,
//! values that are not finite) is an error naming the file. Sizes are checked against the file's
//! length before anything is allocated, so a header claiming a huge shape costs nothing.

use candle_core::{Error, Result};
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

fn err(name: &str, what: impl std::fmt::Display) -> Error {
    Error::Msg(format!("{name}: {what}"))
}

/// Reads the vector of a `.npy` file (see the module documentation for what is accepted).
pub fn read_npy_vector(path: &Path) -> Result<Vec<f32>> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| err(&name, format!("cannot read: {e}")))?;
    parse_npy_vector(&bytes, &name)
}

/// The vector of a `.npy` file held in memory; `name` identifies it in errors.
pub fn parse_npy_vector(bytes: &[u8], name: &str) -> Result<Vec<f32>> {
    let (header, data) = split_header(bytes, name)?;
    let dict = HeaderDict::parse(&header).map_err(|e| {
        err(
            name,
            format!("the .npy header is not a dict literal ({e}): {header:?}"),
        )
    })?;
    let item = dtype_size(&dict.descr, name)?;
    if dict.fortran_order {
        return Err(err(
            name,
            "fortran_order True is not supported (expected a C-order array)",
        ));
    }
    let dim = vector_dim(&dict.shape, name)?;
    let need = dim
        .checked_mul(item)
        .ok_or_else(|| err(name, format!("shape {:?} is too large", dict.shape)))?;
    if data.len() != need {
        let what = if data.len() < need {
            "truncated"
        } else {
            "corrupt"
        };
        return Err(err(
            name,
            format!(
                "{what}: the header announces shape {} of {} = {need} bytes of data, the file \
                 holds {} after the header",
                shape_text(&dict.shape),
                dict.descr,
                data.len()
            ),
        ));
    }
    let values: Vec<f32> = match item {
        4 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        _ => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
    };
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(err(
            name,
            format!("value {i} is not finite ({})", values[i]),
        ));
    }
    Ok(values)
}

/// The header text and the data after it.
fn split_header<'a>(bytes: &'a [u8], name: &str) -> Result<(String, &'a [u8])> {
    if bytes.len() < MAGIC.len() + 2 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(err(
            name,
            "not a NumPy .npy file (no \\x93NUMPY magic at its start)",
        ));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len_bytes, utf8) = match major {
        1 => (2, false),
        2 => (4, false),
        3 => (4, true),
        _ => {
            return Err(err(
                name,
                format!(".npy format version {major}.{minor} is not supported (1.0, 2.0, 3.0)"),
            ))
        }
    };
    let start = 8 + len_bytes;
    if bytes.len() < start {
        return Err(err(
            name,
            "truncated: the file ends inside the .npy preamble",
        ));
    }
    let mut len = [0u8; 4];
    len[..len_bytes].copy_from_slice(&bytes[8..start]);
    let header_len = u32::from_le_bytes(len) as usize;
    let end = start.checked_add(header_len).filter(|&e| e <= bytes.len());
    let Some(end) = end else {
        return Err(err(
            name,
            format!(
                "truncated: the header length is {header_len} bytes, the file holds {} after \
                 the preamble",
                bytes.len() - start
            ),
        ));
    };
    let raw = &bytes[start..end];
    let header = if utf8 {
        std::str::from_utf8(raw)
            .map_err(|e| err(name, format!("the version 3 header is not UTF-8: {e}")))?
            .to_string()
    } else {
        // Versions 1 and 2 are latin-1; every byte is one character.
        raw.iter().map(|&b| b as char).collect()
    };
    Ok((header, &bytes[end..]))
}

/// The item size of a supported dtype.
fn dtype_size(descr: &str, name: &str) -> Result<usize> {
    match descr {
        "<f4" => Ok(4),
        "<f8" => Ok(8),
        ">f4" | ">f8" => Err(err(
            name,
            format!("dtype {descr} is big-endian; expected little-endian <f4 (or <f8)"),
        )),
        d if d.contains('O') => Err(err(
            name,
            format!("dtype {d} is an object array (pickled Python objects); expected <f4"),
        )),
        d => Err(err(
            name,
            format!("dtype {d} is not supported; expected <f4 (or <f8)"),
        )),
    }
}

/// D of a shape `(D,)` or `(1, D)`.
fn vector_dim(shape: &[usize], name: &str) -> Result<usize> {
    match shape {
        [d] | [1, d] if *d > 0 => Ok(*d),
        _ => Err(err(
            name,
            format!(
                "shape {} is not a feature vector; expected (D,) or (1, D) with D > 0",
                shape_text(shape)
            ),
        )),
    }
}

/// A shape as Python writes it: `(512,)`, `(1, 512)`.
fn shape_text(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        s => format!(
            "({})",
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The three entries every .npy header holds.
#[derive(Debug, PartialEq)]
struct HeaderDict {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A value of the header's dict literal.
#[derive(Debug, PartialEq)]
enum Literal {
    Str(String),
    Bool(bool),
    Int(usize),
    Tuple(Vec<Literal>),
    /// A list: structured dtypes write `descr` as one.
    List,
}

impl HeaderDict {
    fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            at: 0,
        };
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        p.expect(b'{')?;
        loop {
            if p.eat(b'}') {
                break;
            }
            let key = match p.value()? {
                Literal::Str(k) => k,
                v => return Err(format!("a key that is not a string: {v:?}")),
            };
            p.expect(b':')?;
            let value = p.value()?;
            match (key.as_str(), value) {
                ("descr", Literal::Str(d)) => descr = Some(d),
                ("descr", Literal::List) => {
                    return Err("a structured dtype (descr is a list of fields)".into())
                }
                ("fortran_order", Literal::Bool(b)) => fortran = Some(b),
                ("shape", Literal::Tuple(items)) => {
                    let dims = items
                        .into_iter()
                        .map(|d| match d {
                            Literal::Int(n) => Ok(n),
                            other => Err(format!("a shape entry that is not an int: {other:?}")),
                        })
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    shape = Some(dims);
                }
                (k @ ("descr" | "fortran_order" | "shape"), v) => {
                    return Err(format!("`{k}` has an unexpected value {v:?}"))
                }
                _ => {}
            }
            if !p.eat(b',') {
                p.expect(b'}')?;
                break;
            }
        }
        Ok(Self {
            descr: descr.ok_or("no `descr`")?,
            fortran_order: fortran.ok_or("no `fortran_order`")?,
            shape: shape.ok_or("no `shape`")?,
        })
    }
}

/// A small reader of Python literals: strings, True/False, non-negative ints, tuples.
struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.at < self.s.len() && self.s[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_space();
        if self.s.get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", c as char, self.at))
        }
    }

    fn value(&mut self) -> std::result::Result<Literal, String> {
        self.skip_space();
        match self.s.get(self.at) {
            Some(&q @ (b'\'' | b'"')) => {
                self.at += 1;
                let start = self.at;
                while self.at < self.s.len() && self.s[self.at] != q {
                    self.at += 1;
                }
                if self.at >= self.s.len() {
                    return Err("an unterminated string".into());
                }
                let text = String::from_utf8_lossy(&self.s[start..self.at]).into_owned();
                self.at += 1;
                Ok(Literal::Str(text))
            }
            Some(b'(') => {
                self.at += 1;
                let mut items = Vec::new();
                loop {
                    if self.eat(b')') {
                        return Ok(Literal::Tuple(items));
                    }
                    items.push(self.value()?);
                    if !self.eat(b',') {
                        self.expect(b')')?;
                        return Ok(Literal::Tuple(items));
                    }
                }
            }
            Some(b'[') => Ok(Literal::List),
            Some(c) if c.is_ascii_digit() => {
                let start = self.at;
                while self.at < self.s.len() && self.s[self.at].is_ascii_digit() {
                    self.at += 1;
                }
                // numpy writes Python ints; a trailing `L` is Python 2's long.
                let digits = std::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
                self.eat(b'L');
                digits
                    .parse()
                    .map(Literal::Int)
                    .map_err(|e| format!("an int that does not fit: {digits} ({e})"))
            }
            _ => {
                for (word, b) in [("True", true), ("False", false)] {
                    if self.s[self.at..].starts_with(word.as_bytes()) {
                        self.at += word.len();
                        return Ok(Literal::Bool(b));
                    }
                }
                Err(format!("an unexpected value at byte {}", self.at))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_dict_parses_numpy_headers() {
        let d = HeaderDict::parse("{'descr': '<f4', 'fortran_order': False, 'shape': (512,), }")
            .unwrap();
        assert_eq!(d.descr, "<f4");
        assert_eq!(d.shape, vec![512]);
        let d =
            HeaderDict::parse("{'descr': '<f8', 'fortran_order': True, 'shape': (1, 3)}").unwrap();
        assert!(d.fortran_order);
        assert_eq!(d.shape, vec![1, 3]);
        assert!(HeaderDict::parse(
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}"
        )
        .is_err());
        assert!(HeaderDict::parse("{'descr': '<f4', 'shape': (2,)}").is_err());
    }
}
