//! The gcp-iam provider against a stateful wiremock fake of the Resource
//! Manager v3 IAM policy API, directly and through `plan` / `reconcile`.
//!
//! The fake implements what the provider relies on, and rejects what Google
//! rejects: a policy with an etag that changes on every write;
//! `setIamPolicy` with a stale etag is 409 `ABORTED`; a conditional binding
//! in a policy that is not `version: 3` is 400 `INVALID_ARGUMENT`;
//! `getIamPolicy` honours `requestedPolicyVersion` (below 3, conditional
//! bindings come back as `ROLE_withcond_HASH` without their condition, as
//! Google does); condition titles over 100 and descriptions over 256
//! characters, and malformed members, are 400; an unknown project is 403;
//! a wrong bearer token is 401. Error bodies have Google's shape.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use gitgrant::model::policy::ProviderKind;
use gitgrant::provider::gcp_iam::GcpIamProvider;
use gitgrant::provider::rest::{StaticToken, TokenSource};
use gitgrant::provider::{Access, GrantSpec, Provider};
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::reconcile::{land, ledger};
use crate::support::{Repo, run_in_env};

pub(crate) const TOKEN: &str = "ya29.test-token";

/// The fake's state: IAM policies by resource (`projects/acme`), and knobs.
#[derive(Debug, Default)]
pub(crate) struct GcpState {
    pub policies: BTreeMap<String, Value>,
    etag: u64,
    pub gets: usize,
    pub sets: usize,
    /// Before each of the next N `setIamPolicy` calls, another writer changes
    /// the policy (a new unrelated binding, a new etag): the call then
    /// carries a stale etag.
    pub concurrent_writes: u32,
    /// Answer `setIamPolicy` with 403 PERMISSION_DENIED.
    pub deny_set: bool,
}

impl GcpState {
    fn next_etag(&mut self) -> String {
        self.etag += 1;
        format!("BwYg{:08}=", self.etag)
    }

    /// Adds a resource with these bindings.
    pub fn seed(&mut self, resource: &str, bindings: Vec<Value>) {
        let etag = self.next_etag();
        let version = if bindings.iter().any(|b| b.get("condition").is_some()) { 3 } else { 1 };
        self.policies.insert(resource.to_string(), json!({"version": version, "etag": etag, "bindings": bindings}));
    }

    pub fn bindings(&self, resource: &str) -> Vec<Value> {
        self.policies[resource]["bindings"].as_array().cloned().unwrap_or_default()
    }
}

#[derive(Clone)]
pub(crate) struct GcpFake {
    pub server: Arc<MockServer>,
    pub state: Arc<Mutex<GcpState>>,
}

impl GcpFake {
    pub async fn start() -> GcpFake {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(GcpState::default()));
        Mock::given(any()).respond_with(GcpApi(state.clone())).mount(&server).await;
        GcpFake { server: Arc::new(server), state }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, GcpState> {
        self.state.lock().unwrap()
    }
}

struct GcpApi(Arc<Mutex<GcpState>>);

fn google_error(code: u16, status: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(code).set_body_json(json!({"error": {"code": code, "message": message, "status": status}}))
}

fn valid_member(m: &str) -> bool {
    ["user:", "group:", "serviceAccount:", "domain:", "principal://", "principalSet://", "deleted:"].iter().any(|p| m.starts_with(p))
}

impl Respond for GcpApi {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let auth = req.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if auth != format!("Bearer {TOKEN}") {
            return google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            );
        }
        let path = req.url.path();
        let Some((resource, verb)) = path.strip_prefix("/v3/").and_then(|p| p.rsplit_once(':')) else {
            return google_error(404, "NOT_FOUND", &format!("The requested URL {path} was not found on this server."));
        };
        if req.method.as_str() != "POST" {
            return google_error(404, "NOT_FOUND", "Method not found.");
        }
        let body: Value = match req.body_json() {
            Ok(b) => b,
            Err(_) => return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received."),
        };
        let mut st = self.0.lock().unwrap();
        if !st.policies.contains_key(resource) {
            return google_error(403, "PERMISSION_DENIED", &format!("The caller does not have permission (or {resource} does not exist)"));
        }
        match verb {
            "getIamPolicy" => {
                st.gets += 1;
                let requested = body.pointer("/options/requestedPolicyVersion").and_then(Value::as_i64).unwrap_or(0);
                if ![0, 1, 3].contains(&requested) {
                    return google_error(400, "INVALID_ARGUMENT", &format!("Invalid requested policy version: {requested}"));
                }
                let mut policy = st.policies[resource].clone();
                if requested < 3 {
                    // What Google does for old clients: conditional bindings lose their condition and get a marked role.
                    let mut conditional = false;
                    for b in policy["bindings"].as_array_mut().into_iter().flatten() {
                        if let Some(obj) = b.as_object_mut()
                            && obj.remove("condition").is_some()
                        {
                            conditional = true;
                            let role = obj["role"].as_str().unwrap().to_string();
                            obj.insert("role".into(), json!(format!("{role}_withcond_7f3a2c")));
                        }
                    }
                    if conditional {
                        policy["version"] = json!(1);
                    }
                }
                ResponseTemplate::new(200).set_body_json(policy)
            }
            "setIamPolicy" => {
                st.sets += 1;
                if st.deny_set {
                    return google_error(
                        403,
                        "PERMISSION_DENIED",
                        &format!("Policy update access denied: the caller lacks resourcemanager.projects.setIamPolicy on {resource}."),
                    );
                }
                if st.concurrent_writes > 0 {
                    st.concurrent_writes -= 1;
                    let etag = st.next_etag();
                    let p = st.policies.get_mut(resource).unwrap();
                    p["etag"] = json!(etag);
                    let n = p["bindings"].as_array().map_or(0, Vec::len);
                    p["bindings"].as_array_mut().unwrap().push(json!({"role": "roles/logging.viewer", "members": [format!("user:other{n}@example.com")]}));
                }
                let Some(policy) = body.get("policy") else {
                    return google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument: policy is required.");
                };
                let current = st.policies[resource]["etag"].as_str().unwrap().to_string();
                if let Some(sent) = policy.get("etag").and_then(Value::as_str)
                    && sent != current
                {
                    return google_error(
                        409,
                        "ABORTED",
                        &format!(
                            "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff. The request's ETag '\"{sent}\"' did not match the current policy's ETag '\"{current}\"'."
                        ),
                    );
                }
                let bindings = policy.get("bindings").and_then(Value::as_array).cloned().unwrap_or_default();
                let version = policy.get("version").and_then(Value::as_i64).unwrap_or(1);
                for b in &bindings {
                    let role = b.get("role").and_then(Value::as_str).unwrap_or_default();
                    if !role.starts_with("roles/") && !role.contains("/roles/") {
                        return google_error(400, "INVALID_ARGUMENT", &format!("Role {role} is not supported for this resource."));
                    }
                    for m in b.get("members").and_then(Value::as_array).into_iter().flatten() {
                        let m = m.as_str().unwrap_or_default();
                        if !valid_member(m) {
                            return google_error(400, "INVALID_ARGUMENT", &format!("Invalid principal: {m}"));
                        }
                    }
                    if let Some(c) = b.get("condition") {
                        if version != 3 {
                            return google_error(
                                400,
                                "INVALID_ARGUMENT",
                                "Policy version must be 3 for policies with conditional role bindings. Set the version to 3 and retry.",
                            );
                        }
                        let field = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
                        if field("expression").trim().is_empty() || field("title").is_empty() {
                            return google_error(400, "INVALID_ARGUMENT", "Condition title and expression are required.");
                        }
                        if field("title").chars().count() > 100 || field("description").chars().count() > 256 {
                            return google_error(400, "INVALID_ARGUMENT", "Condition title exceeds 100 or description exceeds 256 characters.");
                        }
                    }
                }
                let etag = st.next_etag();
                let stored = json!({"version": version, "etag": etag, "bindings": bindings});
                st.policies.insert(resource.to_string(), stored.clone());
                ResponseTemplate::new(200).set_body_json(stored)
            }
            other => google_error(404, "NOT_FOUND", &format!("Method {other} not found.")),
        }
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn token() -> Arc<dyn TokenSource> {
    Arc::new(StaticToken(TOKEN.into()))
}

fn provider(fake: &GcpFake, resource: &str, project: &str) -> GcpIamProvider {
    let config = BTreeMap::from([("project".to_string(), json!(project)), ("endpoint".to_string(), json!(fake.uri()))]);
    GcpIamProvider::new(resource, &config, token()).unwrap()
}

fn spec(p: &GcpIamProvider, member: &str, requests: &[&str], end: &str) -> GrantSpec {
    let grant = json!({"role": "roles/bigquery.dataViewer"});
    GrantSpec {
        access: Access {
            provider: ProviderKind::GcpIam,
            resource: p.resource().to_string(),
            principal: member.to_string(),
            access: p.access_for(requests[0], &grant).unwrap(),
        },
        requests: requests.iter().map(|s| s.to_string()).collect(),
        end: at(end),
        role: "analytics-viewer".into(),
        grant,
        document: None,
    }
}

/// Bindings nobody at gitgrant made, and one of another gitgrant resource on the same project.
fn foreign() -> Vec<Value> {
    vec![
        json!({"role": "roles/owner", "members": ["user:boss@example.com"]}),
        json!({"role": "roles/bigquery.dataViewer", "members": ["user:alice@example.com"],
               "condition": {"title": "weekday-access", "expression": "request.time.getDayOfWeek(\"Europe/Berlin\") < 5"}}),
        json!({"role": "roles/bigquery.dataViewer", "members": ["user:alice@example.com"],
               "condition": {"title": "gitgrant:someone-else", "description": "gitgrant:someone-else@other-resource",
                             "expression": "request.time < timestamp(\"2030-01-01T00:00:00Z\")"}}),
    ]
}

#[tokio::test]
async fn grant_list_and_revoke_touch_only_gitgrant_bindings_of_the_resource() {
    let fake = GcpFake::start().await;
    fake.lock().seed("projects/acme", foreign());
    let p = provider(&fake, "analytics", "acme");
    assert!(p.native_expiry());
    assert!(p.list().await.unwrap().is_empty(), "another resource's gitgrant binding and hand-made bindings are not listed");

    let held = p.grant(&spec(&p, "user:Alice@Example.com", &["req-1"], "2026-12-01T12:00:00Z")).await.unwrap();
    assert_eq!(held.access.principal, "user:alice@example.com");
    let bindings = fake.lock().bindings("projects/acme");
    assert_eq!(&bindings[..3], &foreign()[..], "other bindings are passed through unchanged");
    assert_eq!(
        bindings[3],
        json!({"role": "roles/bigquery.dataViewer", "members": ["user:alice@example.com"], "condition": {
            "title": "gitgrant:req-1", "description": "gitgrant:req-1@analytics",
            "expression": "request.time < timestamp(\"2026-12-01T12:00:00Z\")"}})
    );
    assert_eq!(fake.lock().policies["projects/acme"]["version"], 3);
    assert_eq!(p.list().await.unwrap(), vec![held.clone()]);

    // Idempotent: the same grant reads and writes nothing.
    let sets = fake.lock().sets;
    assert_eq!(p.grant(&spec(&p, "user:alice@example.com", &["req-1"], "2026-12-01T12:00:00Z")).await.unwrap(), held);
    assert_eq!(fake.lock().sets, sets, "no setIamPolicy for a grant already in place");

    // A second request for the same role: one binding, both ids, the latest end.
    let both = p.grant(&spec(&p, "user:alice@example.com", &["req-1", "req-2"], "2026-12-01T15:00:00Z")).await.unwrap();
    let listed = p.list().await.unwrap();
    assert_eq!(listed, vec![both.clone()]);
    assert_eq!(listed[0].requests, BTreeSet::from(["req-1".to_string(), "req-2".to_string()]));
    assert_eq!(listed[0].end, Some(at("2026-12-01T15:00:00Z")));
    assert_eq!(fake.lock().bindings("projects/acme").len(), 4, "updated in place, not added");

    // Another member, same role: a binding of their own.
    let bob = p.grant(&spec(&p, "user:bob@example.com", &["req-3"], "2026-12-01T13:00:00Z")).await.unwrap();
    assert_eq!(p.list().await.unwrap().len(), 2);

    p.revoke(&both).await.unwrap();
    assert_eq!(p.list().await.unwrap(), vec![bob.clone()]);
    let bindings = fake.lock().bindings("projects/acme");
    assert_eq!(&bindings[..3], &foreign()[..], "alice's other bindings for the same role survive the revoke");
    // Revoking what is gone changes nothing and writes nothing.
    let sets = fake.lock().sets;
    p.revoke(&both).await.unwrap();
    assert_eq!(fake.lock().sets, sets);
    p.revoke(&bob).await.unwrap();
    assert!(p.list().await.unwrap().is_empty());
    assert_eq!(fake.lock().bindings("projects/acme"), foreign());
}

#[tokio::test]
async fn an_etag_conflict_is_retried_on_a_fresh_read_and_keeps_the_other_writer_change() {
    let fake = GcpFake::start().await;
    fake.lock().seed("projects/acme", foreign());
    fake.lock().concurrent_writes = 2;
    let p = provider(&fake, "analytics", "acme");
    let held = p.grant(&spec(&p, "user:alice@example.com", &["req-1"], "2026-12-01T12:00:00Z")).await.unwrap();
    let (sets, gets, bindings) = {
        let st = fake.lock();
        (st.sets, st.gets, st.bindings("projects/acme"))
    };
    assert_eq!((sets, gets), (3, 3), "two conflicts, then a write on the third fresh read");
    let others: Vec<&Value> = bindings.iter().filter(|b| b["role"] == "roles/logging.viewer").collect();
    assert_eq!(others.len(), 2, "the concurrent writer's bindings are kept: {bindings:#?}");
    assert_eq!(p.list().await.unwrap(), vec![held]);

    // A writer that never stops: a transient error after a bounded number of cycles.
    fake.lock().concurrent_writes = 100;
    let err = p.grant(&spec(&p, "user:bob@example.com", &["req-2"], "2026-12-01T12:00:00Z")).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with("gcp-iam analytics: grant: the IAM policy of projects/acme kept changing") && msg.contains("ABORTED"), "{msg}");
}

#[tokio::test]
async fn concurrent_grants_of_one_instance_take_turns_instead_of_conflicting() {
    let fake = GcpFake::start().await;
    fake.lock().seed("projects/acme", vec![]);
    let p = provider(&fake, "analytics", "acme");
    let specs: Vec<GrantSpec> = (0..6).map(|i| spec(&p, &format!("user:u{i}@example.com"), &[&format!("req-{i}")], "2026-12-01T12:00:00Z")).collect();
    let results = futures::future::join_all(specs.iter().map(|s| p.grant(s))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(fake.lock().sets, 6, "one write each, no etag conflict");
    assert_eq!(p.list().await.unwrap().len(), 6);
}

#[tokio::test]
async fn the_fake_rejects_what_google_rejects() {
    let fake = GcpFake::start().await;
    fake.lock().seed("projects/acme", vec![]);
    gitgrant::install_crypto_provider();
    let http = reqwest::Client::new();
    let call = |verb: &str, body: Value, token: &str| {
        let req = http.post(format!("{}/v3/projects/acme:{verb}", fake.uri())).bearer_auth(token).json(&body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (code, policy) = call("getIamPolicy", json!({"options": {"requestedPolicyVersion": 3}}), TOKEN).await;
    assert_eq!(code, 200);
    let etag = policy["etag"].as_str().unwrap().to_string();
    let conditional = json!({"role": "roles/viewer", "members": ["user:a@example.com"], "condition": {"title": "t", "expression": "request.time < timestamp(\"2030-01-01T00:00:00Z\")"}});

    let (code, e) = call("setIamPolicy", json!({"policy": {"etag": etag, "bindings": [conditional]}}), TOKEN).await;
    assert_eq!((code, e["error"]["status"].as_str()), (400, Some("INVALID_ARGUMENT")), "a conditional binding needs version 3: {e}");
    let (code, _) = call("setIamPolicy", json!({"policy": {"etag": etag, "version": 3, "bindings": [conditional]}}), TOKEN).await;
    assert_eq!(code, 200);
    let (code, e) = call("setIamPolicy", json!({"policy": {"etag": etag, "version": 3, "bindings": []}}), TOKEN).await;
    assert_eq!((code, e["error"]["status"].as_str(), e["error"]["code"].as_i64()), (409, Some("ABORTED"), Some(409)), "the etag changed on the write: {e}");
    // Below version 3, conditional bindings are not shown as such.
    let (_, v1) = call("getIamPolicy", json!({}), TOKEN).await;
    assert_eq!(v1["bindings"][0]["role"], "roles/viewer_withcond_7f3a2c");
    assert!(v1["bindings"][0].get("condition").is_none());
    let (_, v3) = call("getIamPolicy", json!({"options": {"requestedPolicyVersion": 3}}), TOKEN).await;
    assert_eq!(v3["bindings"][0], conditional);
    let (code, e) = call("getIamPolicy", json!({}), "wrong").await;
    assert_eq!((code, e["error"]["status"].as_str()), (401, Some("UNAUTHENTICATED")));
}

#[tokio::test]
async fn permission_denied_and_bad_config_are_permanent_errors_naming_provider_and_resource() {
    let fake = GcpFake::start().await;
    fake.lock().seed("projects/acme", vec![]);
    fake.lock().deny_set = true;
    let p = provider(&fake, "analytics", "acme");
    let err = p.grant(&spec(&p, "user:alice@example.com", &["req-1"], "2026-12-01T12:00:00Z")).await.unwrap_err();
    assert!(!err.is_transient());
    let msg = err.to_string();
    assert!(
        msg.starts_with("gcp-iam analytics: grant: setIamPolicy projects/acme: HTTP 403 PERMISSION_DENIED")
            && msg.contains("allow resourcemanager.projects.getIamPolicy and resourcemanager.projects.setIamPolicy"),
        "{msg}"
    );
    // A project the runner cannot see: listing fails, permanently.
    let msg = provider(&fake, "other", "nope").list().await.unwrap_err().to_string();
    assert!(msg.starts_with("gcp-iam other: getIamPolicy projects/nope: HTTP 403"), "{msg}");
    // A wrong token: 401 with what to refresh.
    let config = BTreeMap::from([("project".to_string(), json!("acme")), ("endpoint".to_string(), json!(fake.uri()))]);
    let bad = GcpIamProvider::new("analytics", &config, Arc::new(StaticToken("expired".into()))).unwrap();
    let msg = bad.list().await.unwrap_err().to_string();
    assert!(msg.contains("HTTP 401 UNAUTHENTICATED") && msg.contains("GOOGLE_OAUTH_ACCESS_TOKEN"), "{msg}");
    // Bad members, roles and config never reach Google.
    let msg = p.grant(&spec(&p, "alice@example.com", &["req-1"], "2026-12-01T12:00:00Z")).await.unwrap_err().to_string();
    assert!(msg.contains("is not an IAM member") && msg.contains("user:alice@example.com"), "{msg}");
    let msg = p.access_for("req-1", &json!({"role": "viewer"})).unwrap_err().to_string();
    assert!(msg.contains("`viewer` is not a GCP role"), "{msg}");
    for (cfg, want) in [
        (json!({}), "exactly one of `project`, `folder` or `organization`"),
        (json!({"project": "a", "folder": "1"}), "exactly one of"),
        (json!({"folder": "abc"}), "`abc` is not a GCP folder id"),
        (json!({"project": "acme", "endpoint": "http://10.1.2.3"}), "must be an https URL"),
    ] {
        let config: BTreeMap<String, Value> = serde_json::from_value(cfg).unwrap();
        let msg = GcpIamProvider::new("analytics", &config, token()).err().unwrap().to_string();
        assert!(msg.starts_with("gcp-iam analytics: ") && msg.contains(want), "{msg}");
    }
    assert_eq!(fake.lock().sets, 1, "only the denied write reached the fake");
}

#[tokio::test]
async fn folders_and_organizations_use_their_own_policy() {
    let fake = GcpFake::start().await;
    fake.lock().seed("folders/123", vec![]);
    fake.lock().seed("organizations/456", vec![]);
    for (key, id, target) in [("folder", "123", "folders/123"), ("organization", "organizations/456", "organizations/456")] {
        let config = BTreeMap::from([(key.to_string(), json!(id)), ("endpoint".to_string(), json!(fake.uri()))]);
        let p = GcpIamProvider::new("org-wide", &config, token()).unwrap();
        let held = p.grant(&spec(&p, "group:ops@example.com", &["req-9"], "2026-12-01T12:00:00Z")).await.unwrap();
        assert_eq!(fake.lock().bindings(target).len(), 1, "{target}");
        assert_eq!(p.list().await.unwrap(), vec![held]);
    }
}

// ---- through the CLI ----

const POLICIES: &str = r#"
groups:
  sre: { members: [alice, bob] }
  managers: { members: [frank] }
identities:
  alice: { gcp: "user:Alice@example.com" }
  bob: { gcp: "user:bob@example.com" }
  frank: {}
resources:
  analytics: { provider: gcp-iam, environment: production, sensitivity: low, config: { project: acme-analytics, endpoint: "ENDPOINT" } }
  sandbox: { provider: local, environment: staging, sensitivity: low, config: { state: state/grants.json } }
roles:
  viewer:
    privilege: read
    max_duration: 8h
    eligible: [sre]
    grants:
      gcp-iam: { role: roles/bigquery.dataViewer }
      local: { role: user }
risk:
  factors:
    sensitivity: { low: 0, high: 25 }
  tiers:
    - { name: auto, max_score: 10, approvals: [] }
    - { name: managed, max_score: 100, approvals: [ { from: [managers], count: 1 } ] }
policy_changes:
  approvals: [ { from: [managers], count: 1 } ]
"#;

fn request(who: &str, resources: &str, start: &str, duration: &str) -> String {
    format!("requester: {who}\nrole: viewer\nresources: [{resources}]\nstart: {start}\nduration: {duration}\nreason: \"INC-7: look at the broken report\"\n")
}

fn cli_repo(fake: &GcpFake) -> Repo {
    let r = Repo::new();
    r.at("2026-11-20T10:00:00Z");
    r.write("policies/all.yaml", POLICIES.replace("ENDPOINT", &fake.uri()));
    r.commit("bootstrap policies");
    r
}

fn run(r: &Repo, args: &[&str]) -> crate::support::Out {
    run_in_env(r.path(), args, &[("GOOGLE_OAUTH_ACCESS_TOKEN", TOKEN), ("GITGRANT_RETRY_BASE_MS", "1")])
}

fn gitgrant_bindings(fake: &GcpFake) -> Vec<(String, String, String)> {
    fake.lock()
        .bindings("projects/acme-analytics")
        .iter()
        .filter(|b| b["condition"]["title"].as_str().is_some_and(|t| t.starts_with("gitgrant:")))
        .map(|b| {
            (
                b["members"][0].as_str().unwrap().into(),
                b["condition"]["description"].as_str().unwrap().into(),
                b["condition"]["expression"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[tokio::test]
async fn plan_and_reconcile_grant_share_and_revoke_bindings() {
    let fake = GcpFake::start().await;
    fake.lock().seed("projects/acme-analytics", vec![json!({"role": "roles/owner", "members": ["user:boss@example.com"]})]);
    let r = cli_repo(&fake);
    land(&r, "a1", "alice", &[("requests/alice-1.yaml", request("alice", "analytics", "2026-12-01T10:00:00Z", "2h"))], &[]);
    land(&r, "a2", "alice", &[("requests/alice-2.yaml", request("alice", "analytics", "2026-12-01T11:00:00Z", "3h"))], &[]);

    let plan = run(&r, &["plan", "--at", "2026-12-01T10:05:00Z", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let p = plan.json();
    assert_eq!(p["actions"][0]["action"], "grant");
    assert_eq!(p["actions"][0]["principal"], "user:alice@example.com", "members compare lowercased");
    assert_eq!(p["actions"][0]["access"], "roles/bigquery.dataViewer");
    assert_eq!(p["native_expiry"]["analytics"], true);
    assert!(gitgrant_bindings(&fake).is_empty(), "plan changes nothing");

    let t0 = run(&r, &["reconcile", "--at", "2026-12-01T10:05:00Z"]);
    assert_eq!(t0.code, 0, "{}", t0.all());
    assert_eq!(
        gitgrant_bindings(&fake),
        vec![("user:alice@example.com".into(), "gitgrant:alice-1@analytics".into(), "request.time < timestamp(\"2026-12-01T12:00:00Z\")".into())]
    );
    assert!(ledger(&r).iter().any(|e| e["action"] == "grant" && e["request"] == "alice-1" && e["provider"] == "gcp-iam"));

    // Idempotent.
    let sets = fake.lock().sets;
    let again = run(&r, &["reconcile", "--at", "2026-12-01T10:30:00Z", "--format", "json"]);
    assert!(again.json()["outcomes"].as_array().unwrap().is_empty(), "{}", again.all());
    assert_eq!(fake.lock().sets, sets);

    // The second request starts: the same binding carries both, until the later end.
    let t1 = run(&r, &["reconcile", "--at", "2026-12-01T11:05:00Z"]);
    assert_eq!(t1.code, 0, "{}", t1.all());
    assert_eq!(
        gitgrant_bindings(&fake),
        vec![("user:alice@example.com".into(), "gitgrant:alice-1,alice-2@analytics".into(), "request.time < timestamp(\"2026-12-01T14:00:00Z\")".into())]
    );
    // The first ends: kept for the second.
    let t2 = run(&r, &["reconcile", "--at", "2026-12-01T12:05:00Z"]);
    assert_eq!(t2.code, 0, "{}", t2.all());
    assert_eq!(gitgrant_bindings(&fake)[0].1, "gitgrant:alice-2@analytics");
    // Both ended: revoked; the owner binding was never touched.
    let t3 = run(&r, &["reconcile", "--at", "2026-12-01T14:05:00Z"]);
    assert_eq!(t3.code, 0, "{}", t3.all());
    assert!(gitgrant_bindings(&fake).is_empty());
    assert_eq!(fake.lock().bindings("projects/acme-analytics"), vec![json!({"role": "roles/owner", "members": ["user:boss@example.com"]})]);
    assert!(ledger(&r).iter().any(|e| e["action"] == "revoke" && e["request"] == "alice-2" && e["result"] == "ok"));
}

#[tokio::test]
async fn reconcile_retries_an_etag_conflict_and_succeeds() {
    let fake = GcpFake::start().await;
    fake.lock().seed("projects/acme-analytics", vec![]);
    fake.lock().concurrent_writes = 1;
    let r = cli_repo(&fake);
    land(&r, "b1", "bob", &[("requests/bob-1.yaml", request("bob", "analytics", "2026-12-01T10:00:00Z", "2h"))], &[]);
    let out = run(&r, &["reconcile", "--at", "2026-12-01T10:05:00Z", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let j = out.json();
    assert_eq!(j["outcomes"][0]["ok"], true);
    assert_eq!(gitgrant_bindings(&fake).len(), 1);
    assert_eq!(fake.lock().bindings("projects/acme-analytics").len(), 2, "the concurrent writer's binding is kept");
}

#[tokio::test]
async fn a_permanent_403_fails_only_that_resource_and_exits_1() {
    let fake = GcpFake::start().await;
    fake.lock().seed("projects/acme-analytics", vec![]);
    fake.lock().deny_set = true;
    let r = cli_repo(&fake);
    land(&r, "b1", "bob", &[("requests/bob-1.yaml", request("bob", "analytics, sandbox", "2026-12-01T10:00:00Z", "2h"))], &[]);
    let out = run(&r, &["reconcile", "--at", "2026-12-01T10:05:00Z"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("grant  gcp-iam analytics user:bob@example.com roles/bigquery.dataViewer: FAILED after 1 attempt(s)"), "{}", out.all());
    assert!(out.stderr.contains("gcp-iam analytics: grant: setIamPolicy projects/acme-analytics: HTTP 403 PERMISSION_DENIED"), "{}", out.all());
    assert!(out.stdout.contains("grant  local sandbox bob user: done"), "the other resource is granted: {}", out.all());
    assert_eq!(fake.lock().sets, 1, "a permanent error is not retried");
    let l = ledger(&r);
    assert!(l.iter().any(|e| e["action"] == "grant-failed" && e["resource"] == "analytics"));
    assert!(l.iter().any(|e| e["action"] == "grant" && e["resource"] == "sandbox" && e["result"] == "ok"));
}

#[tokio::test]
async fn missing_credentials_are_a_provider_error_for_that_resource() {
    let fake = GcpFake::start().await;
    fake.lock().seed("projects/acme-analytics", vec![]);
    let r = cli_repo(&fake);
    land(&r, "b1", "bob", &[("requests/bob-1.yaml", request("bob", "analytics, sandbox", "2026-12-01T10:00:00Z", "2h"))], &[]);
    let out = run_in_env(
        r.path(),
        &["plan", "--at", "2026-12-01T10:05:00Z"],
        &[("GOOGLE_OAUTH_ACCESS_TOKEN", ""), ("GOOGLE_APPLICATION_CREDENTIALS", ""), ("CLOUDSDK_CONFIG", "/nonexistent/gitgrant-test")],
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("error   gcp-iam analytics: no GCP credentials: set GOOGLE_APPLICATION_CREDENTIALS"), "{}", out.all());
    assert!(out.stdout.contains("grant   bob-1    local sandbox"), "{}", out.all());
    assert_eq!(fake.lock().gets, 0);
}

#[tokio::test]
async fn the_endpoint_can_come_from_the_environment() {
    let fake = GcpFake::start().await;
    fake.lock().seed("projects/acme-analytics", vec![]);
    let r = Repo::new();
    r.at("2026-11-20T10:00:00Z");
    r.write("policies/all.yaml", POLICIES.replace(", endpoint: \"ENDPOINT\"", ""));
    r.commit("bootstrap policies");
    land(&r, "b1", "bob", &[("requests/bob-1.yaml", request("bob", "analytics", "2026-12-01T10:00:00Z", "2h"))], &[]);
    let uri = fake.uri();
    let env = [("GOOGLE_OAUTH_ACCESS_TOKEN", TOKEN), ("GITGRANT_GCP_ENDPOINT", uri.as_str())];
    let out = run_in_env(r.path(), &["reconcile", "--at", "2026-12-01T10:05:00Z"], &env);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(gitgrant_bindings(&fake).len(), 1);
}
