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

// HubError carries the repo, revision, endpoint and cache path so its message can say what to do;
// it is made at most once per download, so its size (~150 bytes) costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

mod download;
mod error;
mod progress;
mod verify;

pub use download::{download_file, download_repo, repo_cache_dir};
pub use error::HubError;

use std::path::PathBuf;

/// Retries after a failed request when [`HubOptions::max_retries`] is not changed. hf-hub retries
/// connection errors, timeouts, 429 and 5xx 5 times with exponential back-off (about 6 s per
/// request when the endpoint is down); 2 retries cost at most 0.6 s and still ride out a blip.
pub const DEFAULT_MAX_RETRIES: usize = 2;

/// The branch used when no revision is given.
pub const DEFAULT_REVISION: &str = "main";

/// How to reach the Hub and where to cache. `None` fields fall back to hf-hub's own resolution
/// (`HF_ENDPOINT` or huggingface.co; `HF_HUB_CACHE`, `$HF_HOME/hub` or
/// `~/.cache/huggingface/hub`; `HF_TOKEN` or the token file).
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Branch, tag or 40-hex commit; `main` when `None`.
    pub revision: Option<String>,
    /// Never touch the network: answer from the cache or fail.
    pub offline: bool,
    /// Hub base URL, e.g. `https://huggingface.co` or a mirror.
    pub endpoint: Option<String>,
    /// Cache folder (the `hub` folder, holding `models--owner--name`).
    pub cache_dir: Option<PathBuf>,
    /// Access token for private or gated repositories.
    pub token: Option<String>,
    /// Draw a progress bar on stderr (only when stderr is a terminal).
    pub progress: bool,
    /// Retries after a failed request (connection error, timeout, 429, 5xx), with jittered
    /// exponential back-off from 0.2 s.
    pub max_retries: usize,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            revision: None,
            offline: false,
            endpoint: None,
            cache_dir: None,
            token: None,
            progress: false,
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }
}

impl HubOptions {
    /// Options from the process environment; see [`HubOptions::from_lookup`].
    pub fn from_env() -> Self {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Options from an environment given as a lookup function (testable without touching the
    /// process environment):
    /// - `HF_HUB_OFFLINE` = 1/true/yes/on (any case): offline;
    /// - `HF_HUB_DISABLE_PROGRESS_BARS` = 1/true/yes/on: no progress bar (otherwise on);
    /// - `HF_ENDPOINT`: the endpoint;
    /// - `HF_HUB_CACHE`, else `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`: the cache folder
    ///   (left `None` otherwise, so hf-hub picks `$XDG_CACHE_HOME/huggingface/hub` or
    ///   `~/.cache/huggingface/hub`, as Python does).
    ///
    /// Empty values count as unset. The token is left to hf-hub, which also reads token files.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let flag = |key: &str| get(key).is_some_and(|v| is_truthy(&v));
        let cache_dir = get("HF_HUB_CACHE")
            .or_else(|| get("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .or_else(|| get("HF_HOME").map(|home| PathBuf::from(home).join("hub")));
        Self {
            offline: flag("HF_HUB_OFFLINE"),
            progress: !flag("HF_HUB_DISABLE_PROGRESS_BARS"),
            endpoint: get("HF_ENDPOINT").map(|e| e.trim_end_matches('/').to_string()),
            cache_dir,
            ..Self::default()
        }
    }

    /// The revision these options ask for (`main` when unset).
    pub fn revision_or_default(&self) -> &str {
        self.revision.as_deref().unwrap_or(DEFAULT_REVISION)
    }
}

/// Python's `huggingface_hub` reads boolean variables the same way.
fn is_truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// A Hub repository and, when the name pinned one, a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    /// `owner/name`.
    pub repo_id: String,
    /// Branch, tag or commit given after `@`.
    pub revision: Option<String>,
}

impl RepoRef {
    /// The revision to use given a separate `--revision` flag: either one, or both when equal.
    pub fn revision_with(&self, flag: Option<String>) -> Result<Option<String>, HubError> {
        match (&self.revision, flag) {
            (Some(a), Some(b)) if *a != b => Err(HubError::InvalidRevision {
                revision: b,
                reason: format!("{} already pins revision {a}", self.repo_id),
            }),
            (Some(a), _) => Ok(Some(a.clone())),
            (None, flag) => Ok(flag),
        }
    }
}

/// Parses `hub:owner/name` or `hub:owner/name@rev`; `None` for anything else (no `hub:` prefix,
/// a malformed repository id, an empty or unsafe revision).
pub fn parse_hub_spec(spec: &str) -> Option<(String, Option<String>)> {
    let r = parse_repo(spec.strip_prefix("hub:")?).ok()?;
    Some((r.repo_id, r.revision))
}

/// Turns what a user typed into a repository: `hub:owner/name[@rev]` or `owner/name[@rev]`.
///
/// This is the one place to extend with other forms (zoo names from the model registry resolve to
/// their Hub repository and pinned commit here).
pub fn resolve_repo_id(name: &str) -> Result<RepoRef, HubError> {
    parse_repo(name.strip_prefix("hub:").unwrap_or(name))
}

fn parse_repo(text: &str) -> Result<RepoRef, HubError> {
    let (id, revision) = match text.split_once('@') {
        Some((id, rev)) => (id, Some(rev.to_string())),
        None => (text, None),
    };
    validate_repo_id(id)?;
    if let Some(rev) = &revision {
        validate_revision(rev)?;
    }
    Ok(RepoRef {
        repo_id: id.to_string(),
        revision,
    })
}

/// `owner/name`, each part of letters, digits, `-`, `_` and `.`, without `--` or `..` (the cache
/// folder name joins the parts with `--`).
pub(crate) fn validate_repo_id(id: &str) -> Result<(&str, &str), HubError> {
    let invalid = |reason: &str| HubError::InvalidRepoId {
        repo: id.to_string(),
        reason: reason.to_string(),
    };
    let (owner, name) = id
        .split_once('/')
        .ok_or_else(|| invalid("expected owner/name"))?;
    for part in [owner, name] {
        if part.is_empty() || part.len() > 96 {
            return Err(invalid("owner and name must be 1 to 96 characters"));
        }
        if !part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(
                "owner and name may hold only letters, digits, '-', '_' and '.'",
            ));
        }
        if part.contains("--") || part.contains("..") || part.starts_with(['-', '.']) {
            return Err(invalid(
                "owner and name may not start with '-' or '.' nor contain '--' or '..'",
            ));
        }
    }
    Ok((owner, name))
}

/// A revision names a file under `refs/` in the cache, so it must stay inside it.
pub(crate) fn validate_revision(rev: &str) -> Result<(), HubError> {
    let invalid = |reason: &str| HubError::InvalidRevision {
        revision: rev.to_string(),
        reason: reason.to_string(),
    };
    if rev.is_empty() {
        return Err(invalid("it is empty"));
    }
    if rev.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it holds spaces or control characters"));
    }
    if rev.starts_with('/')
        || rev
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(invalid("it has an empty, '.' or '..' path component"));
    }
    Ok(())
}

/// A file name inside a repository: a relative path without `.`/`..` components.
pub(crate) fn validate_filename(repo: &str, file: &str) -> Result<(), HubError> {
    let bad = file.is_empty()
        || file.starts_with('/')
        || file.contains('\\')
        || file
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..");
    if bad {
        return Err(HubError::InvalidFileName {
            repo: repo.to_string(),
            file: file.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    #[test]
    fn environment_lookup_follows_huggingface_hub() {
        let from = |pairs: &[(&str, &str)]| {
            let env: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            HubOptions::from_lookup(|k| env.get(k).cloned())
        };
        for v in ["1", "true", "YES", "On", " 1 "] {
            assert!(from(&[("HF_HUB_OFFLINE", v)]).offline, "{v}");
        }
        for v in ["0", "false", "", "no"] {
            assert!(!from(&[("HF_HUB_OFFLINE", v)]).offline, "{v}");
        }
        let o = from(&[]);
        assert!(
            !o.offline
                && o.progress
                && o.endpoint.is_none()
                && o.cache_dir.is_none()
                && o.token.is_none()
        );
        assert!(!from(&[("HF_HUB_DISABLE_PROGRESS_BARS", "1")]).progress);
        assert_eq!(
            from(&[("HF_HOME", "/h")]).cache_dir.unwrap(),
            Path::new("/h/hub")
        );
        let both = from(&[("HF_HOME", "/h"), ("HF_HUB_CACHE", "/c")]);
        assert_eq!(both.cache_dir.unwrap(), Path::new("/c"));
        assert_eq!(
            from(&[("HUGGINGFACE_HUB_CACHE", "/old"), ("HF_HOME", "/h")])
                .cache_dir
                .unwrap(),
            Path::new("/old")
        );
        // Empty values count as unset, as in Python.
        let empty = from(&[("HF_HUB_CACHE", ""), ("HF_ENDPOINT", ""), ("HF_HOME", "/h")]);
        assert_eq!(empty.cache_dir.unwrap(), Path::new("/h/hub"));
        assert!(empty.endpoint.is_none());
        assert_eq!(
            from(&[("HF_ENDPOINT", "https://mirror.example//")])
                .endpoint
                .as_deref(),
            Some("https://mirror.example")
        );
    }

    #[test]
    fn repository_names_and_specs() {
        assert_eq!(
            parse_hub_spec("hub:zoo/tiny-xkd"),
            Some(("zoo/tiny-xkd".into(), None))
        );
        assert_eq!(
            parse_hub_spec("hub:zoo/tiny-xkd@v1"),
            Some(("zoo/tiny-xkd".into(), Some("v1".into())))
        );
        assert_eq!(
            parse_hub_spec("hub:zoo/x@refs/pr/1"),
            Some(("zoo/x".into(), Some("refs/pr/1".into())))
        );
        for bad in [
            "zoo/tiny-xkd",
            "hub:tiny",
            "hub:zoo/",
            "hub:/x",
            "hub:a/b/c",
            "hub:zoo/x@",
            "hub:zoo/x@../../y",
            "hub:a--b/c",
            "hub:zoo/x y",
        ] {
            assert_eq!(parse_hub_spec(bad), None, "{bad}");
        }
        let r = resolve_repo_id("zoo/tiny-xkd").unwrap();
        assert_eq!(
            r,
            RepoRef {
                repo_id: "zoo/tiny-xkd".into(),
                revision: None
            }
        );
        assert_eq!(
            r.revision_with(Some("v1".into())).unwrap().as_deref(),
            Some("v1")
        );
        let pinned = resolve_repo_id("hub:zoo/tiny-xkd@v1").unwrap();
        assert_eq!(pinned.revision_with(None).unwrap().as_deref(), Some("v1"));
        assert_eq!(
            pinned.revision_with(Some("v1".into())).unwrap().as_deref(),
            Some("v1")
        );
        assert!(matches!(
            pinned.revision_with(Some("main".into())),
            Err(HubError::InvalidRevision { .. })
        ));
        let e = resolve_repo_id("tiny-xkd").unwrap_err();
        assert!(
            matches!(e, HubError::InvalidRepoId { .. }) && e.to_string().contains("owner/name"),
            "{e}"
        );
    }

    #[test]
    fn file_names_stay_inside_the_repository() {
        for ok in ["config.json", "eval/metrics.json", "a.b/c..d"] {
            assert!(validate_filename("o/n", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a\\b",
            "a/",
        ] {
            assert!(
                matches!(
                    validate_filename("o/n", bad),
                    Err(HubError::InvalidFileName { .. })
                ),
                "{bad}"
            );
        }
    }
}
