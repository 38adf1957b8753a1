//! The GitHub Actions context: which PR a workflow run is about.
//!
//! Inside Actions, `$GITHUB_EVENT_PATH` holds the webhook payload that
//! triggered the run. For `pull_request`, `pull_request_target` and
//! `pull_request_review` it has a `pull_request` object with the number and
//! the base and head commits; other events (push, schedule) have none, and
//! then flags are needed. Flags always win over the event.

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
    let Some(path) = std::env::var_os("GITHUB_EVENT_PATH").filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let path = Path::new(&path);
    let text = std::fs::read_to_string(path).map_err(|e| format!("GITHUB_EVENT_PATH `{}`: {e}", path.display()))?;
    parse_event(&text).map_err(|e| format!("GITHUB_EVENT_PATH `{}`: {e}", path.display()))
}

/// The repository: `--github-repo`, else `GITHUB_REPOSITORY`, else the event's.
pub fn repo_slug(flag: Option<&str>, event: Option<&PrEvent>) -> Result<RepoSlug, String> {
    let env = std::env::var("GITHUB_REPOSITORY").ok().filter(|s| !s.trim().is_empty());
    let (raw, from) = match (flag, env, event.and_then(|e| e.repository.clone())) {
        (Some(f), _, _) => (f.to_string(), "--github-repo"),
        (None, Some(e), _) => (e, "GITHUB_REPOSITORY"),
        (None, None, Some(e)) => (e, "the event payload"),
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
    fn repo_flags_are_validated() {
        assert_eq!(repo_slug(Some("acme/access"), None).unwrap().to_string(), "acme/access");
        assert!(repo_slug(Some("acme"), None).unwrap_err().contains("OWNER/NAME"));
        assert!(RepoSlug::parse("a/b/c").is_none());
    }
}
