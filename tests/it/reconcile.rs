//! plan / reconcile / ledger on real git repositories with the local
//! provider; crash-safety with fault-injecting provider wrappers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gitgrant::ledger::Ledger;
use gitgrant::provider::{GrantSpec, Held, Provider, ProviderError};
use gitgrant::reconcile::{ExecOptions, execute, ledger_entries, prepare};

use crate::support::Repo;

pub(crate) const POLICIES: &str = r#"
groups:
  sre: { members: [alice, bob] }
  dev: { members: [heidi, ivan] }
  managers: { members: [frank, grace] }
identities:
  alice: {}
  bob: {}
  heidi: {}
  ivan: {}
  frank: {}
  grace: {}
resources:
  sandbox: { provider: local, environment: staging, sensitivity: low, config: { state: state/grants.json } }
  tools:   { provider: local, environment: production, sensitivity: high, config: { state: state/grants.json } }
roles:
  user:
    privilege: read
    max_duration: 8h
    eligible: [sre, dev]
    grants: { local: { role: user } }
  admin:
    privilege: admin
    max_duration: 4h
    eligible: [sre]
    grants: { local: { role: admin } }
risk:
  factors:
    sensitivity: { low: 0, high: 25 }
    privilege: { read: 0, admin: 30 }
  tiers:
    - { name: auto, max_score: 10, approvals: [] }
    - { name: managed, max_score: 100, approvals: [ { from: [managers], count: 1 } ] }
policy_changes:
  approvals: [ { from: [managers], count: 1 } ]
"#;

pub(crate) fn req(requester: &str, role: &str, resource: &str, start: &str, dur: &str) -> String {
    format!("requester: {requester}\nrole: {role}\nresources: [{resource}]\nstart: {start}\nduration: {dur}\nreason: \"INC-1: investigate the incident\"\n")
}

pub(crate) fn repo() -> Repo {
    let r = Repo::new();
    r.at("2026-11-20T10:00:00Z");
    r.write("policies/all.yaml", POLICIES);
    r.commit("bootstrap policies");
    r
}

/// Lands `files` on main through a PR branch merged with `Approved-by` trailers.
pub(crate) fn land(r: &Repo, branch: &str, author: &str, files: &[(&str, String)], approvers: &[&str]) -> String {
    r.branch(branch);
    for (p, c) in files {
        r.write(p, c);
    }
    r.commit_as(author, &format!("request {branch}"));
    r.checkout("main");
    let trailers: String = approvers.iter().map(|a| format!("Approved-by: {a}\n")).collect();
    r.merge(branch, &format!("Merge pull request #1 from {branch}\n\n{trailers}"))
}

/// `git ARGS` in `dir`, which must succeed: its trimmed standard output.
pub(crate) fn git_ok(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git").args(args).current_dir(dir).env("GIT_CONFIG_NOSYSTEM", "1").output().unwrap();
    assert!(out.status.success(), "git {args:?} in {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A main repository with heidi's auto-tier request landed (sandbox,
/// 2026-12-01 10:00 for 2h), a bare `origin` at `shared/remote.git`, and
/// local provider state in `shared`, shared by every clone (one provider,
/// as in production). `policies` gets the `shared` directory.
pub(crate) struct RemoteWorld {
    pub main: Repo,
    pub shared: tempfile::TempDir,
}

impl RemoteWorld {
    pub fn new(policies: impl FnOnce(&std::path::Path) -> String) -> RemoteWorld {
        let shared = tempfile::tempdir().unwrap();
        let main = Repo::new();
        main.at("2026-11-20T10:00:00Z");
        main.write("policies/all.yaml", policies(shared.path()));
        main.commit("bootstrap policies");
        land(&main, "heidi", "heidi", &[("requests/heidi-sandbox.yaml", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "2h"))], &[]);
        git_ok(shared.path(), &["init", "-q", "--bare", "remote.git"]);
        main.git(&["remote", "add", "origin", shared.path().join("remote.git").to_str().unwrap()]);
        main.git(&["push", "-q", "origin", "main"]);
        RemoteWorld { main, shared }
    }

    /// [`POLICIES`] with the local provider's state file in `shared`.
    pub fn policies_in(shared: &std::path::Path) -> String {
        POLICIES.replace("state/grants.json", &shared.join("grants.json").display().to_string())
    }

    pub fn bare(&self) -> std::path::PathBuf {
        self.shared.path().join("remote.git")
    }

    /// A fresh `git clone` of the remote, as CI makes it: remote-tracking
    /// refs only (no local ledger branch, no outbox ref, no `.git/gitgrant`).
    pub fn clone(&self, name: &str) -> std::path::PathBuf {
        let dir = self.shared.path().join(name);
        git_ok(self.shared.path(), &["clone", "-q", self.bare().to_str().unwrap(), name]);
        git_ok(&dir, &["config", "user.name", "ci"]);
        git_ok(&dir, &["config", "user.email", "ci@example.com"]);
        dir
    }
}

pub(crate) fn grants(r: &Repo) -> Vec<(String, String, Vec<String>)> {
    let p = r.path().join("state/grants.json");
    let Ok(text) = std::fs::read_to_string(p) else { return Vec::new() };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let a = &g["access"];
            let reqs = g["requests"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
            (format!("{}/{}", a["resource"].as_str().unwrap(), a["principal"].as_str().unwrap()), a["access"].as_str().unwrap().to_string(), reqs)
        })
        .collect()
}

pub(crate) fn ledger(r: &Repo) -> Vec<serde_json::Value> {
    let text = r.git(&["show", "gitgrant-ledger:ledger.jsonl"]);
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

pub(crate) fn ledger_commits(r: &Repo) -> usize {
    r.git(&["rev-list", "--count", "gitgrant-ledger"]).parse().unwrap()
}

/// The lifecycle: two approved requests and one pushed directly to main;
/// grant at T0, nothing at T0+30m, one expires, one is removed early.
#[test]
fn lifecycle_grants_refuses_expires_and_revokes_early() {
    let r = repo();
    // heidi/user/sandbox: auto tier (no approvals). alice/admin/tools: managed tier.
    land(&r, "heidi", "heidi", &[("requests/heidi-sandbox.yaml", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "2h"))], &[]);
    land(&r, "alice", "alice", &[("requests/alice-tools.yaml", req("alice", "admin", "tools", "2026-12-01T10:00:00Z", "4h"))], &["frank"]);
    // A direct push of a request that needs approval.
    r.write("requests/bob-tools.yaml", req("bob", "admin", "tools", "2026-12-01T10:00:00Z", "4h"));
    r.commit_as("bob", "add my access");

    let plan = r.run(&["plan", "--at", "2026-12-01T10:05:00Z", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let p = plan.json();
    let actions: Vec<(String, String)> =
        p["actions"].as_array().unwrap().iter().map(|a| (a["action"].as_str().unwrap().into(), a["request"].as_str().unwrap().into())).collect();
    assert_eq!(actions, vec![("grant".into(), "heidi-sandbox".into()), ("grant".into(), "alice-tools".into())]);
    assert_eq!(p["refused"][0]["request"], "bob-tools");
    assert!(p["refused"][0]["reason"].as_str().unwrap().contains("pushed directly to main"), "{}", p["refused"]);
    assert!(grants(&r).is_empty(), "plan must change nothing");

    let t0 = r.run(&["reconcile", "--at", "2026-12-01T10:05:00Z"]);
    assert_eq!(t0.code, 1, "a refused request fails the run: {}", t0.all());
    assert!(t0.stdout.contains("refused bob-tools"), "{}", t0.all());
    let g = grants(&r);
    assert_eq!(g.len(), 2, "{g:?}");
    assert!(g.contains(&("sandbox/heidi".into(), "user".into(), vec!["heidi-sandbox".into()])));
    assert!(g.contains(&("tools/alice".into(), "admin".into(), vec!["alice-tools".into()])));
    let l = ledger(&r);
    let granted: Vec<&str> = l.iter().filter(|e| e["action"] == "grant").map(|e| e["request"].as_str().unwrap()).collect();
    assert_eq!(granted.len(), 2);
    let alice = l.iter().find(|e| e["request"] == "alice-tools").unwrap();
    assert_eq!(alice["approvers"][0]["login"], "frank");
    assert_eq!(alice["pr"], 1);
    assert_eq!(alice["tier"], "managed");
    assert!(l.iter().any(|e| e["action"] == "verify-failed" && e["request"] == "bob-tools"));
    assert_eq!(ledger_commits(&r), 1);

    // Idempotent: nothing changes, no new ledger commit (the refusal is recorded once).
    let t1 = r.run(&["reconcile", "--at", "2026-12-01T10:35:00Z", "--format", "json"]);
    let j = t1.json();
    assert!(j["outcomes"].as_array().unwrap().is_empty(), "{}", t1.all());
    assert_eq!(ledger_commits(&r), 1, "a no-change run writes no ledger commit");

    // heidi's window (2h) ends at 12:00.
    let t2 = r.run(&["reconcile", "--at", "2026-12-01T12:01:00Z"]);
    assert!(t2.stdout.contains("heidi-sandbox ended at 2026-12-01T12:00:00Z"), "{}", t2.all());
    assert_eq!(grants(&r).len(), 1);
    assert!(ledger(&r).iter().any(|e| e["action"] == "revoke" && e["request"] == "heidi-sandbox" && e["result"] == "ok"));

    // alice's file removed from main: revoked early.
    r.remove("requests/alice-tools.yaml");
    r.commit_as("alice", "done with the incident");
    let t3 = r.run(&["reconcile", "--at", "2026-12-01T12:30:00Z"]);
    assert!(t3.stdout.contains("alice-tools was removed from main"), "{}", t3.all());
    assert!(grants(&r).is_empty());
    assert_eq!(ledger_commits(&r), 3);
}

/// Two requests give the same principal the same access: ending one keeps it.
#[test]
fn overlapping_requests_share_one_grant() {
    let r = repo();
    land(&r, "a", "heidi", &[("requests/heidi-1.yaml", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "2h"))], &[]);
    land(&r, "b", "heidi", &[("requests/heidi-2.yaml", req("heidi", "user", "sandbox", "2026-12-01T11:00:00Z", "3h"))], &[]);
    r.run(&["reconcile", "--at", "2026-12-01T11:30:00Z"]);
    assert_eq!(grants(&r), vec![("sandbox/heidi".into(), "user".into(), vec!["heidi-1".into(), "heidi-2".into()])]);

    // heidi-1 ends at 12:00, heidi-2 at 14:00: the access stays.
    let plan = r.run(&["plan", "--at", "2026-12-01T12:30:00Z"]);
    assert!(plan.stdout.contains("heidi-1 ended at 2026-12-01T12:00:00Z; still needed by heidi-2"), "{}", plan.all());
    assert!(!plan.stdout.contains("revoke "), "{}", plan.all());
    let run = r.run(&["reconcile", "--at", "2026-12-01T12:30:00Z"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(grants(&r), vec![("sandbox/heidi".into(), "user".into(), vec!["heidi-2".into()])]);
    assert!(ledger(&r).iter().any(|e| e["action"] == "release" && e["request"] == "heidi-1"));

    r.run(&["reconcile", "--at", "2026-12-01T14:00:00Z"]);
    assert!(grants(&r).is_empty());
}

/// Removing the requester from the eligible group on main revokes active access.
#[test]
fn eligibility_is_rechecked_under_current_policies() {
    let r = repo();
    land(&r, "a", "heidi", &[("requests/heidi-1.yaml", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "4h"))], &[]);
    r.run(&["reconcile", "--at", "2026-12-01T10:30:00Z"]);
    assert_eq!(grants(&r).len(), 1);
    r.write("policies/all.yaml", POLICIES.replace("dev: { members: [heidi, ivan] }", "dev: { members: [ivan] }"));
    r.commit("remove heidi from dev\n\nApproved-by: grace");
    let out = r.run(&["reconcile", "--at", "2026-12-01T11:00:00Z"]);
    assert!(out.stdout.contains("no longer allowed by the current policies"), "{}", out.all());
    assert!(grants(&r).is_empty());
}

/// A managed grant nobody asked for (edited into the state by hand) is revoked.
#[test]
fn unexplained_managed_grants_are_revoked() {
    let r = repo();
    std::fs::create_dir_all(r.path().join("state")).unwrap();
    std::fs::write(
        r.path().join("state/grants.json"),
        r#"{"grants":[{"access":{"provider":"local","resource":"tools","principal":"mallory","access":"admin"},"requests":[],"end":null,"handle":"x","granted_at":"2026-11-01T00:00:00Z"}]}"#,
    )
    .unwrap();
    let plan = r.run(&["plan", "--at", "2026-12-01T10:00:00Z"]);
    assert!(plan.stdout.contains("a managed grant that no request explains"), "{}", plan.all());
    r.run(&["reconcile", "--at", "2026-12-01T10:00:00Z"]);
    assert!(grants(&r).is_empty());
}

/// Wraps a provider: fails (transiently or not) after `ok_calls` grant/revoke calls.
struct Faulty {
    inner: Arc<dyn Provider>,
    calls: Arc<AtomicUsize>,
    ok_calls: usize,
    transient: bool,
    hang: bool,
}

#[async_trait::async_trait]
impl Provider for Faulty {
    fn kind(&self) -> gitgrant::model::policy::ProviderKind {
        self.inner.kind()
    }
    fn resource(&self) -> &str {
        self.inner.resource()
    }
    fn native_expiry(&self) -> bool {
        false
    }
    fn marker(&self) -> String {
        self.inner.marker()
    }
    fn access_for(&self, r: &str, g: &serde_json::Value) -> Result<String, ProviderError> {
        self.inner.access_for(r, g)
    }
    async fn list(&self) -> Result<Vec<Held>, ProviderError> {
        self.inner.list().await
    }
    async fn grant(&self, spec: &GrantSpec) -> Result<Held, ProviderError> {
        self.gate().await?;
        self.inner.grant(spec).await
    }
    async fn revoke(&self, held: &Held) -> Result<(), ProviderError> {
        self.gate().await?;
        self.inner.revoke(held).await
    }
}

impl Faulty {
    async fn gate(&self) -> Result<(), ProviderError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.ok_calls {
            return Ok(());
        }
        if self.hang {
            // Simulates the process being killed mid-call: never returns.
            std::future::pending::<()>().await;
        }
        let (provider, resource, message) = (self.inner.kind(), self.inner.resource().to_string(), "injected failure".to_string());
        Err(if self.transient { ProviderError::Transient { provider, resource, message } } else { ProviderError::Permanent { provider, resource, message } })
    }
}

/// Eight grants: each of four users gets `user` on both resources (one PR each).
fn many_requests(r: &Repo) {
    for u in ["alice", "bob", "heidi", "ivan"] {
        let files: Vec<(String, String)> =
            ["sandbox", "tools"].iter().map(|res| (format!("requests/{u}-{res}.yaml"), req(u, "user", res, "2026-12-01T10:00:00Z", "2h"))).collect();
        let refs: Vec<(&str, String)> = files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect();
        land(r, u, u, &refs, &["grace"]);
    }
}

fn wrap(providers: BTreeMap<String, Arc<dyn Provider>>, ok_calls: usize, transient: bool, hang: bool) -> BTreeMap<String, Arc<dyn Provider>> {
    let calls = Arc::new(AtomicUsize::new(0));
    providers.into_iter().map(|(k, p)| (k, Arc::new(Faulty { inner: p, calls: calls.clone(), ok_calls, transient, hang }) as Arc<dyn Provider>)).collect()
}

fn t(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().into()
}

/// A provider that fails permanently after 3 calls: those fail and are named;
/// the rerun converges; the ledger records each grant exactly once.
#[tokio::test]
async fn crash_after_n_calls_then_rerun_converges() {
    let r = repo();
    many_requests(&r);
    let at = t("2026-12-01T10:30:00Z");
    let opts =
        ExecOptions { concurrency: 2, attempts: 2, base_delay: std::time::Duration::ZERO, retry_budget: std::time::Duration::ZERO, ..ExecOptions::default() };
    let (_, providers, plan) = prepare(r.path(), at, None).await.unwrap();
    assert_eq!(plan.actions.len(), 8, "{:#?} {:#?}", plan.refused, plan.failures);
    let outcomes = execute(&plan, &wrap(providers, 3, false, false), &opts).await;
    assert_eq!(outcomes.iter().filter(|o| o.ok).count(), 3);
    assert!(outcomes.iter().filter(|o| !o.ok).all(|o| o.error.as_deref().unwrap().contains("injected failure")));
    let repo = git2::Repository::open(r.path()).unwrap();
    let mut l = Ledger::read(&repo).unwrap();
    let entries = ledger_entries(&plan, &outcomes, &l, at);
    assert_eq!(entries.iter().filter(|e| e.action == "grant").count(), 3);
    assert_eq!(entries.iter().filter(|e| e.action == "grant-failed").count(), 5);
    l.append(&repo, &entries, "run 1").unwrap();

    // Transient failures are retried: 1 ok call, then every call fails once... here: all transient, enough attempts.
    let (_, providers, plan) = prepare(r.path(), at, None).await.unwrap();
    assert_eq!(plan.actions.iter().filter(|a| a.action == gitgrant::reconcile::ActionKind::Grant).count(), 5);
    let outcomes = execute(&plan, &providers, &opts).await;
    assert!(outcomes.iter().all(|o| o.ok));
    let entries = ledger_entries(&plan, &outcomes, &l, at);
    assert_eq!(entries.iter().filter(|e| e.action == "grant" && e.result == "ok").count(), 5);
    l.append(&repo, &entries, "run 2").unwrap();
    assert_eq!(grants(&r).len(), 8);
    assert_eq!(l.open_grants().len(), 8);

    let (_, _, plan) = prepare(r.path(), at, None).await.unwrap();
    assert_eq!(plan.changes(), 0);
}

/// Killed mid-run (the run stops inside a provider call and never records):
/// the rerun finds the grants already made, records them as observed, and
/// grants the rest. Nothing lost, nothing left over, nothing recorded twice.
#[tokio::test]
async fn killed_mid_run_then_rerun_records_what_happened() {
    let r = repo();
    many_requests(&r);
    let at = t("2026-12-01T10:30:00Z");
    let opts =
        ExecOptions { concurrency: 1, attempts: 1, base_delay: std::time::Duration::ZERO, retry_budget: std::time::Duration::ZERO, ..ExecOptions::default() };
    let (_, providers, plan) = prepare(r.path(), at, None).await.unwrap();
    let hanging = wrap(providers, 4, false, true);
    let run = execute(&plan, &hanging, &opts);
    assert!(tokio::time::timeout(std::time::Duration::from_millis(500), run).await.is_err(), "the run must hang (be 'killed')");
    assert_eq!(grants(&r).len(), 4);

    let repo = git2::Repository::open(r.path()).unwrap();
    let mut l = Ledger::read(&repo).unwrap();
    assert!(l.entries.is_empty());
    let (_, providers, plan) = prepare(r.path(), at, None).await.unwrap();
    let outcomes = execute(&plan, &providers, &opts).await;
    let entries = ledger_entries(&plan, &outcomes, &l, at);
    assert_eq!(entries.iter().filter(|e| e.result == "observed").count(), 4, "{entries:#?}");
    assert_eq!(entries.iter().filter(|e| e.result == "ok").count(), 4);
    l.append(&repo, &entries, "rerun").unwrap();
    assert_eq!(grants(&r).len(), 8);

    // After the end: everything revoked, each exactly once.
    let end = t("2026-12-01T12:30:00Z");
    let (_, providers, plan) = prepare(r.path(), end, None).await.unwrap();
    let outcomes = execute(&plan, &providers, &opts).await;
    let entries = ledger_entries(&plan, &outcomes, &l, end);
    assert_eq!(entries.iter().filter(|e| e.action == "revoke" && e.result == "ok").count(), 8);
    l.append(&repo, &entries, "expire").unwrap();
    assert!(grants(&r).is_empty());
    assert!(l.open_grants().is_empty());
}

/// Transient errors are retried with backoff until they succeed.
#[tokio::test]
async fn transient_errors_are_retried() {
    let r = repo();
    many_requests(&r);
    let at = t("2026-12-01T10:30:00Z");
    let (_, providers, plan) = prepare(r.path(), at, None).await.unwrap();
    // Calls 0..2 succeed, later calls fail transiently: with one attempt they fail...
    let once =
        ExecOptions { concurrency: 4, attempts: 1, base_delay: std::time::Duration::ZERO, retry_budget: std::time::Duration::ZERO, ..ExecOptions::default() };
    let outcomes = execute(&plan, &wrap(providers.clone(), 2, true, false), &once).await;
    assert_eq!(outcomes.iter().filter(|o| o.ok).count(), 2);
    // ...and a provider that fails every other call succeeds with retries.
    struct Flaky(Arc<dyn Provider>, AtomicUsize);
    #[async_trait::async_trait]
    impl Provider for Flaky {
        fn kind(&self) -> gitgrant::model::policy::ProviderKind {
            self.0.kind()
        }
        fn resource(&self) -> &str {
            self.0.resource()
        }
        fn native_expiry(&self) -> bool {
            false
        }
        fn marker(&self) -> String {
            String::new()
        }
        fn access_for(&self, r: &str, g: &serde_json::Value) -> Result<String, ProviderError> {
            self.0.access_for(r, g)
        }
        async fn list(&self) -> Result<Vec<Held>, ProviderError> {
            self.0.list().await
        }
        async fn grant(&self, spec: &GrantSpec) -> Result<Held, ProviderError> {
            if self.1.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                return Err(ProviderError::Transient { provider: self.kind(), resource: self.resource().into(), message: "503 Slow Down".into() });
            }
            self.0.grant(spec).await
        }
        async fn revoke(&self, held: &Held) -> Result<(), ProviderError> {
            self.0.revoke(held).await
        }
    }
    let flaky: BTreeMap<String, Arc<dyn Provider>> =
        providers.into_iter().map(|(k, p)| (k, Arc::new(Flaky(p, AtomicUsize::new(0))) as Arc<dyn Provider>)).collect();
    let (_, _, plan) = prepare(r.path(), at, None).await.unwrap();
    let retry = ExecOptions {
        concurrency: 1,
        attempts: 4,
        base_delay: std::time::Duration::from_millis(1),
        retry_budget: std::time::Duration::ZERO,
        ..ExecOptions::default()
    };
    let outcomes = execute(&plan, &flaky, &retry).await;
    assert!(outcomes.iter().all(|o| o.ok), "{outcomes:#?}");
    assert!(outcomes.iter().any(|o| o.attempts > 1));
    assert_eq!(grants(&r).len(), 8);
}

/// The plan as people read it.
#[test]
fn plan_human_output_snapshot() {
    let r = repo();
    land(&r, "a", "heidi", &[("requests/heidi-1.yaml", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "2h"))], &[]);
    land(&r, "b", "alice", &[("requests/alice-1.yaml", req("alice", "admin", "tools", "2026-12-01T10:00:00Z", "2h"))], &["grace"]);
    r.write("requests/bob-1.yaml", req("bob", "admin", "tools", "2026-12-01T10:00:00Z", "2h"));
    r.commit_as("bob", "direct push");
    let out = r.run(&["plan", "--at", "2026-12-01T10:30:00Z"]);
    let text = regex::Regex::new(r"\b[0-9a-f]{10}\b").unwrap().replace_all(&out.all(), "[COMMIT]").to_string();
    insta::assert_snapshot!("plan-human", text);
}

/// A resource removed from policies/ while it still holds a grant: reconcile
/// rebuilds its provider from the policy the ledger names and revokes it;
/// with no such policy it reports the resource instead of forgetting it.
#[test]
fn grants_on_a_resource_removed_from_policies_are_still_revoked() {
    let r = repo();
    land(&r, "heidi", "heidi", &[("requests/heidi-sandbox.yaml", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "8h"))], &[]);
    let out = r.run(&["reconcile", "--at", "2026-12-01T10:05:00Z"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(grants(&r).len(), 1);

    // The request goes, then the sandbox resource (a policy change lands alone, approved).
    let retired = POLICIES.replace("  sandbox: { provider: local, environment: staging, sensitivity: low, config: { state: state/grants.json } }\n", "");
    r.branch("drop");
    r.git(&["rm", "-q", "requests/heidi-sandbox.yaml"]);
    r.commit_as("alice", "drop the request");
    r.checkout("main");
    r.merge("drop", "Merge pull request #2 from drop\n");
    r.branch("retire");
    r.write("policies/all.yaml", &retired);
    r.commit_as("alice", "retire sandbox");
    r.checkout("main");
    r.merge("retire", "Merge pull request #3 from retire\n\nApproved-by: frank\n");

    let plan = r.run(&["plan", "--at", "2026-12-01T11:00:00Z", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let actions = plan.json()["actions"].clone();
    assert_eq!(actions.as_array().unwrap().len(), 1, "{actions}");
    assert_eq!((actions[0]["action"].as_str(), actions[0]["resource"].as_str()), (Some("revoke"), Some("sandbox")));
    let out = r.run(&["reconcile", "--at", "2026-12-01T11:00:00Z"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(grants(&r).is_empty(), "the retired resource's grant is revoked");
    let last = ledger(&r).pop().unwrap();
    assert_eq!((last["action"].as_str(), last["resource"].as_str(), last["result"].as_str()), (Some("revoke"), Some("sandbox"), Some("ok")));
}

#[test]
fn a_retired_resource_without_a_known_policy_is_reported_not_forgotten() {
    let r = repo();
    land(&r, "heidi", "heidi", &[("requests/heidi-sandbox.yaml", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "8h"))], &[]);
    assert_eq!(r.run(&["reconcile", "--at", "2026-12-01T10:05:00Z"]).code, 0);
    // Rewrite the ledger so its entries name no commit that still holds the policy.
    let text = r.git(&["show", "gitgrant-ledger:ledger.jsonl"]);
    let stripped: String = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().retain(|k, _| k != "merge_commit" && k != "base_commit");
            format!("{v}\n")
        })
        .collect();
    let repo = git2::Repository::open(r.path()).unwrap();
    let head = repo.find_reference("refs/heads/gitgrant-ledger").unwrap().peel_to_commit().unwrap();
    let mut tb = repo.treebuilder(Some(&head.tree().unwrap())).unwrap();
    tb.insert("ledger.jsonl", repo.blob(stripped.as_bytes()).unwrap(), 0o100644).unwrap();
    let tree = repo.find_tree(tb.write().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.com").unwrap();
    repo.commit(Some("refs/heads/gitgrant-ledger"), &sig, &sig, "strip commits", &tree, &[&head]).unwrap();
    let retired = POLICIES.replace("  sandbox: { provider: local, environment: staging, sensitivity: low, config: { state: state/grants.json } }\n", "");
    r.write("policies/all.yaml", &retired);
    r.git(&["rm", "-q", "requests/heidi-sandbox.yaml"]);
    r.commit("retire sandbox");
    let out = r.run(&["plan", "--at", "2026-12-01T11:00:00Z"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.all().contains("`sandbox`, which is no longer in policies/"), "{}", out.all());
    assert_eq!(grants(&r).len(), 1, "nothing was touched");
}

fn lines_of<'a>(l: &'a [serde_json::Value], action: &str, result: &str, request: &str) -> Vec<&'a serde_json::Value> {
    l.iter().filter(|e| e["action"] == action && e["result"] == result && e["request"] == request).collect()
}

/// Issue 14, what broke 5: after a shared access ends, `release` closes the
/// request's share, so no later run writes a false `revoke observed`. The
/// ledger holds exactly one grant and one release or revoke per share.
#[test]
fn release_closes_a_share_and_no_false_revoke_observed_follows() {
    let r = repo();
    land(&r, "h1", "heidi", &[("requests/heidi-a.yaml", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "1h"))], &[]);
    land(&r, "h2", "heidi", &[("requests/heidi-b.yaml", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "3h"))], &[]);
    for at in ["2026-12-01T10:05:00Z", "2026-12-01T11:05:00Z", "2026-12-01T13:05:00Z", "2026-12-01T14:05:00Z"] {
        let out = r.run(&["reconcile", "--at", at]);
        assert_eq!(out.code, 0, "{at}: {}", out.all());
    }
    assert!(grants(&r).is_empty());
    let l = ledger(&r);
    assert!(l.iter().all(|e| e["result"] != "observed"), "nothing invented: {l:#?}");
    assert_eq!(lines_of(&l, "grant", "ok", "heidi-a").len(), 1, "{l:#?}");
    assert_eq!(lines_of(&l, "release", "ok", "heidi-a").len(), 1, "{l:#?}");
    assert_eq!(lines_of(&l, "grant", "ok", "heidi-b").len(), 1, "{l:#?}");
    assert_eq!(lines_of(&l, "revoke", "ok", "heidi-b").len(), 1, "{l:#?}");
    assert_eq!(l.len(), 4, "{l:#?}");
}

/// Issue 14, what broke 5: an access that vanished at the provider and is
/// granted again is recorded: the gap (`revoke observed`), then the grant.
#[test]
fn a_re_grant_after_the_access_vanished_is_recorded_with_the_gap() {
    let r = repo();
    land(&r, "h1", "heidi", &[("requests/heidi-a.yaml", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "2h"))], &[]);
    assert_eq!(r.run(&["reconcile", "--at", "2026-12-01T10:05:00Z"]).code, 0);
    std::fs::remove_file(r.path().join("state/grants.json")).unwrap();
    let out = r.run(&["reconcile", "--at", "2026-12-01T10:30:00Z"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(grants(&r).len(), 1);
    let l = ledger(&r);
    let gap = lines_of(&l, "revoke", "observed", "heidi-a");
    assert_eq!(gap.len(), 1, "{l:#?}");
    assert!(gap[0]["detail"].as_str().unwrap().contains("no longer held at the provider (recorded as granted at 2026-12-01T10:05:00Z)"), "{l:#?}");
    let granted = lines_of(&l, "grant", "ok", "heidi-a");
    assert_eq!(granted.len(), 2, "{l:#?}");
    assert!(granted[1]["detail"].as_str().unwrap().contains("granted again"), "{l:#?}");
    // And the next run has nothing to add.
    assert_eq!(r.run(&["reconcile", "--at", "2026-12-01T10:35:00Z"]).code, 0);
    assert_eq!(ledger(&r).len(), l.len());
}

/// Issue 14, what broke 6: the local provider never leaves `grants.tmp.PID`
/// files, and clears those an older, killed run left.
#[test]
fn the_local_provider_leaves_no_temp_files() {
    let r = repo();
    land(&r, "h1", "heidi", &[("requests/heidi-a.yaml", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "1h"))], &[]);
    r.write("state/grants.tmp.4242", "{");
    for at in ["2026-12-01T10:05:00Z", "2026-12-01T11:05:00Z"] {
        assert_eq!(r.run(&["reconcile", "--at", at]).code, 0);
    }
    let mut names: Vec<String> = std::fs::read_dir(r.path().join("state")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, vec!["grants.json", "grants.lock"]);
}

/// Issue 14, what broke 9: a resource that is down (every call fails
/// transiently) gives one failure per resource: after the first call has
/// used its retries, the resource's other calls are not attempted.
#[tokio::test]
async fn a_resource_that_is_down_fails_once_not_once_per_grant() {
    let r = repo();
    many_requests(&r);
    let at = t("2026-12-01T10:30:00Z");
    let opts =
        ExecOptions { concurrency: 1, attempts: 3, base_delay: std::time::Duration::ZERO, retry_budget: std::time::Duration::ZERO, ..ExecOptions::default() };
    let (_, providers, plan) = prepare(r.path(), at, None).await.unwrap();
    let outcomes = execute(&plan, &wrap(providers, 0, true, false), &opts).await;
    assert_eq!(outcomes.len(), 8);
    for res in ["sandbox", "tools"] {
        let mine: Vec<_> = outcomes.iter().filter(|o| o.action.resource == res).collect();
        let tried: Vec<_> = mine.iter().filter(|o| o.attempts > 0).collect();
        assert_eq!(tried.len(), 1, "{res}: one call tried, with its retries: {mine:#?}");
        assert_eq!(tried[0].attempts, 3);
        assert!(mine.iter().filter(|o| o.attempts == 0).all(|o| o.error.as_deref().unwrap().starts_with("not attempted: local")), "{mine:#?}");
    }
}

/// Issue 14, what broke 8: a run that comes late says so (`late_by`), `plan`
/// warns that the runs are overdue, and a window that opened and closed
/// between two runs is recorded as `missed`, once.
#[test]
fn a_late_run_says_how_late_and_records_a_missed_window() {
    let r = repo();
    land(&r, "h1", "heidi", &[("requests/heidi-a.yaml", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "1h"))], &[]);
    land(&r, "h2", "heidi", &[("requests/heidi-b.yaml", req("heidi", "user", "sandbox", "2026-12-01T12:00:00Z", "1h"))], &[]);
    assert_eq!(r.run(&["reconcile", "--at", "2026-12-01T10:05:00Z"]).code, 0);
    // The runner is down until 14:00.
    let plan = r.run(&["plan", "--at", "2026-12-01T14:00:00Z"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(plan.stdout.contains("warning: the ledger holds 1 grant(s) open past their end, the oldest ended 3h ago (2026-12-01T11:00:00Z)"), "{}", plan.all());
    assert!(plan.stdout.contains("missed: heidi-b (window 2026-12-01T12:00:00Z to 2026-12-01T13:00:00Z"), "{}", plan.all());
    for at in ["2026-12-01T14:00:00Z", "2026-12-01T14:05:00Z"] {
        assert_eq!(r.run(&["reconcile", "--at", at]).code, 0);
    }
    let l = ledger(&r);
    let revoke = lines_of(&l, "revoke", "ok", "heidi-a");
    assert_eq!(revoke.len(), 1, "{l:#?}");
    assert_eq!(revoke[0]["late_by"], "3h", "{l:#?}");
    assert!(revoke[0]["detail"].as_str().unwrap().contains("late by 3h (no expiry at the provider"), "{l:#?}");
    assert_eq!(lines_of(&l, "missed", "missed", "heidi-b").len(), 1, "{l:#?}");
    let after = r.run(&["plan", "--at", "2026-12-01T14:10:00Z"]);
    assert!(!after.stdout.contains("warning") && !after.stdout.contains("missed"), "{}", after.all());
}

/// Issue 14, what broke 5: `revoke --now` of an access another request
/// shares records what it did to both (the other's line not sticky), and the
/// next reconcile records the other's re-grant.
#[test]
fn revoke_now_of_a_shared_access_records_every_share_and_the_re_grant() {
    let r = repo();
    land(&r, "h1", "heidi", &[("requests/heidi-a.yaml", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "2h"))], &[]);
    land(&r, "h2", "heidi", &[("requests/heidi-b.yaml", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "3h"))], &[]);
    assert_eq!(r.run(&["reconcile", "--at", "2026-12-01T10:05:00Z"]).code, 0);
    let out = r.run(&["--now", "2026-12-01T10:10:00Z", "revoke", "heidi-a", "--immediately", "--no-pr", "--reason", "INC-2 closed"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("it was shared with heidi-b, which lost it too"), "{}", out.all());
    let l = ledger(&r);
    let a = lines_of(&l, "revoke", "ok", "heidi-a");
    let b = lines_of(&l, "revoke", "ok", "heidi-b");
    assert_eq!((a.len(), b.len()), (1, 1), "{l:#?}");
    assert_eq!((a[0]["sticky"].as_bool(), b[0].get("sticky")), (Some(true), None), "{l:#?}");
    let again = r.run(&["reconcile", "--at", "2026-12-01T10:15:00Z"]);
    assert_eq!(again.code, 1, "heidi-a is refused while its file is on main: {}", again.all());
    assert_eq!(grants(&r), vec![("sandbox/heidi".to_string(), "user".to_string(), vec!["heidi-b".to_string()])]);
    let l = ledger(&r);
    assert_eq!(lines_of(&l, "grant", "ok", "heidi-b").len(), 2, "the re-grant is recorded: {l:#?}");
    assert_eq!(lines_of(&l, "grant", "ok", "heidi-a").len(), 1, "{l:#?}");
    assert!(l.iter().all(|e| e["result"] != "observed"), "{l:#?}");
}
