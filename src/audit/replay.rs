//! `gitgrant audit replay ENTRY`: recompute a recorded grant decision from git
//! alone and say whether it still holds: the same landing commit landed the
//! request, the same base policies judged it, the same risk tier and score
//! come out, and the landing's `Approved-by:` trailers satisfy the approvals
//! those policies required.

use std::path::Path;

use chrono::{DateTime, Utc};
use git2::Oid;
use serde::Serialize;

use super::{AuditError, Trail};
use crate::engine::landing::Landings;
use crate::history::EventKind;
use crate::ledger::Entry;

/// How a ledger entry is named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `LINE` (1-based line of `ledger.jsonl` at the ledger head) or
    /// `LEDGER-COMMIT:LINE` (the line as of that ledger commit).
    Line { commit: Option<String>, line: usize },
    /// `REQUEST` (its latest `grant`) or `REQUEST:ACTION` (its latest entry with that action).
    Request { id: String, action: Option<String> },
}

impl Selector {
    pub fn parse(s: &str) -> Selector {
        if let Ok(line) = s.parse::<usize>() {
            return Selector::Line { commit: None, line };
        }
        match s.rsplit_once(':') {
            Some((left, right)) if right.parse::<usize>().is_ok() => Selector::Line { commit: Some(left.to_string()), line: right.parse().unwrap_or(0) },
            Some((left, right)) => Selector::Request { id: left.to_string(), action: Some(right.to_string()) },
            None => Selector::Request { id: s.to_string(), action: None },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Failed,
    /// Cannot be decided from git alone (GitHub reviews).
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayCheck {
    pub name: &'static str,
    pub status: CheckStatus,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    pub line: usize,
    pub entry: Entry,
    pub checks: Vec<ReplayCheck>,
    /// Every check is ok or skipped.
    pub holds: bool,
}

/// Finds the entry a selector names: (1-based line, entry).
pub fn select(trail: &Trail, sel: &Selector) -> Result<(usize, Entry), AuditError> {
    let nothing = |what: String| AuditError::Usage(format!("{what}; list entries with `gitgrant audit --format json` (field `ledger_line`)"));
    match sel {
        Selector::Line { commit, line } => {
            let entries = match commit {
                None => trail.ledger.entries.clone(),
                Some(c) => {
                    let oid = trail
                        .repo
                        .revparse_single(c)
                        .and_then(|o| o.peel_to_commit())
                        .map(|c| c.id())
                        .map_err(|e| nothing(format!("cannot resolve `{c}`: {e}")))?;
                    let head = trail.ledger.head.ok_or_else(|| nothing("the ledger branch does not exist".into()))?;
                    if oid != head && !trail.repo.graph_descendant_of(head, oid).unwrap_or(false) {
                        return Err(nothing(format!("`{c}` is not a commit of the ledger branch `{}`", crate::ledger::BRANCH)));
                    }
                    crate::ledger::read_at(&trail.repo, oid)?.1
                }
            };
            let e =
                line.checked_sub(1).and_then(|i| entries.get(i)).ok_or_else(|| nothing(format!("the ledger has no line {line} (it has {})", entries.len())))?;
            Ok((*line, e.clone()))
        }
        Selector::Request { id, action } => {
            let action = action.as_deref().unwrap_or("grant");
            trail
                .ledger
                .entries
                .iter()
                .enumerate()
                .rev()
                .find(|(_, e)| e.request == *id && e.action == action)
                .map(|(i, e)| (i + 1, e.clone()))
                .ok_or_else(|| nothing(format!("the ledger has no `{action}` entry for request `{id}`")))
        }
    }
}

fn check(name: &'static str, ok: bool, detail: String) -> ReplayCheck {
    ReplayCheck { name, status: if ok { CheckStatus::Ok } else { CheckStatus::Failed }, detail }
}

/// Replays the decision behind a `grant` entry.
pub fn replay(repo_dir: &Path, trail: &Trail, line: usize, entry: Entry, _now: DateTime<Utc>) -> Result<Replay, AuditError> {
    if entry.action != "grant" {
        return Err(AuditError::Usage(format!("ledger line {line} is a `{}` entry; only `grant` entries record a decision to replay", entry.action)));
    }
    let mut checks = Vec::new();
    let Some(landing) = entry.merge_commit.clone() else {
        checks.push(check("landing", false, "the entry records no landing commit: nothing approved this grant".into()));
        return Ok(Replay { line, entry, checks, holds: false });
    };
    // 1. The recorded commit is on main and landed this request.
    let rec = trail.history.requests.get(&entry.request);
    let landed_here =
        rec.is_some_and(|r| r.events.iter().any(|ev| ev.kind != EventKind::Removed && trail.history.commits.get(ev.commit).is_some_and(|c| c.id == landing)));
    checks.push(check(
        "landing",
        landed_here,
        if landed_here {
            format!("{} landed {} on main", short(&landing), entry.request)
        } else {
            format!("{} is not a commit of main's first-parent history that landed {}", short(&landing), entry.request)
        },
    ));
    if Oid::from_str(&landing).ok().and_then(|o| trail.repo.find_commit(o).ok()).is_none() {
        return Ok(finish(line, entry, checks));
    }
    // Read from the verdict store when an earlier run judged it.
    let mut landings = Landings::new(&trail.repo, repo_dir);
    let full = crate::engine::verdict::resolve(&trail.repo, &landing).map(|o| o.to_string()).unwrap_or_else(|_| landing.clone());
    let verdict = match landings.get(&full) {
        Ok(v) => v,
        Err(e) => {
            checks.push(check("approvals", false, format!("cannot judge {}: {e}", short(&landing))));
            return Ok(finish(line, entry, checks));
        }
    };
    // 2. The same base policies.
    if let Some(base) = &entry.base_commit {
        let same = verdict.parent.as_deref() == Some(base.as_str());
        checks.push(check(
            "base policies",
            same,
            format!("recorded {}, the landing's first parent is {}", short(base), verdict.parent.as_deref().map_or("none", short)),
        ));
    }
    // 3. The same risk.
    let outcome = verdict.report.requests.iter().find(|o| o.id == entry.request);
    match outcome.and_then(|o| o.risk.as_ref()) {
        None => checks.push(check("risk", false, format!("{} does not score {} (not a new or modified request there)", short(&landing), entry.request))),
        Some(risk) => {
            let factors: Vec<(String, i64)> = risk.factors.iter().map(|f| (f.name.to_string(), f.points)).collect();
            let recorded: Vec<(String, i64)> = entry.risk_factors.iter().map(|f| (f.name.clone(), f.points)).collect();
            let same = entry.risk_score.is_none_or(|s| s == risk.score)
                && entry.tier.as_deref().is_none_or(|t| t == risk.tier)
                && (recorded.is_empty() || recorded == factors);
            let points: Vec<String> = risk.factors.iter().filter(|f| f.points != 0).map(|f| format!("{} {:+}", f.name, f.points)).collect();
            let recorded_text = match (&entry.tier, entry.risk_score) {
                (Some(t), Some(s)) => format!("recorded tier {t} (score {s})"),
                _ => "nothing recorded".to_string(),
            };
            checks.push(check("risk", same, format!("tier {} (score {}: {}); {recorded_text}", risk.tier, risk.score, points.join(", "))));
        }
    }
    if let Some(o) = outcome {
        checks.push(check("request valid", o.valid, if o.valid { "valid under the base policies".into() } else { "invalid under the base policies".into() }));
    }
    // 4. Approvals: GitHub reviews are recorded against the PR's head, trailers against the landing.
    let on_github = !entry.approvers.is_empty() && entry.approvers.iter().all(|a| a.commit != landing);
    if on_github {
        checks.push(ReplayCheck {
            name: "approvals",
            status: CheckStatus::Skipped,
            detail: format!(
                "approved by GitHub reviews ({}) on PR #{}; git alone cannot re-read them: run `gitgrant gate --pr {}`",
                entry.approvers.iter().map(|a| a.login.as_str()).collect::<Vec<_>>().join(", "),
                entry.pr.map_or("?".to_string(), |p| p.to_string()),
                entry.pr.map_or("N".to_string(), |p| p.to_string())
            ),
        });
    } else {
        let filled: Vec<String> = verdict.decision.slots.iter().filter_map(|s| s.filled_by.clone()).collect();
        checks.push(check(
            "approvals",
            verdict.decision.satisfied,
            format!("{}{}", verdict.decision.summary(), if verdict.direct_push { " (direct push: no merge, no Approved-by trailers)" } else { "" }),
        ));
        let missing: Vec<&str> = entry.approvers.iter().map(|a| a.login.as_str()).filter(|l| !filled.iter().any(|f| f.eq_ignore_ascii_case(l))).collect();
        checks.push(check(
            "trailers",
            missing.is_empty(),
            if missing.is_empty() {
                format!(
                    "recorded approvers match the landing's valid Approved-by trailers ({})",
                    if filled.is_empty() { "none needed".into() } else { filled.join(", ") }
                )
            } else {
                format!("recorded approver(s) {} did not validly approve {}", missing.join(", "), short(&landing))
            },
        ));
    }
    Ok(finish(line, entry, checks))
}

fn finish(line: usize, entry: Entry, checks: Vec<ReplayCheck>) -> Replay {
    let holds = checks.iter().all(|c| c.status != CheckStatus::Failed);
    Replay { line, entry, checks, holds }
}

pub(crate) fn short(id: &str) -> &str {
    &id[..id.len().min(10)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_name_lines_and_requests() {
        assert_eq!(Selector::parse("12"), Selector::Line { commit: None, line: 12 });
        assert_eq!(Selector::parse("1a2b3c:4"), Selector::Line { commit: Some("1a2b3c".into()), line: 4 });
        assert_eq!(Selector::parse("2026-11-23-alice-db"), Selector::Request { id: "2026-11-23-alice-db".into(), action: None });
        assert_eq!(Selector::parse("alice-db:revoke"), Selector::Request { id: "alice-db".into(), action: Some("revoke".into()) });
    }
}
