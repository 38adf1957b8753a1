//! Audit: one timeline per request from main's first-parent history joined
//! with the ledger; who held an access when; replay of a recorded decision;
//! verification of the whole trail ([`verify`]).
//!
//! Git says what was asked for and approved (who proposed it, every edit,
//! the landing, the PR and its `Approved-by:` trailers, removals); the ledger
//! says what reconcile did at the providers (granted, revoked, failures,
//! refusals). Both are read offline: no provider and no forge is called,
//! except by `verify`'s drift check.

pub mod replay;
pub mod verify;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::rc::Rc;

use chrono::{DateTime, NaiveDate, Utc};
use git2::{Oid, Repository};
use serde::Serialize;

use crate::git::main_commit;
use crate::history::{CommitInfo, EventKind, History, read_history_cached};
use crate::ledger::{Entry, GrantKey, Ledger, LedgerError};
use crate::model::policy::{Policy, Privilege};
use crate::model::request::Window;
use crate::source::GitTree;
use crate::validate::policy::load_policy;

/// One line of the audit timeline. The first ten fields are the documented
/// contract (`audit --format json`); fields may be added, never renamed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub time: DateTime<Utc>,
    /// git: `landed`, `edited`, `removed`; ledger: `granted`, `revoked`,
    /// `released`, `grant-failed`, `revoke-failed`, `refused` (other ledger
    /// actions pass through unchanged).
    pub event: String,
    pub request: String,
    pub requester: String,
    pub role: String,
    pub resources: Vec<String>,
    /// Who did it: the author who proposed the change (git), `gitgrant` (ledger).
    pub actor: String,
    /// The main commit (git), or the landing commit the grant relied on (ledger).
    pub commit: Option<String>,
    pub pr: Option<u64>,
    pub detail: String,
    /// `git` or `ledger`.
    pub source: &'static str,
    /// `Approved-by:` logins (git landings) or the approvers recorded with a grant.
    pub approvers: Vec<String>,
    /// The request's window after this change (git events).
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Ledger events: where, to whom, what.
    pub provider: Option<String>,
    pub resource: Option<String>,
    pub principal: Option<String>,
    pub access: Option<String>,
    /// Ledger events: the 1-based line in `ledger.jsonl` (`gitgrant audit replay LINE`).
    pub ledger_line: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("`{0}` is not a git repository: {1}")]
    NotARepo(String, git2::Error),
    #[error("the repository has no main branch (looked for refs/heads/main, origin/main, master)")]
    NoMain,
    #[error("reading history: {0}")]
    Git(#[from] git2::Error),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{0}")]
    Usage(String),
}

/// Everything the audit reads: main's history (through the cached index) and the ledger.
pub struct Trail {
    pub repo: Repository,
    pub main: Oid,
    pub history: History,
    pub ledger: Ledger,
    /// [`Trail::policy_at`] by the id of the commit's `policies/` tree: the
    /// policies change in a handful of commits, not per landing or event.
    policies: std::cell::RefCell<HashMap<Option<Oid>, Option<Rc<Policy>>>>,
}

impl Trail {
    pub fn open(repo_dir: &Path) -> Result<Trail, AuditError> {
        let repo = Repository::open(repo_dir).map_err(|e| AuditError::NotARepo(repo_dir.display().to_string(), e))?;
        let main = main_commit(&repo).ok_or(AuditError::NoMain)?;
        let (history, _) = read_history_cached(&repo, main, &crate::history::index_path(&repo))?;
        let ledger = Ledger::read(&repo)?;
        Ok(Trail { repo, main, history, ledger, policies: Default::default() })
    }

    /// The policies at `commit` (None when they cannot be read or are invalid).
    pub fn policy_at(&self, commit: &str) -> Option<Policy> {
        self.shared_policy_at(commit).map(|p| Policy::clone(&p))
    }

    /// [`Self::policy_at`] without copying the policies (a big policy set costs
    /// milliseconds to copy and to free, per event that asks).
    pub fn shared_policy_at(&self, commit: &str) -> Option<Rc<Policy>> {
        let oid = Oid::from_str(commit).ok()?;
        let root = self.repo.find_commit(oid).ok()?.tree().ok()?;
        let key = root.get_name(crate::validate::policy::POLICY_DIR).map(|e| e.id());
        if let Some(p) = self.policies.borrow().get(&key) {
            return p.clone();
        }
        let tree = GitTree::new(&self.repo, oid).ok()?;
        let load = load_policy(&tree);
        let policy = (!load.diagnostics.has_errors() && !load.empty).then(|| Rc::new(load.policy));
        self.policies.borrow_mut().insert(key, policy.clone());
        policy
    }
}

/// Timeline filters; all optional, all must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Requester, actor or approver (case-insensitive).
    pub user: Option<String>,
    pub role: Option<String>,
    pub resource: Option<String>,
    pub request: Option<String>,
}

impl Filter {
    pub fn matches(&self, e: &AuditEvent) -> bool {
        self.matches_but_user(e) && self.user_matches(e)
    }

    fn matches_but_user(&self, e: &AuditEvent) -> bool {
        self.since.is_none_or(|s| e.time >= s)
            && self.until.is_none_or(|u| e.time < u)
            && self.role.as_deref().is_none_or(|r| e.role == r)
            && self.resource.as_deref().is_none_or(|r| e.resources.iter().any(|x| x == r) || e.resource.as_deref() == Some(r))
            && self.request.as_deref().is_none_or(|r| e.request == r)
    }

    fn user_matches(&self, e: &AuditEvent) -> bool {
        let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        self.user.as_deref().is_none_or(|u| eq(&e.requester, u) || eq(&e.actor, u) || e.approvers.iter().any(|a| eq(a, u)))
    }
}

/// Parses `--since`/`--until`: a date (`2026-10-01`, midnight UTC), an RFC 3339
/// time, or a duration back from `now` (`30d`, `12h`).
pub fn parse_when(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).ok_or_else(|| format!("`{s}` is not a valid date"));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    match s.parse::<crate::model::Duration>() {
        Ok(d) => now.checked_sub_signed(d.delta()).ok_or_else(|| format!("`{s}` reaches before the start of time")),
        Err(_) => Err(format!("`{s}` is not a date (2026-10-01), an RFC 3339 time (2026-10-01T00:00:00Z) or a duration back from now (30d, 12h)")),
    }
}

/// A GitHub-style login from a git identity (see [`crate::git::login_of`]).
fn login_from(name: &str, email: &str) -> String {
    git2::Signature::new(name, email, &git2::Time::new(0, 0))
        .ok()
        .and_then(|s| crate::git::login_of(&s).into_iter().next())
        .unwrap_or_else(|| if name.is_empty() { email.to_string() } else { name.to_string() })
}

/// Who proposed the change a main commit landed: for a merge, the author of
/// the merged branch's tip; otherwise (squash, direct push) the commit's author.
/// Only merges cost a lookup, cached per commit.
struct Proposers<'r> {
    repo: &'r Repository,
    cache: HashMap<usize, String>,
    /// e-mail -> (name, login): a few hundred people author 100,000 commits.
    logins: HashMap<String, (String, String)>,
}

impl Proposers<'_> {
    fn of(&mut self, idx: usize, c: &CommitInfo) -> String {
        if c.parents < 2 {
            if let Some((name, login)) = self.logins.get(c.author_email.as_str())
                && *name == c.author
            {
                return login.clone();
            }
            let login = login_from(&c.author, &c.author_email);
            self.logins.insert(c.author_email.clone(), (c.author.clone(), login.clone()));
            return login;
        }
        let repo = self.repo;
        self.cache
            .entry(idx)
            .or_insert_with(|| {
                let tip = Oid::from_str(&c.id).and_then(|o| repo.find_commit(o)).and_then(|m| m.parent(1));
                match tip {
                    Ok(t) => login_from(t.author().name().unwrap_or(""), t.author().email().unwrap_or("")),
                    Err(_) => login_from(&c.author, &c.author_email),
                }
            })
            .clone()
    }
}

fn window_text(w: Option<Window>) -> String {
    match w {
        Some(w) => format!("window {} -> {}", fmt_time(w.start), fmt_time(w.end)),
        None => "no valid window".to_string(),
    }
}

/// Times in reports: RFC 3339, UTC, seconds (the one formatter, [`crate::render::escape::time`]).
pub fn fmt_time(t: DateTime<Utc>) -> String {
    crate::render::escape::time(t)
}

/// The ledger action's timeline name.
fn ledger_event(action: &str) -> String {
    match action {
        "grant" => "granted",
        "revoke" => "revoked",
        "release" => "released",
        "verify-failed" => "refused",
        other => other,
    }
    .to_string()
}

/// The events git history holds for each request, then the ledger's, merged
/// in time order (git first at equal times: a landing precedes its grant).
pub fn timeline(trail: &Trail, filter: &Filter) -> Vec<AuditEvent> {
    let h = &trail.history;
    let mut proposers = Proposers { repo: &trail.repo, cache: HashMap::new(), logins: HashMap::new() };
    let mut out: Vec<AuditEvent> = Vec::new();
    for rec in h.requests.values() {
        if filter.request.as_deref().is_some_and(|r| r != rec.id) {
            continue;
        }
        let (requester, role, resources) = match &rec.latest {
            Some(v) => (v.requester.clone(), v.role.clone(), v.resources.clone()),
            None => (String::new(), String::new(), Vec::new()),
        };
        for (i, ev) in rec.events.iter().enumerate() {
            let Some(c) = h.commits.get(ev.commit) else { continue };
            let window = rec.windows.get(i).and_then(|(_, w)| *w);
            let early = rec.ended_early_at.contains(&c.time);
            let (event, detail) = match ev.kind {
                EventKind::Added => {
                    let how = match (c.pr, c.parents, c.approved_by.is_empty()) {
                        (_, 1, true) => "direct push (no merge, no Approved-by trailers)".to_string(),
                        (Some(pr), _, _) => format!("PR #{pr}"),
                        (None, _, _) => "merge".to_string(),
                    };
                    let by = if c.approved_by.is_empty() { String::new() } else { format!(", Approved-by: {}", c.approved_by.join(", ")) };
                    ("landed", format!("{how}{by}; {}", window_text(window)))
                }
                EventKind::Modified => {
                    let what = if early { "narrowed while active (early revocation)" } else { "edited" };
                    let by = if c.approved_by.is_empty() { String::new() } else { format!(", Approved-by: {}", c.approved_by.join(", ")) };
                    ("edited", format!("{what}{by}; {}", window_text(window)))
                }
                EventKind::Removed => {
                    let what = if early { "removed while active (early revocation)" } else { "removed from main" };
                    ("removed", what.to_string())
                }
            };
            let mut e = AuditEvent {
                time: c.time,
                event: event.to_string(),
                request: rec.id.clone(),
                requester: requester.clone(),
                role: role.clone(),
                resources: resources.clone(),
                actor: String::new(),
                commit: Some(c.id.clone()),
                pr: c.pr,
                detail,
                source: "git",
                approvers: c.approved_by.clone(),
                start: window.map(|w| w.start),
                end: window.map(|w| w.end),
                provider: None,
                resource: None,
                principal: None,
                access: None,
                ledger_line: None,
            };
            // The actor only matters to the `--user` filter and the output:
            // resolve it (a commit lookup for merges) after the cheap filters.
            if !filter.matches_but_user(&e) {
                continue;
            }
            e.actor = proposers.of(ev.commit, c);
            if filter.user_matches(&e) {
                out.push(e);
            }
        }
    }
    for (i, l) in trail.ledger.entries.iter().enumerate() {
        let latest = h.requests.get(&l.request).and_then(|r| r.latest.as_ref());
        let fill = |own: &str, f: &dyn Fn(&crate::history::Version) -> String| if own.is_empty() { latest.map(f).unwrap_or_default() } else { own.to_string() };
        let e = AuditEvent {
            time: l.time,
            event: ledger_event(&l.action),
            request: l.request.clone(),
            requester: fill(&l.requester, &|v| v.requester.clone()),
            role: fill(&l.role, &|v| v.role.clone()),
            resources: if l.resources.is_empty() { latest.map(|v| v.resources.clone()).unwrap_or_default() } else { l.resources.clone() },
            actor: "gitgrant".to_string(),
            commit: l.merge_commit.clone(),
            pr: l.pr,
            detail: ledger_detail(l),
            source: "ledger",
            approvers: l.approvers.iter().map(|a| a.login.clone()).collect(),
            start: None,
            end: l.end,
            provider: l.provider.clone(),
            resource: l.resource.clone(),
            principal: l.principal.clone(),
            access: l.access.clone(),
            ledger_line: Some(i + 1),
        };
        if filter.matches(&e) {
            out.push(e);
        }
    }
    // Stable: within one time, git before ledger, and each source in its own order.
    out.sort_by(|a, b| a.time.cmp(&b.time).then((a.source == "ledger").cmp(&(b.source == "ledger"))));
    out
}

fn ledger_detail(l: &Entry) -> String {
    let mut parts = Vec::new();
    if let (Some(p), Some(r), Some(who), Some(acc)) = (&l.provider, &l.resource, &l.principal, &l.access) {
        parts.push(format!("{p} {r}: {who} {acc}"));
    }
    if l.action == "grant" {
        if let Some(end) = l.end {
            parts.push(format!("until {}", fmt_time(end)));
        }
        if let (Some(t), Some(s)) = (&l.tier, l.risk_score) {
            parts.push(format!("tier {t} (score {s})"));
        }
        if l.break_glass && !l.detail.contains("BREAK-GLASS") {
            parts.push("BREAK-GLASS".to_string());
        }
    }
    if l.result == "observed" {
        parts.push("observed".to_string());
    }
    if !l.detail.is_empty() {
        parts.push(l.detail.clone());
    }
    parts.join("; ")
}

/// A period during which a principal held an access, from the ledger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Held {
    pub request: String,
    pub requester: String,
    pub role: String,
    pub privilege: Option<Privilege>,
    pub provider: Option<String>,
    pub resource: String,
    pub principal: String,
    pub access: String,
    /// The whole period: granted (or observed) at `granted`, revoked at `revoked`.
    pub granted: DateTime<Utc>,
    /// None: the ledger records no revocation yet (still open).
    pub revoked: Option<DateTime<Utc>>,
    /// The scheduled end recorded with the grant.
    pub scheduled_end: Option<DateTime<Utc>>,
    /// The period clipped to the window asked about.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub still_open: bool,
    pub break_glass: bool,
    /// Ledger line of the grant.
    pub ledger_line: usize,
}

/// `audit who`: who held `resource` with at least `privilege` at some time in
/// `[from, to)`. Periods come from the ledger (grant → revoke or release);
/// the privilege is the role's under the policies that judged the grant
/// (its base commit), else under main's.
pub fn who(trail: &Trail, resource: &str, privilege: Option<Privilege>, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Held> {
    let mut open: BTreeMap<GrantKey, (usize, DateTime<Utc>)> = BTreeMap::new();
    let mut periods: Vec<(usize, DateTime<Utc>, Option<DateTime<Utc>>)> = Vec::new();
    for (i, e) in trail.ledger.entries.iter().enumerate() {
        // Other resources' lines first, without building their keys.
        if e.resource.as_deref() != Some(resource) {
            continue;
        }
        let Some(k) = e.key() else { continue };
        match (e.action.as_str(), e.result.as_str()) {
            ("grant", "ok" | "observed") => {
                open.entry(k).or_insert((i, e.time));
            }
            ("revoke", "ok" | "observed") | ("release", "ok") => {
                if let Some((g, t)) = open.remove(&k) {
                    periods.push((g, t, Some(e.time)));
                }
            }
            _ => {}
        }
    }
    periods.extend(open.into_values().map(|(g, t)| (g, t, None)));
    let main_policy = trail.shared_policy_at(&trail.main.to_string());
    let mut policies: HashMap<String, Option<Rc<Policy>>> = HashMap::new();
    let mut out = Vec::new();
    for (g, granted, revoked) in periods {
        let e = &trail.ledger.entries[g];
        if granted >= to || revoked.is_some_and(|r| r <= from) {
            continue;
        }
        let base = e.base_commit.as_deref().and_then(|b| policies.entry(b.to_string()).or_insert_with(|| trail.shared_policy_at(b)).as_deref());
        let role_privilege = |p: Option<&Policy>| p.and_then(|p| p.roles.get(&e.role)).map(|r| r.privilege);
        let held_privilege = role_privilege(base).or_else(|| role_privilege(main_policy.as_deref()));
        if let Some(min) = privilege
            && held_privilege.is_none_or(|p| p < min)
        {
            continue;
        }
        out.push(Held {
            request: e.request.clone(),
            requester: e.requester.clone(),
            role: e.role.clone(),
            privilege: held_privilege,
            provider: e.provider.clone(),
            resource: resource.to_string(),
            principal: e.principal.clone().unwrap_or_default(),
            access: e.access.clone().unwrap_or_default(),
            granted,
            revoked,
            scheduled_end: e.end,
            from: granted.max(from),
            to: revoked.map_or(to, |r| r.min(to)),
            still_open: revoked.is_none(),
            break_glass: e.break_glass,
            ledger_line: g + 1,
        });
    }
    out.sort_by(|a, b| a.from.cmp(&b.from).then(a.principal.cmp(&b.principal)).then(a.request.cmp(&b.request)));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn when_is_a_date_a_time_or_a_duration_back_from_now() {
        let now = t("2026-11-23T12:00:00Z");
        assert_eq!(parse_when("2026-10-01", now).unwrap(), t("2026-10-01T00:00:00Z"));
        assert_eq!(parse_when("2026-10-01T08:30:00+02:00", now).unwrap(), t("2026-10-01T06:30:00Z"));
        assert_eq!(parse_when("30d", now).unwrap(), t("2026-10-24T12:00:00Z"));
        assert_eq!(parse_when("1d12h", now).unwrap(), t("2026-11-22T00:00:00Z"));
        assert!(parse_when("yesterday", now).unwrap_err().contains("is not a date"));
        assert!(parse_when("2026-13-01", now).is_err());
    }

    #[test]
    fn ledger_actions_read_as_events() {
        assert_eq!(ledger_event("grant"), "granted");
        assert_eq!(ledger_event("verify-failed"), "refused");
        assert_eq!(ledger_event("alert"), "alert");
    }
}
