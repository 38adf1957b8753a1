//! The chain of trust for rule files (SPEC "Approvals", issue 13 "What got
//! through" 3): every rule change after the trust root needs the
//! `policy_changes` approvals of the policies before it; while an unapproved
//! one is in force, nothing new is granted and check, plan and audit verify
//! report it (GG310 / AV010).

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{Out, Repo, run_in, run_in_env};

const POLICIES: &str = r#"
groups:
  sre: { members: [alice, bob] }
  security: { members: [dave, erin] }
identities: { alice: {}, bob: {}, dave: {}, erin: {} }
resources:
  sandbox: { provider: local, environment: staging, sensitivity: low, config: { state: state/grants.json } }
roles:
  user:
    privilege: read
    max_duration: 8h
    eligible: [sre]
    grants: { local: { role: user } }
risk:
  factors: { sensitivity: { low: 0 } }
  tiers:
    - { name: auto, max_score: 100, approvals: [] }
policy_changes:
  approvals: [ { from: [security], count: 2 } ]
"#;

/// The attack: the same policies with a weaker `policy_changes`.
fn weakened() -> String {
    POLICIES.replace("approvals: [ { from: [security], count: 2 } ]", "approvals: []")
}

const AT: &str = "2026-12-01T10:05:00Z";
const NOW: &str = "2026-11-23T09:00:00Z";

fn req(requester: &str) -> String {
    format!(
        "requester: {requester}\nrole: user\nresources: [sandbox]\nstart: 2026-12-01T10:00:00Z\nduration: 2h\nreason: \"INC-1: investigate the incident\"\n"
    )
}

fn repo() -> Repo {
    let r = Repo::new();
    r.at("2026-11-20T10:00:00Z");
    r.write(".gitignore", "state/\n");
    r.write("policies/all.yaml", POLICIES);
    r.commit("bootstrap policies");
    r
}

/// Lands `files` through a branch authored by `author`, merged as PR `pr` with `Approved-by` trailers.
fn land(r: &Repo, pr: u64, author: &str, files: &[(&str, &str)], approvers: &[&str]) -> String {
    let branch = format!("b{pr}");
    r.branch(&branch);
    for (p, c) in files {
        r.write(p, c);
    }
    r.commit_as(author, &format!("change {branch}"));
    r.checkout("main");
    let trailers: String = approvers.iter().map(|a| format!("Approved-by: {a}\n")).collect();
    r.merge(&branch, &format!("Merge pull request #{pr} from acme/{branch}\n\n{trailers}"))
}

/// A direct push of `files` to main.
fn push(r: &Repo, files: &[(&str, &str)]) -> String {
    for (p, c) in files {
        r.write(p, c);
    }
    r.commit("direct push")
}

fn plan(dir: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Out {
    let mut args = vec!["--format", "json", "plan", "--at", AT];
    args.extend_from_slice(extra);
    run_in_env(dir, &args, env)
}

/// The requests the plan grants, and those it refuses with GG310.
fn grants_and_frozen(out: &Out) -> (Vec<String>, Vec<String>) {
    let doc = out.json();
    let grants = doc["actions"].as_array().unwrap().iter().filter(|a| a["action"] == "grant").map(|a| a["request"].as_str().unwrap().to_string()).collect();
    let frozen = doc["refused"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["reason"].as_str().unwrap().contains("GG310"))
        .map(|r| r["request"].as_str().unwrap().to_string())
        .collect();
    (grants, frozen)
}

/// `check` of a PR (a branch off main adding bob's request), as JSON.
fn check_pr(r: &Repo, extra: &[&str], env: &[(&str, &str)]) -> Out {
    r.branch("pr-check");
    r.write("requests/bob-sandbox.yaml", req("bob"));
    r.commit_as("bob", "bob asks");
    r.checkout("main");
    let mut args = vec!["--now", NOW, "--format", "json", "check", "--base", "main", "--head", "pr-check"];
    args.extend_from_slice(extra);
    let out = run_in_env(r.path(), &args, env);
    r.git(&["branch", "-q", "-D", "pr-check"]);
    out
}

fn codes(out: &Out, key: &str) -> Vec<String> {
    let doc = out.json();
    doc[key].as_array().unwrap().iter().map(|d| d["code"].as_str().unwrap().to_string()).collect()
}

fn verify(dir: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> Out {
    let mut args = vec!["--now", AT, "--format", "json", "audit", "verify", "--no-providers"];
    args.extend_from_slice(extra);
    run_in_env(dir, &args, env)
}

/// Asserts the attack at `bad` is in force: plan freezes alice's grant, check
/// fails bob's PR with GG310, audit verify reports AV010 naming the commit.
fn assert_in_force(r: &Repo, bad: &str, files: &[&str], extra: &[&str], env: &[(&str, &str)]) {
    let p = plan(r.path(), extra, env);
    assert_eq!(p.code, 0, "plan reports, reconcile (which still revokes) fails: {}", p.all());
    assert_eq!(grants_and_frozen(&p), (vec![], vec!["alice-sandbox".to_string()]), "{}", p.all());
    let doc = p.json();
    let in_force = &doc["rule_changes_in_force"][0];
    assert_eq!(in_force["commit"], bad, "{doc:#}");
    assert_eq!(in_force["files"], json!(files), "{doc:#}");

    let c = check_pr(r, extra, env);
    assert_eq!(c.code, 1, "{}", c.all());
    assert!(codes(&c, "diagnostics").contains(&"GG310".to_string()), "{}", c.all());
    let d = c.json()["diagnostics"].as_array().unwrap().iter().find(|d| d["code"] == "GG310").cloned().unwrap();
    assert!(d["message"].as_str().unwrap().contains(&bad[..10]), "names the commit: {d}");
    assert!(d["help"].as_str().unwrap().contains("--trust-root"), "says how to recover: {d}");

    let v = verify(r.path(), extra, env);
    assert_eq!(v.code, 1, "{}", v.all());
    let f = v.json()["findings"].as_array().unwrap().iter().find(|f| f["code"] == "AV010").cloned();
    let f = f.unwrap_or_else(|| panic!("no AV010: {}", v.all()));
    assert_eq!(f["commit"], bad);
    assert_eq!(f["name"], "rule-change-unapproved");
}

/// Nothing in force: alice's request is granted, bob's PR passes, verify is clean.
fn assert_trusted(r: &Repo, extra: &[&str], env: &[(&str, &str)]) {
    let p = plan(r.path(), extra, env);
    assert_eq!(p.code, 0, "{}", p.all());
    assert_eq!(grants_and_frozen(&p), (vec!["alice-sandbox".to_string()], vec![]), "{}", p.all());
    let c = check_pr(r, extra, env);
    assert_eq!(c.code, 0, "{}", c.all());
    let v = verify(r.path(), extra, env);
    assert_eq!(v.code, 0, "{}", v.all());
    assert_eq!(v.json()["clean"], true);
}

fn land_alice(r: &Repo) -> String {
    land(r, 90, "alice", &[("requests/alice-sandbox.yaml", &req("alice"))], &[])
}

#[test]
fn direct_push_weakening_policies_freezes_grants_until_reverted() {
    let r = repo();
    land_alice(&r);
    assert_trusted(&r, &[], &[]);
    let bad = push(&r, &[("policies/all.yaml", &weakened())]);
    assert_in_force(&r, &bad, &["policies/all.yaml"], &[], &[]);

    // Human output says what happened and what to do.
    let human = run_in(r.path(), &["plan", "--at", AT]);
    assert!(human.stdout.contains("GG310 unapproved rule change"), "{}", human.all());
    assert!(human.stdout.contains("it was pushed directly to main"), "{}", human.all());

    // The PR that reverts it is only warned about, so it can be reviewed and merged.
    r.branch("revert");
    r.write("policies/all.yaml", POLICIES);
    r.commit_as("bob", "revert the weakening");
    r.checkout("main");
    let c = run_in(r.path(), &["--now", NOW, "--format", "json", "check", "--base", "main", "--head", "revert"]);
    assert_eq!(c.code, 0, "{}", c.all());
    let d = c.json()["diagnostics"].as_array().unwrap().iter().find(|d| d["code"] == "GG310").cloned().unwrap();
    assert_eq!(d["severity"], "warning", "{d}");

    // A revert restores the approved content: the change no longer is in force.
    r.git(&["revert", "--no-edit", "HEAD"]);
    assert_trusted(&r, &[], &[]);

    // A PR based before a pinned root is told to update, not judged by older rules.
    let main = r.git(&["rev-parse", "main"]);
    let out = run_in(r.path(), &["--now", NOW, "check", "--base", &bad, "--head", "revert", "--trust-root", &main]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("older than the trust root"), "{}", out.all());
}

#[test]
fn policy_pr_with_one_of_two_approvals_is_unapproved_and_two_of_two_passes() {
    let r = repo();
    land_alice(&r);
    let bad = land(&r, 91, "bob", &[("policies/all.yaml", &weakened())], &["dave"]);
    assert_in_force(&r, &bad, &["policies/all.yaml"], &[], &[]);
    let doc = plan(r.path(), &[], &[]).json();
    assert!(doc["rule_changes_in_force"][0]["missing"].as_str().unwrap().contains("1 of 2 approvals"), "{doc:#}");

    // Reverted through an approved PR (judged by the policies before it: the weakened ones).
    land(&r, 92, "bob", &[("policies/all.yaml", POLICIES)], &["dave", "erin"]);
    assert_trusted(&r, &[], &[]);

    // A 2-of-2 approved policy PR is trusted.
    let stricter = POLICIES.replace("max_duration: 8h", "max_duration: 4h");
    land(&r, 93, "bob", &[("policies/all.yaml", &stricter)], &["dave", "erin"]);
    assert_trusted(&r, &[], &[]);
}

#[test]
fn the_author_of_a_policy_change_cannot_approve_it() {
    let r = repo();
    land_alice(&r);
    // dave wrote the change and "approves" it with erin: dave never counts.
    let bad = land(&r, 91, "dave", &[("policies/all.yaml", &weakened())], &["dave", "erin"]);
    assert_in_force(&r, &bad, &["policies/all.yaml"], &[], &[]);
}

#[test]
fn a_landing_mixing_rule_files_and_requests_is_unapproved() {
    let r = repo();
    let bad = land(&r, 91, "bob", &[("policies/all.yaml", &weakened()), ("requests/alice-sandbox.yaml", &req("alice"))], &["dave", "erin"]);
    let p = plan(r.path(), &[], &[]);
    let doc = p.json();
    assert_eq!(doc["rule_changes_in_force"][0]["commit"], bad, "{doc:#}");
    assert!(doc["rule_changes_in_force"][0]["missing"].as_str().unwrap().contains("GG301"), "{doc:#}");
    assert!(grants_and_frozen(&p).0.is_empty(), "{}", p.all());
}

#[test]
fn unapproved_template_and_workflow_changes_are_in_force_approved_ones_pass() {
    let r = repo();
    land_alice(&r);
    let bad = push(&r, &[("templates/pr-comment.md.j2", "owned\n")]);
    assert_in_force(&r, &bad, &["templates/pr-comment.md.j2"], &[], &[]);
    // Deleting the added file restores the approved state (it was absent).
    r.remove("templates/pr-comment.md.j2");
    r.commit("remove it again");
    assert_trusted(&r, &[], &[]);

    // A workflow change: approved passes, unapproved is reported.
    land(&r, 94, "bob", &[(".github/workflows/x.yml", "on: push\n")], &["dave", "erin"]);
    assert_trusted(&r, &[], &[]);
    let bad = land(&r, 95, "bob", &[(".github/workflows/x.yml", "on: [push, pull_request_target]\n")], &[]);
    assert_in_force(&r, &bad, &[".github/workflows/x.yml"], &[], &[]);
    let bad = push(&r, &[("CODEOWNERS", "* @bob\n")]);
    let doc = plan(r.path(), &[], &[]).json();
    let commits: Vec<&Value> = doc["rule_changes_in_force"].as_array().unwrap().iter().map(|f| &f["commit"]).collect();
    assert!(commits.contains(&&json!(bad)), "CODEOWNERS is a rule file: {doc:#}");
}

#[test]
fn a_later_approved_change_does_not_launder_an_unapproved_one() {
    let r = repo();
    land_alice(&r);
    let bad = push(&r, &[("policies/all.yaml", &weakened())]);
    // Approved under the weakened rules (which need nobody): still untrusted.
    let later = land(&r, 96, "bob", &[("templates/x.j2", "x\n")], &[]);
    let doc = plan(r.path(), &[], &[]).json();
    let commits: Vec<&str> = doc["rule_changes_in_force"].as_array().unwrap().iter().map(|f| f["commit"].as_str().unwrap()).collect();
    assert_eq!(commits, vec![bad.as_str(), later.as_str()], "{doc:#}");
}

#[test]
fn pinning_the_trust_root_at_or_after_the_change_clears_it() {
    let r = repo();
    land_alice(&r);
    let bad = push(&r, &[("policies/all.yaml", &weakened())]);
    assert_in_force(&r, &bad, &["policies/all.yaml"], &[], &[]);
    assert_trusted(&r, &["--trust-root", &bad], &[]);
    // The environment variable pins it for workflows.
    assert_trusted(&r, &[], &[("GITGRANT_TRUST_ROOT", bad.as_str())]);

    // audit verify prints the root it used.
    let human = run_in(r.path(), &["--now", AT, "audit", "verify", "--no-providers", "--trust-root", &bad]);
    assert!(human.stdout.contains(&format!("trust root: {bad} (pinned)")), "{}", human.all());
    let auto = run_in(r.path(), &["--now", AT, "audit", "verify", "--no-providers"]);
    let root = r.git(&["rev-list", "--max-parents=0", "HEAD"]);
    assert!(auto.stdout.contains(&format!("trust root: {root} (first commit with policies/")), "{}", auto.all());

    // A root off main's first-parent history is refused (exit 2), saying so.
    r.branch("side");
    let side = r.commit("side commit");
    r.checkout("main");
    for args in [vec!["plan", "--at", AT, "--trust-root", side.as_str()], vec!["--now", AT, "audit", "verify", "--no-providers", "--trust-root", side.as_str()]]
    {
        let out = run_in(r.path(), &args);
        assert_eq!(out.code, 2, "{}", out.all());
        assert!(out.stderr.contains("is not on main's first-parent history"), "{}", out.all());
    }
    let out = run_in(r.path(), &["plan", "--at", AT, "--trust-root", "no-such-ref"]);
    assert_eq!(out.code, 2, "{}", out.all());
}

#[test]
fn reconcile_keeps_held_grants_refuses_new_ones_and_still_revokes() {
    let r = repo();
    land_alice(&r);
    let first = run_in(r.path(), &["reconcile", "--at", AT, "--no-ledger"]);
    assert_eq!(first.code, 0, "{}", first.all());
    push(&r, &[("policies/all.yaml", &weakened())]);
    land(&r, 97, "bob", &[("requests/bob-sandbox.yaml", &req("bob"))], &[]);
    let out = run_in(r.path(), &["--format", "json", "reconcile", "--at", AT, "--no-ledger"]);
    assert_eq!(out.code, 1, "{}", out.all());
    let doc = out.json();
    let done: Vec<(String, String)> = doc["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["action"]["action"].as_str().unwrap().to_string(), o["action"]["request"].as_str().unwrap().to_string()))
        .collect();
    assert!(done.iter().all(|(a, _)| a != "grant"), "nothing new granted: {doc:#}");
    let refused: Vec<&str> = doc["refused"].as_array().unwrap().iter().map(|r| r["request"].as_str().unwrap()).collect();
    assert_eq!(refused, vec!["bob-sandbox"], "{doc:#}");
    let kept = run_in(r.path(), &["--format", "json", "plan", "--at", AT]).json();
    let actions: Vec<(String, String)> =
        kept["actions"].as_array().unwrap().iter().map(|a| (a["action"].as_str().unwrap().to_string(), a["request"].as_str().unwrap().to_string())).collect();
    assert_eq!(actions, vec![("keep".to_string(), "alice-sandbox".to_string())], "held grants are kept: {kept:#}");
    // After the window, the held grant is still revoked.
    let late = run_in(r.path(), &["--format", "json", "plan", "--at", "2026-12-01T13:00:00Z"]).json();
    let actions: Vec<&str> = late["actions"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["revoke"], "{late:#}");
}

#[test]
fn a_request_landed_under_untrusted_rules_stays_refused_after_the_revert() {
    let r = repo();
    push(&r, &[("policies/all.yaml", &weakened())]);
    land_alice(&r);
    r.git(&["revert", "--no-edit", "HEAD~1"]);
    let p = plan(r.path(), &[], &[]);
    let doc = p.json();
    assert!(doc.get("rule_changes_in_force").is_none(), "reverted: {doc:#}");
    assert!(grants_and_frozen(&p).0.is_empty(), "judged by untrusted rules, never granted: {}", p.all());
    assert!(doc["refused"][0]["reason"].as_str().unwrap().contains("judged by rules changed without approval"), "{doc:#}");
}

#[test]
fn a_fresh_clone_of_a_bare_remote_gives_the_same_answers() {
    let r = repo();
    land_alice(&r);
    let bad = push(&r, &[("policies/all.yaml", &weakened())]);
    let bare = tempfile::tempdir().unwrap();
    let clone = tempfile::tempdir().unwrap();
    r.git(&["clone", "-q", "--bare", ".", bare.path().to_str().unwrap()]);
    let c = std::process::Command::new("git").args(["clone", "-q", bare.path().to_str().unwrap(), clone.path().to_str().unwrap()]).output().unwrap();
    assert!(c.status.success());
    let p = plan(clone.path(), &[], &[]);
    assert_eq!(p.code, 0, "{}", p.all());
    assert_eq!(p.json()["rule_changes_in_force"][0]["commit"], bad);
    let v = verify(clone.path(), &[], &[]);
    assert!(codes(&v, "findings").contains(&"AV010".to_string()), "{}", v.all());
    let p = plan(clone.path(), &["--trust-root", &bad], &[]);
    assert_eq!(grants_and_frozen(&p).0, vec!["alice-sandbox".to_string()], "{}", p.all());
}

// ---- GitHub mode: the PR's reviews decide, trailers count for nothing.

fn pr_json(number: u64, author: &str, head: &str, merge: &str) -> Value {
    json!({
        "number": number, "state": "closed", "merged": true, "merge_commit_sha": merge,
        "html_url": format!("https://github.example/acme/access/pull/{number}"),
        "user": { "login": author, "type": "User" },
        "base": { "sha": "0000000000000000000000000000000000000000", "ref": "main" },
        "head": { "sha": head, "ref": format!("b{number}") },
    })
}

fn review(id: u64, login: &str, state: &str, commit: &str) -> Value {
    json!({ "id": id, "user": { "login": login, "type": "User" }, "state": state, "commit_id": commit, "submitted_at": "2026-11-20T12:00:00Z" })
}

/// Serves PR `number` (merged as `merge`, head `head`) with `reviews`.
async fn serve_pr(gh: &MockServer, number: u64, author: &str, head: &str, merge: &str, reviews: Vec<Value>) {
    let base = format!("/repos/acme/access/pulls/{number}");
    Mock::given(method("GET"))
        .and(path(base.clone()))
        .respond_with(ResponseTemplate::new(200).set_body_json(pr_json(number, author, head, merge)))
        .mount(gh)
        .await;
    Mock::given(method("GET")).and(path(format!("{base}/reviews"))).respond_with(ResponseTemplate::new(200).set_body_json(reviews)).mount(gh).await;
    let commits = json!([{ "sha": head, "author": { "login": author }, "committer": { "login": "web-flow" } }]);
    Mock::given(method("GET")).and(path(format!("{base}/commits"))).respond_with(ResponseTemplate::new(200).set_body_json(commits)).mount(gh).await;
}

/// The head commit of the branch PR `pr` merged (the merge's second parent).
fn head_of(r: &Repo, merge: &str) -> String {
    r.git(&["rev-parse", &format!("{merge}^2")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_mode_admin_merge_is_unapproved_and_reviewed_pr_passes() {
    let r = repo();
    let alice = land_alice(&r);
    // Trailers claim approvals; on GitHub nobody reviewed: an admin merge.
    let bad = land(&r, 91, "bob", &[("policies/all.yaml", &weakened())], &["dave", "erin"]);
    let gh = MockServer::start().await;
    serve_pr(&gh, 90, "alice", &head_of(&r, &alice), &alice, vec![]).await;
    serve_pr(&gh, 91, "bob", &head_of(&r, &bad), &bad, vec![]).await;
    let uri = gh.uri();
    let env = [("GITHUB_TOKEN", "t0ken"), ("GITHUB_API_URL", uri.as_str()), ("GITGRANT_GITHUB_MAX_WAIT", "1")];
    let gh_args = ["--github-repo", "acme/access"];
    let p = plan(r.path(), &gh_args, &env);
    let doc = p.json();
    assert_eq!(doc["rule_changes_in_force"][0]["commit"], bad, "{doc:#}");
    assert!(doc["rule_changes_in_force"][0]["missing"].as_str().unwrap().contains("PR #91 was merged without"), "{doc:#}");
    assert_eq!(grants_and_frozen(&p), (vec![], vec!["alice-sandbox".to_string()]), "{}", p.all());
    let v = verify(r.path(), &gh_args, &env);
    assert!(codes(&v, "findings").contains(&"AV010".to_string()), "{}", v.all());
    let c = check_pr(&r, &gh_args, &env);
    assert_eq!(c.code, 1, "{}", c.all());
    assert!(codes(&c, "diagnostics").contains(&"GG310".to_string()), "{}", c.all());

    // The same repository where PR #91 had two security approvals of its head: trusted.
    let gh2 = MockServer::start().await;
    let head = head_of(&r, &bad);
    serve_pr(&gh2, 90, "alice", &head_of(&r, &alice), &alice, vec![]).await;
    serve_pr(&gh2, 91, "bob", &head, &bad, vec![review(1, "dave", "APPROVED", &head), review(2, "erin", "APPROVED", &head)]).await;
    let uri2 = gh2.uri();
    let env2 = [("GITHUB_TOKEN", "t0ken"), ("GITHUB_API_URL", uri2.as_str()), ("GITGRANT_GITHUB_MAX_WAIT", "1")];
    let p = plan(r.path(), &gh_args, &env2);
    assert_eq!(p.code, 0, "{}", p.all());
    assert_eq!(grants_and_frozen(&p).0, vec!["alice-sandbox".to_string()], "{}", p.all());

    // One approval of an older commit and one of the head: 1 of 2.
    let gh3 = MockServer::start().await;
    serve_pr(&gh3, 90, "alice", &head_of(&r, &alice), &alice, vec![]).await;
    serve_pr(&gh3, 91, "bob", &head, &bad, vec![review(1, "dave", "APPROVED", &alice), review(2, "erin", "APPROVED", &head)]).await;
    let uri3 = gh3.uri();
    let env3 = [("GITHUB_TOKEN", "t0ken"), ("GITHUB_API_URL", uri3.as_str()), ("GITGRANT_GITHUB_MAX_WAIT", "1")];
    let p = plan(r.path(), &gh_args, &env3);
    assert!(p.json()["rule_changes_in_force"][0]["missing"].as_str().unwrap().contains("1 of 2"), "{}", p.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_mode_direct_push_is_unapproved_and_pinning_clears() {
    let r = repo();
    let alice = land_alice(&r);
    let bad = push(&r, &[("templates/pr-comment.md.j2", "owned\n")]);
    let gh = MockServer::start().await;
    serve_pr(&gh, 90, "alice", &head_of(&r, &alice), &alice, vec![]).await;
    let uri = gh.uri();
    let env = [("GITHUB_TOKEN", "t0ken"), ("GITHUB_API_URL", uri.as_str()), ("GITGRANT_GITHUB_MAX_WAIT", "1")];
    let gh_args = ["--github-repo", "acme/access"];
    let p = plan(r.path(), &gh_args, &env);
    let doc = p.json();
    assert_eq!(doc["rule_changes_in_force"][0]["commit"], bad, "{doc:#}");
    assert!(doc["rule_changes_in_force"][0]["missing"].as_str().unwrap().contains("without a pull request"), "{doc:#}");
    let c = check_pr(&r, &gh_args, &env);
    assert!(codes(&c, "diagnostics").contains(&"GG310".to_string()), "{}", c.all());
    let p = plan(r.path(), &["--github-repo", "acme/access", "--trust-root", &bad], &env);
    assert_eq!(p.code, 0, "{}", p.all());
}

/// The walk over a long history stays cheap: 100,000 first-parent commits,
/// each changing requests/, and a rule change every 10,000 (approved by
/// trailers). Run with `cargo test --release --test it trust::long_history -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark: builds a 100,000-commit repository"]
fn long_history_walk_is_cheap() {
    use std::io::Write;
    let r = repo();
    let n = 100_000;
    let mut stream = String::new();
    stream.push_str("reset refs/heads/main\nfrom refs/heads/main^0\n");
    for i in 0..n {
        let (path, body, msg) = if i % 10_000 == 5_000 {
            let p = POLICIES.replace("max_duration: 8h", &format!("max_duration: {}h", 1 + i / 10_000));
            ("policies/all.yaml".to_string(), p, "tighten\n\nApproved-by: dave\nApproved-by: erin\n".to_string())
        } else {
            (format!("requests/r{}.yaml", i % 500), format!("# {i}\n{}", req("alice")), format!("c{i}\n"))
        };
        let t = 1_790_000_000 + i;
        stream.push_str(&format!(
            "commit refs/heads/main\ncommitter tester <tester@example.com> {t} +0000\ndata {}\n{msg}M 100644 inline {path}\ndata {}\n{body}\n",
            msg.len(),
            body.len()
        ));
    }
    let mut child =
        std::process::Command::new("git").args(["fast-import", "--quiet"]).current_dir(r.path()).stdin(std::process::Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stream.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    let repo = git2::Repository::open(r.path()).unwrap();
    let main = repo.refname_to_id("refs/heads/main").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let started = std::time::Instant::now();
    let t = rt.block_on(gitgrant::engine::trust::evaluate(&repo, main, None, None)).unwrap();
    let took = started.elapsed();
    println!("trust walk: {} commits, {} rule changes, {} ms", t.commits, t.landings.len(), took.as_millis());
    assert_eq!(t.commits, n as usize + 1);
    assert_eq!(t.landings.len(), 10);
    assert!(!t.in_force(), "{:?}", t.in_force);
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
}

#[test]
fn audit_verify_reports_a_grant_whose_landing_was_judged_by_untrusted_rules() {
    let r = repo();
    let bad = push(&r, &[("policies/all.yaml", &weakened())]);
    let alice = land_alice(&r);
    // An operator pinned the root at the landing (wrongly): the grant happens.
    let rec = run_in(r.path(), &["reconcile", "--at", AT, "--trust-root", &alice]);
    assert_eq!(rec.code, 0, "{}", rec.all());
    r.git(&["revert", "--no-edit", &bad]);
    // Walked from the real root, the landing's base lies inside the untrusted span.
    let v = verify(r.path(), &[], &[]);
    assert_eq!(v.code, 1, "{}", v.all());
    let doc = v.json();
    let f = doc["findings"].as_array().unwrap().iter().find(|f| f["code"] == "AV011").cloned().unwrap_or_else(|| panic!("no AV011: {doc:#}"));
    assert_eq!(f["request"], "alice-sandbox");
    assert_eq!(f["commit"], alice);
    assert!(f["detail"].as_str().unwrap().contains(&bad[..10]), "{f}");
    assert!(doc["findings"].as_array().unwrap().iter().all(|f| f["code"] != "AV010"), "the revert cleared the change itself: {doc:#}");
}

/// What people read: plan, check and audit verify while a change is in force.
#[test]
fn in_force_outputs_snapshot() {
    let r = repo();
    land_alice(&r);
    push(&r, &[("policies/all.yaml", &weakened())]);
    r.branch("pr-check");
    r.write("requests/bob-sandbox.yaml", req("bob"));
    r.commit_as("bob", "bob asks");
    r.checkout("main");
    let plan = run_in(r.path(), &["plan", "--at", AT]);
    let check = run_in(r.path(), &["--now", NOW, "check", "--base", "main", "--head", "pr-check"]);
    let verify = run_in(r.path(), &["--now", AT, "audit", "verify", "--no-providers"]);
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\b[0-9a-f]{10,40}\b", "[SHA]");
    settings.bind(|| {
        insta::assert_snapshot!("trust_plan", plan.all());
        insta::assert_snapshot!("trust_check", check.all());
        insta::assert_snapshot!("trust_verify", verify.all());
    });
}

/// A rule file whose name carries a newline and a workflow command never
/// starts an output line, in any format.
#[test]
fn hostile_rule_file_names_stay_on_one_line() {
    let r = repo();
    land_alice(&r);
    push(&r, &[("templates/evil\n::error::X.j2", "x\n")]);
    let outs = [
        run_in(r.path(), &["reconcile", "--at", AT, "--no-ledger"]),
        run_in(r.path(), &["--format", "github", "reconcile", "--at", AT, "--no-ledger"]),
        run_in(r.path(), &["--format", "json", "reconcile", "--at", AT, "--no-ledger"]),
        run_in(r.path(), &["--now", AT, "audit", "verify", "--no-providers"]),
        run_in(r.path(), &["--now", AT, "--format", "github", "audit", "verify", "--no-providers"]),
        check_pr(&r, &[], &[]),
        {
            r.branch("pr1");
            r.write("requests/bob-sandbox.yaml", req("bob"));
            r.commit_as("bob", "bob asks");
            r.checkout("main");
            run_in(r.path(), &["--now", NOW, "check", "--base", "main", "--head", "pr1"])
        },
        {
            r.branch("pr2");
            r.write("requests/bob-sandbox.yaml", req("bob"));
            r.commit_as("bob", "bob asks");
            r.checkout("main");
            run_in(r.path(), &["--now", NOW, "--format", "github", "check", "--base", "main", "--head", "pr2"])
        },
    ];
    for out in &outs {
        assert_ne!(out.code, 0, "in force: {}", out.all());
        for line in out.stdout.lines().chain(out.stderr.lines()) {
            assert!(!line.starts_with("::error::X"), "injected line: {}", out.all());
        }
        assert!(out.all().contains("evil"), "the file is named: {}", out.all());
    }
}
