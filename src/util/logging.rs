//! Logging setup for the command line: `tracing` events to stderr, filtered by `RUST_LOG`.

use std::io::IsTerminal;

/// The filter when `RUST_LOG` is unset. hf-hub logs every exhausted retry at error level, even when
/// avkd then answers from the cache; symphonia logs every file it opens at info level.
const DEFAULT_FILTER: &str = "info,hf_hub=off,symphonia=warn";

/// Whether log lines may carry ANSI colour codes: only on a terminal, and never when `NO_COLOR` is
/// set to a non-empty value (<https://no-color.org>).
fn use_colour() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// Installs the global subscriber: events to stderr, filtered by `RUST_LOG` (default
/// [`DEFAULT_FILTER`]), coloured only on a terminal without `NO_COLOR`.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| DEFAULT_FILTER.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(use_colour())
        .init();
}
