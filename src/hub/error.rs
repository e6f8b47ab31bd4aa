//! What can go wrong when fetching from the Hub, in words that say which repository, revision,
//! file, endpoint or cache folder was involved.
//!
//! Each message is complete on one line (it includes the underlying hf-hub or I/O error), so the
//! underlying errors are kept as plain `cause` fields rather than as `source()`, which would make
//! `anyhow` print them twice.

use std::path::PathBuf;

/// A Hub download failed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("invalid Hub repository id {repo:?}: {reason}")]
    InvalidRepoId { repo: String, reason: String },

    #[error("invalid revision {revision:?}: {reason}")]
    InvalidRevision { revision: String, reason: String },

    #[error(
        "invalid file name {file:?} for {repo}: expected a relative path inside the repository"
    )]
    InvalidFileName { repo: String, file: String },

    #[error("cannot set up the Hub client for endpoint {endpoint}: {cause}")]
    Client {
        endpoint: String,
        cause: Box<hf_hub::HFError>,
    },

    #[error("{what} of {repo}@{revision} is not in the cache at {} and offline mode is on (HF_HUB_OFFLINE / --offline)", cache.display())]
    OfflineMiss {
        repo: String,
        revision: String,
        /// `file <name>` or `the snapshot`.
        what: String,
        cache: PathBuf,
    },

    #[error("repository {repo} was not found on {endpoint} (if it is private or gated, set HF_TOKEN to a token that can read it)")]
    RepoNotFound { repo: String, endpoint: String },

    #[error("revision {revision} of {repo} was not found on {endpoint}")]
    RevisionNotFound {
        repo: String,
        revision: String,
        endpoint: String,
    },

    #[error("file {file} was not found in {repo} at revision {revision} on {endpoint}")]
    FileNotFound {
        repo: String,
        revision: String,
        file: String,
        endpoint: String,
    },

    #[error("{endpoint} refused access to {repo}: {cause} (gated repositories need their terms accepted on the Hub and HF_TOKEN set)")]
    AccessDenied {
        repo: String,
        endpoint: String,
        cause: Box<hf_hub::HFError>,
    },

    #[error("cannot reach {endpoint} for {repo}@{revision}, and {what} is not in the cache at {}: {cause}", cache.display())]
    Unreachable {
        repo: String,
        revision: String,
        what: String,
        endpoint: String,
        cache: PathBuf,
        cause: Box<hf_hub::HFError>,
    },

    #[error("sha256 mismatch for {file} of {repo}@{revision}: expected {expected}, found {found}; the corrupt download was deleted from the cache, retry the download")]
    ChecksumMismatch {
        repo: String,
        revision: String,
        file: String,
        expected: String,
        found: String,
    },

    #[error("{what} {}: {cause}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },

    #[error("downloading {what} of {repo}@{revision} from {endpoint} failed: {cause}")]
    Hub {
        repo: String,
        revision: String,
        what: String,
        endpoint: String,
        cause: Box<hf_hub::HFError>,
    },
}
