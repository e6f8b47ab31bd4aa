//! Downloads from the Hugging Face Hub through hf-hub 1.0's blocking client, into the cache that
//! Python's `huggingface_hub` uses too (`<cache>/models--owner--name/{blobs,refs,snapshots}`).
//!
//! What avkd adds on top of hf-hub:
//! - `HF_HUB_OFFLINE` (hf-hub does not read it): offline mode never touches the network and
//!   answers from the cache or fails saying so;
//! - sha256 verification of freshly downloaded LFS files (hf-hub verifies nothing);
//! - a progress bar on stderr;
//! - short retries (hf-hub's defaults cost ~6 s per request when the endpoint is down), and a
//!   fallback to the cached snapshot when the Hub cannot be reached;
//! - errors that say whether the repository, the revision or the file was missing.
//!
//! Environment: `HF_ENDPOINT`, `HF_HOME`, `HF_HUB_CACHE` (and `HUGGINGFACE_HUB_CACHE`) are read by
//! [`HubOptions::from_env`] (empty values count as unset) and, for options left `None`, by hf-hub
//! itself; `HF_TOKEN`, `HF_TOKEN_PATH`, `$HF_HOME/token` and `HF_HUB_DISABLE_IMPLICIT_TOKEN` are
//! read by hf-hub when no token is given; `HF_HUB_OFFLINE` and `HF_HUB_DISABLE_PROGRESS_BARS` are
//! read by [`HubOptions::from_env`]. Explicit options override the environment.

//!
//! `resolve` (what `--model` names: a folder, a Hub repo or a zoo entry) is always built; without the
//! `hub` feature it answers for folders and zoo names and says that downloading needs the feature.
//! Everything that talks to hf-hub is built only with the `hub` feature.
//!
//! Above `models` and `checkpoint` (a zoo name resolves to the Hub repo its registry entry names);
//! below `data`.

// HubError carries the repo, revision, endpoint and cache path so its message can say what to do;
// it is made at most once per download, so its size (~150 bytes) costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

pub mod resolve;

#[cfg(feature = "hub")]
mod download;
#[cfg(feature = "hub")]
mod error;
#[cfg(feature = "hub")]
mod options;
#[cfg(feature = "hub")]
mod progress;
#[cfg(feature = "hub")]
mod repo;
#[cfg(feature = "hub")]
mod verify;

#[cfg(feature = "hub")]
pub use download::{download_file, download_repo, repo_cache_dir};
#[cfg(feature = "hub")]
pub use error::HubError;
#[cfg(feature = "hub")]
pub use options::{HubOptions, DEFAULT_MAX_RETRIES, DEFAULT_REVISION};
#[cfg(feature = "hub")]
pub use repo::{parse_hub_spec, resolve_repo_id, RepoRef};
#[cfg(feature = "hub")]
pub(crate) use repo::{validate_filename, validate_repo_id, validate_revision};
