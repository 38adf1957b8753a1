//! HTTP plumbing shared by the REST providers (`gcp-iam`, `azure-rbac`).
//!
//! One place decides what a failed call means, so both providers report
//! errors the same way:
//! - **Transient** (reconcile retries with backoff): connection failures,
//!   timeouts, 429 and 5xx. A 429 or 503 with `Retry-After` is waited out
//!   here first (the executor's backoff cannot know the server's hint), up to
//!   [`RestClient::max_wait`] a time and [`RETRY_AFTER_ATTEMPTS`] times.
//! - **Permanent**: 401 (the runner's credentials), 403 (with the provider's
//!   least-privilege hint) and every other 4xx, with the service's error code
//!   and message from the JSON body (`{"error": {"code"|"status", "message"}}`,
//!   the shape both Google and Azure Resource Manager use).
//!
//! Callers get a [`RestError`] first, so they can handle codes that mean
//! something for their API (an etag conflict, "already exists") before
//! turning the rest into a [`ProviderError`] with [`RestClient::error`].

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::ProviderError;
use crate::model::policy::ProviderKind;

/// How many times one call waits out a `Retry-After` before giving up (transient).
pub const RETRY_AFTER_ATTEMPTS: u32 = 3;

/// Where a bearer token comes from: a fixed token from the environment, or an SDK credential.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    /// A current access token, or (transient?, what went wrong).
    async fn token(&self) -> Result<String, (bool, String)>;
}

/// A token given as is (`GOOGLE_OAUTH_ACCESS_TOKEN`, `AZURE_ACCESS_TOKEN`): CI mints it.
pub struct StaticToken(pub String);

#[async_trait::async_trait]
impl TokenSource for StaticToken {
    async fn token(&self) -> Result<String, (bool, String)> {
        Ok(self.0.clone())
    }
}

/// A failed call: the HTTP status (none when no response came) and the
/// service's error code and message.
#[derive(Debug, Clone)]
pub struct RestError {
    pub status: Option<u16>,
    /// `error.status` (Google: `ABORTED`) or `error.code` (Azure: `RoleAssignmentExists`).
    pub code: String,
    pub message: String,
    /// Transient by nature (no response, 429, 5xx, a credential fetch that may work later).
    pub transient: bool,
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "HTTP {s} {}: {}", self.code, self.message),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

/// An authenticated JSON client for one provider instance.
#[derive(Clone)]
pub struct RestClient {
    http: reqwest::Client,
    kind: ProviderKind,
    resource: String,
    token: Arc<dyn TokenSource>,
    /// What the runner must be allowed to do, appended to 403 errors.
    forbidden_hint: String,
    /// How the runner authenticates, appended to 401 errors.
    auth_hint: String,
    /// The longest `Retry-After` waited out in place.
    pub max_wait: Duration,
}

impl RestClient {
    pub fn new(kind: ProviderKind, resource: &str, token: Arc<dyn TokenSource>, forbidden_hint: &str, auth_hint: &str) -> Result<Self, ProviderError> {
        let http = crate::http_client_builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("gitgrant/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Permanent { provider: kind, resource: resource.to_string(), message: format!("cannot build an HTTP client: {e}") })?;
        Ok(RestClient {
            http,
            kind,
            resource: resource.to_string(),
            token,
            forbidden_hint: forbidden_hint.to_string(),
            auth_hint: auth_hint.to_string(),
            max_wait: Duration::from_secs(60),
        })
    }

    pub fn permanent(&self, message: impl Into<String>) -> ProviderError {
        ProviderError::Permanent { provider: self.kind, resource: self.resource.clone(), message: message.into() }
    }

    pub fn transient(&self, message: impl Into<String>) -> ProviderError {
        ProviderError::Transient { provider: self.kind, resource: self.resource.clone(), message: message.into() }
    }

    /// Turns a failed call `op` into a provider error: transient or permanent, with what to do.
    pub fn error(&self, op: &str, e: &RestError) -> ProviderError {
        let text = format!("{op}: {e}");
        match e.status {
            _ if e.transient => self.transient(text),
            Some(401) => self.permanent(format!("{text}; the runner's credentials were rejected: {}", self.auth_hint)),
            Some(403) => self.permanent(format!("{text}; {}", self.forbidden_hint)),
            _ => self.permanent(text),
        }
    }

    /// Sends one JSON request with the bearer token; returns the JSON body
    /// (`Null` when empty) of a 2xx answer.
    pub async fn call(&self, method: Method, url: &str, body: Option<&Value>) -> Result<Value, RestError> {
        let token = self.token.token().await.map_err(|(transient, message)| RestError { status: None, code: "credentials".into(), message, transient })?;
        let mut waited = 0;
        loop {
            let mut req = self.http.request(method.clone(), url).bearer_auth(&token).header("accept", "application/json");
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => return Err(RestError { status: None, code: "unreachable".into(), message: error_chain(&e), transient: true }),
            };
            let status = resp.status();
            let retry_after = retry_after(resp.headers());
            let text = resp.text().await.unwrap_or_default();
            if status.is_success() {
                if text.trim().is_empty() {
                    return Ok(Value::Null);
                }
                return serde_json::from_str(&text).map_err(|e| RestError {
                    status: Some(status.as_u16()),
                    code: "invalid-response".into(),
                    message: format!("the response is not JSON ({e}): {}", clip(&text)),
                    transient: false,
                });
            }
            if matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE)
                && waited < RETRY_AFTER_ATTEMPTS
                && let Some(wait) = retry_after.filter(|w| *w <= self.max_wait)
            {
                waited += 1;
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(error_of(status, &text));
        }
    }
}

/// The service's error from a non-2xx answer.
pub fn error_of(status: StatusCode, text: &str) -> RestError {
    let body: Option<Value> = serde_json::from_str(text).ok();
    let err = body.as_ref().and_then(|b| b.get("error"));
    // Google puts the canonical code in `status` and the number in `code`; ARM puts its code in `code`.
    let code = err
        .and_then(|e| e.get("status").and_then(Value::as_str).or_else(|| e.get("code").and_then(Value::as_str)))
        .map(str::to_string)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let message = err.and_then(|e| e.get("message")).and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| clip(text));
    RestError { status: Some(status.as_u16()), code, message, transient: status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from these APIs and is ignored).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn clip(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        return "(empty body)".to_string();
    }
    let mut out: String = t.chars().take(300).collect();
    if out.len() < t.len() {
        out.push('…');
    }
    out
}

pub use super::error_chain;

/// The endpoint to call: the resource config `endpoint`, else the environment
/// variable `env`, else `default`. Plain `http` only for loopback hosts
/// (tests, local emulators): a bearer token never crosses a network in clear.
pub fn endpoint(config: &std::collections::BTreeMap<String, Value>, env: &str, default: &str) -> Result<String, String> {
    let from_env = std::env::var(env).ok().filter(|v| !v.trim().is_empty());
    let (raw, source) = match config.get("endpoint") {
        Some(Value::String(s)) => (s.clone(), "config `endpoint`".to_string()),
        Some(_) => return Err("config `endpoint` must be a string".into()),
        None => match from_env {
            Some(v) => (v, format!("${env}")),
            None => (default.to_string(), "the default endpoint".to_string()),
        },
    };
    let url = reqwest::Url::parse(raw.trim()).map_err(|e| format!("{source} `{raw}` is not a URL ({e})"))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]" | "::1"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(format!("{source} `{raw}` must be an https URL (plain http only on 127.0.0.1 or localhost)")),
    }
    Ok(raw.trim().trim_end_matches('/').to_string())
}

/// The ownership marker of the REST providers: `gitgrant:<id>[,<id>...]@<resource>`
/// (a GCP condition description, an Azure justification). Request ids never
/// contain `,` or `@`, so the text parses back unambiguously.
pub fn marker(requests: &std::collections::BTreeSet<String>, resource: &str) -> String {
    format!("gitgrant:{}@{resource}", requests.iter().cloned().collect::<Vec<_>>().join(","))
}

/// The request ids of a [`marker`] written for `resource`; `None` for any
/// other text (another resource's grant, or not gitgrant's at all).
pub fn parse_marker(text: &str, resource: &str) -> Option<std::collections::BTreeSet<String>> {
    let (ids, res) = text.strip_prefix("gitgrant:")?.split_once('@')?;
    if res != resource || ids.is_empty() {
        return None;
    }
    let ids: std::collections::BTreeSet<String> = ids.split(',').map(str::to_string).collect();
    ids.iter().all(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))).then_some(ids)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use serde_json::json;

    #[test]
    fn google_and_arm_error_bodies_are_read() {
        let g = error_of(
            StatusCode::CONFLICT,
            &json!({"error": {"code": 409, "message": "There were concurrent policy changes.", "status": "ABORTED"}}).to_string(),
        );
        assert_eq!((g.status, g.code.as_str(), g.message.as_str(), g.transient), (Some(409), "ABORTED", "There were concurrent policy changes.", false));
        let a =
            error_of(StatusCode::CONFLICT, &json!({"error": {"code": "RoleAssignmentExists", "message": "The role assignment already exists."}}).to_string());
        assert_eq!((a.code.as_str(), a.message.as_str()), ("RoleAssignmentExists", "The role assignment already exists."));
        let html = error_of(StatusCode::BAD_GATEWAY, "<html>bad gateway</html>");
        assert_eq!((html.code.as_str(), html.message.as_str(), html.transient), ("Bad Gateway", "<html>bad gateway</html>", true));
        assert!(error_of(StatusCode::TOO_MANY_REQUESTS, "").transient);
        assert!(!error_of(StatusCode::FORBIDDEN, "").transient);
    }

    #[test]
    fn markers_round_trip_and_belong_to_one_resource() {
        let ids = std::collections::BTreeSet::from(["b-2".to_string(), "a.1".to_string()]);
        let m = marker(&ids, "orders db");
        assert_eq!(m, "gitgrant:a.1,b-2@orders db");
        assert_eq!(parse_marker(&m, "orders db"), Some(ids));
        assert_eq!(parse_marker(&m, "orders"), None);
        for other in ["", "gitgrant:@x", "gitgrant:a,@x", "break-glass by bob", "gitgrant:A@x"] {
            assert_eq!(parse_marker(other, "x"), None, "{other}");
        }
    }

    #[test]
    fn endpoints_must_be_https_except_on_loopback() {
        let cfg = |v: &str| std::collections::BTreeMap::from([("endpoint".to_string(), json!(v))]);
        let none = "GITGRANT_TEST_UNSET_ENDPOINT_VARIABLE";
        assert_eq!(endpoint(&cfg("http://127.0.0.1:8080/"), none, "https://x").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(endpoint(&cfg("https://example.com/base"), none, "https://x").unwrap(), "https://example.com/base");
        assert_eq!(endpoint(&Default::default(), none, "https://management.azure.com").unwrap(), "https://management.azure.com");
        let err = endpoint(&cfg("http://10.0.0.1"), none, "https://x").unwrap_err();
        assert!(err.contains("config `endpoint`") && err.contains("https"), "{err}");
        assert!(endpoint(&cfg("not a url"), none, "https://x").unwrap_err().contains("not a URL"));
        // Host names are ASCII only (idna_adapter's stub back end, Cargo.toml): an
        // internationalised one is refused with the URL named, never sent somewhere else.
        let err = endpoint(&cfg("https://b\u{fc}cher.example/api"), none, "https://x").unwrap_err();
        assert!(err.contains("not a URL") && err.contains("b\u{fc}cher.example"), "{err}");
        assert_eq!(endpoint(&cfg("https://xn--bcher-kva.example/api"), none, "https://x").unwrap(), "https://xn--bcher-kva.example/api");
    }
}
