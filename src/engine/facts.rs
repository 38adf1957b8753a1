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

use crate::history::History;
use crate::model::request::Request;
use crate::risk::RequesterFacts;

/// The facts about `req`'s requester at `start`.
pub fn requester_facts(h: &History, req: &Request, start: DateTime<Utc>) -> RequesterFacts {
    let (held_role_before, early_revocations, active_grants) = h.facts(&req.requester, &req.role, start, &req.id);
    RequesterFacts { held_role_before, early_revocations, active_grants, monitor_findings: h.findings_before(&req.requester, start) }
}

/// Adds the ledger's grants and monitor findings recorded before `as_of` to
/// `h`, when the clone has a ledger (none: nobody held anything).
pub fn add_ledger(h: &mut History, repo: &Repository, as_of: DateTime<Utc>) {
    if let Some(entries) = ledger_entries(repo) {
        add_entries(h, &entries, as_of);
    }
}

/// Which ledger a read saw: the repository and the branch heads it can read.
type LedgerKey = (std::path::PathBuf, Option<git2::Oid>, Option<git2::Oid>);

thread_local! {
    /// The last ledger read, by [`LedgerKey`]: `reconcile` and `audit verify`
    /// judge many landings in one run, each of which reads the facts.
    static LEDGER: std::cell::RefCell<Option<(LedgerKey, std::rc::Rc<Vec<crate::ledger::Entry>>)>> = const { std::cell::RefCell::new(None) };
}

/// The ledger's entries, read once per process while its branch heads stay put.
fn ledger_entries(repo: &Repository) -> Option<std::rc::Rc<Vec<crate::ledger::Entry>>> {
    let branch = crate::ledger::BRANCH;
    let key: LedgerKey = (
        repo.path().to_path_buf(),
        repo.refname_to_id(&format!("refs/heads/{branch}")).ok(),
        repo.refname_to_id(&format!("refs/remotes/origin/{branch}")).ok(),
    );
    if let Some(hit) = LEDGER.with(|c| c.borrow().as_ref().filter(|(k, _)| *k == key).map(|(_, e)| e.clone())) {
        return Some(hit);
    }
    let entries = std::rc::Rc::new(crate::ledger::Ledger::read(repo).ok()?.entries);
    LEDGER.with(|c| *c.borrow_mut() = Some((key, entries.clone())));
    Some(entries)
}

/// [`add_ledger`] over entries already read.
pub fn add_entries(h: &mut History, entries: &[crate::ledger::Entry], as_of: DateTime<Utc>) {
    for e in entries.iter().filter(|e| e.time < as_of) {
        let who = e.requester.to_ascii_lowercase();
        match e.action.as_str() {
            "finding" => h.findings.entry(who).or_default().push(e.time),
            "grant" if e.result == "ok" && !e.role.is_empty() => h.grants.entry(who).or_default().push((e.role.clone(), e.time)),
            _ => {}
        }
    }
}
