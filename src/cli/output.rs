//! Writing results to stdout.

use anyhow::Result;

/// Writes to stdout; a closed pipe (`avkd inspect x | head`) ends the output quietly.
pub fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
