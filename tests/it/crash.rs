//! Crash consistency: `reconcile` (the real binary) killed with SIGKILL at
//! many points of a 200-request run on the local provider, then rerun until
//! clean. Afterwards: nothing lost, left over or doubled at the provider, and
//! a ledger with exactly one grant and one revoke or release per request
//! share. Issue 14, "Tests and benchmark".

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

use crate::reconcile::{grants, land, ledger};
use crate::support::{Repo, run_in};

const USERS: usize = 50;

fn policies() -> String {
    let users: Vec<String> = (0..USERS).map(|i| format!("u{i:02}")).collect();
    let ids: String = users.iter().map(|u| format!("  {u}: {{}}\n")).collect();
    format!(
        r#"
groups:
  dev: {{ members: [{members}] }}
  managers: {{ members: [frank] }}
identities:
{ids}  frank: {{}}
resources:
  sandbox: {{ provider: local, environment: staging, sensitivity: low, config: {{ state: state/grants.json }} }}
  tools:   {{ provider: local, environment: staging, sensitivity: low, config: {{ state: state/grants.json }} }}
roles:
  user:
    privilege: read
    max_duration: 8h
    eligible: [dev]
    grants: {{ local: {{ role: user }} }}
risk:
  factors:
    sensitivity: {{ low: 0, high: 25 }}
    privilege: {{ read: 0, admin: 30 }}
  tiers:
    - {{ name: auto, max_score: 100, approvals: [] }}
policy_changes:
  approvals: [ {{ from: [managers], count: 1 }} ]
"#,
        members = users.join(", ")
    )
}

/// Starts reconcile at `at`, kills it with SIGKILL after `after`; true when it was still running.
fn kill_after(r: &Repo, at: &str, after: Duration) -> bool {
    let mut child = Command::cargo_bin("gitgrant")
        .unwrap()
        .args(["--repo", r.path().to_str().unwrap(), "--quiet", "reconcile", "--at", at])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    running
}

/// Reruns reconcile at `at` until a run succeeds and the next changes nothing.
fn settle(r: &Repo, at: &str) -> usize {
    for n in 1..=5 {
        let out = run_in(r.path(), &["reconcile", "--at", at, "--format", "json"]);
        assert_eq!(out.code, 0, "{}", out.all());
        if out.json()["outcomes"].as_array().unwrap().is_empty() {
            return n;
        }
    }
    panic!("reconcile at {at} did not settle in 5 runs");
}

#[test]
fn sigkill_at_many_points_loses_leaves_and_doubles_nothing() {
    let r = Repo::new();
    r.at("2026-11-20T10:00:00Z");
    r.write("policies/all.yaml", policies());
    r.commit("bootstrap policies");
    // 200 requests: per user, 1h and 2h on sandbox (one shared access), 3h and 4h on tools.
    let mut shares: BTreeSet<(String, String)> = BTreeSet::new();
    for i in 0..USERS {
        let u = format!("u{i:02}");
        let files: Vec<(String, String)> = [(1, "sandbox"), (2, "sandbox"), (3, "tools"), (4, "tools")]
            .iter()
            .map(|(h, res)| {
                let id = format!("{u}-{h}h");
                shares.insert((id.clone(), format!("{res}/{u}")));
                let body =
                    format!("requester: {u}\nrole: user\nresources: [{res}]\nstart: 2026-12-01T10:00:00Z\nduration: {h}h\nreason: \"INC-9: crash test\"\n");
                (format!("requests/{id}.yaml"), body)
            })
            .collect();
        let refs: Vec<(&str, String)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
        land(&r, &u, &u, &refs, &[]);
    }
    assert_eq!(shares.len(), 4 * USERS);

    // Phases: all granted; sandbox ended (releases, then revokes), tools 3h ended (releases); all ended.
    let phases = [("2026-12-01T10:05:00Z", 2 * USERS), ("2026-12-01T12:05:00Z", USERS), ("2026-12-01T14:05:00Z", 0)];
    let delays = [40u64, 90, 150, 250, 400, 600, 900];
    let mut killed_running = 0;
    let mut reruns = 0;
    let started = Instant::now();
    for (at, held) in phases {
        for d in delays {
            killed_running += usize::from(kill_after(&r, at, Duration::from_millis(d)));
        }
        reruns += settle(&r, at);
        let g = grants(&r);
        assert_eq!(g.len(), held, "at {at}: {g:?}");
        let distinct: BTreeSet<&(String, String, Vec<String>)> = g.iter().collect();
        assert_eq!(distinct.len(), g.len(), "a grant is doubled at the provider");
    }
    let took = started.elapsed();

    // The ledger: per request share, exactly one grant and one revoke or release.
    let l = ledger(&r);
    let mut per: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for e in &l {
        let (Some(res), Some(p)) = (e["resource"].as_str(), e["principal"].as_str()) else { continue };
        let key = (e["request"].as_str().unwrap().to_string(), format!("{res}/{p}"));
        let slot = per.entry(key).or_default();
        match e["action"].as_str().unwrap() {
            "grant" => slot.0 += 1,
            "revoke" | "release" => slot.1 += 1,
            other => panic!("unexpected ledger line `{other}`: {e}"),
        }
    }
    let keys: BTreeSet<(String, String)> = per.keys().cloned().collect();
    assert_eq!(keys, shares, "every share is in the ledger, nothing else");
    let wrong: Vec<_> = per.iter().filter(|(_, c)| **c != (1, 1)).collect();
    assert!(wrong.is_empty(), "shares without exactly one grant and one closer: {wrong:?}");
    let observed = l.iter().filter(|e| e["result"] == "observed").count();
    eprintln!(
        "crash test: {} kills ({killed_running} while running), {reruns} settling runs, {} ledger lines ({observed} observed), {:.1} s",
        phases.len() * delays.len(),
        l.len(),
        took.as_secs_f64()
    );
    let verify = run_in(r.path(), &["--now", "2026-12-01T14:06:00Z", "audit", "verify"]);
    assert_eq!(verify.code, 0, "{}", verify.all());
    assert!(verify.stdout.ends_with("clean\n"), "{}", verify.all());
}
