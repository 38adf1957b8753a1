//! Shallow clones are refused by every command that reads history (their
//! cut-off history would move requests between tiers silently), and an index
//! never survives a shallow boundary: after `git fetch --unshallow` the answers
//! equal a full clone's.

use std::path::Path;
use std::process::Command;

use crate::support::{NOW, Repo, request, run_in};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(args).current_dir(dir).env("GIT_CONFIG_NOSYSTEM", "1").output().unwrap();
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// 70 landings on main (carol's first request early on, so "held before",
/// "first time" and early revocations depend on the oldest commits), then a
/// `pr` branch adding one of carol's requests; pushed to a bare remote.
fn remote() -> (Repo, tempfile::TempDir) {
    let r = Repo::with_policies();
    r.write("requests/2026-12-01-carol-old.yaml", request("carol", "db-readonly", "orders-db", ""));
    r.commit_as("carol", "carol: orders-db\n\nApproved-by: frank");
    r.remove("requests/2026-12-01-carol-old.yaml");
    r.commit_as("carol", "carol: done early");
    for i in 0..68 {
        r.write(&format!("requests/2026-12-02-bob-{i}.yaml"), request("bob", "sandbox-user", "sandbox", ""));
        r.commit_as("bob", &format!("bob: sandbox {i}\n\nApproved-by: frank"));
    }
    r.branch("pr");
    r.write("requests/2026-12-03-carol-new.yaml", request("carol", "db-readonly", "orders-db", ""));
    r.commit_as("carol", "carol: orders-db again");
    r.checkout("main");
    let bare = tempfile::tempdir().unwrap();
    git(bare.path(), &["init", "-q", "--bare"]);
    r.git(&["push", "-q", &bare.path().display().to_string(), "main", "pr"]);
    (r, bare)
}

/// A clone of `bare` (file:// so `--depth` is honoured) with `pr` fetched too.
fn clone(bare: &Path, depth: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", bare.display());
    let mut args = vec!["clone", "-q", "--no-single-branch"];
    if let Some(d) = depth {
        args.extend(["--depth", d]);
    }
    args.extend([url.as_str(), "."]);
    git(dir.path(), &args);
    dir
}

const CHECK: &[&str] = &["--now", NOW, "check", "--base", "origin/main", "--head", "origin/pr", "--format", "json"];

/// Every command that reads history, with the arguments it needs here.
fn history_commands() -> Vec<Vec<&'static str>> {
    vec![
        CHECK.to_vec(),
        vec!["--now", NOW, "check", "--all", "--base", "origin/main", "--head", "origin/main"],
        vec!["plan", "--at", NOW],
        vec!["audit", "verify", "--no-providers", "--now", NOW],
        vec!["audit", "--format", "json"],
    ]
}

#[test]
fn shallow_clones_are_refused_with_the_fix_named_by_every_history_command() {
    let (_r, bare) = remote();
    for depth in ["1", "50"] {
        let c = clone(bare.path(), Some(depth));
        assert_eq!(git(c.path(), &["rev-parse", "--is-shallow-repository"]), "true");
        for args in history_commands() {
            let out = run_in(c.path(), &args);
            assert_eq!(out.code, 2, "--depth {depth}: {args:?}\n{}", out.all());
            assert!(out.stderr.contains("shallow clone"), "--depth {depth}: {args:?}\n{}", out.all());
            assert!(out.stderr.contains("fetch-depth: 0") && out.stderr.contains("git fetch --unshallow"), "--depth {depth}: {args:?}\n{}", out.all());
            assert!(out.stdout.is_empty(), "no answer from a shallow clone: {args:?}\n{}", out.all());
        }
        assert!(!c.path().join(".git/gitgrant/history-index.bin").exists(), "no index is written from a shallow clone");
    }
}

#[test]
fn after_fetch_unshallow_the_answers_equal_a_full_clone() {
    let (_r, bare) = remote();
    let full = clone(bare.path(), None);
    let expected = run_in(full.path(), CHECK);
    assert!(expected.code == 0 || expected.code == 1, "{}", expected.all());
    let c = clone(bare.path(), Some("50"));
    assert_eq!(run_in(c.path(), CHECK).code, 2);
    git(c.path(), &["fetch", "-q", "--unshallow"]);
    let mut args = vec!["-v"];
    args.extend_from_slice(CHECK);
    let out = run_in(c.path(), &args);
    assert_eq!((out.code, &out.stdout), (expected.code, &expected.stdout), "{}", out.all());
    assert!(out.stderr.contains("history index cold"), "{}", out.all());
    // The carol facts come from the oldest commits: her early revocation shows.
    assert!(out.stdout.contains("early_revocations"), "{}", out.stdout);
}
