//! The zip container of `torch.save` (torch >= 1.6), read directly: the end of the central directory
//! is found by scanning backwards, zip64 records are honoured, and only stored (uncompressed) entries
//! are accepted, as torch writes them. (The `zip` crate mis-locates the central directory of some
//! torch files.) Every offset and length from the file is bounds-checked.

use super::pth::msg;
use candle_core::Result;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Where a storage's bytes lie in the file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) offset: u64,
    pub(super) len: u64,
}

/// Reads `len` bytes at `offset`, checking first that they lie inside the file.
pub(super) fn read_at(
    path: &Path,
    file: &mut File,
    file_len: u64,
    offset: u64,
    len: u64,
    what: &str,
) -> Result<Vec<u8>> {
    let end = offset.checked_add(len);
    if end.is_none_or(|end| end > file_len) {
        let remain = file_len.saturating_sub(offset);
        return Err(msg(format!(
            "truncated checkpoint {}: {what} needs {len} bytes at offset {offset}, {remain} remain",
            path.display()
        )));
    }
    let len = usize::try_from(len).map_err(|_| {
        msg(format!(
            "{}: {what} too large ({len} bytes)",
            path.display()
        ))
    })?;
    let mut buf = vec![0u8; len];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut buf))
        .map_err(|e| msg(format!("reading {what} of {}: {e}", path.display())))?;
    Ok(buf)
}

pub(super) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}
pub(super) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}
pub(super) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// One member of a zip archive.
#[derive(Debug, Clone)]
pub(super) struct ZipEntry {
    method: u16,
    compressed: u64,
    size: u64,
    local_header: u64,
}

/// Reads the central directory of a zip archive.
pub(super) fn zip_directory(
    path: &Path,
    file: &mut File,
    file_len: u64,
) -> Result<Vec<(String, ZipEntry)>> {
    let corrupt = |what: &str| msg(format!("corrupt zip checkpoint {}: {what}", path.display()));
    // The end-of-central-directory record is 22 bytes plus a comment of up to 65535 bytes.
    let tail_len = file_len.min(22 + 65535 + 20);
    let tail_start = file_len - tail_len;
    let tail = read_at(path, file, file_len, tail_start, tail_len, "zip trailer")?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail.get(i..i + 4) == Some(b"PK\x05\x06"))
        .ok_or_else(|| corrupt("no end-of-central-directory record (file truncated?)"))?;
    let mut entries = u16_at(&tail, eocd + 10).ok_or_else(|| corrupt("short EOCD"))? as u64;
    let mut cd_size = u32_at(&tail, eocd + 12).ok_or_else(|| corrupt("short EOCD"))? as u64;
    let mut cd_offset = u32_at(&tail, eocd + 16).ok_or_else(|| corrupt("short EOCD"))? as u64;
    // torch always writes a zip64 end record and its locator just before the classic record.
    if eocd >= 20 && tail.get(eocd - 20..eocd - 16) == Some(b"PK\x06\x07") {
        let z64 = u64_at(&tail, eocd - 20 + 8).ok_or_else(|| corrupt("short zip64 locator"))?;
        let rec = read_at(path, file, file_len, z64, 56, "zip64 end record")?;
        if rec.get(0..4) != Some(b"PK\x06\x06") {
            return Err(corrupt("zip64 locator points to no zip64 record"));
        }
        entries = u64_at(&rec, 32).ok_or_else(|| corrupt("short zip64 record"))?;
        cd_size = u64_at(&rec, 40).ok_or_else(|| corrupt("short zip64 record"))?;
        cd_offset = u64_at(&rec, 48).ok_or_else(|| corrupt("short zip64 record"))?;
    }
    let cd = read_at(
        path,
        file,
        file_len,
        cd_offset,
        cd_size,
        "zip central directory",
    )?;
    let mut out = Vec::new();
    let mut pos = 0usize;
    for _ in 0..entries {
        if cd.get(pos..pos + 4) != Some(b"PK\x01\x02") {
            return Err(corrupt("bad central directory entry"));
        }
        let h = |off: usize| pos.saturating_add(off);
        let bad = || corrupt("short central directory entry");
        let method = u16_at(&cd, h(10)).ok_or_else(bad)?;
        let mut compressed = u32_at(&cd, h(20)).ok_or_else(bad)? as u64;
        let mut size = u32_at(&cd, h(24)).ok_or_else(bad)? as u64;
        let name_len = u16_at(&cd, h(28)).ok_or_else(bad)? as usize;
        let extra_len = u16_at(&cd, h(30)).ok_or_else(bad)? as usize;
        let comment_len = u16_at(&cd, h(32)).ok_or_else(bad)? as usize;
        let mut local_header = u32_at(&cd, h(42)).ok_or_else(bad)? as u64;
        let name_start = h(46);
        let name = cd.get(name_start..name_start + name_len).ok_or_else(bad)?;
        let name = String::from_utf8_lossy(name).into_owned();
        let extra_start = name_start + name_len;
        let extra = cd
            .get(extra_start..extra_start + extra_len)
            .ok_or_else(bad)?;
        // zip64 extended information: the 64-bit values of the fields that read 0xFFFFFFFF.
        let mut e = 0usize;
        while e + 4 <= extra.len() {
            let id = u16_at(extra, e).ok_or_else(bad)?;
            let len = u16_at(extra, e + 2).ok_or_else(bad)? as usize;
            let body = extra.get(e + 4..e + 4 + len).ok_or_else(bad)?;
            if id == 1 {
                let mut f = 0usize;
                for field in [&mut size, &mut compressed, &mut local_header] {
                    if *field == 0xFFFF_FFFF {
                        *field = u64_at(body, f).ok_or_else(bad)?;
                        f += 8;
                    }
                }
            }
            e += 4 + len;
        }
        out.push((
            name,
            ZipEntry {
                method,
                compressed,
                size,
                local_header,
            },
        ));
        pos = extra_start + extra_len + comment_len;
    }
    Ok(out)
}

/// Where an entry's data starts and how long it is (stored entries only).
pub(super) fn zip_span(
    path: &Path,
    file: &mut File,
    file_len: u64,
    name: &str,
    e: &ZipEntry,
) -> Result<Span> {
    if e.method != 0 || e.compressed != e.size {
        return Err(msg(format!(
            "{}: zip entry `{name}` is compressed (method {}); torch writes stored entries only",
            path.display(),
            e.method
        )));
    }
    let what = format!("local header of `{name}`");
    let h = read_at(path, file, file_len, e.local_header, 30, &what)?;
    if h.get(0..4) != Some(b"PK\x03\x04") {
        return Err(msg(format!(
            "corrupt zip checkpoint {}: bad {what}",
            path.display()
        )));
    }
    let name_len = u16_at(&h, 26).unwrap_or(0) as u64;
    let extra_len = u16_at(&h, 28).unwrap_or(0) as u64;
    let offset = e.local_header + 30 + name_len + extra_len;
    if offset.checked_add(e.size).is_none_or(|end| end > file_len) {
        return Err(msg(format!(
            "truncated checkpoint {}: entry `{name}` needs {} bytes, {} remain",
            path.display(),
            e.size,
            file_len.saturating_sub(offset)
        )));
    }
    Ok(Span {
        offset,
        len: e.size,
    })
}
