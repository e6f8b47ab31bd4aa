//! A byte progress bar on stderr, fed by hf-hub's download events.

use hf_hub::progress::{DownloadEvent, Progress, ProgressEvent, ProgressHandler};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

/// Xet transfers report one running total for the whole batch instead of per-file bytes.
const XET_BATCH: &str = "\0xet";

/// A handler drawing a bar, or `None` when disabled or stderr is not a terminal (logs, pipes, CI).
pub(crate) fn bar(enabled: bool, label: &str) -> Option<Progress> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{prefix} {msg:24!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(label.to_string());
    Some(Progress::new(Bar {
        bar,
        done: Mutex::new(HashMap::new()),
    }))
}

struct Bar {
    bar: ProgressBar,
    /// Bytes completed per file: hf-hub sends per-file running totals, several files at once.
    done: Mutex<HashMap<String, u64>>,
}

impl Bar {
    fn record(&self, file: &str, bytes: u64) {
        // A poisoned lock only means another event panicked mid-update; the bar is cosmetic.
        let Ok(mut done) = self.done.lock() else {
            return;
        };
        match done.get_mut(file) {
            Some(b) => *b = bytes,
            None => {
                done.insert(file.to_string(), bytes);
            }
        }
        self.bar.set_position(done.values().sum());
    }
}

impl ProgressHandler for Bar {
    fn on_progress(&self, event: &ProgressEvent) {
        let ProgressEvent::Download(event) = event else {
            return;
        };
        match event {
            DownloadEvent::Start {
                total_files,
                total_bytes,
            } => {
                self.bar.set_length(*total_bytes);
                if *total_files > 1 {
                    self.bar.set_message(format!("{total_files} files"));
                }
            }
            DownloadEvent::Progress { files } => {
                for f in files {
                    self.record(&f.filename, f.bytes_completed);
                }
                if let Some(f) = files.last() {
                    self.bar.set_message(f.filename.clone());
                }
            }
            DownloadEvent::AggregateProgress {
                bytes_completed, ..
            } => self.record(XET_BATCH, *bytes_completed),
            DownloadEvent::Complete => self.bar.finish_and_clear(),
        }
    }
}

impl Drop for Bar {
    /// A failed download sends no `Complete`: clear the bar so the error message stands alone.
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
