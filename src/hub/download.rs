//! Whole-repository and single-file downloads into the shared Hub cache.

use super::verify::{self, SnapshotEntry};
use super::{progress, validate_filename, validate_repo_id, validate_revision};
use super::{HubError, HubOptions};
use hf_hub::{HFClient, HFClientSync, HFError, HFRepositorySync, RepoTypeModel};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// First back-off step; hf-hub doubles it per retry and applies jitter.
const RETRY_BASE_DELAY: Duration = Duration::from_millis(100);

/// Downloads every file of `repo_id` (`owner/name`) at `opts.revision` (default `main`) and
/// returns the snapshot folder `<cache>/models--owner--name/snapshots/<commit>`.
///
/// Files already in the cache are not fetched again. LFS files fetched by this call are checked
/// against their sha256. Offline, the cached snapshot is returned without any request (like
/// Python's `snapshot_download`, a snapshot is whatever was cached for that commit). Online, when
/// the endpoint cannot be reached (connection error, timeout, 5xx) a cached snapshot of the
/// revision is returned with a warning.
pub fn download_repo(repo_id: &str, opts: &HubOptions) -> Result<PathBuf, HubError> {
    let target = Target::new(repo_id, opts)?;
    let repo = target.repo();
    if opts.offline {
        return target.cached_snapshot(&repo);
    }
    let known = verify::blob_names(&target.repo_dir());
    let result = repo
        .snapshot_download()
        .revision(target.revision.clone())
        .maybe_progress(progress::bar(opts.progress, &target.repo_id))
        .send();
    let dir = match result {
        Ok(dir) => dir,
        Err(e) if is_transient(&e) => {
            return match target.cached_snapshot(&repo) {
                Ok(dir) => {
                    tracing::warn!(
                        "cannot reach {} ({e}); using the cached snapshot {}",
                        target.endpoint,
                        dir.display()
                    );
                    Ok(dir)
                }
                Err(_) => Err(target.unreachable("the snapshot", e)),
            };
        }
        Err(e) => return Err(target.explain(&repo, None, e)),
    };
    let entries = verify::snapshot_entries(&dir)?;
    target.verified(&entries, &known)?;
    Ok(dir)
}

/// Downloads one file of `repo_id` at `opts.revision` and returns its path in the snapshot
/// folder (`<cache>/models--owner--name/snapshots/<commit>/<filename>`).
///
/// A cached file is revalidated with one HEAD request (304 when unchanged) unless the revision
/// is a commit hash, which needs no request at all. Offline, only the cache is consulted.
pub fn download_file(
    repo_id: &str,
    filename: &str,
    opts: &HubOptions,
) -> Result<PathBuf, HubError> {
    let target = Target::new(repo_id, opts)?;
    validate_filename(&target.repo_id, filename)?;
    let repo = target.repo();
    let request = repo
        .download_file()
        .filename(filename)
        .revision(target.revision.clone());
    if opts.offline {
        return request.local_files_only(true).send().map_err(|e| match e {
            // hf-hub's negative cache (`.no_exist/<commit>/<file>`) remembers a 404.
            HFError::EntryNotFound { .. } => target.file_not_found(filename),
            HFError::LocalEntryNotFound { .. } => target.offline_miss(&format!("file {filename}")),
            e => target.failed(&format!("file {filename}"), e),
        });
    }
    let known = verify::blob_names(&target.repo_dir());
    // hf-hub itself falls back to the cache on connection errors, timeouts and 5xx.
    let path = request
        .maybe_progress(progress::bar(opts.progress, filename))
        .send()
        .map_err(|e| {
            if is_transient(&e) {
                target.unreachable(&format!("file {filename}"), e)
            } else {
                target.explain(&repo, Some(filename), e)
            }
        })?;
    let entries: Vec<SnapshotEntry> = verify::entry_for(&path, filename).into_iter().collect();
    target.verified(&entries, &known)?;
    Ok(path)
}

/// The cache folder of a repository (`<cache>/models--owner--name`) under the options' cache
/// (or hf-hub's default cache when `opts.cache_dir` is `None`).
pub fn repo_cache_dir(repo_id: &str, opts: &HubOptions) -> Result<PathBuf, HubError> {
    let (owner, name) = validate_repo_id(repo_id)?;
    let cache = opts
        .cache_dir
        .clone()
        .unwrap_or_else(hf_hub::resolve_cache_dir);
    Ok(cache.join(format!("models--{owner}--{name}")))
}

/// Whether hf-hub gave up because the Hub was unreachable or failing, rather than answering.
fn is_transient(e: &HFError) -> bool {
    match e {
        HFError::Request { source, .. } => source.is_connect() || source.is_timeout(),
        HFError::Http { context } => matches!(context.status.as_u16(), 500 | 502 | 503 | 504),
        _ => false,
    }
}

/// One repository at one revision, with the client that reaches it.
struct Target {
    client: HFClientSync,
    owner: String,
    name: String,
    repo_id: String,
    revision: String,
    endpoint: String,
    cache: PathBuf,
}

impl Target {
    fn new(repo_id: &str, opts: &HubOptions) -> Result<Self, HubError> {
        let (owner, name) = validate_repo_id(repo_id)?;
        let revision = opts.revision_or_default().to_string();
        validate_revision(&revision)?;
        let mut builder = HFClient::builder()
            .retry_max_attempts(opts.max_retries)
            .retry_base_delay(RETRY_BASE_DELAY)
            .user_agent(format!("hf-hub/1.0; avkd/{}", env!("CARGO_PKG_VERSION")));
        if let Some(endpoint) = &opts.endpoint {
            builder = builder.endpoint(endpoint.trim_end_matches('/'));
        }
        if let Some(dir) = &opts.cache_dir {
            builder = builder.cache_dir(dir);
        }
        if let Some(token) = &opts.token {
            builder = builder.token(token);
        }
        let endpoint_for_error = || {
            opts.endpoint
                .clone()
                .or_else(|| std::env::var("HF_ENDPOINT").ok())
                .unwrap_or_else(|| "https://huggingface.co".into())
        };
        let client = builder.build().map_err(|e| HubError::Client {
            endpoint: endpoint_for_error(),
            cause: Box::new(e),
        })?;
        let endpoint = client.endpoint().to_string();
        let cache = client.cache_dir().to_path_buf();
        let client = HFClientSync::from_inner(client).map_err(|e| HubError::Client {
            endpoint: endpoint.clone(),
            cause: Box::new(e),
        })?;
        Ok(Self {
            client,
            owner: owner.to_string(),
            name: name.to_string(),
            repo_id: repo_id.to_string(),
            revision,
            endpoint,
            cache,
        })
    }

    fn repo(&self) -> HFRepositorySync<RepoTypeModel> {
        self.client.model(self.owner.as_str(), self.name.as_str())
    }

    /// `<cache>/models--owner--name`, the layout hf-hub shares with Python's huggingface_hub.
    fn repo_dir(&self) -> PathBuf {
        self.cache
            .join(format!("models--{}--{}", self.owner, self.name))
    }

    /// The cached snapshot of the revision, without any request.
    fn cached_snapshot(&self, repo: &HFRepositorySync<RepoTypeModel>) -> Result<PathBuf, HubError> {
        repo.snapshot_download()
            .revision(self.revision.clone())
            .local_files_only(true)
            .send()
            .map_err(|e| match e {
                HFError::LocalEntryNotFound { .. } => self.offline_miss("the snapshot"),
                e => self.failed("the snapshot", e),
            })
    }

    /// Checks the LFS blobs this call added; a corrupt one is deleted and reported.
    fn verified(&self, entries: &[SnapshotEntry], known: &HashSet<String>) -> Result<(), HubError> {
        match verify::check_new_blobs(&self.repo_dir(), entries, known)? {
            None => Ok(()),
            Some(m) => Err(HubError::ChecksumMismatch {
                repo: self.repo_id.clone(),
                revision: self.revision.clone(),
                file: m.file,
                expected: m.expected,
                found: m.found,
            }),
        }
    }

    /// Turns hf-hub's answer into an error naming what is missing. hf-hub maps every 404 of a file
    /// request to "entry not found" and every 404 of the revision API to "revision not found", even
    /// when the repository itself does not exist, so the repository and then the revision are
    /// asked about (two small API requests, only on this error path).
    fn explain(
        &self,
        repo: &HFRepositorySync<RepoTypeModel>,
        file: Option<&str>,
        e: HFError,
    ) -> HubError {
        let what = file.map_or_else(|| "the snapshot".to_string(), |f| format!("file {f}"));
        match e {
            HFError::EntryNotFound { .. }
            | HFError::RevisionNotFound { .. }
            | HFError::RepoNotFound { .. }
            | HFError::AuthRequired { .. } => {}
            HFError::Forbidden { .. } => {
                return HubError::AccessDenied {
                    repo: self.repo_id.clone(),
                    endpoint: self.endpoint.clone(),
                    cause: Box::new(e),
                }
            }
            e => return self.failed(&what, e),
        }
        match repo.exists().send() {
            Ok(false) | Err(HFError::AuthRequired { .. }) => {
                return HubError::RepoNotFound {
                    repo: self.repo_id.clone(),
                    endpoint: self.endpoint.clone(),
                }
            }
            Ok(true) => {}
            Err(_) => return self.failed(&what, e),
        }
        match repo.revision_exists().revision(&self.revision).send() {
            Ok(false) => {
                return HubError::RevisionNotFound {
                    repo: self.repo_id.clone(),
                    revision: self.revision.clone(),
                    endpoint: self.endpoint.clone(),
                }
            }
            Ok(true) => {}
            Err(_) => return self.failed(&what, e),
        }
        match (file, e) {
            (Some(f), HFError::EntryNotFound { .. }) => self.file_not_found(f),
            // The repository and revision exist but the file needs a token (gated or private).
            (_, e @ HFError::AuthRequired { .. }) => HubError::AccessDenied {
                repo: self.repo_id.clone(),
                endpoint: self.endpoint.clone(),
                cause: Box::new(e),
            },
            (_, e) => self.failed(&what, e),
        }
    }

    fn file_not_found(&self, file: &str) -> HubError {
        HubError::FileNotFound {
            repo: self.repo_id.clone(),
            revision: self.revision.clone(),
            file: file.to_string(),
            endpoint: self.endpoint.clone(),
        }
    }

    fn offline_miss(&self, what: &str) -> HubError {
        HubError::OfflineMiss {
            repo: self.repo_id.clone(),
            revision: self.revision.clone(),
            what: what.to_string(),
            cache: self.cache.clone(),
        }
    }

    fn unreachable(&self, what: &str, e: HFError) -> HubError {
        HubError::Unreachable {
            repo: self.repo_id.clone(),
            revision: self.revision.clone(),
            what: what.to_string(),
            endpoint: self.endpoint.clone(),
            cache: self.cache.clone(),
            cause: Box::new(e),
        }
    }

    fn failed(&self, what: &str, e: HFError) -> HubError {
        HubError::Hub {
            repo: self.repo_id.clone(),
            revision: self.revision.clone(),
            what: what.to_string(),
            endpoint: self.endpoint.clone(),
            cause: Box::new(e),
        }
    }
}
