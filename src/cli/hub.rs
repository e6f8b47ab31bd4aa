//! `avkd download`: a Hub repository (or files of it) into the shared Hugging Face cache.

use super::output::emit;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DownloadArgs {
    /// owner/name, owner/name@REVISION or hub:owner/name[@REVISION]
    repo: String,
    /// Branch, tag or commit (default: main).
    #[arg(long)]
    revision: Option<String>,
    /// Use only the cache; never touch the network.
    #[arg(long)]
    offline: bool,
    /// Download only this file (repeatable); prints each file's path.
    #[arg(long = "file", value_name = "FILE")]
    files: Vec<String>,
    /// Cache folder (default: HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Hub URL (default: HF_ENDPOINT or https://huggingface.co).
    #[arg(long)]
    endpoint: Option<String>,
}

pub fn download(args: DownloadArgs) -> Result<()> {
    let DownloadArgs {
        repo,
        revision,
        offline,
        files,
        cache_dir,
        endpoint,
    } = args;
    // A zoo name downloads the Hub repo its entry names.
    let repo = avkd::hub::resolve::hub_repo_of(&repo).unwrap_or(repo);
    let target = avkd::hub::resolve_repo_id(&repo)?;
    let mut opts = avkd::hub::HubOptions::from_env();
    opts.revision = target.revision_with(revision)?;
    opts.offline |= offline;
    opts.cache_dir = cache_dir.or(opts.cache_dir);
    opts.endpoint = endpoint.or(opts.endpoint);
    if files.is_empty() {
        let dir = avkd::hub::download_repo(&target.repo_id, &opts)?;
        emit(&format!("{}\n", dir.display()))?;
    }
    for file in &files {
        let path = avkd::hub::download_file(&target.repo_id, file, &opts)?;
        emit(&format!("{}\n", path.display()))?;
    }
    Ok(())
}
