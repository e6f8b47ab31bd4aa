//! Hub repository names as users type them (`hub:owner/name[@rev]`, `owner/name[@rev]`), and the
//! checks that keep repository ids, revisions and file names inside the cache.

use super::HubError;

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
