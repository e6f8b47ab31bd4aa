//! Atomic file writes: a temporary file in the same folder, written and fsynced, then renamed over
//! the final name, then the folder fsynced. An interrupted write never leaves a truncated file under
//! the final name, and a finished one survives a crash.

use candle_core::Result;
use std::io::Write;
use std::path::{Path, PathBuf};

fn io_err(path: &Path, what: &str, e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(format!("{what} {}: {e}", path.display()))
}

/// The temporary name `path` is written under before the rename: `.{name}.tmp.{pid}` beside it.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}", std::process::id()))
}

/// Makes a rename inside `dir` durable by fsyncing the folder (a no-op where folders cannot be
/// opened as files, as on Windows).
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsynced, renamed over `path`,
/// then the folder fsynced. Creates the parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = parent {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, "creating folder", e))?;
    }
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(path, "writing", e));
    }
    sync_dir(parent.unwrap_or(Path::new("."))).map_err(|e| io_err(path, "syncing the folder of", e))
}
