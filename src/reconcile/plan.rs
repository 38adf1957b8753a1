//! The plan: desired accesses against what the providers hold. Pure.
//!
//! Works on accesses, not requests: when two active requests need the same
//! access (the same database role for the same login), it is granted once,
//! carries both request ids in its marker, and is revoked only when no active
//! request needs it any more. Ending one of them is a `keep` whose reason
//! says who still needs it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::desired::{Desired, Entitlement, Refusal};
use crate::model::policy::ProviderKind;
use crate::provider::{Access, GrantSpec, Held};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Revoke,
    Grant,
    Keep,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Grant => "grant",
            ActionKind::Revoke => "revoke",
            ActionKind::Keep => "keep",
        }
    }
}

/// One step of the plan, in the shape `plan --format json` documents.
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    pub action: ActionKind,
    /// The request this is about (the first, when an access serves several).
    pub request: String,
    /// Every request the access serves (grant, keep) or served (revoke).
    pub requests: Vec<String>,
    pub provider: ProviderKind,
    pub resource: String,
    pub principal: String,
    pub access: String,
    /// When the access ends (grant, keep): the latest end among its requests.
    pub end: Option<DateTime<Utc>>,
    pub reason: String,
    /// A `keep` whose marker (request ids, end) must be rewritten.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub update_marker: bool,
    #[serde(skip)]
    pub spec: Option<GrantSpec>,
    #[serde(skip)]
    pub held: Option<Held>,
    /// The entitlements behind a grant or keep, for the ledger.
    #[serde(skip)]
    pub entitlements: Vec<Entitlement>,
}

/// A resource whose provider could not be built or listed: nothing is
/// planned for it, and the run fails naming it.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderFailure {
    pub provider: ProviderKind,
    pub resource: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub at: DateTime<Utc>,
    pub main: String,
    pub actions: Vec<Action>,
    pub refused: Vec<Refusal>,
    pub failures: Vec<ProviderFailure>,
    /// Per resource: does the provider end access by itself at the end time?
    pub native_expiry: BTreeMap<String, bool>,
    /// Unapproved rule changes in force (GG310): nothing new is granted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rule_changes_in_force: Vec<crate::engine::trust::InForce>,
    /// Things to look at that change nothing (an overdue run).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Requests whose whole window passed between two runs: never granted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missed: Vec<Missed>,
}

/// A request whose window opened and closed between two runs.
#[derive(Debug, Clone, Serialize)]
pub struct Missed {
    pub request: String,
    pub requester: String,
    pub role: String,
    pub resources: Vec<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// An open grant whose end passed longer ago than this means the runs are
/// overdue (or failing): `plan` and `reconcile` warn.
pub const OVERDUE_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(1);

impl Action {
    /// An action on `access` with no provider payload attached yet.
    fn new(action: ActionKind, access: &Access, requests: Vec<String>, end: Option<DateTime<Utc>>, reason: String) -> Action {
        Action {
            action,
            request: requests.first().cloned().unwrap_or_default(),
            requests,
            provider: access.provider,
            resource: access.resource.clone(),
            principal: access.principal.clone(),
            access: access.access.clone(),
            end,
            reason,
            update_marker: false,
            spec: None,
            held: None,
            entitlements: Vec::new(),
        }
    }
}

impl Plan {
    pub fn changes(&self) -> usize {
        self.actions.iter().filter(|a| a.action != ActionKind::Keep || a.update_marker).count()
    }

    /// The part of the plan about one resource (`Some`: its actions, failure
    /// and expiry, no refusals) or about none (`None`: the refusals only), to
    /// record each part as soon as it is done.
    pub fn part(&self, resource: Option<&str>) -> Plan {
        let mine = |r: &str| resource == Some(r);
        Plan {
            at: self.at,
            main: self.main.clone(),
            actions: self.actions.iter().filter(|a| mine(&a.resource)).cloned().collect(),
            refused: if resource.is_none() { self.refused.clone() } else { Vec::new() },
            failures: self.failures.iter().filter(|f| mine(&f.resource)).cloned().collect(),
            native_expiry: self.native_expiry.iter().filter(|(r, _)| mine(r)).map(|(r, n)| (r.clone(), *n)).collect(),
            rule_changes_in_force: if resource.is_none() { self.rule_changes_in_force.clone() } else { Vec::new() },
            warnings: Vec::new(),
            missed: if resource.is_none() { self.missed.clone() } else { Vec::new() },
        }
    }
}

/// What the planner needs from each resource's provider.
pub struct ResourceState<'a> {
    pub provider: ProviderKind,
    /// `access_for` of the provider: the access string for (request, grant).
    pub access_for: &'a super::AccessFn,
    pub native_expiry: bool,
    /// The managed grants the provider holds, or why they could not be listed.
    pub held: Result<Vec<Held>, String>,
}

/// Builds the plan from the desired state and each resource's state.
pub fn make_plan(desired: &Desired, resources: &BTreeMap<String, ResourceState<'_>>) -> Plan {
    let at = desired.at;
    let mut failures = Vec::new();
    let mut refused = desired.refused.clone();
    let mut native_expiry = BTreeMap::new();

    let mut actions = Vec::new();
    let mut held_by_access: BTreeMap<Access, Held> = BTreeMap::new();
    for (name, state) in resources {
        native_expiry.insert(name.clone(), state.native_expiry);
        match &state.held {
            Ok(list) => {
                for h in list {
                    held_by_access.insert(h.access.clone(), h.clone());
                }
            }
            Err(err) => failures.push(ProviderFailure { provider: state.provider, resource: name.clone(), error: err.clone() }),
        }
    }
    let failed: BTreeSet<&str> = failures.iter().map(|f| f.resource.as_str()).collect();

    // Desired accesses, grouped: one access may serve several requests.
    let mut wanted: BTreeMap<Access, Vec<&Entitlement>> = BTreeMap::new();
    for e in &desired.entitlements {
        // A resource whose provider failed is reported once, as a failure.
        let Some(state) = resources.get(&e.resource).filter(|_| !failed.contains(e.resource.as_str())) else {
            continue;
        };
        match (state.access_for)(&e.request, &e.grant) {
            Ok(access) => {
                let key = Access { provider: e.provider, resource: e.resource.clone(), principal: e.principal.clone(), access };
                wanted.entry(key).or_default().push(e);
            }
            Err(err) => refused.push(Refusal {
                request: e.request.clone(),
                requester: e.requester.clone(),
                role: e.role.clone(),
                resources: e.resources.clone(),
                commit: None,
                reason: format!("{} {}: {err}", e.provider, e.resource),
            }),
        }
    }

    // A per-request object at the provider attached to nobody (a run killed
    // between creating an IAM policy and attaching it) that a wanted access
    // names: the grant adopts it (attaches it, brings it up to date) instead of
    // a revoke deleting it and a grant creating it again.
    let mut adopted: BTreeSet<Access> = BTreeSet::new();
    for access in wanted.keys() {
        let orphan = Access { principal: String::new(), ..access.clone() };
        if !access.principal.is_empty() && !held_by_access.contains_key(access) && held_by_access.remove(&orphan).is_some() {
            adopted.insert(access.clone());
        }
    }

    for (access, ents) in &wanted {
        if failed.contains(access.resource.as_str()) {
            continue;
        }
        let requests: BTreeSet<String> = ents.iter().map(|e| e.request.clone()).collect();
        let end = ents.iter().map(|e| e.window.end).max().unwrap_or(at);
        let first = ents.first().copied();
        let spec = GrantSpec {
            access: access.clone(),
            requests: requests.clone(),
            end,
            role: first.map(|e| e.role.clone()).unwrap_or_default(),
            grant: first.map(|e| e.grant.clone()).unwrap_or_default(),
            document: first.and_then(|e| e.document.clone()),
        };
        let ids: Vec<String> = requests.iter().cloned().collect();
        let (kind, update, reason) = match held_by_access.remove(access) {
            None if adopted.contains(access) => {
                (ActionKind::Grant, false, format!("{}; adopts the unattached object an interrupted run left at the provider", grant_reason(ents)))
            }
            None => (ActionKind::Grant, false, grant_reason(ents)),
            Some(h) if h.requests == requests && h.end == Some(end) => {
                (ActionKind::Keep, false, format!("needed by {} until {}", ids.join(", "), crate::model::stamp(&end)))
            }
            Some(h) => {
                let gone: Vec<&String> = h.requests.difference(&requests).collect();
                let reason = if gone.is_empty() {
                    format!("needed by {} until {}; marker updated", ids.join(", "), crate::model::stamp(&end))
                } else {
                    let why: Vec<String> = gone.iter().map(|r| format!("{r} {}", ended_reason(desired, r))).collect();
                    format!("{}; still needed by {} until {}, so not revoked", why.join("; "), ids.join(", "), crate::model::stamp(&end))
                };
                (ActionKind::Keep, true, reason)
            }
        };
        actions.push(Action {
            update_marker: update,
            spec: Some(spec),
            entitlements: ents.iter().map(|e| (*e).clone()).collect(),
            ..Action::new(kind, access, ids, Some(end), reason)
        });
    }

    // Everything held that no active request needs.
    for (access, h) in held_by_access {
        let ids: Vec<String> = h.requests.iter().cloned().collect();
        let reason = if ids.is_empty() {
            "a managed grant that no request explains".to_string()
        } else {
            ids.iter().map(|r| format!("{r} {}", ended_reason(desired, r))).collect::<Vec<_>>().join("; ")
        };
        let end = h.end;
        actions.push(Action { held: Some(h), ..Action::new(ActionKind::Revoke, &access, ids, end, reason) });
    }
    actions.sort_by(|a, b| (a.action, &a.resource, &a.principal, &a.access).cmp(&(b.action, &b.resource, &b.principal, &b.access)));
    refused.sort_by(|a, b| a.request.cmp(&b.request));
    let (warnings, missed) = (overdue(desired), missed(desired));
    Plan { at, main: desired.main.clone(), actions, refused, failures, native_expiry, rule_changes_in_force: Vec::new(), warnings, missed }
}

/// Warns when the ledger holds grants open long after their end: no
/// successful run has revoked them since.
fn overdue(desired: &Desired) -> Vec<String> {
    let at = desired.at;
    let late: Vec<DateTime<Utc>> =
        desired.ledger.open_until(&["revoke", "release"]).values().flatten().copied().filter(|end| *end + OVERDUE_AFTER < at).collect();
    let Some(oldest) = late.iter().min() else { return Vec::new() };
    let by = crate::model::duration::Duration::from_secs((at - *oldest).num_seconds().max(0) / 60 * 60);
    vec![format!(
        "the ledger holds {} grant(s) open past their end, the oldest ended {by} ago ({}): reconcile has not run successfully since, or its revokes failed; check the scheduled workflow",
        late.len(),
        crate::model::stamp(oldest)
    )]
}

/// Requests on main whose current window started after the ledger's first
/// line and ended before `desired.at` without any ledger line about them: a
/// window that opened and closed between two runs (recorded as `missed`).
fn missed(desired: &Desired) -> Vec<Missed> {
    let Some(first) = desired.ledger.entries.iter().map(|e| e.time).min() else { return Vec::new() };
    let mentioned: BTreeSet<&str> = desired.ledger.entries.iter().map(|e| e.request.as_str()).collect();
    let mut out = Vec::new();
    for (id, rec) in &desired.history.requests {
        let (Some(w), Some(v)) = (rec.window_at(desired.at), rec.latest.as_ref()) else { continue };
        if rec.removed_at.is_some() || w.end > desired.at || w.start < first || mentioned.contains(id.as_str()) {
            continue;
        }
        out.push(Missed {
            request: id.clone(),
            requester: v.requester.clone(),
            role: v.role.clone(),
            resources: v.resources.clone(),
            start: w.start,
            end: w.end,
        });
    }
    out
}

fn grant_reason(ents: &[&Entitlement]) -> String {
    ents.iter()
        .map(|e| {
            let who: Vec<&str> = e.evidence.approvers.iter().map(|a| a.login.as_str()).collect();
            let by = if who.is_empty() { "no approvals required".to_string() } else { format!("approved by {}", who.join(", ")) };
            let bg = if e.break_glass { " [BREAK-GLASS]" } else { "" };
            format!(
                "{}{bg}: {by} in {}; window {} to {}",
                e.request,
                short(&e.evidence.landing_commit),
                crate::model::stamp(&e.window.start),
                crate::model::stamp(&e.window.end)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why request `id` no longer needs its access at `desired.at`.
fn ended_reason(desired: &Desired, id: &str) -> String {
    if let Some(r) = desired.refused.iter().find(|r| r.request == id) {
        return format!("refused: {}", r.reason);
    }
    let Some(rec) = desired.history.requests.get(id) else {
        return "is not on main".to_string();
    };
    if let Some(t) = rec.removed_at {
        return format!("was removed from main at {}", crate::model::stamp(&t));
    }
    match rec.window_at(desired.at) {
        Some(w) if w.end <= desired.at => {
            if rec.ended_early_at.iter().any(|t| *t <= desired.at) {
                format!("was shortened; it ended at {}", crate::model::stamp(&w.end))
            } else {
                format!("ended at {}", crate::model::stamp(&w.end))
            }
        }
        Some(w) if w.start > desired.at => format!("starts later ({})", crate::model::stamp(&w.start)),
        Some(_) => "no longer includes this resource".to_string(),
        None => "has no valid window".to_string(),
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(10)]
}
