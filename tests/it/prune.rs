//! `gitgrant prune` on real repositories: one commit removing ended requests,
//! nothing else touched, and history never counting it as early revocation.

use git2::{Oid, Repository};
use gitgrant::history::read_history;

use crate::support::{NOW, Repo, request};

/// A request with an explicit window.
fn windowed(requester: &str, role: &str, resource: &str, start: &str, duration: &str, extra: &str) -> String {
    format!(
        "requester: {requester}\nrole: {role}\nresources: [{resource}]\nstart: {start}\nduration: {duration}\nreason: \"INC-1: a long enough reason\"\n{extra}"
    )
}

const CAROL_OLD: &str = "requests/2026-10-01-carol-old.yaml";
const BOB_NESTED: &str = "requests/team/2026-10-02-bob-old.yaml";
const IVAN_NO_START: &str = "requests/2026-09-21-ivan-nostart.yaml";
const HEIDI_RECENT: &str = "requests/2026-11-22-heidi-recent.yaml";
const CAROL_LIVE: &str = "requests/2026-12-01-carol-live.yaml";
const CAROL_BASE: &str = "requests/2026-10-03-carol-base.yaml";
const CAROL_EXT: &str = "requests/2026-12-02-carol-ext.yaml";

/// Main with: three ended requests (one nested, one without `start`, which
/// ended two hours after it landed in September), one that ended 11h before
/// NOW (inside the default 1d grace), one in the future, and an ended request
/// that a future one extends.
fn repo() -> Repo {
    let r = Repo::with_policies();
    for (path, body) in [
        (CAROL_OLD, windowed("carol", "db-readonly", "orders-db", "2026-10-01T10:00:00Z", "2h", "")),
        (BOB_NESTED, windowed("bob", "db-readonly", "orders-db", "2026-10-02T10:00:00Z", "2h", "")),
        (IVAN_NO_START, "requester: ivan\nrole: sandbox-user\nresources: [sandbox]\nduration: 2h\nreason: \"poke the sandbox a bit\"\n".to_string()),
        (HEIDI_RECENT, windowed("heidi", "sandbox-user", "sandbox", "2026-11-22T20:00:00Z", "2h", "")),
        (CAROL_LIVE, request("carol", "db-readonly", "orders-db", "")),
        (CAROL_BASE, windowed("carol", "db-readonly", "orders-db", "2026-10-03T10:00:00Z", "2h", "")),
        (CAROL_EXT, windowed("carol", "db-readonly", "orders-db", "2026-12-02T10:00:00Z", "2h", "extends: 2026-10-03-carol-base\n")),
    ] {
        r.write(path, body);
        r.commit(&format!("land {path}\n\nApproved-by: frank"));
    }
    r
}

fn exists(r: &Repo, rel: &str) -> bool {
    r.path().join(rel).exists()
}

#[test]
fn prune_removes_ended_requests_in_one_commit_and_nothing_else() {
    let r = repo();
    // Unrelated local work must survive: an unstaged edit and an untracked draft.
    r.write("notes.txt", "v1\n");
    r.commit("notes");
    r.write("notes.txt", "v2, not committed\n");
    r.write("requests/2026-12-05-heidi-draft.yaml", request("heidi", "sandbox-user", "sandbox", ""));
    let before = r.git(&["rev-parse", "HEAD"]);

    let out = r.run(&["prune", "--now", NOW]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("removed 3 ended requests from main"), "{}", out.all());
    assert!(out.stdout.contains("kept:") && out.stdout.contains(CAROL_BASE), "{}", out.all());

    // One commit on top of the old head, removing exactly the three files.
    assert_eq!(r.git(&["rev-parse", "HEAD~1"]), before);
    let mut changed: Vec<String> = r.git(&["show", "--name-status", "--format=", "HEAD"]).lines().map(str::to_string).collect();
    changed.sort();
    assert_eq!(changed, [format!("D\t{IVAN_NO_START}"), format!("D\t{CAROL_OLD}"), format!("D\t{BOB_NESTED}")]);
    let msg = r.git(&["log", "-1", "--format=%B"]);
    assert!(msg.starts_with("gitgrant prune: remove 3 ended requests\n"), "{msg}");
    for id in ["2026-09-21-ivan-nostart", "2026-10-01-carol-old", "2026-10-02-bob-old"] {
        assert!(msg.contains(&format!("\nPruned: {id}")), "{msg}");
    }
    assert_eq!(gitgrant::history::trailers(&msg, "Pruned").len(), 3, "the Pruned: lines are trailers (last paragraph)");
    // Dated by the (fixed) clock, so history sees the removal after the window ended.
    let when = chrono::DateTime::parse_from_rfc3339(NOW).unwrap().timestamp().to_string();
    assert_eq!(r.git(&["log", "-1", "--format=%ct %at"]), format!("{when} {when}"));

    // The work tree and index follow; unrelated changes are untouched.
    for gone in [CAROL_OLD, BOB_NESTED, IVAN_NO_START] {
        assert!(!exists(&r, gone), "{gone} still in the work tree");
    }
    assert!(!exists(&r, "requests/team"), "the emptied sub-directory is removed");
    for stays in [HEIDI_RECENT, CAROL_LIVE, CAROL_BASE, CAROL_EXT] {
        assert!(exists(&r, stays), "{stays} was removed");
    }
    assert_eq!(r.git(&["status", "--porcelain"]), "M notes.txt\n?? requests/2026-12-05-heidi-draft.yaml");
    assert_eq!(r.git(&["diff", "--cached", "--name-only"]), "", "nothing left staged: the index matches the prune commit");
    assert_eq!(r.read("notes.txt"), "v2, not committed\n");

    // A commit that only removes requests needs no approval (removals are revocations).
    let landing = r.run(&["approvals", "--commit", "HEAD", "--format", "json"]);
    assert_eq!(landing.code, 0, "{}", landing.all());
    assert_eq!(landing.json()["decision"]["satisfied"], true);

    // The pruned tree still checks clean (the extends chain is intact).
    r.remove("requests/2026-12-05-heidi-draft.yaml");
    let all = r.run(&["check", "--all", "--now", NOW]);
    assert_eq!(all.code, 0, "{}", all.all());
}

#[test]
fn removing_an_ended_request_is_not_an_early_revocation() {
    let r = repo();
    // Contrast: carol's live request is removed while active: early.
    r.at("2026-12-01T10:30:00Z");
    r.remove(CAROL_LIVE);
    r.commit("carol: done early");
    let out = r.run(&["prune", "--now", "2026-12-03T00:00:00Z"]);
    assert_eq!(out.code, 0, "{}", out.all());

    let repo = Repository::open(r.path()).unwrap();
    let head = Oid::from_str(&r.git(&["rev-parse", "HEAD"])).unwrap();
    let h = read_history(&repo, head).unwrap();
    for id in ["2026-10-01-carol-old", "2026-10-02-bob-old", "2026-09-21-ivan-nostart", "2026-11-22-heidi-recent"] {
        let rec = &h.requests[id];
        assert!(rec.removed_at.is_some(), "{id} was pruned");
        assert!(rec.ended_early_at.is_empty(), "{id}: pruning counted as early revocation");
    }
    assert_eq!(h.requests["2026-12-01-carol-live"].ended_early_at.len(), 1);
    let later = chrono::DateTime::parse_from_rfc3339("2026-12-10T00:00:00Z").unwrap().to_utc();
    assert_eq!(h.early_revocations("carol", later), 1, "only the removal while active counts");
    assert_eq!(h.early_revocations("bob", later), 0);
    assert_eq!(h.early_revocations("heidi", later), 0);

    // And the risk factor of carol's next request shows exactly that one.
    r.write("requests/2026-12-20-carol-next.yaml", windowed("carol", "db-readonly", "orders-db", "2026-12-20T10:00:00Z", "1h", ""));
    let j = r.run(&["explain", "2026-12-20-carol-next", "--now", "2026-12-10T00:00:00Z", "--format", "json"]).json();
    let f = j["request"]["risk"]["factors"].as_array().unwrap().iter().find(|f| f["name"] == "early_revocations").unwrap().clone();
    assert!(f["detail"].as_str().unwrap().starts_with("1 past grant"), "{f}");
}

#[test]
fn the_grace_period_keeps_recently_ended_requests() {
    let r = repo();
    let j = r.run(&["prune", "--dry-run", "--now", NOW, "--format", "json"]).json();
    let ids: Vec<&str> = j["prune"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert!(!ids.contains(&"2026-11-22-heidi-recent"), "ended 11h ago, inside the default 1d grace: {j}");
    assert_eq!(ids.len(), 3);
    let j = r.run(&["prune", "--dry-run", "--grace", "0m", "--now", NOW, "--format", "json"]).json();
    let ids: Vec<&str> = j["prune"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"2026-11-22-heidi-recent"), "{j}");
    assert_eq!(ids.len(), 4);
    let bad = r.run(&["prune", "--grace", "soon"]);
    assert_eq!(bad.code, 2, "{}", bad.all());
}

#[test]
fn dry_run_lists_and_changes_nothing() {
    let r = repo();
    let before = r.git(&["rev-parse", "HEAD"]);
    let out = r.run(&["prune", "--dry-run", "--now", NOW]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("would remove 3 ended requests from main (dry run"), "{}", out.all());
    for f in [CAROL_OLD, BOB_NESTED, IVAN_NO_START] {
        assert!(out.stdout.contains(f), "{}", out.all());
        assert!(exists(&r, f));
    }
    assert_eq!(r.git(&["rev-parse", "HEAD"]), before);
    assert_eq!(r.git(&["status", "--porcelain"]), "");
    let j = r.run(&["prune", "--dry-run", "--now", NOW, "--format", "json"]).json();
    assert_eq!(j["dry_run"], true);
    assert_eq!(j["commit"], serde_json::Value::Null);
    assert_eq!(j["head"], before);
    assert_eq!(j["cutoff"], "2026-11-22T09:00:00Z");
    assert_eq!(j["prune"][0]["end"], "2026-09-21T16:16:20Z", "no `start`: two hours after it landed");
    assert_eq!(j["kept"][0]["id"], "2026-10-03-carol-base");
}

#[test]
fn prune_refuses_uncommitted_request_changes() {
    let r = repo();
    let before = r.git(&["rev-parse", "HEAD"]);
    r.write(CAROL_LIVE, request("carol", "db-readonly", "orders-db", "").replace("2h", "1h"));
    let out = r.run(&["prune", "--now", NOW]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("uncommitted changes under requests/") && out.stderr.contains(CAROL_LIVE), "{}", out.all());
    assert_eq!(r.git(&["rev-parse", "HEAD"]), before);
    // Staged counts too; a dry run is still allowed.
    r.git(&["add", CAROL_LIVE]);
    assert_eq!(r.run(&["prune", "--now", NOW]).code, 2);
    assert_eq!(r.run(&["prune", "--dry-run", "--now", NOW]).code, 0);
    assert!(exists(&r, CAROL_OLD));
}

#[test]
fn prune_works_on_the_checked_out_branch_only() {
    let r = repo();
    r.branch("prune-pr");
    let out = r.run(&["prune", "--now", NOW]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("prune commits to `main`, but `prune-pr` is checked out"), "{}", out.all());
    assert!(out.stderr.contains("--branch prune-pr"), "{}", out.all());
    // With --branch naming it (e.g. to open the prune as a PR), it commits there.
    let out = r.run(&["prune", "--branch", "prune-pr", "--now", NOW]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(r.git(&["log", "-1", "--format=%s", "prune-pr"]).starts_with("gitgrant prune"));
    assert_eq!(r.git(&["rev-parse", "main"]), r.git(&["rev-parse", "prune-pr~1"]), "main is untouched");
}

#[test]
fn nothing_to_prune_makes_no_commit() {
    let r = Repo::with_policies();
    r.write(CAROL_LIVE, request("carol", "db-readonly", "orders-db", ""));
    r.commit("land");
    let before = r.git(&["rev-parse", "HEAD"]);
    let out = r.run(&["prune", "--now", NOW]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.starts_with("nothing to prune"), "{}", out.all());
    assert_eq!(r.git(&["rev-parse", "HEAD"]), before);
    let j = r.run(&["prune", "--now", NOW, "--format", "json"]).json();
    assert_eq!(j["commit"], serde_json::Value::Null);
}
