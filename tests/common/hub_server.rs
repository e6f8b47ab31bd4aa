//! A real HTTP server on 127.0.0.1 serving model repositories the way the Hugging Face Hub does,
//! for the endpoints hf-hub 1.0 uses (spec/candle.md §5.4):
//!
//! - `HEAD`/`GET /{owner}/{name}/resolve/{rev}/{path}`: `ETag`, `X-Repo-Commit`,
//!   `Content-Length`; 304 on a matching `If-None-Match`; 404 with `X-Repo-Commit` for a missing
//!   file, 404 for an unknown repository or revision (with the Hub's `X-Error-Code`). LFS files
//!   answer as the Hub does: a 302 to an absolute CDN URL carrying `X-Linked-Etag` (the sha256)
//!   and `X-Linked-Size`, the content being served from `/cdn/{sha256}`.
//! - `GET /api/models/{owner}/{name}` and `/api/models/{owner}/{name}/revision/{rev}`: `{"sha"}`.
//! - `GET /api/models/{owner}/{name}/tree/{rev}?recursive=true`: files with `oid` (git) and
//!   `lfs: {oid, size, pointerSize}`, and the folders.
//!
//! Every request is logged so tests can count what the client asked for.
#![allow(dead_code)]

use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One file of a served commit.
#[derive(Clone)]
pub struct ServedFile {
    pub path: String,
    pub content: Vec<u8>,
    /// Stored in LFS: its ETag is the sha256 of the content.
    pub lfs: bool,
    /// Serve bytes that differ from `content` (the ETag still describes `content`).
    pub corrupt: bool,
}

impl ServedFile {
    pub fn git(path: &str, content: &[u8]) -> Self {
        Self {
            path: path.into(),
            content: content.to_vec(),
            lfs: false,
            corrupt: false,
        }
    }

    pub fn lfs(path: &str, content: &[u8]) -> Self {
        Self {
            lfs: true,
            ..Self::git(path, content)
        }
    }

    pub fn sha256(&self) -> String {
        hex(&Sha256::digest(&self.content))
    }

    /// Git's blob id: sha1 of `blob <len>\0<content>` (of the LFS pointer for LFS files).
    pub fn git_oid(&self) -> String {
        let stored = if self.lfs {
            self.pointer()
        } else {
            self.content.clone()
        };
        let mut h = Sha1::new();
        h.update(format!("blob {}\0", stored.len()).as_bytes());
        h.update(&stored);
        hex(&h.finalize())
    }

    pub fn etag(&self) -> String {
        if self.lfs {
            self.sha256()
        } else {
            self.git_oid()
        }
    }

    fn pointer(&self) -> Vec<u8> {
        format!(
            "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n",
            self.sha256(),
            self.content.len()
        )
        .into_bytes()
    }

    fn body(&self) -> Vec<u8> {
        let mut body = self.content.clone();
        if self.corrupt {
            if let Some(b) = body.last_mut() {
                *b ^= 0xff;
            }
        }
        body
    }
}

/// A repository: commits (40-hex sha and files) and branches pointing at them.
#[derive(Clone)]
pub struct ServedRepo {
    pub id: String,
    pub commits: Vec<(String, Vec<ServedFile>)>,
    pub branches: Vec<(String, String)>,
}

impl ServedRepo {
    fn commit(&self, rev: &str) -> Option<&(String, Vec<ServedFile>)> {
        let sha = self
            .branches
            .iter()
            .find(|(b, _)| b == rev)
            .map_or(rev, |(_, sha)| sha.as_str());
        self.commits.iter().find(|(s, _)| s == sha)
    }
}

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Hit {
    pub method: String,
    /// The raw request target (path and query).
    pub url: String,
    pub if_none_match: Option<String>,
    pub authorization: bool,
}

/// A request: method, target and headers (hf-hub sends no bodies to these endpoints).
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// HTTP/1.1 over `std::net`, one request per connection (`Connection: close`), one thread per
/// connection: small, and no pool that could park a connection behind keep-alive ones.
pub struct HubServer {
    pub url: String,
    stopping: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Hit>>>,
    thread: Option<JoinHandle<()>>,
}

impl HubServer {
    pub fn start(repos: Vec<ServedRepo>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let port = listener.local_addr().expect("a local address").port();
        let url = format!("http://127.0.0.1:{port}");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let repos = Arc::new(repos);
        let (lg, stop, base) = (log.clone(), stopping.clone(), url.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (repos, lg, base) = (repos.clone(), lg.clone(), base.clone());
                std::thread::spawn(move || serve(stream, &repos, &base, &lg));
            }
            // The listener drops here: new connections are refused.
        });
        Self {
            url,
            stopping,
            log,
            thread: Some(thread),
        }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.log.lock().unwrap().clone()
    }

    /// Number of requests with this method whose target contains `needle`.
    pub fn count(&self, method: &str, needle: &str) -> usize {
        self.hits()
            .iter()
            .filter(|h| h.method == method && h.url.contains(needle))
            .count()
    }

    /// GETs that transferred a file's content (resolve for git files, the CDN for LFS).
    pub fn content_gets(&self, file: &ServedFile) -> usize {
        if file.lfs {
            self.count("GET", &format!("/cdn/{}", file.sha256()))
        } else {
            let tail = format!("/{}", file.path);
            self.hits()
                .iter()
                .filter(|h| {
                    h.method == "GET" && h.url.contains("/resolve/") && h.url.ends_with(&tail)
                })
                .count()
        }
    }

    /// Closes the listening socket; connections are then refused, as by an unreachable Hub.
    pub fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let addr = self.url.trim_start_matches("http://").to_string();
        let _ = TcpStream::connect(&addr);
        let _ = thread.join();
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve(mut stream: TcpStream, repos: &[ServedRepo], base: &str, log: &Mutex<Vec<Hit>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(rq) = read_request(&stream) else {
        return;
    };
    log.lock().unwrap().push(Hit {
        method: rq.method.clone(),
        url: rq.target.clone(),
        if_none_match: rq.header("If-None-Match"),
        authorization: rq.header("Authorization").is_some(),
    });
    let r = route(repos, base, &rq);
    let reason = match r.status {
        200 => "OK",
        302 => "Found",
        304 => "Not Modified",
        _ => "Not Found",
    };
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", r.status);
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    // HEAD answers carry the Content-Length a GET would have, and no body.
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        r.body.len()
    ));
    let _ = stream.write_all(head.as_bytes());
    if rq.method != "HEAD" && r.status != 304 {
        let _ = stream.write_all(&r.body);
    }
    let _ = stream.flush();
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Some(Request {
        method,
        target,
        headers,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hexpair = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (
            bytes[i],
            hexpair.and_then(|h| u8::from_str_radix(h, 16).ok()),
        ) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reply(status: u16, body: Vec<u8>, headers: &[(&str, String)]) -> Reply {
    Reply {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        body,
    }
}

fn not_found(code: &str, message: &str, extra: &[(&str, String)]) -> Reply {
    let mut headers = vec![
        ("X-Error-Code", code.to_string()),
        ("X-Error-Message", message.to_string()),
        ("Content-Type", "application/json".to_string()),
    ];
    headers.extend(extra.iter().cloned());
    let body = serde_json::json!({ "error": message })
        .to_string()
        .into_bytes();
    reply(404, body, &headers)
}

fn json(value: serde_json::Value) -> Reply {
    reply(
        200,
        value.to_string().into_bytes(),
        &[("Content-Type", "application/json".to_string())],
    )
}

fn route(repos: &[ServedRepo], base: &str, rq: &Request) -> Reply {
    let target = rq.target.clone();
    let (path, _query) = target.split_once('?').unwrap_or((target.as_str(), ""));
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(decode)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let find = |o: &str, n: &str| repos.iter().find(|r| r.id == format!("{o}/{n}"));
    let no_repo = || not_found("RepoNotFound", "Repository not found", &[]);
    let no_rev = |rev: &str| not_found("RevisionNotFound", &format!("Invalid rev id: {rev}"), &[]);
    match s.as_slice() {
        ["cdn", sha] => repos
            .iter()
            .flat_map(|r| r.commits.iter().flat_map(|(_, files)| files.iter()))
            .find(|f| f.lfs && f.sha256() == *sha)
            .map_or_else(
                || reply(404, Vec::new(), &[]),
                |f| reply(200, f.body(), &[]),
            ),
        ["api", "models", o, n] => match find(o, n) {
            None => no_repo(),
            Some(repo) => match repo.commit("main") {
                None => no_rev("main"),
                Some((sha, _)) => json(serde_json::json!({ "id": repo.id, "sha": sha })),
            },
        },
        ["api", "models", o, n, "revision", rev] => match find(o, n) {
            None => no_repo(),
            Some(repo) => match repo.commit(rev) {
                None => no_rev(rev),
                Some((sha, files)) => json(serde_json::json!({
                    "id": repo.id,
                    "sha": sha,
                    "siblings": files.iter().map(|f| serde_json::json!({ "rfilename": f.path })).collect::<Vec<_>>(),
                })),
            },
        },
        ["api", "models", o, n, "tree", rev, ..] => match find(o, n) {
            None => no_repo(),
            Some(repo) => match repo.commit(rev) {
                None => no_rev(rev),
                Some((_, files)) => json(tree(files)),
            },
        },
        [o, n, "resolve", rev, file @ ..] if !file.is_empty() => match find(o, n) {
            None => no_repo(),
            Some(repo) => match repo.commit(rev) {
                None => no_rev(rev),
                Some((sha, files)) => resolve(base, sha, files, &file.join("/"), rq),
            },
        },
        _ => reply(404, Vec::new(), &[]),
    }
}

fn tree(files: &[ServedFile]) -> serde_json::Value {
    let mut dirs = BTreeSet::new();
    let mut entries = Vec::new();
    for f in files {
        let mut parts: Vec<&str> = f.path.split('/').collect();
        parts.pop();
        for i in 1..=parts.len() {
            dirs.insert(parts[..i].join("/"));
        }
        let mut e = serde_json::json!({
            "type": "file",
            "oid": f.git_oid(),
            "size": f.content.len(),
            "path": f.path,
        });
        if f.lfs {
            e["lfs"] = serde_json::json!({
                "oid": f.sha256(),
                "size": f.content.len(),
                "pointerSize": f.pointer().len(),
            });
        }
        entries.push(e);
    }
    let dirs = dirs.into_iter().map(|d| {
        serde_json::json!({ "type": "directory", "oid": hex(&Sha1::digest(d.as_bytes())), "path": d })
    });
    serde_json::Value::Array(dirs.chain(entries).collect())
}

fn resolve(base: &str, sha: &str, files: &[ServedFile], path: &str, rq: &Request) -> Reply {
    let commit = ("X-Repo-Commit", sha.to_string());
    let Some(f) = files.iter().find(|f| f.path == path) else {
        return not_found("EntryNotFound", "Entry not found", &[commit]);
    };
    let etag = f.etag();
    let quoted = format!("\"{etag}\"");
    if rq
        .header("If-None-Match")
        .is_some_and(|v| v.trim_start_matches("W/") == quoted)
    {
        return reply(304, Vec::new(), &[("ETag", quoted), commit]);
    }
    if f.lfs {
        // The Hub redirects LFS content to its CDN; the redirect carries the metadata.
        let location = format!("{base}/cdn/{}", f.sha256());
        return reply(
            302,
            Vec::new(),
            &[
                ("Location", location),
                ("ETag", format!("\"{}\"", f.git_oid())),
                ("X-Linked-Etag", quoted),
                ("X-Linked-Size", f.content.len().to_string()),
                commit,
            ],
        );
    }
    reply(200, f.body(), &[("ETag", quoted), commit])
}
