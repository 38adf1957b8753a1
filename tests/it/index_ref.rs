//! The index that travels: `reconcile` pushes the history index to the
//! branch `gitgrant-index`; a fresh clone (which has every branch, as
//! `actions/checkout` with `fetch-depth: 0` does) walks only the newer
//! commits and answers exactly as a cold clone does; a corrupt or foreign
//! index on the ref is rebuilt, never trusted.

use std::path::Path;
use std::process::Command;

use crate::reconcile::{land, repo};
use crate::support::{Repo, run_in};

fn git(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("git").args(args).current_dir(dir).env("GIT_CONFIG_NOSYSTEM", "1").output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_string() + &String::from_utf8_lossy(&out.stderr))
}

fn req(requester: &str, start: &str) -> String {
    format!("requester: {requester}\nrole: user\nresources: [sandbox]\nstart: {start}\nduration: 2h\nreason: \"INC-1: investigate the incident\"\n")
}

/// A fresh clone of `bare` (every branch, as CI's checkout has them); with
/// its copy of the index branch deleted unless `with_index`.
fn fresh_clone(bare: &Path, with_index: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    assert!(git(dir.path(), &["clone", "-q", &format!("file://{}", bare.display()), "."]).0);
    if !with_index {
        git(dir.path(), &["update-ref", "-d", "refs/remotes/origin/gitgrant-index"]);
    }
    dir
}

const CHECK: &[&str] = &["-v", "--now", "2026-11-30T00:00:00Z", "check", "--all", "--base", "origin/main", "--head", "origin/main", "--format", "json"];

fn setup() -> (Repo, tempfile::TempDir) {
    let r = repo();
    land(&r, "heidi", "heidi", &[("requests/heidi-sandbox.yaml", req("heidi", "2026-12-01T10:00:00Z"))], &[]);
    let bare = tempfile::tempdir().unwrap();
    assert!(git(bare.path(), &["init", "-q", "--bare"]).0);
    r.git(&["remote", "add", "origin", &format!("file://{}", bare.path().display())]);
    r.git(&["push", "-q", "origin", "main"]);
    (r, bare)
}

#[test]
fn reconcile_pushes_the_index_and_a_fresh_clone_walks_only_newer_commits() {
    let (r, bare) = setup();
    let out = r.run(&["reconcile", "--at", "2026-12-01T10:05:00Z"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let (ok, pushed) = git(bare.path(), &["rev-parse", "refs/heads/gitgrant-index"]);
    assert!(ok, "reconcile pushed the index branch: {pushed}");

    // main moves on after the reconcile: two more landings.
    land(&r, "bob", "bob", &[("requests/bob-sandbox.yaml", req("bob", "2026-12-02T10:00:00Z"))], &[]);
    land(&r, "dave", "dave", &[("requests/dave-sandbox.yaml", req("dave", "2026-12-03T10:00:00Z"))], &[]);
    r.git(&["push", "-q", "origin", "main"]);

    let cold = run_in(fresh_clone(bare.path(), false).path(), CHECK);
    assert!(cold.stderr.contains("history index cold"), "{}", cold.all());
    let warm_clone = fresh_clone(bare.path(), true);
    let warm = run_in(warm_clone.path(), CHECK);
    assert!(warm.stderr.contains("warm: 2 newer commit(s) walked"), "{}", warm.all());
    assert_eq!((warm.code, &warm.stdout), (cold.code, &cold.stdout), "the fetched index gives the cold answers");
    assert!(cold.stdout.contains("dave-sandbox") && cold.stdout.contains("heidi-sandbox"), "{}", cold.stdout);
}

#[test]
fn a_corrupt_or_foreign_index_on_the_ref_is_rebuilt_never_trusted() {
    let (_r, bare) = setup();
    let expected = run_in(fresh_clone(bare.path(), false).path(), CHECK);
    assert!(expected.code == 0 || expected.code == 1, "{}", expected.all());

    // Corrupt: a blob that is not an index.
    let c = fresh_clone(bare.path(), false);
    let repo = git2::Repository::open(c.path()).unwrap();
    std::fs::create_dir_all(c.path().join(".git/gitgrant")).unwrap();
    std::fs::write(c.path().join("junk"), b"GGHIDX\0\x05not an index").unwrap();
    let junk = c.path().join(".git/gitgrant/history-index.bin");
    std::fs::copy(c.path().join("junk"), &junk).unwrap();
    gitgrant::history::travel::publish(&repo, &junk, "x").unwrap();
    std::fs::remove_file(&junk).unwrap();
    let out = run_in(c.path(), CHECK);
    assert!(out.stderr.contains("history index cold"), "{}", out.all());
    assert_eq!((out.code, &out.stdout), (expected.code, &expected.stdout));

    // Foreign: a valid index of another repository (its commits are unknown here).
    let other = repo_with_other_history();
    assert!(other.run(CHECK.iter().map(|a| if *a == "origin/main" { "main" } else { a }).collect::<Vec<_>>().as_slice()).stderr.contains("cold"));
    let other_repo = git2::Repository::open(other.path()).unwrap();
    gitgrant::history::travel::publish(&other_repo, &gitgrant::history::index_path(&other_repo), "main").unwrap();
    let d = fresh_clone(bare.path(), false);
    let (ok, out) = git(d.path(), &["fetch", "-q", &other.path().display().to_string(), "refs/heads/gitgrant-index:refs/heads/gitgrant-index"]);
    assert!(ok, "{out}");
    let out = run_in(d.path(), CHECK);
    assert!(out.stderr.contains("history index cold"), "{}", out.all());
    assert_eq!((out.code, &out.stdout), (expected.code, &expected.stdout));
}

fn repo_with_other_history() -> Repo {
    let r = repo();
    land(&r, "mallory", "mallory", &[("requests/heidi-sandbox.yaml", req("mallory", "2026-12-01T10:00:00Z"))], &[]);
    r
}
