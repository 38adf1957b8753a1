//! Monitoring: provider activity for active grants checked against the policy's monitor rules.
//!
//! Design:
//! - Activity comes through the [`activity::ActivitySource`] trait: CloudTrail
//!   `LookupEvents` for `aws-iam`, a JSON-lines file for `local`, an
//!   in-memory list in tests. Rules are applied by pure functions
//!   ([`rules::evaluate`], [`rules::usage`]); this module only gathers inputs
//!   and carries out what they decide.
//! - What is watched: every active entitlement of the desired state, plus
//!   grants the ledger recorded whose window ended within `monitor.lookback`
//!   (for activity after the window, and the granted-versus-used report).
//! - A rule with `revoke: true` revokes at the provider at once and records
//!   a *sticky* `revoke` in the ledger, which desired state honours: the
//!   request is not granted again while the revoked version is on main
//!   (the same mechanism `gitgrant revoke --now` uses).
//! - Each finding is recorded once (`action: finding`, keyed by rule,
//!   request, resource and first event id), so a scheduled run does not
//!   count the same evidence twice; the `monitor_findings` risk factor
//!   counts these lines per requester.
//! - Break-glass grants whose review is overdue are refused by desired state
//!   ([`breakglass`]); monitor turns those refusals into findings and revokes.

pub mod activity;
pub mod breakglass;
pub mod issue;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::ledger::{Entry, Ledger};
use crate::model::policy::{Policy, ProviderKind};
use crate::model::request::Window;
use crate::provider::{ProviderContext, build};
use crate::reconcile::Desired;
use activity::{ActivityEvent, ActivitySource, source_for};
use rules::{EventRef, Finding, FindingKind, Usage, Watched, evaluate, usage};

/// What a revocation at one resource did.
#[derive(Debug, Clone, Serialize)]
pub struct Revocation {
    pub request: String,
    pub provider: ProviderKind,
    pub resource: String,
    pub principal: String,
    pub access: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Other requests the revoked access served (a shared database role):
    /// they lost it too, until the next reconcile grants it back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_with: Vec<String>,
}

/// Revokes, at each of `resources`, every managed grant whose marker names
/// `request`. A grant shared with other requests (one database role for two
/// overlapping requests) goes too; the next reconcile grants it back for
/// the others. Provider errors are returned per resource, never dropped.
pub async fn revoke_request(repo: &Path, policy: &Policy, request: &str, resources: &[String], at: DateTime<Utc>) -> Vec<Revocation> {
    let mut out = Vec::new();
    for name in resources {
        let Some(res) = policy.resources.get(name) else { continue };
        let failed = |error: String| Revocation {
            request: request.into(),
            provider: res.provider,
            resource: name.clone(),
            principal: String::new(),
            access: String::new(),
            ok: false,
            error: Some(error),
            shared_with: Vec::new(),
        };
        let provider = match build(&ProviderContext { repo, resource: name, config: res, now: at }).await {
            Ok(p) => p,
            Err(e) => {
                out.push(failed(e.to_string()));
                continue;
            }
        };
        let held = match provider.list().await {
            Ok(h) => h,
            Err(e) => {
                out.push(failed(e.to_string()));
                continue;
            }
        };
        for h in held.iter().filter(|h| h.requests.contains(request)) {
            let r = provider.revoke(h).await;
            out.push(Revocation {
                request: request.into(),
                provider: res.provider,
                resource: name.clone(),
                principal: h.access.principal.clone(),
                access: h.access.access.clone(),
                ok: r.is_ok(),
                error: r.err().map(|e| e.to_string()),
                shared_with: h.requests.iter().filter(|x| x.as_str() != request).cloned().collect(),
            });
        }
    }
    out
}

/// Who a request was for, for ledger lines about it.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub request: String,
    pub requester: String,
    pub role: String,
    pub resources: Vec<String>,
}

/// Ledger lines for a sticky revocation: one per grant revoked (or failed),
/// or one without a grant when nothing was held, so the hold is recorded.
pub fn revocation_entries(meta: &RequestMeta, revs: &[Revocation], detail: &str, at: DateTime<Utc>) -> Vec<Entry> {
    let base = Entry {
        time: at,
        action: "revoke".into(),
        request: meta.request.clone(),
        requester: meta.requester.clone(),
        role: meta.role.clone(),
        resources: meta.resources.clone(),
        result: "ok".into(),
        detail: detail.to_string(),
        sticky: true,
        ..Entry::default()
    };
    if revs.is_empty() {
        return vec![Entry { detail: format!("{detail}; no grant was held at the providers (recorded so reconcile does not grant it)"), ..base }];
    }
    let mut out = Vec::new();
    for r in revs {
        let mut e = Entry {
            provider: Some(r.provider.as_str().into()),
            resource: Some(r.resource.clone()),
            principal: (!r.principal.is_empty()).then(|| r.principal.clone()),
            access: (!r.access.is_empty()).then(|| r.access.clone()),
            ..base.clone()
        };
        if !r.ok {
            e.action = "revoke-failed".into();
            e.result = "failed".into();
            e.detail = format!("{detail}: {}", r.error.clone().unwrap_or_default());
        }
        // The shared access is gone for the other requests too: their share is
        // closed here (not sticky), and the next reconcile records their re-grant.
        let shares: Vec<Entry> = if r.ok {
            r.shared_with
                .iter()
                .map(|other| Entry {
                    request: other.clone(),
                    requester: String::new(),
                    role: String::new(),
                    resources: vec![r.resource.clone()],
                    sticky: false,
                    detail: format!(
                        "the access was shared with {}, which was revoked ({detail}); {other} is without it until the next reconcile grants it again",
                        meta.request
                    ),
                    ..e.clone()
                })
                .collect()
        } else {
            Vec::new()
        };
        out.push(e);
        out.extend(shares);
    }
    out
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Carry out `revoke: true` rules (off: report only).
    pub revoke: bool,
    /// Compute granted-versus-used for each watched grant.
    pub report: bool,
}

/// Everything one monitor run found and did.
#[derive(Debug, Default, Serialize)]
pub struct MonitorRun {
    pub at: DateTime<Utc>,
    pub watched: usize,
    pub findings: Vec<Finding>,
    /// Keys of findings not recorded before this run.
    pub new: Vec<String>,
    pub revocations: Vec<Revocation>,
    pub usage: Vec<Usage>,
    /// Resources whose provider has no activity source (not monitored).
    pub unmonitored: Vec<String>,
    pub errors: Vec<String>,
    pub ledger: Vec<Entry>,
}

/// The grants to watch at `desired.at`: active entitlements, and grants the
/// ledger recorded whose window ended within the lookback.
pub fn watched(desired: &Desired, ledger: &Ledger) -> Vec<Watched> {
    let at = desired.at;
    let mut out: Vec<Watched> = desired
        .entitlements
        .iter()
        .map(|e| Watched {
            request: e.request.clone(),
            requester: e.requester.clone(),
            role: e.role.clone(),
            resources: e.resources.clone(),
            resource: e.resource.clone(),
            provider: e.provider,
            principal: e.principal.clone(),
            window: e.window,
            active: true,
        })
        .collect();
    let mut seen: BTreeSet<(String, String)> = out.iter().map(|w| (w.request.clone(), w.resource.clone())).collect();
    let since = at - TimeDelta::seconds(desired.policy.monitor.lookback.secs());
    for e in ledger.entries.iter().filter(|e| e.action == "grant" && matches!(e.result.as_str(), "ok" | "observed")) {
        let (Some(resource), Some(principal), Some(provider)) = (&e.resource, &e.principal, &e.provider) else { continue };
        if !seen.insert((e.request.clone(), resource.clone())) {
            continue;
        }
        let Some(rec) = desired.history.requests.get(&e.request) else { continue };
        let Some(mut window) = rec.windows.iter().rev().find_map(|(_, w)| *w) else { continue };
        if let Some(removed) = rec.removed_at.filter(|r| *r < window.end) {
            window.end = removed.max(window.start);
        }
        let Some(provider) = ProviderKind::ALL.into_iter().find(|p| p.as_str() == provider) else { continue };
        if window.end > since && window.end <= at && window.start < at {
            out.push(Watched {
                request: e.request.clone(),
                requester: e.requester.clone(),
                role: e.role.clone(),
                resources: e.resources.clone(),
                resource: resource.clone(),
                provider,
                principal: principal.clone(),
                window,
                active: false,
            });
        }
    }
    out.sort_by(|a, b| (&a.request, &a.resource).cmp(&(&b.request, &b.resource)));
    out
}

/// The activity sources a run uses, by resource; tests inject fakes.
pub type Sources = BTreeMap<String, Option<Box<dyn ActivitySource>>>;

/// Builds the source for every resource of the policy.
pub async fn sources_for(repo: &Path, policy: &Policy) -> Sources {
    let mut out = BTreeMap::new();
    for (name, res) in &policy.resources {
        out.insert(name.clone(), source_for(repo, name, res).await);
    }
    out
}

/// One monitor run: read activity, apply the rules, revoke where a rule
/// says so, and return the ledger lines to record (the caller appends them).
pub async fn run(repo: &Path, desired: &Desired, ledger: &Ledger, sources: &Sources, opts: &Options) -> MonitorRun {
    let at = desired.at;
    let monitor = &desired.policy.monitor;
    let mut out = MonitorRun { at, ..MonitorRun::default() };
    let list = watched(desired, ledger);
    out.watched = list.len();
    let lookback = TimeDelta::seconds(monitor.lookback.secs());
    let mut unmonitored = BTreeSet::new();
    for w in &list {
        let Some(Some(source)) = sources.get(&w.resource) else {
            unmonitored.insert(format!("{} ({})", w.resource, w.provider));
            continue;
        };
        let end = if w.active { at } else { (w.window.end + lookback).min(at) };
        let events: Vec<ActivityEvent> = match source.events(&w.principal, w.window.start, end).await {
            Ok(e) => e,
            Err(e) => {
                out.errors.push(e.to_string());
                continue;
            }
        };
        out.findings.extend(evaluate(w, &events, monitor));
        if opts.report {
            out.usage.push(usage(w, &events));
        }
    }
    out.unmonitored = unmonitored.into_iter().collect();
    // Break-glass grants refused for want of review: report and revoke.
    for r in desired.refused.iter().filter(|r| r.reason.starts_with(breakglass::UNRATIFIED)) {
        for resource in &r.resources {
            out.findings.push(Finding {
                rule: breakglass::RULE.into(),
                kind: FindingKind::BreakGlassUnreviewed,
                request: r.request.clone(),
                requester: r.requester.clone(),
                role: r.role.clone(),
                resource: resource.clone(),
                provider: desired.policy.resources.get(resource).map_or(ProviderKind::Local, |x| x.provider),
                principal: String::new(),
                revoke: true,
                message: r.reason.clone(),
                events: Vec::<EventRef>::new(),
            });
        }
    }
    let recorded: BTreeSet<String> = ledger.entries.iter().filter(|e| e.action == "finding").filter_map(|e| finding_key(&e.detail)).collect();
    for f in &out.findings {
        let key = f.key();
        if recorded.contains(&key) || out.new.contains(&key) {
            continue;
        }
        out.new.push(key.clone());
        out.ledger.push(Entry {
            time: at,
            action: "finding".into(),
            request: f.request.clone(),
            requester: f.requester.clone(),
            role: f.role.clone(),
            provider: Some(f.provider.as_str().into()),
            resource: Some(f.resource.clone()),
            principal: (!f.principal.is_empty()).then(|| f.principal.clone()),
            result: if f.revoke { "revoke".into() } else { "alert".into() },
            detail: format!("[{key}] rule `{}`: {}. Evidence: {}", f.rule, f.message, f.evidence()),
            ..Entry::default()
        });
    }
    if opts.revoke {
        let holds = ledger.sticky_revocations();
        let mut done: BTreeSet<String> = BTreeSet::new();
        for f in out.findings.iter().filter(|f| f.revoke) {
            if !done.insert(f.request.clone()) {
                continue;
            }
            let start = list.iter().find(|w| w.request == f.request).map(|w| w.window.start);
            if holds.get(&f.request).is_some_and(|t| start.is_none_or(|s| *t >= s)) {
                continue;
            }
            let meta = request_meta(desired, &f.request, f);
            let revs = revoke_request(repo, &desired.policy, &f.request, &meta.resources, at).await;
            let detail = format!("monitor: rule `{}` fired ({}). Evidence: {}", f.rule, f.message, f.evidence());
            out.ledger.extend(revocation_entries(&meta, &revs, &detail, at));
            out.revocations.extend(revs);
        }
    }
    out
}

/// `[key] ...` → `key`.
fn finding_key(detail: &str) -> Option<String> {
    detail.strip_prefix('[').and_then(|d| d.split_once(']')).map(|(k, _)| k.to_string())
}

fn request_meta(desired: &Desired, id: &str, f: &Finding) -> RequestMeta {
    let resources = desired.history.requests.get(id).and_then(|r| r.latest.as_ref()).map(|v| v.resources.clone()).unwrap_or_else(|| vec![f.resource.clone()]);
    RequestMeta { request: id.into(), requester: f.requester.clone(), role: f.role.clone(), resources }
}

/// A window for display: `START to END`.
pub fn window_text(w: &Window) -> String {
    format!("{} to {}", crate::model::stamp(&w.start), crate::model::stamp(&w.end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_are_recorded_as_sticky_holds_even_when_nothing_was_held_or_a_call_failed() {
        let meta = RequestMeta { request: "r1".into(), requester: "alice".into(), role: "ops".into(), resources: vec!["db".into()] };
        let at = Utc::now();
        let none = revocation_entries(&meta, &[], "why", at);
        assert_eq!(none.len(), 1);
        assert!(none[0].sticky && none[0].action == "revoke" && none[0].key().is_none());
        let failed = Revocation {
            request: "r1".into(),
            provider: ProviderKind::Local,
            resource: "db".into(),
            principal: String::new(),
            access: String::new(),
            ok: false,
            error: Some("boom".into()),
            shared_with: Vec::new(),
        };
        let e = revocation_entries(&meta, &[failed], "why", at);
        assert_eq!((e[0].action.as_str(), e[0].result.as_str(), e[0].sticky), ("revoke-failed", "failed", true));
        assert_eq!(e[0].detail, "why: boom");
        let ledger_holds = |entries: Vec<Entry>| {
            let mut l = Ledger::empty();
            l.entries = entries;
            l.sticky_revocations().contains_key("r1")
        };
        assert!(ledger_holds(none));
        assert!(ledger_holds(e));
    }
}
