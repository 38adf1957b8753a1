//! The landing verdict store (`.git/gitgrant/verdicts.jsonl`, issue 17):
//! a second run on an unchanged main judges nothing again; a changed judge
//! version, a corrupt or truncated file, or new ledger facts before a
//! landing force judging again; and every answer is the one judging from
//! scratch gives, on the generated repositories of `attacks.rs`.

use std::path::{Path, PathBuf};

use git2::Repository;
use gitgrant::engine::landing::{LandingVerdict, Landings, judge_landing_in};
use gitgrant::engine::verdict_store::Store;

use crate::attacks::{random_repo, rng};

/// Everything a consumer of a landing verdict reads (plan, reconcile, audit
/// verify and replay), in one comparable text.
fn seen(v: &LandingVerdict) -> String {
    let r = &v.report;
    let outcomes: Vec<String> = r
        .requests
        .iter()
        .map(|o| {
            format!(
                "{} {} {:?} {} {} {:?} {:?} {:?} {} {} {:?} {:?}",
                o.id, o.file, o.change, o.requester, o.role, o.resources, o.start, o.end, o.break_glass, o.valid, o.risk, o.approvals
            )
        })
        .collect();
    let principals: Vec<String> = r
        .requests
        .iter()
        .flat_map(|o| o.resources.iter().map(move |res| format!("{:?}", gitgrant::engine::grant::principal_key(&r.policy, &o.requester, res))))
        .collect();
    format!(
        "{} {:?} {} {} {:?} {:?} {:?}\nfailure {:?} needs {} approval {:?} touched {:?}\nok {} status {:?} base {:?} head {}\n{:?}\n{outcomes:#?}\n{:?}\nrequired {:?}\ngroups {:?}\n{principals:?}",
        v.commit,
        v.parent,
        v.time,
        v.direct_push,
        v.approved_by,
        v.excluded,
        v.decision,
        v.check_failure(),
        v.needs_approval(),
        v.approval_failure(),
        v.touched(),
        r.ok,
        r.status,
        r.base,
        r.head,
        r.diagnostics,
        r.policy_change,
        r.required(),
        r.policy.group_members(),
    )
}

/// Each landing's verdict through `landings`, in main's order.
fn through(landings: &mut Landings<'_>, commits: &[String]) -> Vec<String> {
    landings.prefetch(commits.iter().cloned().enumerate());
    commits.iter().map(|c| landings.get(c).map(seen).unwrap_or_else(|e| format!("error {e}"))).collect()
}

/// Each landing judged alone, as before the store: `check --base L^ --head L`.
fn from_scratch(repo: &Repository, dir: &Path, commits: &[String]) -> Vec<String> {
    commits.iter().map(|c| judge_landing_in(repo, dir, git2::Oid::from_str(c).unwrap()).map(|v| seen(&v)).unwrap_or_else(|e| format!("error {e}"))).collect()
}

fn store(path: &Path, judge: &str) -> Store {
    Store::open(path.to_path_buf(), Some(judge.to_string()))
}

fn store_file(dir: &Path) -> PathBuf {
    dir.join("verdicts-test.jsonl")
}

#[test]
fn stored_verdicts_equal_judging_from_scratch_and_a_second_run_judges_nothing() {
    let mut next = rng(0x7e12_d1c7);
    let mut reused = 0;
    for case in 0..8 {
        let (r, landings) = random_repo(case, &mut next);
        let repo = Repository::open(r.path()).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let path = store_file(tmp.path());
        let expected = from_scratch(&repo, r.path(), &landings);

        // Without a store, and walking one history forward: the same answers.
        let mut none = Landings::with_store(&repo, r.path(), Store::disabled());
        assert_eq!(through(&mut none, &landings), expected, "case {case}: no store");
        assert_eq!(none.judged(), landings.len());

        // First run: judges all, writes them.
        let mut first = Landings::with_store(&repo, r.path(), store(&path, "judge-1"));
        assert_eq!(through(&mut first, &landings), expected, "case {case}: first run");
        assert_eq!(first.judged(), landings.len());
        drop(first);
        assert!(path.exists(), "case {case}: the store is written");

        // Second run on an unchanged main: one read, nothing judged.
        let mut second = Landings::with_store(&repo, r.path(), store(&path, "judge-1"));
        assert_eq!(through(&mut second, &landings), expected, "case {case}: from the store");
        assert_eq!(second.judged(), 0, "case {case}: an unchanged main judges nothing again");
        drop(second);
        reused += landings.len();

        // Another judge version: everything judged again, same answers.
        let mut other = Landings::with_store(&repo, r.path(), store(&path, "judge-2"));
        assert_eq!(through(&mut other, &landings), expected, "case {case}: another judge");
        assert_eq!(other.judged(), landings.len(), "case {case}: a new judge never reuses the old one's verdicts");
    }
    assert!(reused >= 30, "{reused}");
}

#[test]
fn a_corrupt_or_truncated_store_is_ignored_and_rebuilt() {
    let mut next = rng(0x0c02_20b7);
    let (r, landings) = random_repo(0, &mut next);
    let repo = Repository::open(r.path()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = store_file(tmp.path());
    let expected = from_scratch(&repo, r.path(), &landings);
    drop(Landings::with_store(&repo, r.path(), store(&path, "j")).tap(|l| assert_eq!(through(l, &landings), expected)));
    let good = std::fs::read(&path).unwrap();

    let mut damaged: Vec<(&str, Vec<u8>)> = vec![("truncated", good[..good.len() - 10].to_vec()), ("empty", Vec::new())];
    let mut flipped = good.clone();
    // A byte inside a verdict (a risk score, a login): the checksum catches it.
    let at = good.len() / 2;
    flipped[at] = if flipped[at] == b'1' { b'2' } else { b'1' };
    damaged.push(("one byte changed", flipped));
    let text = String::from_utf8(good.clone()).unwrap();
    damaged.push(("a line dropped", text.lines().enumerate().filter(|(i, _)| *i != 1).map(|(_, l)| format!("{l}\n")).collect::<String>().into_bytes()));
    damaged.push(("foreign", b"{\"not\": \"a store\"}\n".to_vec()));
    for (what, bytes) in damaged {
        std::fs::write(&path, &bytes).unwrap();
        let mut l = Landings::with_store(&repo, r.path(), store(&path, "j"));
        assert_eq!(through(&mut l, &landings), expected, "{what}");
        assert_eq!(l.judged(), landings.len(), "{what}: never trusted half-way");
        drop(l);
        assert_eq!(std::fs::read(&path).unwrap(), good, "{what}: rewritten whole");
    }
}

#[test]
fn new_ledger_facts_before_a_landing_force_judging_it_again() {
    let mut next = rng(0x001e_d9e7);
    let (r, landings) = random_repo(1, &mut next);
    let tmp = tempfile::tempdir().unwrap();
    let path = store_file(tmp.path());
    {
        let repo = Repository::open(r.path()).unwrap();
        drop(Landings::with_store(&repo, r.path(), store(&path, "j")).tap(|l| {
            through(l, &landings);
        }));
    }
    // Reconcile grants and writes the ledger after every landing: the facts
    // before each landing are the same, so nothing is judged again.
    let out = r.run(&["reconcile", "--at", "2026-12-01T10:30:00Z"]);
    assert!(out.code == 0 || out.code == 1, "{}", out.all());
    let lines = crate::reconcile::ledger(&r);
    let repo = Repository::open(r.path()).unwrap();
    let mut l = Landings::with_store(&repo, r.path(), store(&path, "j"));
    let expected = from_scratch(&repo, r.path(), &landings);
    assert_eq!(through(&mut l, &landings), expected);
    assert_eq!(l.judged(), 0, "ledger lines after every landing change nothing before it");
    drop(l);

    // A grant recorded before the landings (as a ledger copied from elsewhere
    // would): `first_time` may now score differently, so all are judged again.
    let Some(line) = lines.first() else { panic!("reconcile records its decisions: {}", out.all()) };
    let mut early = line.clone();
    for (k, v) in [("action", "grant"), ("result", "ok"), ("requester", "bob"), ("role", "admin"), ("time", "2026-11-21T09:00:00Z")] {
        early[k] = v.into();
    }
    crate::support::append_ledger(&r, &[early]);
    let repo = Repository::open(r.path()).unwrap();
    let expected = from_scratch(&repo, r.path(), &landings);
    let mut l = Landings::with_store(&repo, r.path(), store(&path, "j"));
    assert_eq!(through(&mut l, &landings), expected);
    assert_eq!(l.judged(), landings.len(), "earlier ledger facts: judged again");
}

/// `value.tap(f)`: runs `f` on it and returns it (keeps the drops above explicit).
trait Tap: Sized {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

impl<T> Tap for T {}
