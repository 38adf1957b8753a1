//! The `gcp-iam` provider: a conditional IAM role binding on a project,
//! folder or organization, through the Resource Manager v3 REST API.
//!
//! Design choices:
//! - **One binding per access.** The access is the role (`roles/...`); the
//!   binding has exactly one member (the requester) and the condition
//!   `request.time < timestamp("END")`, so Google itself stops honouring it at
//!   the end (fail-closed expiry). Several requests that need the same role
//!   for the same member share the binding, with the latest end.
//! - **The marker is the condition.** Its title is `gitgrant:<ids>` (for
//!   people, at most 100 characters) and its description is exactly
//!   [`rest::marker`] `gitgrant:<id>[,<id>...]@<resource>`: a binding is this
//!   resource's only if its title starts with `gitgrant:` *and* its
//!   description is that resource's marker. Every other binding is passed
//!   through untouched, byte for byte.
//! - **Read-modify-write with the etag.** `getIamPolicy` (requested policy
//!   version 3, so conditions are returned), change only gitgrant's bindings,
//!   `setIamPolicy` with the etag read and version 3. A concurrent writer
//!   makes Google answer 409 `ABORTED` (or 412): the whole cycle is redone on
//!   a fresh read, a few times. A change that is already in place writes
//!   nothing, and one instance's own writes (reconcile grants concurrently)
//!   take turns instead of conflicting with each other.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use super::rest::{self, RestClient, RestError, StaticToken, TokenSource};
use super::{Access, GrantSpec, Held, Provider, ProviderContext, ProviderError};
use crate::model::policy::ProviderKind;

const KIND: ProviderKind = ProviderKind::GcpIam;
pub const DEFAULT_ENDPOINT: &str = "https://cloudresourcemanager.googleapis.com";
/// Overrides the Resource Manager endpoint when the resource config has no `endpoint`.
pub const ENDPOINT_ENV: &str = "GITGRANT_GCP_ENDPOINT";
/// A ready access token (as Terraform reads it): CI that mints tokens itself sets this.
pub const TOKEN_ENV: &str = "GOOGLE_OAUTH_ACCESS_TOKEN";
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Read-modify-write cycles before an etag conflict is reported (transient).
const ATTEMPTS: u32 = 5;
const MAX_TITLE: usize = 100;
const MAX_DESCRIPTION: usize = 256;
const MEMBER_HELP: &str = "the `gcp` identities entry must be an IAM member such as `user:alice@example.com`, `group:ops@example.com` or `serviceAccount:ci@PROJECT.iam.gserviceaccount.com`";

pub struct GcpIamProvider {
    rest: RestClient,
    resource: String,
    /// `projects/ID`, `folders/ID` or `organizations/ID`.
    target: String,
    endpoint: String,
    /// Serialises this instance's read-modify-write cycles: reconcile runs
    /// grants concurrently, and on one policy they would only conflict.
    writing: tokio::sync::Mutex<()>,
}

fn permanent(resource: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::permanent(KIND, resource, message)
}

pub async fn build(ctx: &ProviderContext<'_>) -> Result<Box<dyn Provider>, ProviderError> {
    let token = token_from_env(ctx.resource)?;
    Ok(Box::new(GcpIamProvider::new(ctx.resource, &ctx.config.config, token)?))
}

/// `GOOGLE_OAUTH_ACCESS_TOKEN`, else Application Default Credentials
/// (`GOOGLE_APPLICATION_CREDENTIALS`: a service-account key or a workload
/// identity federation `external_account` file; gcloud's ADC file; the
/// metadata server on Google Cloud). The metadata server is only used where
/// Google Cloud is detected, so a runner without credentials fails at once
/// with what to set instead of probing the network.
fn token_from_env(resource: &str) -> Result<Arc<dyn TokenSource>, ProviderError> {
    if let Some(t) = std::env::var(TOKEN_ENV).ok().filter(|t| !t.trim().is_empty()) {
        return Ok(Arc::new(StaticToken(t.trim().to_string())));
    }
    let explicit = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").is_some_and(|v| !v.is_empty());
    if !(explicit || gcloud_adc_file() || on_google_cloud()) {
        return Err(permanent(
            resource,
            format!(
                "no GCP credentials: set GOOGLE_APPLICATION_CREDENTIALS (a service-account key or workload identity federation config), \
                 set {TOKEN_ENV} to an access token, or run on Google Cloud"
            ),
        ));
    }
    let creds = google_cloud_auth::credentials::Builder::default()
        .with_scopes([SCOPE])
        .build_access_token_credentials()
        .map_err(|e| permanent(resource, format!("GCP credentials: {e}; check GOOGLE_APPLICATION_CREDENTIALS")))?;
    Ok(Arc::new(GoogleToken(creds)))
}

fn gcloud_adc_file() -> bool {
    let dir = match std::env::var_os("CLOUDSDK_CONFIG") {
        Some(d) => std::path::PathBuf::from(d),
        None => match std::env::var_os("HOME") {
            Some(h) => std::path::PathBuf::from(h).join(".config/gcloud"),
            None => return false,
        },
    };
    dir.join("application_default_credentials.json").is_file()
}

/// Google's own libraries detect GCE (and GKE nodes) by the DMI product name;
/// Cloud Run and Cloud Functions by their environment.
fn on_google_cloud() -> bool {
    let dmi = std::fs::read_to_string("/sys/class/dmi/id/product_name").unwrap_or_default();
    dmi.trim_start().starts_with("Google")
        || ["GCE_METADATA_HOST", "K_SERVICE", "CLOUD_RUN_JOB", "FUNCTION_TARGET"].iter().any(|k| std::env::var_os(k).is_some())
}

struct GoogleToken(google_cloud_auth::credentials::AccessTokenCredentials);

#[async_trait::async_trait]
impl TokenSource for GoogleToken {
    async fn token(&self) -> Result<String, (bool, String)> {
        self.0.access_token().await.map(|t| t.token).map_err(|e| (e.is_transient(), format!("cannot get a GCP access token: {}", rest::error_chain(&e))))
    }
}

fn cfg_str<'a>(config: &'a BTreeMap<String, Value>, key: &str, resource: &str) -> Result<Option<&'a str>, ProviderError> {
    super::config_str(KIND, config, key, resource)
}

impl GcpIamProvider {
    /// Resource config keys: exactly one of `project` (id or number),
    /// `folder` or `organization` (numeric ids); `endpoint` (optional).
    pub fn new(resource: &str, config: &BTreeMap<String, Value>, token: Arc<dyn TokenSource>) -> Result<Self, ProviderError> {
        let mut targets = Vec::new();
        for (key, collection) in [("project", "projects"), ("folder", "folders"), ("organization", "organizations")] {
            if let Some(id) = cfg_str(config, key, resource)? {
                let id = id.strip_prefix(&format!("{collection}/")).unwrap_or(id);
                let ok = match key {
                    "project" => !id.is_empty() && id.len() <= 30 && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                    _ => !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
                };
                if !ok {
                    return Err(permanent(resource, format!("config `{key}` `{id}` is not a GCP {key} id")));
                }
                targets.push(format!("{collection}/{id}"));
            }
        }
        let [target] = targets.as_slice() else {
            return Err(permanent(resource, "config needs exactly one of `project`, `folder` or `organization`"));
        };
        let endpoint = rest::endpoint(config, ENDPOINT_ENV, DEFAULT_ENDPOINT).map_err(|m| permanent(resource, m))?;
        let kind = target.split('/').next().unwrap_or("projects").trim_end_matches('s');
        let forbidden = format!(
            "allow resourcemanager.{kind}s.getIamPolicy and resourcemanager.{kind}s.setIamPolicy on {target} to the gitgrant runner (README, Provider: gcp-iam)"
        );
        let auth = format!("refresh {TOKEN_ENV}, or check GOOGLE_APPLICATION_CREDENTIALS");
        let rest = RestClient::new(KIND, resource, token, &forbidden, &auth)?;
        Ok(GcpIamProvider { rest, resource: resource.to_string(), target: target.clone(), endpoint, writing: tokio::sync::Mutex::new(()) })
    }

    fn perm(&self, message: impl Into<String>) -> ProviderError {
        self.rest.permanent(message)
    }

    async fn get_policy(&self) -> Result<Value, ProviderError> {
        let url = format!("{}/v3/{}:getIamPolicy", self.endpoint, self.target);
        let body = json!({"options": {"requestedPolicyVersion": 3}});
        let policy = self.rest.call(Method::POST, &url, Some(&body)).await.map_err(|e| self.rest.error(&format!("getIamPolicy {}", self.target), &e))?;
        if !policy.is_object() {
            return Err(self.perm(format!("getIamPolicy {}: the answer is not an IAM policy: {policy}", self.target)));
        }
        Ok(policy)
    }

    async fn set_policy(&self, policy: &Value) -> Result<Value, RestError> {
        let url = format!("{}/v3/{}:setIamPolicy", self.endpoint, self.target);
        self.rest.call(Method::POST, &url, Some(&json!({"policy": policy}))).await
    }

    /// The read-modify-write cycle: `change` edits the bindings and says
    /// whether anything changed; an etag conflict redoes it on a fresh read.
    async fn modify(&self, op: &str, change: impl Fn(&mut Vec<Value>) -> Result<bool, ProviderError>) -> Result<(), ProviderError> {
        let _turn = self.writing.lock().await;
        let mut last = None;
        for attempt in 1..=ATTEMPTS {
            let mut policy = self.get_policy().await?;
            let mut bindings: Vec<Value> = policy.get("bindings").and_then(Value::as_array).cloned().unwrap_or_default();
            if !change(&mut bindings)? {
                return Ok(());
            }
            if let Some(obj) = policy.as_object_mut() {
                // Conditional bindings need version 3; the etag makes the write conditional.
                obj.insert("version".into(), json!(3));
                obj.insert("bindings".into(), Value::Array(bindings));
            }
            match self.set_policy(&policy).await {
                Ok(_) => return Ok(()),
                Err(e) if is_conflict(&e) => {
                    last = Some(e);
                    let pause = 50 * u64::from(attempt);
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(pause..=pause * 3))).await;
                }
                Err(e) => return Err(self.set_error(op, &e)),
            }
        }
        let why = last.map(|e| e.to_string()).unwrap_or_default();
        Err(self.rest.transient(format!("{op}: the IAM policy of {} kept changing under gitgrant ({ATTEMPTS} attempts; {why}); retry", self.target)))
    }

    fn set_error(&self, op: &str, e: &RestError) -> ProviderError {
        let err = self.rest.error(&format!("{op}: setIamPolicy {}", self.target), e);
        match err {
            ProviderError::Permanent { provider, resource, message } if e.status == Some(400) => ProviderError::Permanent {
                provider,
                resource,
                message: format!("{message}; check the `gcp` identities entry (the member must exist) and the role's `gcp-iam` grant"),
            },
            other => other,
        }
    }

    /// Is this binding one of this resource's? Returns its request ids.
    fn owned(&self, binding: &Value) -> Option<BTreeSet<String>> {
        let c = binding.get("condition")?;
        if !c.get("title")?.as_str()?.starts_with("gitgrant:") {
            return None;
        }
        rest::parse_marker(c.get("description")?.as_str()?, &self.resource)
    }
}

/// An etag conflict: Google answers 409 ABORTED (sometimes 412 FAILED_PRECONDITION).
fn is_conflict(e: &RestError) -> bool {
    matches!(e.status, Some(409 | 412)) || e.code == "ABORTED"
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The condition expression that ends the binding at `end`.
pub fn expression(end: DateTime<Utc>) -> String {
    format!("request.time < timestamp(\"{}\")", rfc3339(end))
}

/// The end of an [`expression`] (`None` for anything else).
pub fn expression_end(expr: &str) -> Option<DateTime<Utc>> {
    let rest = expr.trim().strip_prefix("request.time < timestamp(\"")?;
    let (time, tail) = rest.split_once("\")")?;
    if !tail.trim().is_empty() {
        return None;
    }
    DateTime::parse_from_rfc3339(time).ok().map(|t| t.with_timezone(&Utc))
}

/// The condition title: `gitgrant:<ids>`, shortened to `gitgrant:<first>,+N` past 100 characters.
fn title(requests: &BTreeSet<String>) -> String {
    let all = format!("gitgrant:{}", requests.iter().cloned().collect::<Vec<_>>().join(","));
    if all.chars().count() <= MAX_TITLE {
        return all;
    }
    let first = requests.iter().next().cloned().unwrap_or_default();
    let more = format!(",+{}", requests.len().saturating_sub(1));
    let head: String = format!("gitgrant:{first}").chars().take(MAX_TITLE - more.len()).collect();
    format!("{head}{more}")
}

/// How the plan compares members: email-based members lowercased (Google
/// stores them lowercase), the type prefix as written.
pub fn member_key(member: &str) -> String {
    match member.split_once(':') {
        Some((kind @ ("user" | "group" | "serviceAccount" | "domain"), rest)) => format!("{kind}:{}", rest.to_ascii_lowercase()),
        _ => member.to_string(),
    }
}

fn valid_member(member: &str) -> bool {
    match member.split_once(':') {
        Some(("user" | "group" | "serviceAccount", rest)) => rest.contains('@') && !rest.contains(char::is_whitespace),
        Some(("domain", rest)) => rest.contains('.'),
        Some(("principal" | "principalSet", rest)) => rest.starts_with("//"),
        _ => false,
    }
}

fn valid_role(role: &str) -> bool {
    let parts: Vec<&str> = role.split('/').collect();
    let ok_name = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
    match parts.as_slice() {
        ["roles", n] => ok_name(n),
        ["projects" | "organizations", id, "roles", n] => !id.is_empty() && ok_name(n),
        _ => false,
    }
}

fn members(binding: &Value) -> Vec<&str> {
    binding.get("members").and_then(Value::as_array).map(|m| m.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

#[async_trait::async_trait]
impl Provider for GcpIamProvider {
    fn kind(&self) -> ProviderKind {
        KIND
    }
    fn resource(&self) -> &str {
        &self.resource
    }
    fn native_expiry(&self) -> bool {
        true
    }
    fn marker(&self) -> String {
        format!(
            "IAM binding on {} with condition titled `gitgrant:<requests>`, described `gitgrant:<requests>@{}`, expression `request.time < timestamp(END)`",
            self.target, self.resource
        )
    }

    fn access_for(&self, _request: &str, grant: &Value) -> Result<String, ProviderError> {
        let role = grant.get("role").and_then(Value::as_str).ok_or_else(|| self.perm("the role's gcp-iam grant needs `role`, e.g. `roles/viewer`"))?;
        if !valid_role(role) {
            return Err(self.perm(format!("`{role}` is not a GCP role (`roles/NAME`, `projects/ID/roles/NAME` or `organizations/ID/roles/NAME`)")));
        }
        Ok(role.to_string())
    }

    async fn list(&self) -> Result<Vec<Held>, ProviderError> {
        let policy = self.get_policy().await?;
        let mut out = Vec::new();
        for b in policy.get("bindings").and_then(Value::as_array).into_iter().flatten() {
            let Some(requests) = self.owned(b) else { continue };
            let role = b.get("role").and_then(Value::as_str).unwrap_or_default().to_string();
            let cond = b.get("condition");
            let end = cond.and_then(|c| c.get("expression")).and_then(Value::as_str).and_then(expression_end);
            let title = cond.and_then(|c| c.get("title")).and_then(Value::as_str).unwrap_or_default().to_string();
            for m in members(b) {
                out.push(Held {
                    access: Access { provider: KIND, resource: self.resource.clone(), principal: member_key(m), access: role.clone() },
                    requests: requests.clone(),
                    end,
                    handle: title.clone(),
                });
            }
        }
        out.sort_by(|a, b| a.access.cmp(&b.access));
        Ok(out)
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Held, ProviderError> {
        let member = member_key(&spec.access.principal);
        if !valid_member(&member) {
            return Err(self.perm(format!("`{}` is not an IAM member; {MEMBER_HELP}", spec.access.principal)));
        }
        let role = spec.access.access.clone();
        if !valid_role(&role) {
            return Err(self.perm(format!("`{role}` is not a GCP role (a gitgrant bug; please report it)")));
        }
        let description = rest::marker(&spec.requests, &self.resource);
        if description.chars().count() > MAX_DESCRIPTION {
            return Err(self.perm(format!(
                "the marker `{description}` exceeds the {MAX_DESCRIPTION} characters of a condition description: too many overlapping requests for one role, or a very long resource name"
            )));
        }
        let title = title(&spec.requests);
        let wanted = json!({
            "role": role,
            "members": [member],
            "condition": {"title": title, "description": description, "expression": expression(spec.end)},
        });
        self.modify("grant", |bindings| {
            let mine: Vec<usize> = (0..bindings.len())
                .filter(|i| {
                    let b = &bindings[*i];
                    self.owned(b).is_some()
                        && b.get("role").and_then(Value::as_str) == Some(role.as_str())
                        && members(b).iter().any(|m| member_key(m) == member)
                })
                .collect();
            if let [only] = mine.as_slice()
                && same_binding(&bindings[*only], &wanted)
            {
                return Ok(false);
            }
            remove_member(bindings, &mine, &member);
            bindings.push(wanted.clone());
            Ok(true)
        })
        .await?;
        let access = Access { principal: member.clone(), ..spec.access.clone() };
        Ok(Held { access, requests: spec.requests.clone(), end: Some(spec.end), handle: title })
    }

    async fn revoke(&self, held: &Held) -> Result<(), ProviderError> {
        let member = member_key(&held.access.principal);
        let role = held.access.access.clone();
        self.modify("revoke", |bindings| {
            let mine: Vec<usize> = (0..bindings.len())
                .filter(|i| {
                    let b = &bindings[*i];
                    self.owned(b).is_some()
                        && b.get("role").and_then(Value::as_str) == Some(role.as_str())
                        && members(b).iter().any(|m| member_key(m) == member)
                })
                .collect();
            if mine.is_empty() {
                return Ok(false);
            }
            remove_member(bindings, &mine, &member);
            Ok(true)
        })
        .await
    }
}

/// Removes `member` from the bindings at `indices` (all gitgrant's), dropping bindings left empty.
fn remove_member(bindings: &mut Vec<Value>, indices: &[usize], member: &str) {
    for i in indices {
        if let Some(list) = bindings.get_mut(*i).and_then(|b| b.get_mut("members")).and_then(Value::as_array_mut) {
            list.retain(|m| m.as_str().map(member_key).as_deref() != Some(member));
        }
    }
    let mut i = 0;
    bindings.retain(|b| {
        let keep = !(indices.contains(&i) && members(b).is_empty());
        i += 1;
        keep
    });
}

/// Same role, members and condition (title, description, expression), whatever else Google adds.
fn same_binding(have: &Value, want: &Value) -> bool {
    let cond = |b: &Value, k: &str| b.get("condition").and_then(|c| c.get(k)).cloned();
    have.get("role") == want.get("role")
        && members(have).iter().map(|m| member_key(m)).collect::<Vec<_>>() == members(want).iter().map(|m| m.to_string()).collect::<Vec<_>>()
        && ["title", "description", "expression"].iter().all(|k| cond(have, k) == cond(want, k))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn expressions_round_trip() {
        let end = DateTime::parse_from_rfc3339("2026-03-01T18:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(expression(end), "request.time < timestamp(\"2026-03-01T18:00:00Z\")");
        assert_eq!(expression_end(&expression(end)), Some(end));
        assert_eq!(expression_end("request.time < timestamp(\"2026-03-01T18:00:00Z\") && true"), None);
        assert_eq!(expression_end("resource.name.startsWith(\"x\")"), None);
    }

    #[test]
    fn titles_fit_in_100_characters() {
        let few = BTreeSet::from(["a".to_string(), "b".to_string()]);
        assert_eq!(title(&few), "gitgrant:a,b");
        let many: BTreeSet<String> = (0..20).map(|i| format!("2026-12-01-someone-request-{i:02}")).collect();
        let t = title(&many);
        assert!(t.len() <= MAX_TITLE && t.starts_with("gitgrant:2026-12-01-someone-request-00") && t.ends_with(",+19"), "{t}");
    }

    #[test]
    fn members_and_roles() {
        assert_eq!(member_key("user:Alice@Example.com"), "user:alice@example.com");
        assert_eq!(member_key("principal://iam.googleapis.com/X"), "principal://iam.googleapis.com/X");
        for ok in ["user:a@b.c", "serviceAccount:ci@p.iam.gserviceaccount.com", "group:ops@x.io", "domain:x.io", "principalSet://iam.googleapis.com/p"] {
            assert!(valid_member(ok), "{ok}");
        }
        for bad in ["alice@example.com", "user:alice", "allUsers", "deleted:user:a@b.c"] {
            assert!(!valid_member(bad), "{bad}");
        }
        for ok in ["roles/viewer", "roles/bigquery.dataViewer", "projects/p-1/roles/custom_1", "organizations/123/roles/x"] {
            assert!(valid_role(ok), "{ok}");
        }
        for bad in ["viewer", "roles/", "folders/1/roles/x", "roles/a/b"] {
            assert!(!valid_role(bad), "{bad}");
        }
    }

    #[test]
    fn removing_a_member_keeps_other_members_and_other_bindings() {
        let mut b = vec![
            json!({"role": "roles/viewer", "members": ["user:x@y.z"]}),
            json!({"role": "roles/a", "members": ["user:me@y.z", "user:other@y.z"], "condition": {}}),
            json!({"role": "roles/a", "members": ["user:ME@y.z"], "condition": {}}),
        ];
        remove_member(&mut b, &[1, 2], "user:me@y.z");
        assert_eq!(
            b,
            vec![json!({"role": "roles/viewer", "members": ["user:x@y.z"]}), json!({"role": "roles/a", "members": ["user:other@y.z"], "condition": {}})]
        );
    }
}
