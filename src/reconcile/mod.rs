//! Reconcile: make the providers match main. load → desired → plan → execute → record.
//!
//! `desired` reads git only; `plan` is a pure diff of desired against what
//! each provider lists; `execute` calls the providers; `record` turns what
//! happened into ledger lines. `plan` and `reconcile` share everything up to
//! execution, so the plan shown is the plan run.

pub mod desired;
pub mod execute;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use desired::{Desired, DesiredError, desired_state};
pub use execute::{ExecOptions, Outcome, execute, execute_by_resource, with_retry};
pub use plan::{Action, ActionKind, Plan, ResourceState, make_plan};

use crate::ledger::{Entry, GrantKey, Ledger};
use crate::model::policy::{ProviderKind, Resource};
use crate::provider::{Provider, ProviderContext, build};
use crate::source::GitTree;
use crate::validate::policy::load_policy;

/// Builds a provider for every resource of the current policies. A resource
/// whose provider cannot be built is returned as an error for the plan.
pub async fn providers_for(repo_dir: &Path, desired: &Desired) -> BTreeMap<String, Result<Arc<dyn Provider>, String>> {
    let mut out = BTreeMap::new();
    for (name, res) in &desired.policy.resources {
        let ctx = ProviderContext { repo: repo_dir, resource: name, config: res, now: desired.at };
        out.insert(name.clone(), build(&ctx).await.map(Arc::from).map_err(|e| e.detail()));
    }
    out
}

/// Resources removed from `policies/` while the ledger still records grants
/// open on them. Their provider is rebuilt from the policies of the latest
/// commit a ledger entry for them names (the landing or base commit), so those
/// grants are still listed and revoked rather than forgotten. When no such
/// policy is found, the resource is a provider failure (exit 1), naming it.
fn retired_resources(repo_dir: &Path, desired: &Desired) -> BTreeMap<String, (ProviderKind, Result<Resource, String>)> {
    let mut out = BTreeMap::new();
    let Ok(repo) = git2::Repository::open(repo_dir) else { return out };
    let ledger = &desired.ledger;
    let names: BTreeSet<String> = ledger.open_grants().into_iter().map(|k| k.resource).filter(|r| !desired.policy.resources.contains_key(r)).collect();
    for name in names {
        let mentions = ledger.entries.iter().rev().filter(|e| e.resource.as_deref() == Some(name.as_str()));
        let kind = mentions
            .clone()
            .find_map(|e| e.provider.clone())
            .and_then(|p| serde_json::from_value(serde_json::Value::String(p)).ok())
            .unwrap_or(ProviderKind::Local);
        let commits = mentions.flat_map(|e| [e.merge_commit.clone(), e.base_commit.clone()]).flatten();
        let config = commits
            .filter_map(|c| git2::Oid::from_str(&c).ok())
            .find_map(|oid| {
                let tree = GitTree::new(&repo, oid).ok()?;
                load_policy(&tree).policy.resources.get(&name).cloned()
            })
            .ok_or_else(|| {
                format!("the ledger records grants open on `{name}`, which is no longer in policies/, and no earlier policy with its config was found; restore the resource in policies/ until its grants are revoked, or revoke them by hand")
            });
        out.insert(name, (kind, config));
    }
    out
}

/// The chain of trust applied to a plan: walks main's rule changes (judged by
/// GitHub reviews with `github`, else by trailers) and, while an unapproved
/// one is in force, turns new grants into refusals (see
/// [`crate::engine::trust::TrustReport::restrict_plan`]).
pub async fn enforce_trust(
    repo_dir: &Path,
    plan: &mut Plan,
    trust_root: Option<&str>,
    github: Option<&dyn crate::github::GitHubApi>,
) -> Result<Option<crate::engine::trust::TrustReport>, crate::engine::trust::TrustError> {
    let repo = git2::Repository::open(repo_dir)?;
    let main = git2::Oid::from_str(&plan.main)?;
    let report = crate::engine::trust::evaluate(&repo, main, trust_root, github).await?;
    report.restrict_plan(plan);
    Ok(Some(report))
}

/// A provider's `access_for`, detached from the provider for the pure planner.
pub type AccessFn = dyn Fn(&str, &serde_json::Value) -> Result<String, String>;

/// Lists every provider and makes the plan. Providers that only exist in
/// the plan's failure list are not returned.
pub async fn prepare(
    repo_dir: &Path,
    at: DateTime<Utc>,
    github: Option<&dyn crate::github::GitHubApi>,
) -> Result<(Desired, BTreeMap<String, Arc<dyn Provider>>, Plan), DesiredError> {
    prepare_with_options(repo_dir, at, github, &ExecOptions::from_env()).await
}

/// [`prepare`] with explicit retry and time bounds. Every resource is listed
/// at once, each under `opts.list_timeout`: a provider that hangs becomes a
/// failure of its resource (named in the plan) and delays the others by at
/// most that bound.
pub async fn prepare_with_options(
    repo_dir: &Path,
    at: DateTime<Utc>,
    github: Option<&dyn crate::github::GitHubApi>,
    opts: &ExecOptions,
) -> Result<(Desired, BTreeMap<String, Arc<dyn Provider>>, Plan), DesiredError> {
    let desired = desired_state(repo_dir, at, github).await?;
    let mut built = providers_for(repo_dir, &desired).await;
    let retired = retired_resources(repo_dir, &desired);
    for (name, (_, res)) in &retired {
        let p = match res {
            Ok(res) => {
                let ctx = ProviderContext { repo: repo_dir, resource: name, config: res, now: desired.at };
                build(&ctx).await.map(Arc::from).map_err(|e| format!("{e} (resource removed from policies/ with grants still open)"))
            }
            Err(e) => Err(e.clone()),
        };
        built.insert(name.clone(), p);
    }
    let listings = futures::future::join_all(built.into_iter().map(|(name, p)| async move {
        let listed = match &p {
            // A transient listing error (a dropped connection) must not fail the resource for the run.
            Ok(p) => match tokio::time::timeout(opts.list_timeout, with_retry(opts, || p.list())).await {
                Ok((r, _)) => r.map_err(|e| e.detail()),
                Err(_) => Err(format!(
                    "listing did not finish within {} s (the provider accepts connections but does not answer?); nothing was planned here this run",
                    opts.list_timeout.as_secs()
                )),
            },
            Err(e) => Err(e.clone()),
        };
        (name, p, listed)
    }))
    .await;
    let mut providers = BTreeMap::new();
    let mut held = BTreeMap::new();
    let mut ledger_marker: Option<LedgerMarker> = None;
    for (name, p, listed) in listings {
        let listed = match (listed, &p) {
            (Ok(mut list), Ok(p)) if !p.stores_marker() => {
                let marker = ledger_marker.get_or_insert_with(|| marker_from_ledger(&desired.ledger));
                for h in &mut list {
                    if let Some((requests, end)) = marker.get(&(h.access.resource.clone(), h.access.principal.clone(), h.access.access.clone())) {
                        h.requests.clone_from(requests);
                        h.end = *end;
                    }
                }
                Ok(list)
            }
            (listed, _) => listed,
        };
        held.insert(name.clone(), listed);
        if let Ok(p) = p {
            providers.insert(name, p);
        }
    }
    let access_fns: BTreeMap<String, Box<AccessFn>> = desired
        .policy
        .resources
        .keys()
        .map(|name| {
            let p = providers.get(name).cloned();
            let f: Box<AccessFn> = Box::new(move |req: &str, grant: &serde_json::Value| match &p {
                Some(p) => p.access_for(req, grant).map_err(|e| e.detail()),
                None => Err("provider unavailable".to_string()),
            });
            (name.clone(), f)
        })
        .collect();
    let mut states = BTreeMap::new();
    for (name, res) in &desired.policy.resources {
        let (Some(f), Some(h)) = (access_fns.get(name), held.remove(name)) else { continue };
        let native = providers.get(name).is_some_and(|p| p.native_expiry());
        states.insert(name.clone(), ResourceState { provider: res.provider, access_for: f.as_ref(), native_expiry: native, held: h });
    }
    // Retired resources: nothing is wanted there, so everything held is revoked.
    let none: Box<AccessFn> = Box::new(|_: &str, _: &serde_json::Value| Err("the resource was removed from policies/".to_string()));
    for (name, (kind, _)) in &retired {
        let Some(h) = held.remove(name) else { continue };
        let kind = *kind;
        let native = providers.get(name).is_some_and(|p| p.native_expiry());
        states.insert(name.clone(), ResourceState { provider: kind, access_for: none.as_ref(), native_expiry: native, held: h });
    }
    let mut plan = make_plan(&desired, &states);
    refuse_over_limits(&mut plan, &providers).await;
    Ok((desired, providers, plan))
}

/// Grants that cannot fit their provider's limits (an IAM copy above 6,144
/// characters) become refusals of that request on that resource, before any
/// provider call changes anything. A limit check that cannot read (the
/// source policy is missing) leaves the grant, which reports the error.
async fn refuse_over_limits(plan: &mut Plan, providers: &BTreeMap<String, Arc<dyn Provider>>) {
    let mut kept = Vec::with_capacity(plan.actions.len());
    for a in std::mem::take(&mut plan.actions) {
        let reason = match (a.action, &a.spec, providers.get(&a.resource)) {
            (ActionKind::Grant, Some(spec), Some(p)) => p.exceeds_limits(spec).await.ok().flatten(),
            _ => None,
        };
        let Some(reason) = reason else {
            kept.push(a);
            continue;
        };
        for e in &a.entitlements {
            plan.refused.push(desired::Refusal {
                request: e.request.clone(),
                requester: e.requester.clone(),
                role: e.role.clone(),
                resources: vec![a.resource.clone()],
                commit: Some(e.evidence.landing_commit.clone()),
                reason: reason.clone(),
            });
        }
    }
    plan.actions = kept;
    plan.refused.sort_by(|a, b| a.request.cmp(&b.request));
}

/// (resource, principal, access) -> (request ids, latest end), as the ledger records them.
type LedgerMarker = BTreeMap<(String, String, String), (BTreeSet<String>, Option<DateTime<Utc>>)>;

/// For providers that cannot store a marker (see [`Provider::stores_marker`]),
/// the ledger stands in for it: per (resource, principal, access), the
/// requests granted and not yet revoked or released, and the latest end
/// recorded for them. Empty when there is no ledger yet.
fn marker_from_ledger(ledger: &Ledger) -> LedgerMarker {
    let open = ledger.open_until(&["revoke", "release"]);
    let mut out = LedgerMarker::new();
    for (k, end) in open {
        let slot = out.entry((k.resource, k.principal, k.access)).or_default();
        slot.0.insert(k.request);
        slot.1 = slot.1.max(end);
    }
    out
}

/// The ledger lines for one run: what the providers did, what the run found
/// already done (a crashed earlier run), and new refusals. Pure.
pub fn ledger_entries(plan: &Plan, outcomes: &[Outcome], ledger: &Ledger, now: DateTime<Utc>) -> Vec<Entry> {
    let open = ledger.open_grants();
    let mut out = Vec::new();
    let mut seen: BTreeSet<GrantKey> = BTreeSet::new();
    let called: BTreeMap<(String, String, String, ActionKind), &Outcome> =
        outcomes.iter().map(|o| ((o.action.resource.clone(), o.action.principal.clone(), o.action.access.clone(), o.action.action), o)).collect();
    for a in &plan.actions {
        let outcome = called.get(&(a.resource.clone(), a.principal.clone(), a.access.clone(), a.action)).copied();
        match a.action {
            ActionKind::Grant | ActionKind::Keep => {
                let ok = outcome.is_none_or(|o| o.ok);
                for e in &a.entitlements {
                    let key = GrantKey { request: e.request.clone(), resource: a.resource.clone(), principal: a.principal.clone(), access: a.access.clone() };
                    seen.insert(key.clone());
                    let mut reason = a.reason.clone();
                    if open.contains(&key) {
                        if a.action == ActionKind::Keep {
                            continue;
                        }
                        // The ledger says granted, the provider no longer holds it: the gap is recorded, then the re-grant.
                        let since = ledger.entries.iter().rev().find(|x| x.key().as_ref() == Some(&key) && x.action == "grant").map(|x| x.time);
                        let since = since.map_or_else(String::new, |t| format!(" (recorded as granted at {})", crate::model::stamp(&t)));
                        let mut gone = entry_for(
                            e,
                            a,
                            "revoke",
                            "observed",
                            format!("no longer held at the provider{since}; removed outside gitgrant or lost, found missing at {}", crate::model::stamp(&now)),
                            now,
                        );
                        gone.end = ledger.open_until(&["revoke", "release"]).get(&key).copied().flatten();
                        out.push(gone);
                        reason = format!("{reason}; granted again: the access had vanished at the provider{since}, a gap until {}", crate::model::stamp(&now));
                    }
                    let (action, result, detail) = match (outcome, ok) {
                        (Some(_), true) => ("grant", "ok", reason),
                        (Some(o), false) => ("grant-failed", "failed", o.error.clone().unwrap_or_default()),
                        (None, _) => ("grant", "observed", "found in place at the provider; an earlier run was interrupted before recording it".to_string()),
                    };
                    out.push(entry_for(e, a, action, result, detail, now));
                }
                // Shares the ledger holds open that the access no longer serves are
                // released, also when a killed run already rewrote the marker.
                if a.action == ActionKind::Keep && ok {
                    for r in open
                        .iter()
                        .filter(|k| k.resource == a.resource && k.principal == a.principal && k.access == a.access && !a.requests.contains(&k.request))
                    {
                        seen.insert(r.clone());
                        out.push(bare(
                            a,
                            &r.request,
                            "release",
                            "ok",
                            format!("this request no longer needs the access; kept for {}", a.requests.join(", ")),
                            now,
                        ));
                    }
                }
            }
            ActionKind::Revoke => {
                let ok = outcome.is_some_and(|o| o.ok);
                let ids: Vec<String> = if a.requests.is_empty() { vec![String::new()] } else { a.requests.clone() };
                for id in ids {
                    seen.insert(GrantKey { request: id.clone(), resource: a.resource.clone(), principal: a.principal.clone(), access: a.access.clone() });
                    let (action, result, detail) = if ok {
                        ("revoke", "ok", a.reason.clone())
                    } else {
                        ("revoke-failed", "failed", outcome.and_then(|o| o.error.clone()).unwrap_or_else(|| "not attempted".into()))
                    };
                    let mut line = bare(a, &id, action, result, detail, now);
                    if ok {
                        late(&mut line, a.end, now, plan.native_expiry.get(&a.resource).copied().unwrap_or(false));
                    }
                    out.push(line);
                }
            }
        }
    }
    // Grants the ledger believes open that the providers no longer hold.
    let failed: BTreeSet<&str> = plan.failures.iter().map(|f| f.resource.as_str()).collect();
    for k in open.iter().filter(|k| !seen.contains(*k) && !failed.contains(k.resource.as_str()) && plan.native_expiry.contains_key(&k.resource)) {
        let last = ledger.entries.iter().rev().find(|e| e.key().as_ref() == Some(k));
        let mut e = last.cloned().unwrap_or_else(|| Entry {
            request: k.request.clone(),
            resource: Some(k.resource.clone()),
            principal: Some(k.principal.clone()),
            access: Some(k.access.clone()),
            ..Entry::default()
        });
        e.time = now;
        e.action = "revoke".into();
        e.result = "observed".into();
        e.detail = "no longer held at the provider (expired natively, or removed outside gitgrant)".into();
        e.run = None;
        e.late_by = None;
        let end = e.end;
        late(&mut e, end, now, plan.native_expiry.get(&k.resource).copied().unwrap_or(false));
        out.push(e);
    }
    for m in &plan.missed {
        out.push(Entry {
            time: now,
            action: "missed".into(),
            request: m.request.clone(),
            requester: m.requester.clone(),
            role: m.role.clone(),
            resources: m.resources.clone(),
            end: Some(m.end),
            result: "missed".into(),
            detail: format!(
                "its window {} to {} opened and closed between two reconcile runs: never granted (whether it was approved was not judged)",
                crate::model::stamp(&m.start),
                crate::model::stamp(&m.end)
            ),
            ..Entry::default()
        });
    }
    for r in &plan.refused {
        if ledger.refusal_recorded(&r.request, r.commit.as_deref()) {
            continue;
        }
        out.push(Entry {
            time: now,
            action: "verify-failed".into(),
            request: r.request.clone(),
            requester: r.requester.clone(),
            role: r.role.clone(),
            resources: r.resources.clone(),
            merge_commit: r.commit.clone(),
            result: "refused".into(),
            detail: r.reason.clone(),
            ..Entry::default()
        });
    }
    out
}

/// Marks a revoke line made after the access's `end` with how late it is
/// (`late_by`), noting whether the provider's own expiry ended it on time.
fn late(line: &mut Entry, end: Option<DateTime<Utc>>, now: DateTime<Utc>, native: bool) {
    let Some(end) = end.filter(|e| *e < now) else { return };
    let secs = (now - end).num_seconds();
    if secs < 60 {
        return;
    }
    let by = crate::model::duration::Duration::from_secs(secs - secs % 60).to_string();
    let how = if native {
        format!("; late by {by} (the provider's own expiry ended access on time)")
    } else {
        format!("; late by {by} (no expiry at the provider: access lasted until now)")
    };
    line.detail.push_str(&how);
    line.late_by = Some(by);
}

fn entry_for(e: &desired::Entitlement, a: &Action, action: &str, result: &str, detail: String, now: DateTime<Utc>) -> Entry {
    Entry {
        time: now,
        action: action.into(),
        request: e.request.clone(),
        requester: e.requester.clone(),
        role: e.role.clone(),
        resources: e.resources.clone(),
        provider: Some(a.provider.as_str().into()),
        resource: Some(a.resource.clone()),
        principal: Some(a.principal.clone()),
        access: Some(a.access.clone()),
        approvers: e.evidence.approvers.clone(),
        pr: e.evidence.pr,
        merge_commit: Some(e.evidence.landing_commit.clone()),
        base_commit: e.evidence.base_commit.clone(),
        risk_score: e.evidence.risk_score,
        tier: e.evidence.tier.clone(),
        break_glass: e.break_glass,
        end: Some(e.window.end),
        risk_factors: e.evidence.risk_factors.clone(),
        result: result.into(),
        detail,
        sticky: false,
        run: None,
        late_by: None,
    }
}

fn bare(a: &Action, request: &str, action: &str, result: &str, detail: String, now: DateTime<Utc>) -> Entry {
    Entry {
        time: now,
        action: action.into(),
        request: request.into(),
        resources: vec![a.resource.clone()],
        provider: Some(a.provider.as_str().into()),
        resource: Some(a.resource.clone()),
        principal: Some(a.principal.clone()),
        access: Some(a.access.clone()),
        end: a.end,
        result: result.into(),
        detail,
        ..Entry::default()
    }
}
