//! The production [`GitHubApi`]: a thin REST client on reqwest, with our own
//! retry loop, pagination and GitHub App authentication.
//!
//! Why our own retry: GitHub asks clients to honour `Retry-After` and
//! `x-ratelimit-reset`, and the gate runs in CI where it must also give up in
//! bounded time (`GITGRANT_GITHUB_MAX_WAIT`, default 120 s). Creating a
//! comment is never retried after a 5xx (it may have been created): the gate
//! re-lists instead.
//!
//! Why pagination checks `Link` URLs: a `next` link is followed only when it
//! points at the configured API (same scheme, host and path prefix), so the
//! token is never sent anywhere else. A link elsewhere is refused.
//!
//! App authentication: the app's JWT (RS256, signed with ring) finds the
//! installation on the repository and mints an installation token, minted
//! again five minutes before it expires.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Value, json};
use tokio::sync::Mutex;

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

/// How a client authenticates.
enum Auth {
    /// A token used as is (`GITHUB_TOKEN`, or a JWT while finding the installation).
    Token(String),
    /// A GitHub App installation: its token is minted with the app's JWT and
    /// minted again shortly before it expires.
    App { app: Box<AppKey>, installation: u64, token: Mutex<Option<InstallationToken>> },
}

struct InstallationToken {
    value: String,
    expires: DateTime<Utc>,
}

/// A GitHub App's id and RSA private key.
pub struct AppKey {
    id: u64,
    key: RsaKeyPair,
}

impl AppKey {
    /// Parses the app's private key (PKCS#1 `RSA PRIVATE KEY`, as GitHub
    /// downloads it, or PKCS#8 `PRIVATE KEY`).
    pub fn from_pem(id: u64, pem: &str) -> Result<AppKey, ApiError> {
        let bad = |e: String| ApiError::Auth(format!("GITHUB_APP_PRIVATE_KEY is not an RSA private key in PEM form: {e}"));
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let key = match &der {
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            _ => return Err(bad("an elliptic-curve key; GitHub Apps use RSA keys".to_string())),
        }
        .map_err(|e| bad(e.to_string()))?;
        Ok(AppKey { id, key })
    }

    /// The app's JWT (RS256), valid for nine minutes from a minute ago
    /// (GitHub allows ten, and clocks drift).
    pub fn jwt(&self, now: DateTime<Utc>) -> Result<String, ApiError> {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let header = b64(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = json!({ "iat": now.timestamp() - 60, "exp": now.timestamp() + 540, "iss": self.id.to_string() });
        let signing_input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signing_input.as_bytes(), &mut signature)
            .map_err(|_| ApiError::Auth(format!("GitHub App {}: cannot sign the app's JWT with GITHUB_APP_PRIVATE_KEY", self.id)))?;
        Ok(format!("{signing_input}.{}", b64(&signature)))
    }
}

/// A GitHub REST client for one repository: reqwest for transport, with
/// GitHub's headers, our retry loop and pagination.
pub struct Client {
    http: reqwest::Client,
    base: String,
    repo: RepoSlug,
    retry: RetryPolicy,
    auth: Auth,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Client {
    /// Authenticates from the environment: `GITHUB_TOKEN`, else a GitHub App
    /// (`GITHUB_APP_ID` and `GITHUB_APP_PRIVATE_KEY`, the PEM text or a path
    /// to it) whose installation on `repo` gives the token. The API is
    /// `GITHUB_API_URL` (GitHub Enterprise Server, tests), else api.github.com.
    pub async fn from_env(repo: RepoSlug) -> Result<Client, ApiError> {
        let var = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let base = var("GITHUB_API_URL").unwrap_or_else(|| DEFAULT_API_URL.to_string());
        let retry = RetryPolicy::from_env();
        if let Some(token) = var("GITHUB_TOKEN") {
            return Client::new(&base, &token, repo, retry);
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
        let app = AppKey::from_pem(app_id, &pem)?;
        // The installation of the app on this repository mints the token.
        let mut client = Client::new(&base, &app.jwt(Utc::now())?, repo, retry)?;
        let path = client.repo_path("/installation");
        let installation = client.json(Method::Get, &path, None).await?;
        let id = installation.get("id").and_then(Value::as_u64).ok_or_else(|| decode_err(&path, "/id"))?;
        client.auth = Auth::App { app: Box::new(app), installation: id, token: Mutex::new(None) };
        // Mint now, so a misconfigured app fails before any real call.
        client.authorization().await?;
        Ok(client)
    }

    /// A client that sends `token` (tests, embedding).
    pub fn new(base: &str, token: &str, repo: RepoSlug, retry: RetryPolicy) -> Result<Client, ApiError> {
        let base = base.trim().trim_end_matches('/').to_string();
        reqwest::Url::parse(&base).map_err(|e| ApiError::Auth(format!("GITHUB_API_URL `{base}` is not a URL: {e}")))?;
        let http = crate::http_client_builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("gitgrant/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Auth(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client { http, base, repo, retry, auth: Auth::Token(token.to_string()) })
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", seg(&self.repo.owner), seg(&self.repo.name))
    }

    /// The `Authorization` header value, minting an installation token when
    /// there is none or it expires within five minutes.
    async fn authorization(&self) -> Result<String, ApiError> {
        match &self.auth {
            Auth::Token(t) => Ok(format!("Bearer {t}")),
            Auth::App { app, installation, token } => {
                let mut token = token.lock().await;
                let now = Utc::now();
                if let Some(t) = token.as_ref().filter(|t| t.expires - chrono::Duration::minutes(5) > now) {
                    return Ok(format!("Bearer {}", t.value));
                }
                let minted = self.mint(app, *installation).await?;
                let header = format!("Bearer {}", minted.value);
                *token = Some(minted);
                Ok(header)
            }
        }
    }

    /// `POST /app/installations/{id}/access_tokens` with the app's JWT.
    fn mint<'a>(&'a self, app: &'a AppKey, installation: u64) -> BoxFuture<'a, Result<InstallationToken, ApiError>> {
        Box::pin(async move {
            let path = format!("/app/installations/{installation}/access_tokens");
            let jwt = format!("Bearer {}", app.jwt(Utc::now())?);
            // Minting twice is harmless, so a 5xx is retried.
            let resp = self.send_as(Method::Post, &path, None, true, Some(&jwt)).await.map_err(|e| match e {
                ApiError::Http { status, message, .. } => {
                    ApiError::Auth(format!("GitHub App {}: installation {installation} on {}: HTTP {status}: {message}", app.id, self.repo))
                }
                other => other,
            })?;
            let v: Value =
                serde_json::from_str(&resp.body).map_err(|e| ApiError::Decode { method: "POST".into(), path: path.clone(), message: e.to_string() })?;
            let value = str_at(&v, "/token").ok_or_else(|| decode_err(&path, "/token"))?.to_string();
            let expires = str_at(&v, "/expires_at")
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map_or_else(|| Utc::now() + chrono::Duration::minutes(55), |t| t.with_timezone(&Utc));
            Ok(InstallationToken { value, expires })
        })
    }

    /// One call with retries; `idempotent` calls are also retried on 5xx and
    /// transport errors.
    async fn send(&self, method: Method, path: &str, body: Option<&Value>, idempotent: bool) -> Result<Response, ApiError> {
        self.send_as(method, path, body, idempotent, None).await
    }

    /// [`Client::send`] with an explicit `Authorization` header (the app's JWT).
    async fn send_as(&self, method: Method, path: &str, body: Option<&Value>, idempotent: bool, auth: Option<&str>) -> Result<Response, ApiError> {
        let mut waited = Duration::ZERO;
        let mut attempt = 0u32;
        let m = method.as_str();
        let url = format!("{}{path}", self.base);
        loop {
            attempt += 1;
            let authorization = match auth {
                Some(a) => a.to_string(),
                None => self.authorization().await?,
            };
            let verb = match method {
                Method::Get => reqwest::Method::GET,
                Method::Post => reqwest::Method::POST,
                Method::Patch => reqwest::Method::PATCH,
            };
            let mut req = self
                .http
                .request(verb, &url)
                .header(reqwest::header::AUTHORIZATION, authorization)
                .header(reqwest::header::ACCEPT, "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28");
            if let Some(b) = body {
                req = req.json(b);
            }
            let sent = match req.send().await {
                Ok(resp) => {
                    let header = |k: &str| resp.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
                    let headers = RateHeaders {
                        retry_after: header("retry-after"),
                        remaining: header("x-ratelimit-remaining"),
                        reset: header("x-ratelimit-reset"),
                        link: header("link"),
                    };
                    let status = resp.status().as_u16();
                    Ok((status, headers, resp.text().await))
                }
                Err(e) => Err(e),
            };
            let (status, headers, text) = match sent {
                Ok(got) => got,
                Err(e) => {
                    let wait = self.retry.base_delay.saturating_mul(2u32.saturating_pow(attempt - 1));
                    if idempotent && attempt < self.retry.attempts && waited + wait <= self.retry.max_total_wait {
                        tokio::time::sleep(wait).await;
                        waited += wait;
                        continue;
                    }
                    return Err(ApiError::Transport { method: m.into(), path: path.into(), message: crate::provider::error_chain(&e) });
                }
            };
            let text = match text {
                Ok(t) => t,
                Err(_) if idempotent && attempt < self.retry.attempts => continue,
                Err(e) => return Err(ApiError::Transport { method: m.into(), path: path.into(), message: crate::provider::error_chain(&e) }),
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

    async fn git_token(&self) -> Option<String> {
        self.authorization().await.ok()?.strip_prefix("Bearer ").map(str::to_string)
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
