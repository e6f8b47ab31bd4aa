//! How to reach the Hub and where to cache: [`HubOptions`], from explicit values or the
//! environment as Python's `huggingface_hub` reads it.

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
}
