//! Metrics as JSON lines (one object per logged step), appended to `metrics.jsonl`, so any plotting
//! tool can draw the curves while a run is going.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct MetricsWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl MetricsWriter {
    /// Appends to `path`, creating it (and its folder) when needed.
    pub fn append(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one record and flushes it, so a crash loses nothing already logged.
    pub fn write(&mut self, record: &serde_json::Value) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

/// Drops the records a resumed run will write again: train steps after `step`, evaluations after
/// `epochs_done` completed epochs, and a last line cut short by a killed process.
pub fn truncate_metrics(path: &Path, step: u64, epochs_done: usize) -> candle_core::Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let mut kept = String::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let drop = match v["kind"].as_str() {
            Some("train") => v["step"].as_u64().is_some_and(|s| s > step),
            Some("eval") => v["epoch"].as_u64().is_some_and(|e| e > epochs_done as u64),
            _ => false,
        };
        if !drop {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    crate::util::atomic::write_atomic(path, kept.as_bytes())
}
