//! sha256 verification of downloaded LFS files, which hf-hub does not do.
//!
//! The Hub's ETag of an LFS file is the sha256 of its content (the `lfs.oid` of the tree API), and
//! hf-hub names the cached blob after the ETag. So a blob whose name is 64 hex digits must hash to
//! its own name; small git files (40-hex git oids) are skipped. Only blobs that appeared during
//! the current call are hashed, so cache hits stay free. Snapshots are symlinks into `blobs/` on
//! Unix; where hf-hub copies instead (Windows) the blob name is unknown and nothing is checked.

use super::HubError;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A file of a snapshot and the blob it points to.
pub(crate) struct SnapshotEntry {
    /// Path inside the repository, with `/` separators.
    pub file: String,
    /// The snapshot link.
    pub link: PathBuf,
    /// The blob's name (the file's ETag).
    pub blob: String,
}

/// Names of the blobs a cached repository holds now (empty if it has none yet).
pub(crate) fn blob_names(repo_dir: &Path) -> HashSet<String> {
    std::fs::read_dir(repo_dir.join("blobs"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The snapshot entry for one downloaded file, or `None` when it is not a link into `blobs/`.
pub(crate) fn entry_for(link: &Path, file: &str) -> Option<SnapshotEntry> {
    let target = std::fs::read_link(link).ok()?;
    let blob = target.file_name()?.to_str()?.to_string();
    Some(SnapshotEntry {
        file: file.to_string(),
        link: link.to_path_buf(),
        blob,
    })
}

/// Every file of a snapshot folder that links into `blobs/`.
pub(crate) fn snapshot_entries(snapshot: &Path) -> Result<Vec<SnapshotEntry>, HubError> {
    let mut out = Vec::new();
    let mut stack = vec![(snapshot.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|cause| HubError::Io {
            what: "listing snapshot folder",
            path: dir.clone(),
            cause,
        })?;
        for entry in entries {
            let entry = entry.map_err(|cause| HubError::Io {
                what: "listing snapshot folder",
                path: dir.clone(),
                cause,
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let path = entry.path();
            let is_dir = std::fs::symlink_metadata(&path)
                .map(|m| m.is_dir())
                .unwrap_or(false);
            if is_dir {
                stack.push((path, rel));
            } else if let Some(e) = entry_for(&path, &rel) {
                out.push(e);
            }
        }
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

/// Whether a blob name is a sha256 (an LFS file) rather than a git oid.
pub(crate) fn is_sha256(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A file whose blob does not hash to its name.
pub(crate) struct Mismatch {
    pub file: String,
    pub expected: String,
    pub found: String,
}

/// Hashes the LFS blobs among `entries` that are not in `known` (the blobs present before the
/// download). Every bad blob is deleted together with the snapshot links pointing to it, so
/// neither a later call nor an offline lookup can return it; the first mismatch is returned.
pub(crate) fn check_new_blobs(
    repo_dir: &Path,
    entries: &[SnapshotEntry],
    known: &HashSet<String>,
) -> Result<Option<Mismatch>, HubError> {
    let mut checked: HashSet<&str> = HashSet::new();
    let mut first = None;
    for e in entries {
        if !is_sha256(&e.blob) || known.contains(&e.blob) || !checked.insert(&e.blob) {
            continue;
        }
        let blob = repo_dir.join("blobs").join(&e.blob);
        let found = crate::util::hash::sha256_hex(&blob).map_err(|cause| HubError::Io {
            what: "hashing downloaded blob",
            path: blob.clone(),
            cause,
        })?;
        if found.eq_ignore_ascii_case(&e.blob) {
            continue;
        }
        tracing::warn!(file = %e.file, expected = %e.blob, %found, "sha256 mismatch; deleting the download");
        remove_if_present(&blob)?;
        for other in entries.iter().filter(|o| o.blob == e.blob) {
            remove_if_present(&other.link)?;
        }
        first.get_or_insert(Mismatch {
            file: e.file.clone(),
            expected: e.blob.clone(),
            found,
        });
    }
    Ok(first)
}

fn remove_if_present(path: &Path) -> Result<(), HubError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(HubError::Io {
            what: "deleting corrupt download",
            path: path.to_path_buf(),
            cause: e,
        }),
        _ => Ok(()),
    }
}
