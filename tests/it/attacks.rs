//! Regression tests for the attacks of issue 13 ("One judge"): each one a
//! hostile insider tried against `merge = approval`, in plain-git mode
//! (`Approved-by:` trailers) and, where the forge matters, in GitHub mode
//! (wiremock fake of the REST API, see `github_gate.rs`).
//!
//! The fixtures keep the requester, the PR author, the commit authors and
//! the approvers apart: carol asks, dave writes the commits, frank or erin
//! approve — so an exclusion that forgets one of them fails a test here.

use serde_json::Value;

use crate::reconcile::land;
use crate::support::Repo;

const POLICIES: &str = r#"
groups:
  sre: { members: [alice, bob] }
  dev: { members: [heidi, ivan, dave] }
  dba: { members: [carol] }
  managers: { members: [carol, frank, grace] }
  security: { members: [erin, oscar] }
identities:
  alice: {}
  bob: {}
  carol: {}
  dave: {}
  heidi: {}
  ivan: {}
  frank: {}
  grace: {}
  erin: {}
  oscar: {}
resources:
  sandbox: { provider: local, environment: staging, sensitivity: low, config: { state: state/grants.json } }
  vault:   { provider: local, environment: production, sensitivity: critical, config: { state: state/grants.json } }
roles:
  user:
    privilege: read
    max_duration: 8h
    eligible: [sre, dev, dba]
    grants: { local: { role: user } }
  admin:
    privilege: admin
    max_duration: 4h
    eligible: [sre, dba]
    grants: { local: { role: admin } }
risk:
  factors:
    sensitivity: { low: 0, critical: 40 }
    privilege: { read: 0, admin: 30 }
    first_time: 10
  tiers:
    - { name: auto, max_score: 10, approvals: [], max_duration: 4h }
    - { name: managed, max_score: 49, approvals: [ { from: [managers], count: 1 } ] }
    - { name: critical, max_score: 100, approvals: [ { from: [security], count: 2 } ] }
policy_changes:
  approvals: [ { from: [security], count: 2 } ]
break_glass:
  approvals: [ { from: [sre], count: 1 } ]
  max_duration: 1h
  review_within: 24h
  reviewers: [security]
"#;

/// Inside every window below.
const AT: &str = "2026-12-01T10:30:00Z";

fn req(requester: &str, role: &str, resource: &str, dur: &str) -> String {
    format!(
        "requester: {requester}\nrole: {role}\nresources: [{resource}]\nstart: 2026-12-01T10:00:00Z\nduration: {dur}\nreason: \"INC-1: investigate the incident\"\n"
    )
}

fn repo() -> Repo {
    let r = Repo::new();
    r.at("2026-11-20T10:00:00Z");
    r.write("policies/all.yaml", POLICIES);
    r.commit("bootstrap policies");
    r
}

fn plan(r: &Repo) -> Value {
    let out = r.run(&["plan", "--at", AT, "--format", "json"]);
    assert!(out.code == 0 || out.code == 1, "{}", out.all());
    out.json()
}

fn granted(plan: &Value) -> Vec<String> {
    plan["actions"].as_array().unwrap().iter().filter(|a| a["action"] == "grant").map(|a| a["request"].as_str().unwrap().to_string()).collect()
}

fn refusal(plan: &Value, id: &str) -> Option<String> {
    plan["refused"].as_array().unwrap().iter().find(|r| r["request"] == id).map(|r| r["reason"].as_str().unwrap().to_string())
}

fn verify(r: &Repo) -> (i32, Vec<Value>) {
    let out = r.run(&["audit", "verify", "--no-providers", "--now", AT, "--format", "json"]);
    assert!(out.code == 0 || out.code == 1, "{}", out.all());
    let v = out.json();
    (out.code, v["findings"].as_array().unwrap().clone())
}

fn has(findings: &[Value], code: &str, request: &str) -> bool {
    findings.iter().any(|f| f["code"] == code && f["request"] == request)
}

/// `check --base L^ --head L` for landing `l`: its exit code and diagnostic codes.
fn check_landing(r: &Repo, l: &str) -> (i32, Vec<String>) {
    let out = r.run(&["check", "--base", &format!("{l}^"), "--head", l, "--format", "json", "--now", "2026-11-30T10:00:00Z"]);
    let codes = out.json()["diagnostics"].as_array().unwrap().iter().map(|d| d["code"].as_str().unwrap().to_string()).collect();
    (out.code, codes)
}

/// Attack 1 (critical): a comment-only edit plus a second file with the same
/// id must not borrow the first file's approval.
#[test]
fn approval_borrowing_by_duplicate_id_is_refused() {
    let r = repo();
    land(&r, "carol", "dave", &[("requests/ana-box.yaml", req("carol", "admin", "sandbox", "2h"))], &["frank"]);
    assert_eq!(granted(&plan(&r)), vec!["ana-box"], "the approved request is granted");

    // A direct push: the same file with a comment, and the same id elsewhere asking for admin on vault.
    r.write("requests/ana-box.yaml", format!("{}# just a comment\n", req("carol", "admin", "sandbox", "2h")));
    r.write("requests/zz/ana-box.yaml", req("carol", "admin", "vault", "2h"));
    let l = r.commit_as("dave", "tidy up");
    let p = plan(&r);
    assert!(granted(&p).is_empty(), "{p:#}");
    let why = refusal(&p, "ana-box").unwrap();
    assert!(why.contains("GG012"), "{why}");
    let (code, codes) = check_landing(&r, &l);
    assert_eq!(code, 1);
    assert!(codes.contains(&"GG012".to_string()), "{codes:?}");
    let (code, findings) = verify(&r);
    assert_eq!(code, 1);
    assert!(has(&findings, "AV007", "ana-box"), "{findings:#?}");
}

/// The comment-only edit alone is content-unchanged: it keeps the approval
/// of the landing that approved that content at that path (and says so).
#[test]
fn a_comment_only_edit_keeps_the_approval_of_its_own_path() {
    let r = repo();
    let approved = land(&r, "carol", "dave", &[("requests/ana-box.yaml", req("carol", "admin", "sandbox", "2h"))], &["frank"]);
    r.write("requests/ana-box.yaml", format!("# a comment\n{}", req("carol", "admin", "sandbox", "2h")));
    let l = r.commit_as("dave", "comment");
    let out = r.run(&["check", "--base", &format!("{l}^"), "--head", &l, "--format", "json", "--now", "2026-11-30T10:00:00Z"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let j = out.json();
    assert_eq!(j["requests"][0]["change"], "unchanged", "{j:#}");
    assert_eq!(j["diagnostics"][0]["code"], "GG305", "{j:#}");
    let p = plan(&r);
    assert_eq!(granted(&p), vec!["ana-box"], "{p:#}");
    let out = r.run(&["reconcile", "--at", AT]);
    assert_eq!(out.code, 0, "{}", out.all());
    let ledger = crate::reconcile::ledger(&r);
    assert_eq!(ledger[0]["merge_commit"], approved, "the evidence is the landing that approved the content");

    // A real change of content after it is a new request again: by direct push, refused.
    r.write("requests/ana-box.yaml", req("carol", "admin", "vault", "2h"));
    r.commit_as("dave", "widen");
    let why = refusal(&plan(&r), "ana-box").unwrap();
    assert!(why.contains("pushed directly to main"), "{why}");
}

/// Attack 1, second half: invalid ids are refused by reconcile too, and the
/// landing that added them fails `check`.
#[test]
fn invalid_request_ids_are_never_granted() {
    for name in ["Ana-box", ".hidden", "anä-box", "ev\nil"] {
        let r = repo();
        let path = format!("requests/{name}.yaml");
        let l = land(&r, "carol", "dave", &[(path.as_str(), req("carol", "user", "sandbox", "2h"))], &["frank"]);
        let p = plan(&r);
        assert!(granted(&p).is_empty(), "{name:?}: {p:#}");
        let (code, codes) = check_landing(&r, &l);
        assert_eq!(code, 1, "{name:?}");
        assert!(codes.contains(&"GG011".to_string()), "{name:?}: {codes:?}");
    }
}

/// Attack 2: a request for a role that does not exist yet was judged "no
/// approvals required" and granted once a later policy PR added the role.
#[test]
fn a_request_check_failed_at_its_landing_is_not_granted_when_the_rules_catch_up() {
    let r = repo();
    let l = land(&r, "carol", "dave", &[("requests/ghost.yaml", req("carol", "ghost", "vault", "2h"))], &[]);
    let (code, codes) = check_landing(&r, &l);
    assert_eq!(code, 1);
    assert!(codes.contains(&"GG201".to_string()), "{codes:?}");
    // The role arrives, approved by two security members.
    let policies = POLICIES
        .replace("roles:\n", "roles:\n  ghost:\n    privilege: admin\n    max_duration: 8h\n    eligible: [dba]\n    grants: { local: { role: ghost } }\n");
    land(&r, "policy", "frank", &[("policies/all.yaml", policies)], &["erin", "oscar"]);
    let p = plan(&r);
    assert!(granted(&p).is_empty(), "{p:#}");
    let why = refusal(&p, "ghost").unwrap();
    assert!(why.contains("`check` fails") && why.contains("GG201"), "{why}");
    let (_, findings) = verify(&r);
    assert!(has(&findings, "AV007", "ghost"), "{findings:#?}");
}

/// Attack 2: a PR mixing a policy change and a request (GG301) is never granted,
/// even with every approval both would need.
#[test]
fn a_mixed_policy_and_request_landing_is_refused() {
    let r = repo();
    let policies = POLICIES.replace("approvals: [ { from: [security], count: 2 } ] }", "approvals: [ { from: [managers], count: 1 } ] }");
    land(
        &r,
        "mixed",
        "dave",
        &[("policies/all.yaml", policies), ("requests/carol-vault.yaml", req("carol", "admin", "vault", "2h"))],
        &["erin", "oscar", "frank"],
    );
    let p = plan(&r);
    let why = refusal(&p, "carol-vault").unwrap();
    assert!(why.contains("GG301"), "{why}");
    let (_, findings) = verify(&r);
    assert!(has(&findings, "AV007", "carol-vault"), "{findings:#?}");
}

/// Attack 2: a window above the tier's `max_duration` (GG216) fails in
/// `check --all`, `plan`, `reconcile` and `audit verify`, not only in PRs.
#[test]
fn the_tier_duration_cap_holds_everywhere() {
    let r = repo();
    // user/sandbox, first time: 10 points, tier auto (no approvals, at most 4h); 6h asked.
    land(&r, "heidi", "heidi", &[("requests/heidi-long.yaml", req("heidi", "user", "sandbox", "6h"))], &[]);
    let all = r.run(&["check", "--all", "--format", "json", "--now", "2026-11-30T10:00:00Z"]);
    assert_eq!(all.code, 1, "{}", all.all());
    assert!(all.stdout.contains("GG216"), "{}", all.stdout);
    let p = plan(&r);
    assert!(refusal(&p, "heidi-long").unwrap().contains("GG216"), "{p:#}");
    let (_, findings) = verify(&r);
    assert!(has(&findings, "AV007", "heidi-long"), "{findings:#?}");
}

/// Attack 2: a direct push is never granted, even when its tier needs no approvals.
#[test]
fn a_direct_push_of_an_auto_tier_request_is_refused() {
    let r = repo();
    r.write("requests/heidi-box.yaml", req("heidi", "user", "sandbox", "2h"));
    r.commit_as("heidi", "add my access");
    let p = plan(&r);
    assert!(granted(&p).is_empty(), "{p:#}");
    assert!(refusal(&p, "heidi-box").unwrap().contains("a direct push is never granted"), "{p:#}");
    let (_, findings) = verify(&r);
    assert!(has(&findings, "AV002", "heidi-box"), "{findings:#?}");
    // The same request merged (no trailers needed for its tier) is granted.
    let r = repo();
    land(&r, "heidi", "heidi", &[("requests/heidi-box.yaml", req("heidi", "user", "sandbox", "2h"))], &[]);
    assert_eq!(granted(&plan(&r)), vec!["heidi-box"]);
}

/// Requester, PR author and commit authors are different people: none of
/// them may fill a slot (plain git: `Approved-by:` on a landing by dave).
#[test]
fn the_requester_and_the_commit_author_cannot_approve_in_plain_git() {
    // dave writes carol's request; carol (a manager) approves it: refused.
    let r = repo();
    land(&r, "carol", "dave", &[("requests/carol-box.yaml", req("carol", "admin", "sandbox", "2h"))], &["carol"]);
    let why = refusal(&plan(&r), "carol-box").unwrap();
    assert!(why.contains("landed without the approvals"), "{why}");
    // dave is no manager; make him one to show that his own approval does not count either.
    let r = repo();
    r.write("policies/all.yaml", POLICIES.replace("managers: { members: [carol, frank, grace] }", "managers: { members: [carol, frank, grace, dave] }"));
    r.commit("dave manages");
    land(&r, "carol", "dave", &[("requests/carol-box.yaml", req("carol", "admin", "sandbox", "2h"))], &["dave"]);
    assert!(refusal(&plan(&r), "carol-box").is_some());
    // frank, who wrote nothing and asked for nothing, can.
    let r = repo();
    land(&r, "carol", "dave", &[("requests/carol-box.yaml", req("carol", "admin", "sandbox", "2h"))], &["frank"]);
    assert_eq!(granted(&plan(&r)), vec!["carol-box"]);
}

/// Attack 6: the author exclusion does not stop after 1,000 commits.
#[test]
fn an_author_of_commit_1001_of_a_branch_cannot_approve_it() {
    let r = repo();
    r.branch("long");
    let repo = git2::Repository::open(r.path()).unwrap();
    let mut parent = repo.head().unwrap().peel_to_commit().unwrap();
    let tree = parent.tree().unwrap();
    for i in 0..1005 {
        let who = if i == 3 { "frank" } else { "dave" };
        let sig = git2::Signature::new(who, &format!("{who}@example.com"), &git2::Time::new(1_795_000_000 + i, 0)).unwrap();
        let id = repo.commit(Some("HEAD"), &sig, &sig, &format!("step {i}"), &tree, &[&parent]).unwrap();
        parent = repo.find_commit(id).unwrap();
    }
    r.write("requests/carol-box.yaml", req("carol", "admin", "sandbox", "2h"));
    r.commit_as("dave", "the request");
    r.checkout("main");
    r.merge("long", "Merge pull request #1 from long\n\nApproved-by: frank\n");
    let why = refusal(&plan(&r), "carol-box").unwrap();
    assert!(why.contains("landed without the approvals"), "{why}");
}

/// Attack 6: a refused direct push does not count as "held the role before".
#[test]
fn a_refused_direct_push_does_not_count_as_held_before() {
    let r = repo();
    // bob pushes a request for admin/sandbox directly: refused, never granted.
    r.at("2026-11-21T10:00:00Z");
    r.write("requests/bob-early.yaml", req("bob", "admin", "sandbox", "2h").replace("2026-12-01", "2026-11-21"));
    r.commit_as("bob", "direct");
    let first_time = |r: &Repo| {
        r.write("requests/bob-again.yaml", req("bob", "admin", "sandbox", "2h"));
        let out = r.run(&["explain", "bob-again", "--format", "json", "--now", "2026-11-30T10:00:00Z"]);
        std::fs::remove_file(r.path().join("requests/bob-again.yaml")).unwrap();
        let j: Value = out.json();
        j["request"]["risk"]["factors"].as_array().unwrap().iter().find(|f| f["name"] == "first_time").unwrap()["points"].as_i64().unwrap()
    };
    assert_eq!(first_time(&r), 10, "a refused landing held nothing");
    // An approved one that reconcile granted does count.
    r.at("2026-11-21T10:00:00Z");
    land(&r, "bob", "bob", &[("requests/bob-approved.yaml", req("bob", "admin", "sandbox", "2h").replace("2026-12-01", "2026-11-21"))], &["frank"]);
    let out = r.run(&["reconcile", "--at", "2026-11-21T10:30:00Z"]);
    assert!(out.stdout.contains("grant  local sandbox bob admin: done"), "{}", out.all());
    assert_eq!(first_time(&r), 0, "granted before (the ledger says so)");
}

/// Attack 5: forged ledger lines reusing a real request's evidence for
/// another principal or resource, or re-granting after the window ended.
#[test]
fn forged_ledger_lines_are_reported() {
    let r = repo();
    land(&r, "carol", "dave", &[("requests/carol-box.yaml", req("carol", "admin", "sandbox", "2h"))], &["frank"]);
    let out = r.run(&["reconcile", "--at", AT]);
    assert_eq!(out.code, 0, "{}", out.all());
    let (code, findings) = verify(&r);
    assert_eq!(code, 0, "a clean trail first: {findings:#?}");
    let real = crate::reconcile::ledger(&r).into_iter().find(|e| e["action"] == "grant").unwrap();
    let mut forged = Vec::new();
    let mut other_principal = real.clone();
    other_principal["principal"] = "mallory".into();
    forged.push(other_principal);
    let mut other_resource = real.clone();
    other_resource["resource"] = "vault".into();
    forged.push(other_resource);
    let mut late = real.clone();
    late["time"] = "2026-12-02T09:00:00Z".into();
    forged.push(late);
    crate::support::append_ledger(&r, &forged);
    let (code, findings) = verify(&r);
    assert_eq!(code, 1);
    let details: Vec<&str> = findings.iter().filter(|f| f["code"] == "AV008").map(|f| f["detail"].as_str().unwrap()).collect();
    assert!(details.iter().any(|d| d.contains("principal `mallory`")), "{findings:#?}");
    assert!(details.iter().any(|d| d.contains("resource `vault`")), "{findings:#?}");
    assert!(has(&findings, "AV009", "carol-box"), "{findings:#?}");
}

/// Attack 6: a break-glass review merged from a branch (the trailer on the
/// branch commit, the approval on the merge) counts.
#[test]
fn a_break_glass_review_merged_from_a_branch_counts() {
    let r = repo();
    let bg = format!("{}ticket: INC-9\nbreak_glass: true\n", req("bob", "user", "sandbox", "1h"));
    land(&r, "bg", "bob", &[("requests/bob-bg.yaml", bg)], &["alice"]);
    let out = r.run(&["reconcile", "--at", "2026-12-01T10:10:00Z"]);
    assert_eq!(out.code, 0, "{}", out.all());
    r.at("2026-12-01T12:00:00Z");
    r.branch("review");
    r.write("reviews/bob-bg.md", "Looked at the session log: fine.\n");
    r.commit_as("dave", "review bob-bg\n\nBreak-glass-review: bob-bg\n");
    r.checkout("main");
    r.merge("review", "Merge pull request #9 from review\n\nApproved-by: erin\n");
    let out = r.run(&["audit", "verify", "--no-providers", "--now", "2026-12-03T10:00:00Z", "--format", "json"]);
    let findings = out.json()["findings"].as_array().unwrap().clone();
    assert!(!findings.iter().any(|f| f["code"] == "AV003"), "{findings:#?}");
    // Without the merge's approval it does not count.
    let r2 = repo();
    let bg = format!("{}ticket: INC-9\nbreak_glass: true\n", req("bob", "user", "sandbox", "1h"));
    land(&r2, "bg", "bob", &[("requests/bob-bg.yaml", bg)], &["alice"]);
    assert_eq!(r2.run(&["reconcile", "--at", "2026-12-01T10:10:00Z"]).code, 0);
    r2.at("2026-12-01T12:00:00Z");
    r2.branch("review");
    r2.write("reviews/bob-bg.md", "fine\n");
    r2.commit_as("dave", "review bob-bg\n\nBreak-glass-review: bob-bg\nApproved-by: erin\n");
    r2.checkout("main");
    r2.merge("review", "Merge pull request #9 from review");
    let out = r2.run(&["audit", "verify", "--no-providers", "--now", "2026-12-03T10:00:00Z", "--format", "json"]);
    let findings = out.json()["findings"].as_array().unwrap().clone();
    assert!(findings.iter().any(|f| f["code"] == "AV003"), "{findings:#?}");
}

/// An alias chain deeper than the replay stack limit but far under the
/// event budget is refused with the budget diagnostic, and never granted.
#[test]
fn a_deep_alias_chain_is_refused_with_the_budget_diagnostic() {
    let r = repo();
    let mut text = String::from("x0: &a0 [sandbox]\n");
    // 80 levels: deeper than the parser's nesting limit (64), while the
    // replayed events (about 80^2 = 6,400) stay under the 10,000 budget.
    for i in 1..80 {
        text.push_str(&format!("x{i}: &a{i} [*a{}]\n", i - 1));
    }
    text.push_str(&req("carol", "user", "sandbox", "2h"));
    let l = land(&r, "deep", "dave", &[("requests/deep.yaml", text)], &["frank"]);
    let (code, codes) = check_landing(&r, &l);
    assert_eq!(code, 1);
    assert!(codes.contains(&"GG006".to_string()), "{codes:?}");
    assert!(granted(&plan(&r)).is_empty());
}

// ---- GitHub mode: the same attacks against the wiremock fake of the API ----

mod github {
    use serde_json::{Value, json};
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::{AT, granted, refusal, repo, req};
    use crate::github_gate::{PR, PrRepo, file, gate, gitgrant, mount_commits, mount_pr, mount_review_pages, pr_commit, pull, repo_path, review};

    const FILE: &str = "requests/carol-box.yaml";

    /// dave writes carol's request (admin on sandbox: one manager) on a branch of two commits.
    fn pr_by_dave() -> PrRepo {
        let r = repo();
        let base = r.git(&["rev-parse", "HEAD"]);
        r.branch("dave/carol-box");
        r.write(FILE, req("carol", "admin", "sandbox", "2h").replace("investigate", "look at"));
        let older = r.commit_as("dave", "carol's access");
        r.write(FILE, req("carol", "admin", "sandbox", "2h"));
        let head = r.commit_as("dave", "reason");
        r.checkout("main");
        PrRepo { repo: r, base, older, head }
    }

    /// The PR fake with `author` as the PR's author, dave's commits, and `reviewers` approving the head.
    async fn server_for(pr: &PrRepo, author: &str, reviewers: &[&str]) -> MockServer {
        server_with(pr, pull(author, &pr.base, &pr.head), reviewers).await
    }

    async fn server_with(pr: &PrRepo, the_pull: Value, reviewers: &[&str]) -> MockServer {
        let server = MockServer::start().await;
        mount_pr(&server, pr, vec![file(FILE, "added")], vec![]).await;
        Mock::given(method("GET"))
            .and(path(repo_path(&format!("/pulls/{PR}"))))
            .respond_with(ResponseTemplate::new(200).set_body_json(the_pull))
            .with_priority(1)
            .mount(&server)
            .await;
        mount_commits(&server, vec![pr_commit(&pr.older, "dave", "web-flow"), pr_commit(&pr.head, "dave", "web-flow")], 1).await;
        let reviews: Vec<Value> =
            reviewers.iter().enumerate().map(|(i, who)| review(500 + i as u64, who, "APPROVED", &pr.head, "2026-11-23T08:30:00Z")).collect();
        mount_review_pages(&server, [reviews, vec![], vec![]]).await;
        server
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_gate_refuses_the_requesters_own_approval_on_a_pr_someone_else_wrote() {
        let pr = pr_by_dave();
        let server = server_for(&pr, "dave", &["carol"]).await;
        let out = gate(pr.repo.path(), &server.uri(), &["--no-comment"]).await;
        assert_eq!(out.code, 1, "carol asked for it: {}", out.all());
        let server = server_for(&pr, "dave", &["frank"]).await;
        let out = gate(pr.repo.path(), &server.uri(), &["--no-comment"]).await;
        assert_eq!(out.code, 0, "frank asked for nothing and wrote nothing: {}", out.all());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_gate_refuses_the_pr_authors_approval_even_without_a_commit() {
        // grace opened the PR (dave wrote every commit) and approves it.
        let pr = pr_by_dave();
        let server = server_for(&pr, "grace", &["grace"]).await;
        let out = gate(pr.repo.path(), &server.uri(), &["--no-comment"]).await;
        assert_eq!(out.code, 1, "{}", out.all());
    }

    /// Merges the PR as GitHub would and serves it as merged.
    async fn merged(pr: &PrRepo, author: &str, reviewers: &[&str]) -> (MockServer, String) {
        let merge = pr.repo.merge("dave/carol-box", &format!("Merge pull request #{PR} from dave/carol-box"));
        let mut p = pull(author, &pr.base, &pr.head);
        p["state"] = json!("closed");
        p["merged"] = json!(true);
        p["merge_commit_sha"] = json!(merge);
        (server_with(pr, p, reviewers).await, merge)
    }

    async fn plan(pr: &PrRepo, server: &MockServer) -> Value {
        let out = gitgrant(pr.repo.path(), &server.uri(), &["plan", "--at", AT, "--format", "json"], None).await;
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.all()))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reconcile_re_verification_refuses_the_requesters_own_approval() {
        let pr = pr_by_dave();
        let (server, _) = merged(&pr, "dave", &["carol"]).await;
        let p = plan(&pr, &server).await;
        assert!(granted(&p).is_empty(), "{p:#}");
        assert!(refusal(&p, "carol-box").unwrap().contains("merged without the approvals"), "{p:#}");
        // frank's approval: granted.
        let pr = pr_by_dave();
        let (server, _) = merged(&pr, "dave", &["frank"]).await;
        assert_eq!(granted(&plan(&pr, &server).await), vec!["carol-box"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn approval_borrowing_by_duplicate_id_is_refused_in_github_mode() {
        let pr = pr_by_dave();
        let (server, _) = merged(&pr, "dave", &["frank"]).await;
        let r = &pr.repo;
        r.write(FILE, format!("{}# a comment\n", req("carol", "admin", "sandbox", "2h")));
        r.commit_as("dave", "comment only");
        assert_eq!(granted(&plan(&pr, &server).await), vec!["carol-box"], "unchanged content keeps its own path's approval");
        r.write("requests/zz/carol-box.yaml", req("carol", "admin", "vault", "2h"));
        r.commit_as("dave", "Merge pull request #7 from dave/carol-box");
        let p = plan(&pr, &server).await;
        assert!(granted(&p).is_empty(), "{p:#}");
        assert!(refusal(&p, "carol-box").unwrap().contains("GG012"), "{p:#}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_merged_pr_that_check_fails_is_refused_in_github_mode() {
        // The request names a role that does not exist: `check` fails the PR; reviews cannot fix that.
        let r = repo();
        let base = r.git(&["rev-parse", "HEAD"]);
        r.branch("dave/carol-box");
        r.write(FILE, req("carol", "ghost", "vault", "2h"));
        let older = r.commit_as("dave", "one");
        let head = r.commit_as("dave", "two");
        r.checkout("main");
        let pr = PrRepo { repo: r, base, older, head };
        let (server, _) = merged(&pr, "dave", &["erin", "oscar", "frank"]).await;
        let p = plan(&pr, &server).await;
        assert!(refusal(&p, "carol-box").unwrap().contains("GG201"), "{p:#}");
    }
}

/// A small deterministic generator (an LCG) of numbers below `n`.
pub(crate) fn rng(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    }
}

/// A random repository of five landings mixing every way a landing can
/// pass or fail (approved merges, unknown roles, invalid and duplicate ids,
/// a requester approving their own request, direct pushes, comment-only
/// edits, mixed policy and request changes); returns it and its landings.
pub(crate) fn random_repo(case: u64, next: &mut impl FnMut(u64) -> u64) -> (Repo, Vec<String>) {
    let people = ["alice", "bob", "carol", "heidi", "ivan"];
    let r = repo();
    r.at("2026-11-25T10:00:00Z");
    let mut files: Vec<String> = Vec::new();
    let mut landings = Vec::new();
    for step in 0..5 {
        let who = people[next(people.len() as u64) as usize];
        let id = format!("c{case}-s{step}-{who}");
        let path = format!("requests/{id}.yaml");
        let (role, res, dur) = [("user", "sandbox", "2h"), ("admin", "sandbox", "2h"), ("user", "vault", "3h"), ("admin", "vault", "1h")][next(4) as usize];
        let body = req(who, role, res, dur);
        let l = match next(9) {
            // An approved merge (a manager, and two security members for critical).
            0 | 1 => land(&r, &format!("b{step}"), "dave", &[(path.as_str(), body)], &["frank", "erin", "oscar"]),
            2 => land(&r, &format!("b{step}"), "dave", &[(path.as_str(), req(who, "ghost", res, dur))], &["frank", "erin", "oscar"]),
            3 => land(&r, &format!("b{step}"), "dave", &[(format!("requests/Bad{step}.yaml").as_str(), body)], &["frank"]),
            4 if !files.is_empty() => {
                let other = &files[next(files.len() as u64) as usize];
                let stem = other.rsplit('/').next().unwrap().to_string();
                land(&r, &format!("b{step}"), "dave", &[(format!("requests/dup/{stem}").as_str(), body)], &["frank", "erin", "oscar"])
            }
            5 => land(&r, &format!("b{step}"), "heidi", &[(path.as_str(), req("heidi", "user", "sandbox", "6h"))], &["frank"]),
            6 => {
                r.write(&path, body);
                r.commit_as("dave", "direct push")
            }
            7 if !files.is_empty() => {
                let other = files[next(files.len() as u64) as usize].clone();
                let text = r.read(&other);
                r.write(&other, format!("{text}# comment {step}\n"));
                r.commit_as("dave", "comment")
            }
            _ => land(
                &r,
                &format!("b{step}"),
                "dave",
                &[("policies/all.yaml", POLICIES.replace("[heidi, ivan, dave]", &format!("[heidi, ivan, dave, m{step}]"))), (path.as_str(), body)],
                &["erin", "oscar", "frank"],
            ),
        };
        for f in r.git(&["diff", "--name-only", &format!("{l}^"), &l, "--", "requests/"]).lines() {
            if !files.iter().any(|x| x == f) {
                files.push(f.to_string());
            }
        }
        landings.push(l);
    }
    (r, landings)
}

/// Generated cases: many repository states built from random valid and
/// invalid landings (seeded, so a failure replays). Whenever
/// `check --base L^ --head L` fails for a landing L, `plan` grants nothing L
/// touched and `audit verify` reports L.
#[test]
fn whenever_check_fails_a_landing_plan_refuses_and_verify_reports_it() {
    let mut next = rng(0x5eed_1313);
    let mut failing_seen = 0;
    for case in 0..10 {
        let (r, landings) = random_repo(case, &mut next);
        let p = plan(&r);
        let (_, findings) = verify(&r);
        for l in &landings {
            let when = r.git(&["show", "-s", "--format=%cI", l]);
            let out = r.run(&["check", "--base", &format!("{l}^"), "--head", l, "--format", "json", "--now", &when]);
            if out.code == 0 {
                continue;
            }
            failing_seen += 1;
            let touched: Vec<String> = r
                .git(&["diff", "--name-only", &format!("{l}^"), l, "--", "requests/"])
                .lines()
                .filter_map(|f| f.rsplit('/').next().and_then(|n| n.strip_suffix(".yaml")).map(str::to_string))
                .collect();
            for id in &touched {
                assert!(!granted(&p).contains(id), "case {case}: {l} fails check but plan grants {id}: {p:#}\n{}", out.stdout);
            }
            // A landing judged while an unapproved rule change is in force fails
            // `check` with GG310 alone: verify reports the rule change (AV010).
            let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            let errors: Vec<&str> =
                report["diagnostics"].as_array().unwrap().iter().filter(|d| d["severity"] == "error").filter_map(|d| d["code"].as_str()).collect();
            if !errors.is_empty() && errors.iter().all(|c| *c == "GG310") {
                assert!(findings.iter().any(|f| f["code"] == "AV010"), "case {case}: {l} fails with GG310 but verify reports no AV010: {findings:#?}");
                continue;
            }
            assert!(
                findings.iter().any(|f| f["commit"] == l.as_str() && (f["code"] == "AV007" || f["code"] == "AV002")),
                "case {case}: audit verify does not report {l}: {findings:#?}\n{}",
                out.stdout
            );
        }
    }
    assert!(failing_seen >= 10, "the generator makes failing landings ({failing_seen})");
}
