//! Requester facts for the risk factors: from main's history (early
//! revocations, grants active at the start) and from the ledger (roles held
//! before, monitor findings).
//!
//! "Held the role before" lowers the score, so it counts only what was
//! really granted: ledger grant lines, never a request file that merely
//! reached main (a refused direct push must not buy a cheaper tier).
//! Only ledger lines written before `as_of` count, so judging a landing
//! later gives the answer `check` gave when it landed.

use chrono::{DateTime, Utc};
use git2::Repository;

use std::sync::Arc;

use crate::history::{History, LedgerFacts, Recorded};
use crate::model::request::Request;
use crate::risk::RequesterFacts;

/// The facts about `req`'s requester at `start`.
pub fn requester_facts(h: &History, req: &Request, start: DateTime<Utc>) -> RequesterFacts {
    let (held_role_before, early_revocations, active_grants) = h.facts(&req.requester, &req.role, start, &req.id);
    RequesterFacts { held_role_before, early_revocations, active_grants, monitor_findings: h.findings_before(&req.requester, start) }
}

/// Sets `h`'s ledger facts to those recorded before `as_of`, when the clone
/// has a ledger (none: nobody held anything). The ledger is read and
/// aggregated once per run ([`recorded`]); each call only moves the cut.
pub fn add_ledger(h: &mut History, repo: &Repository, as_of: DateTime<Utc>) {
    if let Some(all) = recorded(repo) {
        h.ledger = LedgerFacts { all, as_of: Some(as_of) };
    }
}

thread_local! {
    /// [`recorded`]'s last answer, by [`LedgerKey`].
    static RECORDED: std::cell::RefCell<Option<(LedgerKey, Arc<Recorded>)>> = const { std::cell::RefCell::new(None) };
}

/// Every fact of the ledger of `repo`, aggregated once per process while its
/// branch heads stay put (judging landing after landing used to copy every
/// grant line before each landing: ledger lines x landings).
fn recorded(repo: &Repository) -> Option<Arc<Recorded>> {
    let key = ledger_key(repo);
    if let Some(hit) = RECORDED.with(|c| c.borrow().as_ref().filter(|(k, _)| *k == key).map(|(_, r)| r.clone())) {
        return Some(hit);
    }
    let entries = ledger_entries(repo)?;
    let all = Arc::new(recorded_from(&entries));
    RECORDED.with(|c| *c.borrow_mut() = Some((key, all.clone())));
    Some(all)
}

/// The facts of `entries` (grant and finding lines).
pub fn recorded_from(entries: &[crate::ledger::Entry]) -> Recorded {
    let mut r = Recorded::default();
    for e in entries {
        match fact(e) {
            Some((who, None)) => r.finding(&who, e.time),
            Some((who, Some(role))) => r.grant(&who, role, e.time),
            None => {}
        }
    }
    r
}

/// Which ledger a read saw: the repository and the branch heads it can read.
type LedgerKey = (std::path::PathBuf, Option<git2::Oid>, Option<git2::Oid>);

thread_local! {
    /// The last ledger read, by [`LedgerKey`]: `reconcile` and `audit verify`
    /// judge many landings in one run, each of which reads the facts.
    static LEDGER: std::cell::RefCell<Option<(LedgerKey, std::rc::Rc<Vec<crate::ledger::Entry>>)>> = const { std::cell::RefCell::new(None) };
}

fn ledger_key(repo: &Repository) -> LedgerKey {
    let branch = crate::ledger::BRANCH;
    (repo.path().to_path_buf(), repo.refname_to_id(&format!("refs/heads/{branch}")).ok(), repo.refname_to_id(&format!("refs/remotes/origin/{branch}")).ok())
}

/// The ledger's entries, read once per process while its branch heads stay put.
fn ledger_entries(repo: &Repository) -> Option<std::rc::Rc<Vec<crate::ledger::Entry>>> {
    let key = ledger_key(repo);
    if let Some(hit) = LEDGER.with(|c| c.borrow().as_ref().filter(|(k, _)| *k == key).map(|(_, e)| e.clone())) {
        return Some(hit);
    }
    let entries = std::rc::Rc::new(crate::ledger::Ledger::read(repo).ok()?.entries);
    LEDGER.with(|c| *c.borrow_mut() = Some((key, entries.clone())));
    Some(entries)
}

/// Does judging under `policy` read the ledger (a factor that counts its
/// grants or findings)? Only then is [`add_ledger`] called.
pub fn counts_ledger(policy: &crate::model::policy::Policy) -> bool {
    policy.factors.monitor_findings != 0 || policy.factors.first_time != 0
}

/// A ledger line that is a fact: a monitor finding (no role) or a grant of a role.
fn fact(e: &crate::ledger::Entry) -> Option<(String, Option<&str>)> {
    let who = e.requester.to_ascii_lowercase();
    match e.action.as_str() {
        "finding" => Some((who, None)),
        "grant" if e.result == "ok" && !e.role.is_empty() => Some((who, Some(e.role.as_str()))),
        _ => None,
    }
}

/// What [`add_ledger`] would add at any `as_of`, as a fingerprint: a stored
/// landing verdict whose policy counts the ledger is reused only while the
/// facts recorded before its landing time are the same ones.
pub struct LedgerPrint {
    /// Fact times, sorted.
    times: Vec<DateTime<Utc>>,
    /// `sums[i]`: order-free sum of the hashes of the first `i` facts.
    sums: Vec<u64>,
}

impl LedgerPrint {
    /// The ledger of `repo` as [`add_ledger`] reads it.
    pub fn of(repo: &Repository) -> LedgerPrint {
        let entries = ledger_entries(repo);
        LedgerPrint::from_entries(entries.as_deref().map_or(&[], Vec::as_slice))
    }

    pub fn from_entries(entries: &[crate::ledger::Entry]) -> LedgerPrint {
        let mut facts: Vec<(DateTime<Utc>, u64)> = entries
            .iter()
            .filter_map(|e| {
                let (who, role) = fact(e)?;
                let text = format!("{who}\0{}\0{}", role.unwrap_or("\u{1}finding"), e.time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
                Some((e.time, crate::provider::fnv1a64(text.as_bytes())))
            })
            .collect();
        facts.sort_unstable();
        let mut sums = Vec::with_capacity(facts.len() + 1);
        sums.push(0u64);
        for (_, h) in &facts {
            let last = sums.last().copied().unwrap_or(0);
            sums.push(last.wrapping_add(*h));
        }
        LedgerPrint { times: facts.into_iter().map(|(t, _)| t).collect(), sums }
    }

    /// The facts recorded before `as_of`, in a few characters.
    pub fn at(&self, as_of: DateTime<Utc>) -> String {
        let n = self.times.partition_point(|t| *t < as_of);
        format!("{n}:{:016x}", self.sums.get(n).copied().unwrap_or(0))
    }
}
