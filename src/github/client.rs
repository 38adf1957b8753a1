//! The production [`GitHubApi`]: octocrab for transport and authentication,
//! with our own retry loop and pagination on top.
//!
//! Why our own retry: octocrab's retry layer retries 5xx immediately and has
//! no bound on the total wait; the gate runs in CI and must both honour
//! GitHub's `Retry-After` / `x-ratelimit-reset` and give up in bounded time
//! (`GITGRANT_GITHUB_MAX_WAIT`, default 120 s). Creating a comment is never
//! retried after a 5xx (it may have been created): the gate re-lists instead.
//!
//! Why pagination rewrites `Link` URLs: octocrab only sends the token to
//! relative URIs (and api.github.com), so a `next` link is checked to point
//! at the configured API (same scheme, host and path prefix) and followed as
//! a relative path. A link elsewhere is refused: the token never leaves.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use octocrab::Octocrab;
use serde_json::{Value, json};

use super::{ApiError, CheckRun, Comment, CommitStatus, GitHubApi, NewPullRequest, PullRequest, RepoSlug, Review};
use crate::approval::ReviewState;

/// The public GitHub API, when `GITHUB_API_URL` is unset.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// More pages than this is a runaway pagination (or a hostile server).
const MAX_PAGES: usize = 200;

/// How hard to try before giving up on a call.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// First backoff after a 5xx or transport error; doubles each time.
    pub base_delay: Duration,
    /// Total time one call may spend waiting before it fails.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 5, base_delay: Duration::from_secs(1), max_total_wait: Duration::from_secs(120) }
    }
}

impl RetryPolicy {
    /// The default, with `GITGRANT_GITHUB_MAX_WAIT` (seconds) as the wait budget when set.
    pub fn from_env() -> RetryPolicy {
        let mut p = RetryPolicy::default();
        if let Some(secs) = std::env::var("GITGRANT_GITHUB_MAX_WAIT").ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            p.max_total_wait = Duration::from_secs(secs);
        }
        p
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Patch,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
        }
    }
}

/// The response headers the client acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateHeaders {
    pub retry_after: Option<String>,
    pub remaining: Option<String>,
    pub reset: Option<String>,
    pub link: Option<String>,
}

struct Response {
    headers: RateHeaders,
    body: String,
}

/// How long to wait before retrying a failed call, or `None` to fail now.
///
/// - `Retry-After` (seconds) wins whenever present (403, 429, 5xx).
/// - 403/429 with `x-ratelimit-remaining: 0`: until `x-ratelimit-reset`.
/// - 403/429 whose message names a secondary rate limit (or any 429): one
///   minute, as GitHub's docs ask.
/// - 5xx on an idempotent call: exponential backoff from `base`.
/// - Anything else (a plain 403, 404, 422...) is not retried.
pub fn retry_wait(status: u16, h: &RateHeaders, body: &str, attempt: u32, idempotent: bool, base: Duration, now: DateTime<Utc>) -> Option<Duration> {
    let rate_limited_status = status == 403 || status == 429;
    let server_error = (500..600).contains(&status);
    if let Some(secs) = h.retry_after.as_deref().and_then(|s| s.trim().parse::<u64>().ok())
        && (rate_limited_status || (server_error && idempotent))
    {
        return Some(Duration::from_secs(secs));
    }
    if rate_limited_status {
        if h.remaining.as_deref().map(str::trim) == Some("0")
            && let Some(reset) = h.reset.as_deref().and_then(|s| s.trim().parse::<i64>().ok())
        {
            let secs = u64::try_from(reset - now.timestamp()).unwrap_or(0).max(1);
            return Some(Duration::from_secs(secs));
        }
        if status == 429 || body.to_ascii_lowercase().contains("secondary rate limit") {
            return Some(Duration::from_secs(60));
        }
        return None;
    }
    if server_error && idempotent {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        return Some(base.saturating_mul(factor));
    }
    None
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let mut pieces = part.split(';');
        let url = pieces.next()?.trim().strip_prefix('<')?.strip_suffix('>')?;
        pieces.any(|p| p.trim() == "rel=\"next\"").then(|| url.to_string())
    })
}

/// `url` as a path relative to the API base, if it points at that API.
pub fn relative_to_base(base: &str, url: &str) -> Option<String> {
    let base = base.trim_end_matches('/');
    let rest = url.strip_prefix(base)?;
    (rest.starts_with('/') || rest.starts_with('?')).then(|| if rest.starts_with('?') { format!("/{rest}") } else { rest.to_string() })
}

/// Percent-encodes a path segment (owner, repo, org or team names).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The GitHub message of an error body (`{"message": ...}`), else the body.
fn error_message(body: &str) -> String {
    let msg = serde_json::from_str::<Value>(body).ok().and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string));
    let msg = msg.unwrap_or_else(|| body.trim().to_string());
    let msg: String = msg.chars().take(300).collect();
    if msg.is_empty() { "no message".to_string() } else { msg }
}

/// A GitHub REST client for one repository.
pub struct Client {
    crab: Octocrab,
    base: String,
    repo: RepoSlug,
    retry: RetryPolicy,
}

impl Client {
    /// Authenticates from the environment: `GITHUB_TOKEN`, else a GitHub App
    /// (`GITHUB_APP_ID` and `GITHUB_APP_PRIVATE_KEY`, the PEM text or a path
    /// to it) whose installation on `repo` gives the token. The API is
    /// `GITHUB_API_URL` (GitHub Enterprise Server, tests), else api.github.com.
    pub async fn from_env(repo: RepoSlug) -> Result<Client, ApiError> {
        let var = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let base = var("GITHUB_API_URL").unwrap_or_else(|| DEFAULT_API_URL.to_string()).trim_end_matches('/').to_string();
        let retry = RetryPolicy::from_env();
        let builder = || {
            Octocrab::builder()
                .set_connect_timeout(Some(Duration::from_secs(10)))
                .set_read_timeout(Some(Duration::from_secs(60)))
                .base_uri(base.as_str())
                .map_err(|e| ApiError::Auth(format!("GITHUB_API_URL `{base}` is not a URL: {e}")))
        };
        if let Some(token) = var("GITHUB_TOKEN") {
            let crab = builder()?.personal_token(token).build().map_err(|e| ApiError::Auth(e.to_string()))?;
            return Ok(Client { crab, base, repo, retry });
        }
        let (Some(app_id), Some(key)) = (var("GITHUB_APP_ID"), var("GITHUB_APP_PRIVATE_KEY")) else {
            return Err(ApiError::Auth("no credentials: set GITHUB_TOKEN, or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY".to_string()));
        };
        let app_id: u64 = app_id.parse().map_err(|_| ApiError::Auth(format!("GITHUB_APP_ID `{app_id}` is not a number")))?;
        let pem = if key.starts_with("-----BEGIN") {
            key.replace("\\n", "\n")
        } else {
            std::fs::read_to_string(&key)
                .map_err(|e| ApiError::Auth(format!("GITHUB_APP_PRIVATE_KEY is neither a PEM key nor a readable file `{key}`: {e}")))?
        };
        let key = octocrab::EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| ApiError::Auth(format!("GITHUB_APP_PRIVATE_KEY is not an RSA private key in PEM form: {e}")))?;
        let app = builder()?.app(octocrab::models::AppId(app_id), key).build().map_err(|e| ApiError::Auth(e.to_string()))?;
        // The installation of the app on this repository mints the token.
        let app_client = Client { crab: app, base: base.clone(), repo: repo.clone(), retry };
        let path = format!("/repos/{}/{}/installation", seg(&repo.owner), seg(&repo.name));
        let installation = app_client.json(Method::Get, &path, None).await?;
        let id = installation.get("id").and_then(Value::as_u64).ok_or_else(|| ApiError::Decode {
            method: "GET".into(),
            path: path.clone(),
            message: "no installation id".into(),
        })?;
        let crab = app_client
            .crab
            .installation(octocrab::models::InstallationId(id))
            .map_err(|e| ApiError::Auth(format!("GitHub App {app_id}: installation {id} on {repo}: {e}")))?;
        Ok(Client { crab, base, repo, retry })
    }

    /// A client with an explicit octocrab instance (tests, embedding).
    pub fn new(crab: Octocrab, base: &str, repo: RepoSlug, retry: RetryPolicy) -> Client {
        Client { crab, base: base.trim_end_matches('/').to_string(), repo, retry }
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", seg(&self.repo.owner), seg(&self.repo.name))
    }

    /// One call with retries; `idempotent` calls are also retried on 5xx and
    /// transport errors.
    async fn send(&self, method: Method, path: &str, body: Option<&Value>, idempotent: bool) -> Result<Response, ApiError> {
        let mut waited = Duration::ZERO;
        let mut attempt = 0u32;
        let m = method.as_str();
        loop {
            attempt += 1;
            let sent = match method {
                Method::Get => self.crab._get(path).await,
                Method::Post => self.crab._post(path, body).await,
                Method::Patch => self.crab._patch(path, body).await,
            };
            let (status, headers, text) = match sent {
                Ok(resp) => {
                    let header = |k: &str| resp.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
                    let headers = RateHeaders {
                        retry_after: header("retry-after"),
                        remaining: header("x-ratelimit-remaining"),
                        reset: header("x-ratelimit-reset"),
                        link: header("link"),
                    };
                    let status = resp.status().as_u16();
                    let text = self.crab.body_to_string(resp).await;
                    (status, headers, text)
                }
                Err(e) => {
                    let wait = self.retry.base_delay.saturating_mul(2u32.saturating_pow(attempt - 1));
                    if idempotent && attempt < self.retry.attempts && waited + wait <= self.retry.max_total_wait {
                        tokio::time::sleep(wait).await;
                        waited += wait;
                        continue;
                    }
                    return Err(ApiError::Transport { method: m.into(), path: path.into(), message: e.to_string() });
                }
            };
            let text = match text {
                Ok(t) => t,
                Err(_) if idempotent && attempt < self.retry.attempts => continue,
                Err(e) => return Err(ApiError::Transport { method: m.into(), path: path.into(), message: e.to_string() }),
            };
            if (200..300).contains(&status) {
                return Ok(Response { headers, body: text });
            }
            let wait = retry_wait(status, &headers, &text, attempt, idempotent, self.retry.base_delay, Utc::now());
            let fail = || ApiError::Http { method: m.into(), path: path.into(), status, message: error_message(&text) };
            match wait {
                Some(w) if attempt < self.retry.attempts => {
                    if waited + w > self.retry.max_total_wait {
                        if status == 403 || status == 429 {
                            return Err(ApiError::RateLimited {
                                method: m.into(),
                                path: path.into(),
                                wait_secs: w.as_secs(),
                                budget_secs: self.retry.max_total_wait.saturating_sub(waited).as_secs(),
                            });
                        }
                        return Err(fail());
                    }
                    eprintln!("gitgrant: GitHub {m} {}: HTTP {status}, retrying in {}s", crate::render::escape::human(path), w.as_secs_f32());
                    tokio::time::sleep(w).await;
                    waited += w;
                }
                _ => return Err(fail()),
            }
        }
    }

    async fn json(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        let idempotent = method != Method::Post;
        let resp = self.send(method, path, body, idempotent).await?;
        if resp.body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&resp.body).map_err(|e| ApiError::Decode { method: method.as_str().into(), path: path.into(), message: e.to_string() })
    }

    /// Every item of a paginated list, following `Link: rel="next"`.
    async fn list(&self, first: &str) -> Result<Vec<Value>, ApiError> {
        let mut out = Vec::new();
        let mut path = first.to_string();
        for _ in 0..MAX_PAGES {
            let resp = self.send(Method::Get, &path, None, true).await?;
            let page: Value =
                serde_json::from_str(&resp.body).map_err(|e| ApiError::Decode { method: "GET".into(), path: path.clone(), message: e.to_string() })?;
            match page {
                Value::Array(items) => out.extend(items),
                _ => return Err(ApiError::Decode { method: "GET".into(), path, message: "expected a JSON array".into() }),
            }
            let Some(next) = resp.headers.link.as_deref().and_then(next_link) else {
                return Ok(out);
            };
            path = relative_to_base(&self.base, &next).ok_or_else(|| ApiError::Decode {
                method: "GET".into(),
                path: path.clone(),
                message: format!("refusing to follow a pagination link outside {}: {next}", self.base),
            })?;
        }
        Err(ApiError::Decode { method: "GET".into(), path: first.into(), message: format!("more than {MAX_PAGES} pages") })
    }
}

fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn decode_err(path: &str, what: &str) -> ApiError {
    ApiError::Decode { method: "GET".into(), path: path.into(), message: format!("missing {what}") }
}

/// A review as GitHub returns it; reviews by deleted users become `ghost`.
pub fn review_from_json(v: &Value) -> Option<Review> {
    let state = match str_at(v, "/state")? {
        "APPROVED" => ReviewState::Approved,
        "CHANGES_REQUESTED" => ReviewState::ChangesRequested,
        "DISMISSED" => ReviewState::Dismissed,
        "PENDING" => ReviewState::Pending,
        _ => ReviewState::Commented,
    };
    let submitted_at =
        str_at(v, "/submitted_at").and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc));
    Some(Review {
        login: str_at(v, "/user/login").unwrap_or("ghost").to_string(),
        state,
        commit_id: str_at(v, "/commit_id").unwrap_or_default().to_string(),
        submitted_at,
        id: v.get("id").and_then(Value::as_u64).map(|id| id.to_string()),
    })
}

#[async_trait]
impl GitHubApi for Client {
    async fn pull_request(&self, number: u64) -> Result<PullRequest, ApiError> {
        let path = self.repo_path(&format!("/pulls/{number}"));
        let v = self.json(Method::Get, &path, None).await?;
        let s = |p: &str| str_at(&v, p).map(str::to_string).ok_or_else(|| decode_err(&path, p));
        Ok(PullRequest {
            number,
            author: s("/user/login")?,
            base_sha: s("/base/sha")?,
            base_ref: s("/base/ref")?,
            head_sha: s("/head/sha")?,
            state: s("/state")?,
            html_url: s("/html_url").unwrap_or_default(),
            merge_commit_sha: str_at(&v, "/merge_commit_sha").map(str::to_string),
            merged: v.pointer("/merged").and_then(|m| m.as_bool()).unwrap_or(false),
        })
    }

    async fn reviews(&self, number: u64) -> Result<Vec<Review>, ApiError> {
        let items = self.list(&self.repo_path(&format!("/pulls/{number}/reviews?per_page=100"))).await?;
        Ok(items.iter().filter_map(review_from_json).collect())
    }

    async fn commit_authors(&self, number: u64) -> Result<Vec<String>, ApiError> {
        let items = self.list(&self.repo_path(&format!("/pulls/{number}/commits?per_page=100"))).await?;
        let mut out: Vec<String> = items
            .iter()
            .flat_map(|c| [str_at(c, "/author/login"), str_at(c, "/committer/login")])
            .flatten()
            .filter(|l| *l != "web-flow")
            .map(str::to_string)
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn changed_files(&self, number: u64) -> Result<Vec<String>, ApiError> {
        let items = self.list(&self.repo_path(&format!("/pulls/{number}/files?per_page=100"))).await?;
        let mut out = Vec::new();
        for f in &items {
            out.extend(str_at(f, "/filename").map(str::to_string));
            out.extend(str_at(f, "/previous_filename").map(str::to_string));
        }
        Ok(out)
    }

    async fn team_members(&self, org: &str, team_slug: &str) -> Result<Vec<String>, ApiError> {
        let items = self.list(&format!("/orgs/{}/teams/{}/members?per_page=100", seg(org), seg(team_slug))).await?;
        Ok(items.iter().filter_map(|m| str_at(m, "/login").map(str::to_string)).collect())
    }

    async fn create_check_run(&self, run: &CheckRun) -> Result<(), ApiError> {
        let body = serde_json::to_value(run).map_err(|e| ApiError::Decode { method: "POST".into(), path: "check-runs".into(), message: e.to_string() })?;
        // A duplicate check run is harmless (the latest wins), so retry 5xx.
        self.send(Method::Post, &self.repo_path("/check-runs"), Some(&body), true).await.map(|_| ())
    }

    async fn create_status(&self, sha: &str, status: &CommitStatus) -> Result<(), ApiError> {
        let body = serde_json::to_value(status).map_err(|e| ApiError::Decode { method: "POST".into(), path: "statuses".into(), message: e.to_string() })?;
        self.send(Method::Post, &self.repo_path(&format!("/statuses/{}", seg(sha))), Some(&body), true).await.map(|_| ())
    }

    async fn comments(&self, number: u64) -> Result<Vec<Comment>, ApiError> {
        let items = self.list(&self.repo_path(&format!("/issues/{number}/comments?per_page=100"))).await?;
        Ok(items
            .iter()
            .filter_map(|c| {
                Some(Comment {
                    id: c.get("id").and_then(Value::as_u64)?,
                    body: str_at(c, "/body").unwrap_or_default().to_string(),
                    author: str_at(c, "/user/login").unwrap_or("ghost").to_string(),
                    author_type: str_at(c, "/user/type").unwrap_or("User").to_string(),
                })
            })
            .collect())
    }

    async fn create_comment(&self, number: u64, body: &str) -> Result<u64, ApiError> {
        let path = self.repo_path(&format!("/issues/{number}/comments"));
        let v = self.json(Method::Post, &path, Some(&json!({ "body": body }))).await?;
        v.get("id").and_then(Value::as_u64).ok_or_else(|| ApiError::Decode { method: "POST".into(), path, message: "no comment id".into() })
    }

    async fn update_comment(&self, id: u64, body: &str) -> Result<(), ApiError> {
        let path = self.repo_path(&format!("/issues/comments/{id}"));
        self.json(Method::Patch, &path, Some(&json!({ "body": body }))).await.map(|_| ())
    }

    async fn request_reviewers(&self, number: u64, users: &[String], teams: &[String]) -> Result<(), ApiError> {
        let path = self.repo_path(&format!("/pulls/{number}/requested_reviewers"));
        self.json(Method::Post, &path, Some(&json!({ "reviewers": users, "team_reviewers": teams }))).await.map(|_| ())
    }

    async fn create_issue(&self, title: &str, body: &str) -> Result<(u64, String), ApiError> {
        let path = self.repo_path("/issues");
        let v = self.json(Method::Post, &path, Some(&json!({ "title": title, "body": body }))).await?;
        let n = v.get("number").and_then(Value::as_u64).ok_or_else(|| decode_err(&path, "/number"))?;
        Ok((n, str_at(&v, "/html_url").unwrap_or_default().to_string()))
    }

    async fn create_pull_request(&self, pr: &NewPullRequest) -> Result<(u64, String), ApiError> {
        let path = self.repo_path("/pulls");
        let body = serde_json::to_value(pr).map_err(|e| ApiError::Decode { method: "POST".into(), path: path.clone(), message: e.to_string() })?;
        // Not retried on 5xx: a second POST could open a second PR.
        let v = self.json(Method::Post, &path, Some(&body)).await?;
        let number = v.get("number").and_then(Value::as_u64).ok_or_else(|| decode_err(&path, "/number"))?;
        Ok((number, str_at(&v, "/html_url").unwrap_or_default().to_string()))
    }

    async fn viewer_login(&self) -> Option<String> {
        let v = self.send(Method::Get, "/user", None, false).await.ok()?;
        let v: Value = serde_json::from_str(&v.body).ok()?;
        str_at(&v, "/login").map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn waits_honour_github_headers() {
        let now = at("2026-11-23T10:00:00Z");
        let base = Duration::from_millis(100);
        let h = |ra: Option<&str>, rem: Option<&str>, reset: Option<&str>| RateHeaders {
            retry_after: ra.map(Into::into),
            remaining: rem.map(Into::into),
            reset: reset.map(Into::into),
            link: None,
        };
        assert_eq!(retry_wait(403, &h(Some("7"), None, None), "", 1, false, base, now), Some(Duration::from_secs(7)));
        let reset = (now.timestamp() + 30).to_string();
        assert_eq!(retry_wait(403, &h(None, Some("0"), Some(&reset)), "", 1, true, base, now), Some(Duration::from_secs(30)));
        assert_eq!(
            retry_wait(403, &h(None, None, None), r#"{"message":"You have exceeded a secondary rate limit"}"#, 1, true, base, now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(retry_wait(403, &h(None, Some("4999"), None), r#"{"message":"Resource not accessible by integration"}"#, 1, true, base, now), None);
        assert_eq!(retry_wait(502, &h(None, None, None), "", 3, true, base, now), Some(Duration::from_millis(400)));
        assert_eq!(retry_wait(502, &h(None, None, None), "", 1, false, base, now), None, "a POST that may have happened is not retried");
        assert_eq!(retry_wait(404, &h(None, None, None), "", 1, true, base, now), None);
    }

    #[test]
    fn link_headers_and_base_paths() {
        let link = r#"<https://ghe.example.com/api/v3/repositories/1/pulls/2/reviews?page=2>; rel="next", <https://ghe.example.com/api/v3/repositories/1/pulls/2/reviews?page=3>; rel="last""#;
        let next = next_link(link).unwrap();
        assert_eq!(next, "https://ghe.example.com/api/v3/repositories/1/pulls/2/reviews?page=2");
        assert_eq!(relative_to_base("https://ghe.example.com/api/v3/", &next).as_deref(), Some("/repositories/1/pulls/2/reviews?page=2"));
        assert_eq!(relative_to_base("https://ghe.example.com/api/v3", "https://evil.example.com/api/v3/x"), None);
        assert_eq!(relative_to_base("https://ghe.example.com/api/v3", "https://ghe.example.com/api/v30/x"), None);
        assert_eq!(next_link(r#"<https://x/a?page=1>; rel="prev""#), None);
    }

    #[test]
    fn reviews_decode_like_github_sends_them() {
        let v: Value = serde_json::from_str(
            r#"{"id":80,"user":null,"body":"","state":"CHANGES_REQUESTED","commit_id":"abc","submitted_at":"2019-11-17T17:43:43Z","author_association":"NONE"}"#,
        )
        .unwrap();
        let r = review_from_json(&v).unwrap();
        assert_eq!((r.login.as_str(), r.state, r.commit_id.as_str(), r.id.as_deref()), ("ghost", ReviewState::ChangesRequested, "abc", Some("80")));
    }
}
