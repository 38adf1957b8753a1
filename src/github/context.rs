//! The GitHub Actions context: which PR a workflow run is about.
//!
//! Inside Actions, `$GITHUB_EVENT_PATH` holds the webhook payload that
//! triggered the run. For `pull_request`, `pull_request_target` and
//! `pull_request_review` it has a `pull_request` object with the number and
//! the base and head commits; other events (push, schedule) have none, and
//! then flags are needed. Flags always win over the event.
//!
//! A `merge_group` event (a merge queue asks for the required checks) has a
//! `merge_group` object instead: the group's commit (`head_sha`), the commit
//! it builds on (`base_sha`), and the queue branch (`head_ref`,
//! `refs/heads/gh-readonly-queue/<base>/pr-<N>-<parent sha>`) that names the
//! PR the entry adds and the commit that entry was merged onto.

use std::path::Path;

use serde_json::Value;

use super::RepoSlug;

/// The PR a workflow run is about, from its event payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrEvent {
    pub number: u64,
    pub base_sha: String,
    pub head_sha: String,
    /// `owner/name` of the base repository, when the payload carries it.
    pub repository: Option<String>,
}

/// Reads the PR from an event payload; `Ok(None)` when the event is not
/// about a pull request.
pub fn parse_event(json: &str) -> Result<Option<PrEvent>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let Some(pr) = v.get("pull_request").filter(|p| p.is_object()) else {
        return Ok(None);
    };
    let s = |p: &str| pr.pointer(p).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("pull_request{} is missing", p.replace('/', ".")));
    let number = pr.get("number").and_then(Value::as_u64).or_else(|| v.get("number").and_then(Value::as_u64)).ok_or("pull_request.number is missing")?;
    Ok(Some(PrEvent {
        number,
        base_sha: s("/base/sha")?,
        head_sha: s("/head/sha")?,
        repository: v.pointer("/repository/full_name").and_then(Value::as_str).map(str::to_string),
    }))
}

/// The PR of the current Actions run, if `GITHUB_EVENT_PATH` names a PR event.
pub fn pr_event_from_env() -> Result<Option<PrEvent>, String> {
    from_event_file(parse_event)
}

/// The merge group of the current Actions run, if `GITHUB_EVENT_PATH` names
/// a `merge_group` event.
pub fn merge_group_event_from_env() -> Result<Option<MergeGroupEvent>, String> {
    from_event_file(parse_merge_group)
}

fn from_event_file<T>(parse: fn(&str) -> Result<Option<T>, String>) -> Result<Option<T>, String> {
    let Some(path) = std::env::var_os("GITHUB_EVENT_PATH").filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let path = Path::new(&path);
    let text = std::fs::read_to_string(path).map_err(|e| format!("GITHUB_EVENT_PATH `{}`: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("GITHUB_EVENT_PATH `{}`: {e}", path.display()))
}

/// A merge queue's request for checks (`merge_group`, action `checks_requested`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeGroupEvent {
    /// The group's commit: where the verdict goes.
    pub head_sha: String,
    /// The queue branch, `refs/heads/gh-readonly-queue/<base>/pr-<N>-<sha>`.
    pub head_ref: String,
    /// The commit on the base branch the group builds on.
    pub base_sha: String,
    /// `refs/heads/<base>`.
    pub base_ref: String,
    /// `owner/name` of the repository, when the payload carries it.
    pub repository: Option<String>,
}

/// Reads the merge group from an event payload; `Ok(None)` when the event is
/// not a merge group's.
pub fn parse_merge_group(json: &str) -> Result<Option<MergeGroupEvent>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let Some(g) = v.get("merge_group").filter(|p| p.is_object()) else {
        return Ok(None);
    };
    let s = |k: &str| g.get(k).and_then(Value::as_str).map(str::to_string).ok_or_else(|| format!("merge_group.{k} is missing"));
    // The verdict is published at `head_sha`: only a full commit id is taken.
    let sha = |k: &str| s(k).and_then(|v| if is_full_sha(&v) { Ok(v) } else { Err(format!("merge_group.{k} `{v}` is not a full commit SHA")) });
    Ok(Some(MergeGroupEvent {
        head_sha: sha("head_sha")?,
        head_ref: s("head_ref")?,
        base_sha: sha("base_sha")?,
        base_ref: s("base_ref")?,
        repository: v.pointer("/repository/full_name").and_then(Value::as_str).map(str::to_string),
    }))
}

/// A full commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
fn is_full_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// One merge queue entry, read from its branch name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRef {
    /// The base branch, without `refs/heads/`.
    pub base: String,
    /// The PR this entry adds.
    pub pr: u64,
    /// The commit the entry was merged onto: the base branch's tip, or the
    /// previous entry's group commit.
    pub parent_sha: String,
}

/// The branch prefix GitHub's merge queue creates its entries under.
pub const QUEUE_PREFIX: &str = "gh-readonly-queue/";

/// Parses `[refs/heads/]gh-readonly-queue/<base>/pr-<N>-<40 or 64 hex>`.
pub fn parse_queue_ref(r: &str) -> Result<QueueRef, String> {
    let bad = |why: &str| format!("merge group ref `{r}` is not `refs/heads/gh-readonly-queue/<base>/pr-<number>-<commit sha>`: {why}");
    let rest = r.strip_prefix("refs/heads/").unwrap_or(r);
    let rest = rest.strip_prefix(QUEUE_PREFIX).ok_or_else(|| bad("no gh-readonly-queue/ prefix"))?;
    let (base, entry) = rest.rsplit_once("/pr-").ok_or_else(|| bad("no /pr-<number>"))?;
    let (number, sha) = entry.split_once('-').ok_or_else(|| bad("no -<commit sha> after the number"))?;
    if base.is_empty() {
        return Err(bad("no base branch"));
    }
    let pr = number.parse::<u64>().ok().filter(|n| *n > 0 && number.bytes().all(|b| b.is_ascii_digit())).ok_or_else(|| bad("the PR number is not a number"))?;
    if !is_full_sha(sha) {
        return Err(bad("the commit is not a full hexadecimal SHA"));
    }
    Ok(QueueRef { base: base.to_string(), pr, parent_sha: sha.to_string() })
}

/// The repository: `--github-repo`, else `GITHUB_REPOSITORY`, else the event's.
pub fn repo_slug(flag: Option<&str>, event_repo: Option<&str>) -> Result<RepoSlug, String> {
    let env = std::env::var("GITHUB_REPOSITORY").ok().filter(|s| !s.trim().is_empty());
    let (raw, from) = match (flag, env, event_repo) {
        (Some(f), _, _) => (f.to_string(), "--github-repo"),
        (None, Some(e), _) => (e, "GITHUB_REPOSITORY"),
        (None, None, Some(e)) => (e.to_string(), "the event payload"),
        (None, None, None) => return Err("no repository: pass --github-repo OWNER/NAME or set GITHUB_REPOSITORY".to_string()),
    };
    RepoSlug::parse(&raw).ok_or_else(|| format!("{from}: `{raw}` is not OWNER/NAME"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pull_request_and_review_events_name_the_pr() {
        let pr = r#"{"action":"synchronize","number":7,"pull_request":{"number":7,"base":{"ref":"main","sha":"b1"},"head":{"ref":"x","sha":"h1"}},"repository":{"full_name":"acme/access"}}"#;
        assert_eq!(parse_event(pr).unwrap(), Some(PrEvent { number: 7, base_sha: "b1".into(), head_sha: "h1".into(), repository: Some("acme/access".into()) }));
        let review = r#"{"action":"submitted","review":{"state":"approved"},"pull_request":{"number":9,"base":{"sha":"b"},"head":{"sha":"h"}}}"#;
        assert_eq!(parse_event(review).unwrap().map(|e| e.number), Some(9));
        assert_eq!(parse_event(r#"{"ref":"refs/heads/main","commits":[]}"#).unwrap(), None);
        assert!(parse_event(r#"{"pull_request":{"number":1,"base":{}}}"#).unwrap_err().contains("base.sha"));
    }

    #[test]
    fn merge_group_events_and_queue_refs() {
        let sha = "5e8c2a1f0b3d4c6e7f8091a2b3c4d5e6f7081920";
        let h = "0123456789abcdef0123456789abcdef01234567";
        let ev = format!(
            r#"{{"action":"checks_requested","merge_group":{{"head_sha":"{h}","head_ref":"refs/heads/gh-readonly-queue/main/pr-12-{sha}","base_sha":"{sha}","base_ref":"refs/heads/main","head_commit":{{"id":"{h}"}}}},"repository":{{"full_name":"acme/access"}}}}"#
        );
        let g = parse_merge_group(&ev).unwrap().unwrap();
        assert_eq!((g.head_sha.as_str(), g.base_sha.as_str(), g.base_ref.as_str()), (h, sha, "refs/heads/main"));
        assert_eq!(g.repository.as_deref(), Some("acme/access"));
        assert_eq!(parse_queue_ref(&g.head_ref).unwrap(), QueueRef { base: "main".into(), pr: 12, parent_sha: sha.into() });
        // A base branch with slashes; a remote-tracking name without refs/heads/.
        assert_eq!(parse_queue_ref(&format!("gh-readonly-queue/release/v1/pr-3-{sha}")).unwrap().base, "release/v1");
        assert_eq!(parse_merge_group(r#"{"pull_request":{"number":1}}"#).unwrap(), None);
        assert!(parse_merge_group(&format!(r#"{{"merge_group":{{"head_sha":"{h}"}}}}"#)).unwrap_err().contains("merge_group.head_ref"));
        let odd = ev.replace(h, "../../check-runs");
        assert!(parse_merge_group(&odd).unwrap_err().contains("merge_group.head_sha `../../check-runs` is not a full commit SHA"));
        for bad in [
            "refs/heads/main".to_string(),
            "refs/heads/gh-readonly-queue/main/pr-12".to_string(),
            format!("refs/heads/gh-readonly-queue/main/pr-x-{sha}"),
            format!("refs/heads/gh-readonly-queue/main/pr-+1-{sha}"),
            format!("refs/heads/gh-readonly-queue/pr-1-{sha}"),
            "refs/heads/gh-readonly-queue/main/pr-1-abc123".to_string(),
            format!("refs/heads/gh-readonly-queue/main/pr-1-{}", sha.to_uppercase()),
        ] {
            let e = parse_queue_ref(&bad).unwrap_err();
            assert!(e.contains("is not `refs/heads/gh-readonly-queue/<base>/pr-<number>-<commit sha>`"), "{bad}: {e}");
        }
    }

    #[test]
    fn repo_flags_are_validated() {
        assert_eq!(repo_slug(Some("acme/access"), None).unwrap().to_string(), "acme/access");
        assert!(repo_slug(Some("acme"), None).unwrap_err().contains("OWNER/NAME"));
        assert!(RepoSlug::parse("a/b/c").is_none());
    }
}
