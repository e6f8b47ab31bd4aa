//! What `--model` names: a model folder, `hub:owner/name[@revision]`, or a zoo entry (whose
//! converted weights live in the Hub repo the entry names).

use candle_core::Result;
use std::path::PathBuf;

/// The local folder of the model `spec` names, downloading it (into the shared Hugging Face cache)
/// when it is a Hub repo or a zoo entry that is not cached yet. `HF_HUB_OFFLINE=1` keeps it offline.
pub fn resolve_model(spec: &str) -> Result<PathBuf> {
    let path = PathBuf::from(spec);
    if path.is_dir() {
        return Ok(path);
    }
    if let Some(repo) = hub_repo_of(spec) {
        return download(&repo, spec);
    }
    if spec.contains('/') && !path.exists() && !spec.starts_with('.') && !spec.starts_with('/') {
        candle_core::bail!(
            "--model {spec}: no such folder; for a Hub repo write hub:{spec}, for a zoo entry see `avkd zoo list`"
        )
    }
    candle_core::bail!(
        "--model {spec}: not a model folder, a hub:owner/name[@rev] repo, or a zoo name (`avkd zoo list`)"
    )
}

/// The Hub repo a spec names: `hub:owner/name[@rev]` (returned without the prefix), or a zoo
/// entry's repo. `None` for anything else (a path, or a bare `owner/name`).
pub fn hub_repo_of(spec: &str) -> Option<String> {
    if let Some(rest) = spec.strip_prefix("hub:") {
        return Some(rest.to_string());
    }
    if spec.contains('/') {
        return None;
    }
    crate::models::registry::find(spec)
        .ok()
        .map(|entry| entry.hub_repo().to_string())
}

#[cfg(feature = "hub")]
fn download(repo: &str, spec: &str) -> Result<PathBuf> {
    let target = super::resolve_repo_id(repo).map_err(candle_core::Error::wrap)?;
    let mut opts = super::HubOptions::from_env();
    opts.revision = target.revision.clone();
    opts.progress = true;
    super::download_repo(&target.repo_id, &opts)
        .map_err(|e| candle_core::Error::Msg(format!("--model {spec}: {e}{}", how_to_make(spec))))
}

/// For a zoo entry whose weights were never released, how to make them with avkd.
#[cfg(feature = "hub")]
fn how_to_make(spec: &str) -> String {
    crate::models::registry::find(spec)
        .ok()
        .and_then(|entry| entry.weights.make.clone())
        .map(|make| format!(". The authors never released these weights; make them with: {make}"))
        .unwrap_or_default()
}

#[cfg(not(feature = "hub"))]
fn download(repo: &str, spec: &str) -> Result<PathBuf> {
    candle_core::bail!("--model {spec}: downloading {repo} needs avkd built with the `hub` feature")
}
