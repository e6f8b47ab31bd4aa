//! `avkd::hub` against a real HTTP server on 127.0.0.1 that serves an avkd model folder the way
//! the Hugging Face Hub does, through the real hf-hub client: cache layout, cache hits, 304
//! revalidation, missing repository / revision / file, offline mode, sha256 verification and
//! revision pinning. Parsing of options and names is unit-tested in `src/hub/mod.rs`.
#![cfg(feature = "hub")]

#[path = "common/hub_server.rs"]
mod hub_server;

use avkd::hub::{download_file, download_repo, HubError, HubOptions};
use candle_core::{Device, Tensor};
use hub_server::{HubServer, ServedFile, ServedRepo};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

const REPO: &str = "zoo/tiny-xkd";

/// hf-hub reads HF_TOKEN and ~/.cache/huggingface/token when no token is given; this keeps a
/// developer's token out of the requests. Every test calls it first, so the variable is set
/// (once, while the other tests wait on the `Once`) before any client exists.
fn isolate() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::env::set_var("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1"));
}

fn commit_sha(label: &str) -> String {
    Sha256::digest(label.as_bytes())
        .iter()
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A small avkd model folder (config.json + model.safetensors written by avkd's exporter, a
/// model card and a nested metrics file), as the files of one commit.
fn model_files(scale: f32) -> Vec<ServedFile> {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::Cpu;
    let w = (Tensor::arange(0f32, 48., &dev)
        .unwrap()
        .reshape((6, 8))
        .unwrap()
        * scale as f64)
        .unwrap();
    let tensors = HashMap::from([
        ("blocks.0.attn.qkv.weight".to_string(), w),
        (
            "cls_token".to_string(),
            Tensor::ones((1, 1, 8), candle_core::DType::F32, &dev).unwrap(),
        ),
    ]);
    let config = serde_json::json!({ "embed_dim": 8, "depth": 1, "num_heads": 2 });
    let meta = BTreeMap::from([("source".to_string(), "hub test".to_string())]);
    avkd::checkpoint::export::write_model_folder(dir.path(), "xkd-video", &config, &tensors, &meta)
        .unwrap();
    let read = |f: &str| std::fs::read(dir.path().join(f)).unwrap();
    vec![
        ServedFile::git("config.json", &read("config.json")),
        ServedFile::lfs("model.safetensors", &read("model.safetensors")),
        ServedFile::git(
            "README.md",
            format!("# tiny-xkd\nscale {scale}\n").as_bytes(),
        ),
        ServedFile::git("eval/metrics.json", br#"{"top1": 0.5}"#),
    ]
}

/// `zoo/tiny-xkd`: `main` at commit "v2"; branch `v1` at commit "v1" with other weights.
fn served_repo() -> (ServedRepo, String, String) {
    let (v1, v2) = (commit_sha("v1"), commit_sha("v2"));
    let repo = ServedRepo {
        id: REPO.into(),
        commits: vec![
            (v1.clone(), model_files(1.0)),
            (v2.clone(), model_files(2.0)),
        ],
        branches: vec![("main".into(), v2.clone()), ("v1".into(), v1.clone())],
    };
    (repo, v1, v2)
}

fn opts(server: &HubServer, cache: &Path) -> HubOptions {
    HubOptions {
        endpoint: Some(server.url.clone()),
        cache_dir: Some(cache.to_path_buf()),
        ..HubOptions::default()
    }
}

fn file<'a>(files: &'a [ServedFile], path: &str) -> &'a ServedFile {
    files.iter().find(|f| f.path == path).unwrap()
}

fn assert_no_token_sent(server: &HubServer) {
    assert!(
        server.hits().iter().all(|h| !h.authorization),
        "a token was sent: {:?}",
        server.hits()
    );
}

#[test]
fn first_download_lands_in_the_shared_cache_layout() {
    isolate();
    let (repo, _, v2) = served_repo();
    let files = repo.commits[1].1.clone();
    let server = HubServer::start(vec![repo]);
    let cache = tempfile::tempdir().unwrap();
    let dir = download_repo(REPO, &opts(&server, cache.path())).unwrap();

    let repo_dir = cache.path().join("models--zoo--tiny-xkd");
    assert_eq!(
        avkd::hub::repo_cache_dir(REPO, &opts(&server, cache.path())).unwrap(),
        repo_dir
    );
    assert_eq!(dir, repo_dir.join("snapshots").join(&v2));
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main"))
            .unwrap()
            .trim(),
        v2
    );
    for f in &files {
        let local = dir.join(&f.path);
        assert_eq!(std::fs::read(&local).unwrap(), f.content, "{}", f.path);
        assert!(
            repo_dir.join("blobs").join(f.etag()).is_file(),
            "blob of {}",
            f.path
        );
        #[cfg(unix)]
        {
            let target = std::fs::read_link(&local).unwrap();
            assert!(
                target.is_relative() && target.ends_with(Path::new("blobs").join(f.etag())),
                "{target:?}"
            );
        }
    }
    // The LFS blob is named by its sha256, the git files by their git oid.
    assert_eq!(file(&files, "model.safetensors").etag().len(), 64);
    assert_eq!(file(&files, "config.json").etag().len(), 40);
    // What was downloaded is a loadable avkd model.
    let tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(tensors["blocks.0.attn.qkv.weight"].dims(), &[6, 8]);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model_type"], "xkd-video");
    assert_eq!(
        server.count("GET", "/api/models/zoo/tiny-xkd/revision/main"),
        1
    );
    assert_eq!(
        server.count("GET", &format!("/api/models/zoo/tiny-xkd/tree/{v2}")),
        1
    );
    assert_no_token_sent(&server);
}

#[test]
fn cache_hit_transfers_nothing_again() {
    isolate();
    let (repo, _, _) = served_repo();
    let files = repo.commits[1].1.clone();
    let server = HubServer::start(vec![repo]);
    let cache = tempfile::tempdir().unwrap();
    let o = opts(&server, cache.path());
    let first = download_repo(REPO, &o).unwrap();
    for f in &files {
        assert_eq!(server.content_gets(f), 1, "{}", f.path);
    }
    let second = download_repo(REPO, &o).unwrap();
    assert_eq!(first, second);
    let weights = download_file(REPO, "model.safetensors", &o).unwrap();
    assert_eq!(weights, first.join("model.safetensors"));
    for f in &files {
        assert_eq!(server.content_gets(f), 1, "{} fetched again", f.path);
    }
}

#[test]
fn cached_file_is_revalidated_with_304() {
    isolate();
    let (repo, _, _) = served_repo();
    let config = file(&repo.commits[1].1, "config.json").clone();
    let server = HubServer::start(vec![repo]);
    let cache = tempfile::tempdir().unwrap();
    let o = opts(&server, cache.path());
    let a = download_file(REPO, "config.json", &o).unwrap();
    let b = download_file(REPO, "config.json", &o).unwrap();
    assert_eq!(a, b);
    assert_eq!(std::fs::read(&b).unwrap(), config.content);
    assert_eq!(server.content_gets(&config), 1);
    let heads: Vec<_> = server
        .hits()
        .into_iter()
        .filter(|h| h.method == "HEAD")
        .collect();
    let last = heads.last().unwrap();
    assert_eq!(
        last.if_none_match.as_deref(),
        Some(format!("\"{}\"", config.etag()).as_str())
    );
}

#[test]
fn missing_file_repo_and_revision_are_named() {
    isolate();
    let (repo, _, _) = served_repo();
    let server = HubServer::start(vec![repo]);
    let cache = tempfile::tempdir().unwrap();
    let o = opts(&server, cache.path());

    let e = download_file(REPO, "nope.bin", &o).unwrap_err();
    assert!(
        matches!(&e, HubError::FileNotFound { file, .. } if file == "nope.bin"),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("nope.bin")
            && msg.contains(REPO)
            && msg.contains("main")
            && msg.contains(&server.url),
        "{msg}"
    );
    // hf-hub remembers the 404; offline, the same question gets the same answer.
    let offline = HubOptions {
        offline: true,
        ..o.clone()
    };
    let e = download_file(REPO, "nope.bin", &offline).unwrap_err();
    assert!(matches!(e, HubError::FileNotFound { .. }), "{e:?}");

    for e in [
        download_repo("zoo/absent", &o).unwrap_err(),
        download_file("zoo/absent", "config.json", &o).unwrap_err(),
    ] {
        assert!(
            matches!(&e, HubError::RepoNotFound { repo, .. } if repo == "zoo/absent"),
            "{e:?}"
        );
        assert!(e.to_string().contains("zoo/absent"), "{e}");
    }
    let bad_rev = HubOptions {
        revision: Some("no-such-branch".into()),
        ..o.clone()
    };
    for e in [
        download_repo(REPO, &bad_rev).unwrap_err(),
        download_file(REPO, "config.json", &bad_rev).unwrap_err(),
    ] {
        assert!(
            matches!(&e, HubError::RevisionNotFound { revision, .. } if revision == "no-such-branch"),
            "{e:?}"
        );
        assert!(
            e.to_string().contains("no-such-branch") && e.to_string().contains(REPO),
            "{e}"
        );
    }
    let e = download_file(REPO, "../../etc/passwd", &o).unwrap_err();
    assert!(matches!(e, HubError::InvalidFileName { .. }), "{e:?}");
    assert_no_token_sent(&server);
}

#[test]
fn offline_hit_needs_no_server_and_an_unreachable_hub_falls_back_quickly() {
    isolate();
    let (repo, _, _) = served_repo();
    let mut server = HubServer::start(vec![repo]);
    let cache = tempfile::tempdir().unwrap();
    let o = opts(&server, cache.path());
    let dir = download_repo(REPO, &o).unwrap();
    let requests = server.hits().len();

    let offline = HubOptions {
        offline: true,
        ..o.clone()
    };
    assert_eq!(download_repo(REPO, &offline).unwrap(), dir);
    assert_eq!(
        download_file(REPO, "eval/metrics.json", &offline).unwrap(),
        dir.join("eval/metrics.json")
    );
    assert_eq!(server.hits().len(), requests, "offline mode made requests");

    server.stop();
    assert_eq!(download_repo(REPO, &offline).unwrap(), dir);
    // Online with the Hub gone: the cache answers after two short retries (hf-hub's defaults
    // would spend about 6 s per request).
    let t = Instant::now();
    assert_eq!(download_repo(REPO, &o).unwrap(), dir);
    assert_eq!(
        download_file(REPO, "config.json", &o).unwrap(),
        dir.join("config.json")
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "fallback took {:?}",
        t.elapsed()
    );
}

#[test]
fn offline_miss_and_unreachable_miss_say_so() {
    isolate();
    let (repo, _, _) = served_repo();
    let mut server = HubServer::start(vec![repo]);
    let cache = tempfile::tempdir().unwrap();
    let o = opts(&server, cache.path());
    let offline = HubOptions {
        offline: true,
        ..o.clone()
    };
    for e in [
        download_repo(REPO, &offline).unwrap_err(),
        download_file(REPO, "config.json", &offline).unwrap_err(),
    ] {
        assert!(matches!(e, HubError::OfflineMiss { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("not in the cache at")
                && msg.contains(&cache.path().display().to_string()),
            "{msg}"
        );
        assert!(
            msg.contains("offline mode is on (HF_HUB_OFFLINE / --offline)") && msg.contains(REPO),
            "{msg}"
        );
    }
    assert!(
        server.hits().is_empty(),
        "offline mode made requests: {:?}",
        server.hits()
    );

    server.stop();
    let t = Instant::now();
    for e in [
        download_repo(REPO, &o).unwrap_err(),
        download_file(REPO, "config.json", &o).unwrap_err(),
    ] {
        assert!(matches!(e, HubError::Unreachable { .. }), "{e:?}");
        assert!(
            e.to_string().contains(&server.url) && e.to_string().contains(REPO),
            "{e}"
        );
    }
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn sha256_mismatch_is_rejected_and_nothing_bad_stays_cached() {
    isolate();
    let (mut repo, _, v2) = served_repo();
    let weights = repo.commits[1]
        .1
        .iter_mut()
        .find(|f| f.path == "model.safetensors")
        .unwrap();
    weights.corrupt = true;
    let expected = weights.sha256();
    let mut served = weights.content.clone();
    if let Some(b) = served.last_mut() {
        *b ^= 0xff;
    }
    let found: String = Sha256::digest(&served)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let server = HubServer::start(vec![repo]);
    let cache = tempfile::tempdir().unwrap();
    let o = opts(&server, cache.path());
    let repo_dir = cache.path().join("models--zoo--tiny-xkd");
    let snapshot = repo_dir.join("snapshots").join(&v2);

    let check = |e: HubError| {
        match &e {
            HubError::ChecksumMismatch {
                file,
                expected: x,
                found: y,
                ..
            } => {
                assert_eq!(
                    (file.as_str(), x, y),
                    ("model.safetensors", &expected, &found)
                );
            }
            other => panic!("expected a checksum mismatch, got {other:?}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains("model.safetensors") && msg.contains(&expected) && msg.contains(&found),
            "{msg}"
        );
        assert!(
            !repo_dir.join("blobs").join(&expected).exists(),
            "corrupt blob kept"
        );
        assert!(
            std::fs::symlink_metadata(snapshot.join("model.safetensors")).is_err(),
            "corrupt link kept"
        );
    };
    check(download_repo(REPO, &o).unwrap_err());
    // The good files of the snapshot stay.
    assert!(snapshot.join("config.json").is_file());
    check(download_file(REPO, "model.safetensors", &o).unwrap_err());
    let offline = HubOptions { offline: true, ..o };
    let e = download_file(REPO, "model.safetensors", &offline).unwrap_err();
    assert!(matches!(e, HubError::OfflineMiss { .. }), "{e:?}");
}

#[test]
fn revisions_pin_commits_and_branches() {
    isolate();
    let (repo, v1, v2) = served_repo();
    let old = file(&repo.commits[0].1, "model.safetensors").clone();
    let new = file(&repo.commits[1].1, "model.safetensors").clone();
    assert_ne!(old.content, new.content);
    let server = HubServer::start(vec![repo]);
    let cache = tempfile::tempdir().unwrap();
    let at = |rev: &str| HubOptions {
        revision: Some(rev.into()),
        ..opts(&server, cache.path())
    };
    let repo_dir = cache.path().join("models--zoo--tiny-xkd");

    let by_sha = download_repo(REPO, &at(&v1)).unwrap();
    assert_eq!(by_sha, repo_dir.join("snapshots").join(&v1));
    assert_eq!(
        std::fs::read(by_sha.join("model.safetensors")).unwrap(),
        old.content
    );
    let by_branch = download_repo(REPO, &at("v1")).unwrap();
    assert_eq!(by_branch, by_sha);
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/v1"))
            .unwrap()
            .trim(),
        v1
    );
    let main = download_repo(
        REPO,
        &HubOptions {
            revision: None,
            ..at("main")
        },
    )
    .unwrap();
    assert_eq!(main, repo_dir.join("snapshots").join(&v2));
    assert_eq!(
        std::fs::read(main.join("model.safetensors")).unwrap(),
        new.content
    );
    assert_eq!(server.content_gets(&old), 1);

    // A cached file at a commit hash needs no request at all.
    let before = server.hits().len();
    let f = download_file(REPO, "model.safetensors", &at(&v1)).unwrap();
    assert_eq!(f, by_sha.join("model.safetensors"));
    assert_eq!(server.hits().len(), before);
    // `hub:owner/name@rev` resolves to the same pin.
    let r = avkd::hub::resolve_repo_id(&format!("hub:{REPO}@{v1}")).unwrap();
    assert_eq!(
        (r.repo_id.as_str(), r.revision.as_deref()),
        (REPO, Some(v1.as_str()))
    );
}

#[test]
fn hf_hub_offline_from_the_environment_is_honoured() {
    isolate();
    let (repo, _, _) = served_repo();
    let server = HubServer::start(vec![repo]);
    let cache = tempfile::tempdir().unwrap();
    let env = HashMap::from([
        ("HF_HUB_OFFLINE", "1".to_string()),
        ("HF_ENDPOINT", format!("{}/", server.url)),
        ("HF_HUB_CACHE", cache.path().display().to_string()),
    ]);
    let o = HubOptions::from_lookup(|k| env.get(k).cloned());
    assert!(o.offline);
    assert_eq!(o.endpoint.as_deref(), Some(server.url.as_str()));
    let e = download_repo(REPO, &o).unwrap_err();
    assert!(matches!(e, HubError::OfflineMiss { .. }), "{e:?}");
    assert!(server.hits().is_empty());
    // Once online (explicit option over the environment) it downloads; offline again it hits.
    let dir = download_repo(
        REPO,
        &HubOptions {
            offline: false,
            ..o.clone()
        },
    )
    .unwrap();
    assert_eq!(download_repo(REPO, &o).unwrap(), dir);
}
