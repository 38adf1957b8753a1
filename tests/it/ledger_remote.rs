//! The ledger is the remote's: fresh clones (what `actions/checkout` makes),
//! two clones pushing one bare remote, two runs on one repository, and the
//! locks a killed run leaves behind. Regression tests for issue 14
//! ("What broke" 1, 3 and 4).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::reconcile::RemoteWorld;
use crate::support::{Out, run_in};

/// The world of these tests: [`RemoteWorld`], plus what they read back.
type World = RemoteWorld;

impl RemoteWorld {
    fn with_sandbox() -> World {
        RemoteWorld::new(|shared| Self::policies_without(shared, true))
    }

    fn policies_without(shared: &Path, with_sandbox: bool) -> String {
        let p = Self::policies_in(shared);
        if with_sandbox { p } else { p.lines().filter(|l| !l.trim_start().starts_with("sandbox:")).collect::<Vec<_>>().join("\n") }
    }

    /// The remote's ledger lines.
    fn remote_ledger(&self) -> Vec<serde_json::Value> {
        let out = Command::new("git").args(["--git-dir", self.bare().to_str().unwrap(), "show", "gitgrant-ledger:ledger.jsonl"]).output().unwrap();
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn held(&self) -> Vec<String> {
        let Ok(text) = std::fs::read_to_string(self.shared.path().join("grants.json")) else { return Vec::new() };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["grants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| format!("{}/{}", g["access"]["resource"].as_str().unwrap(), g["access"]["principal"].as_str().unwrap()))
            .collect()
    }
}

fn identities(lines: &[serde_json::Value]) -> Vec<String> {
    lines.iter().map(|l| format!("{}|{}|{}|{}|{}", l["run"], l["action"], l["request"], l["resource"], l["access"])).collect()
}

fn count(lines: &[serde_json::Value], action: &str, result: &str, request: &str) -> usize {
    lines.iter().filter(|l| l["action"] == action && l["result"] == result && l["request"] == request).count()
}

fn reconcile(dir: &Path, at: &str) -> Out {
    run_in(dir, &["reconcile", "--at", at])
}

/// What broke 1: a fresh clone saw no ledger, re-recorded every held grant
/// as `observed`, and after a resource left `policies/` revoked nothing.
#[test]
fn a_fresh_clone_reads_the_remote_ledger_and_still_revokes_a_retired_resource() {
    let w = World::with_sandbox();
    let a = w.clone("a");
    let t0 = reconcile(&a, "2026-12-01T10:05:00Z");
    assert_eq!(t0.code, 0, "{}", t0.all());
    assert_eq!(w.held(), vec!["sandbox/heidi"]);
    let after_grant = w.remote_ledger();
    assert_eq!(count(&after_grant, "grant", "ok", "heidi-sandbox"), 1, "{after_grant:?}");

    // A fresh clone, as CI makes on every run: nothing to do, nothing re-recorded.
    let b = w.clone("b");
    let t1 = reconcile(&b, "2026-12-01T10:30:00Z");
    assert_eq!(t1.code, 0, "{}", t1.all());
    assert_eq!(w.remote_ledger(), after_grant, "a fresh clone must not re-record held grants as observed:\n{}", t1.all());

    // The resource and its request leave main (an approved policy change).
    let m = &w.main;
    // First the request, then the resource: a rule change lands alone (GG301).
    m.branch("retire-request");
    m.remove("requests/heidi-sandbox.yaml");
    m.commit_as("alice", "remove heidi-sandbox");
    m.checkout("main");
    m.merge("retire-request", "Merge pull request #2 from retire-request\n");
    m.branch("retire");
    m.write("policies/all.yaml", World::policies_without(w.shared.path(), false));
    m.commit_as("alice", "retire sandbox");
    m.checkout("main");
    m.merge("retire", "Merge pull request #3 from retire\n\nApproved-by: frank\n");
    m.git(&["push", "-q", "origin", "main"]);

    let c = w.clone("c");
    let t2 = run_in(&c, &["reconcile", "--at", "2026-12-01T10:40:00Z", "--format", "json"]);
    assert_eq!(t2.code, 0, "{}", t2.all());
    assert!(w.held().is_empty(), "the retired resource's grant must be revoked from a fresh clone: {:?}\n{}", w.held(), t2.all());
    let l = w.remote_ledger();
    assert_eq!(count(&l, "revoke", "ok", "heidi-sandbox"), 1, "{l:?}");
    assert_eq!(count(&l, "grant", "observed", "heidi-sandbox"), 0, "{l:?}");
    let verify = run_in(&c, &["--now", "2026-12-01T10:41:00Z", "audit", "verify"]);
    assert!(!verify.stdout.contains("AV005"), "{}", verify.all());
}

/// Lines a run says it recorded.
fn recorded(out: &Out) -> usize {
    out.stdout.lines().find_map(|l| l.strip_prefix("ledger: ")?.split(' ').next()?.parse().ok()).unwrap_or(0)
}

/// What broke 4: two clones pushing one remote doubled the ledger (the push
/// rebase re-appended the loser's lines). Two real runs at once on one
/// provider: every line of both runs is on the remote exactly once.
#[test]
fn two_clones_reconciling_at_once_lose_and_double_no_line() {
    let w = World::with_sandbox();
    let (a, b) = (w.clone("a"), w.clone("b"));
    let runs: Vec<Out> = std::thread::scope(|s| {
        let ha = s.spawn(|| reconcile(&a, "2026-12-01T10:05:00Z"));
        let hb = s.spawn(|| reconcile(&b, "2026-12-01T10:05:00Z"));
        vec![ha.join().unwrap(), hb.join().unwrap()]
    });
    for r in &runs {
        assert_eq!(r.code, 0, "{}", r.all());
    }
    let l = w.remote_ledger();
    let ids = identities(&l);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len(), "a line is doubled: {l:#?}");
    assert_eq!(l.len(), runs.iter().map(recorded).sum::<usize>(), "every line both runs recorded, none lost: {l:#?}");
    assert_eq!(l.iter().filter(|x| x["request"] == "heidi-sandbox" && x["action"] == "grant").count(), 2, "{l:#?}");
    // Both clones converge on the remote's ledger.
    for dir in [&a, &b] {
        assert_eq!(reconcile(dir, "2026-12-01T10:06:00Z").code, 0);
    }
    assert_eq!(w.remote_ledger(), l, "nothing more to record");
}

/// A clone whose local ledger diverged from the remote (its push failed; the
/// remote moved since) publishes its lines on top of the remote's, once.
#[test]
fn a_diverged_local_ledger_is_rebased_onto_the_remote_by_identity() {
    let w = World::with_sandbox();
    let (a, b) = (w.clone("a"), w.clone("b"));
    // b grants and records locally, its remote unreachable (the push "failed").
    let offline = run_in(&b, &["reconcile", "--at", "2026-12-01T10:05:00Z", "--remote", "nowhere"]);
    assert_eq!(offline.code, 0, "{}", offline.all());
    // a runs meanwhile: it finds the grant in place and records it as observed, and pushes.
    assert_eq!(reconcile(&a, "2026-12-01T10:06:00Z").code, 0);
    let before = w.remote_ledger();
    assert_eq!(count(&before, "grant", "observed", "heidi-sandbox"), 1, "{before:#?}");
    // b's next run (nothing new to do) publishes its earlier line on top, once.
    let next = reconcile(&b, "2026-12-01T10:10:00Z");
    assert_eq!(next.code, 0, "{}", next.all());
    assert!(next.stderr.contains("have diverged"), "{}", next.all());
    let again = reconcile(&b, "2026-12-01T10:15:00Z");
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(!again.stderr.contains("have diverged"), "{}", again.all());
    let l = w.remote_ledger();
    assert!(l.starts_with(&before), "the remote's lines stay first and unchanged");
    assert_eq!(count(&l, "grant", "ok", "heidi-sandbox"), 1, "{l:#?}");
    assert_eq!(l.len(), 2, "{l:#?}");
    let verify = run_in(&b, &["--now", "2026-12-01T10:16:00Z", "audit", "verify"]);
    assert!(!verify.stdout.contains("AV005"), "{}", verify.all());
}

/// What broke 4, second half: two runs on one repository. The run lock
/// serialises them; the second finds the work done and records nothing twice.
#[test]
fn two_runs_on_one_repository_are_serialised_by_the_run_lock() {
    let w = World::with_sandbox();
    let dir = w.main.path().to_path_buf();
    let runs: Vec<Out> = std::thread::scope(|s| {
        let h1 = s.spawn(|| reconcile(&dir, "2026-12-01T10:05:00Z"));
        let h2 = s.spawn(|| reconcile(&dir, "2026-12-01T10:05:00Z"));
        vec![h1.join().unwrap(), h2.join().unwrap()]
    });
    for r in &runs {
        assert_eq!(r.code, 0, "{}", r.all());
    }
    let l = w.remote_ledger();
    assert_eq!(count(&l, "grant", "ok", "heidi-sandbox"), 1, "{l:#?}");
    assert_eq!(l.len(), 1, "{l:#?}");
}

fn lock_file(dir: &Path) -> PathBuf {
    dir.join(".git/gitgrant/run.lock")
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "unknown-host".into())
}

fn write_lock(dir: &Path, pid: u32, since: &str) {
    std::fs::create_dir_all(lock_file(dir).parent().unwrap()).unwrap();
    let body = serde_json::json!({"owner": "ci", "pid": pid, "host": host(), "command": "reconcile", "since": since, "token": "0"});
    std::fs::write(lock_file(dir), body.to_string()).unwrap();
}

/// A run killed with SIGKILL leaves its run lock: the next run reports it and takes it over.
#[test]
fn a_run_lock_left_by_a_dead_process_is_taken_over_with_a_message() {
    let w = World::with_sandbox();
    let dir = w.main.path().to_path_buf();
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    write_lock(&dir, dead, "2026-12-01T10:00:00Z");
    let out = reconcile(&dir, "2026-12-01T10:05:00Z");
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("took over a stale run lock") && out.stderr.contains(&format!("process {dead} no longer runs")), "{}", out.all());
    assert!(!lock_file(&dir).exists(), "released at the end");
    assert_eq!(w.held(), vec!["sandbox/heidi"]);
}

/// A live holder: the second run waits the bound, then exits 0 saying who holds it, changing nothing.
#[test]
fn a_run_lock_held_by_a_live_run_makes_the_next_run_exit_cleanly() {
    let w = World::with_sandbox();
    let dir = w.main.path().to_path_buf();
    write_lock(&dir, std::process::id(), &chrono::Utc::now().to_rfc3339());
    let out = run_in(&dir, &["reconcile", "--at", "2026-12-01T10:05:00Z", "--lock-wait", "1"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("another gitgrant run holds the run lock") && out.stderr.contains("Nothing was changed"), "{}", out.all());
    assert!(w.held().is_empty());
    assert!(lock_file(&dir).exists(), "someone else's lock is left alone");
    // Older than --lock-stale: taken over.
    write_lock(&dir, std::process::id(), "2026-01-01T00:00:00Z");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = run_in(&dir, &["reconcile", "--at", "2026-12-01T10:05:00Z", "--lock-stale", "1"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("took over a stale run lock") && out.stderr.contains("older than 1 s"), "{}", out.all());
}

/// What broke 3: a kill during the ledger write left the ref lock, and every
/// later run granted and revoked, then failed to record, forever.
#[test]
fn a_stale_ledger_ref_lock_is_cleared_with_a_message_and_the_run_records() {
    let w = World::with_sandbox();
    let dir = w.main.path().to_path_buf();
    assert_eq!(reconcile(&dir, "2026-12-01T10:05:00Z").code, 0);
    let lock = dir.join(".git/refs/heads/gitgrant-ledger.lock");
    std::fs::write(&lock, "0000000000000000000000000000000000000000\n").unwrap();
    let out = reconcile(&dir, "2026-12-01T12:05:00Z");
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("removed a stale ref lock") && out.stderr.contains("gitgrant-ledger.lock"), "{}", out.all());
    assert!(!lock.exists());
    let l = w.remote_ledger();
    assert_eq!(count(&l, "revoke", "ok", "heidi-sandbox"), 1, "{l:#?}");
    let revoke = l.iter().find(|x| x["action"] == "revoke").unwrap();
    assert_eq!(revoke["late_by"], "5m", "{revoke}");
}
