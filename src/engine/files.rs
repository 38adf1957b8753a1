//! Request files on main, judged by *path*: for each file, the landing that
//! last changed that path decides, through its full verdict.
//!
//! Walking back from the newest change at the path: a landing `check` fails
//! refuses the file outright; a shrink or an unchanged-content edit asks for
//! nothing new, so the walk goes on to the change before it *at the same
//! path*; the first new or modified version found is the one that needed
//! approval, and its landing is the one whose approvals are judged. Another
//! file with the same id is never consulted (approval borrowing), and two
//! files with one id on main refuse every holder.

use std::collections::BTreeMap;

use super::landing::{LandingVerdict, Landings};
use super::request::{Change, RequestOutcome};
use crate::git::short;
use crate::history::{EventKind, History};
use crate::source::Entry;
use crate::validate::request::request_id;

/// Why a file on main cannot be granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: String,
    /// The landing commit the refusal is about, if one.
    pub commit: Option<String>,
}

fn refused(reason: impl Into<String>, commit: Option<&str>) -> Refused {
    Refused { reason: reason.into(), commit: commit.map(str::to_string) }
}

/// Ids used by more than one file among `entries`: id -> its paths.
pub fn duplicate_ids(entries: &[Entry]) -> BTreeMap<String, Vec<String>> {
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in entries {
        if let Some(id) = request_id(&e.path) {
            ids.entry(id.to_string()).or_default().push(e.path.clone());
        }
    }
    ids.retain(|_, paths| paths.len() > 1);
    ids
}

/// Finds and checks the landing that approved the content of `path` as main
/// has it now. Every landing on the way (shrinks, unchanged-content edits)
/// must pass `check` too. Approvals themselves are the caller's to judge
/// (trailers or GitHub reviews): see [`LandingVerdict::approval_failure`].
pub fn approving_landing(history: &History, landings: &mut Landings<'_>, path: &str) -> Result<(usize, String), Refused> {
    let Some(id) = request_id(path) else {
        return Err(refused(format!("`{path}` is not a valid request id (GG011): never granted"), None));
    };
    let Some(record) = history.requests.get(id) else {
        return Err(refused("not found in main's history", None));
    };
    let events: Vec<_> = record.events.iter().filter(|e| e.path == path).collect();
    for event in events.into_iter().rev() {
        if event.kind == EventKind::Removed {
            break;
        }
        let Some(commit) = history.commits.get(event.commit) else { continue };
        let verdict = match landings.get(&commit.id) {
            Ok(v) => v,
            Err(e) => return Err(refused(format!("cannot judge landing commit {}: {e}", short(&commit.id)), Some(&commit.id))),
        };
        if let Some(why) = verdict.check_failure() {
            return Err(refused(format!("landed in a change that `check` fails, so nothing it touched is granted: {why}"), Some(&commit.id)));
        }
        let Some(outcome) = verdict.report.requests.iter().find(|o| o.file == path) else {
            return Err(refused(format!("landing {} did not judge `{path}`", short(&commit.id)), Some(&commit.id)));
        };
        match outcome.change {
            // Asks for nothing new: the approval is that of the content before, at this path.
            Change::Shrink | Change::Unchanged => continue,
            Change::New | Change::Modified => return Ok((event.commit, commit.id.clone())),
            Change::Removed => break,
        }
    }
    Err(refused(format!("no landing on main approves the current content of `{path}`"), None))
}

/// The landings [`approving_landing`] may judge for `path`, as (position on
/// main, commit): its changes from the newest back to the one that added
/// it. Judged ahead in main's order ([`Landings::prefetch`]), they cost one
/// walk of history instead of one per landing.
pub fn candidate_landings(history: &History, path: &str) -> Vec<(usize, String)> {
    let Some(record) = request_id(path).and_then(|id| history.requests.get(id)) else { return Vec::new() };
    let mut out = Vec::new();
    for event in record.events.iter().rev().filter(|e| e.path == path) {
        if event.kind == EventKind::Removed {
            break;
        }
        if let Some(c) = history.commits.get(event.commit) {
            out.push((event.commit, c.id.clone()));
        }
        if event.kind == EventKind::Added {
            break;
        }
    }
    out
}

/// The outcome of `path` in the verdict of `commit` (after [`approving_landing`]).
pub fn outcome_at<'v>(verdict: &'v LandingVerdict, path: &str) -> Option<&'v RequestOutcome> {
    verdict.report.requests.iter().find(|o| o.file == path)
}
