//! `gitgrant audit verify`: is the trail complete and untampered?
//!
//! Findings have stable codes (README "Audit"):
//!
//! * `AV001 grant-unapproved`: a ledger grant no approved request explains
//!   (no landing commit recorded, the commit did not land that request on
//!   main, or that landing lacked the approvals its base policies required).
//! * `AV002 landing-unapproved`: a request reached main without the approvals
//!   its base policies required: a direct push, or a merge whose
//!   `Approved-by:` trailers do not satisfy them (plain-git mode).
//! * `AV003 break-glass-unreviewed`: a break-glass grant without a
//!   `Break-glass-review: <id>` commit on main, approved by a member of
//!   `break_glass.reviewers`, within `review_within` of the grant.
//! * `AV004 drift`: a provider holds a managed grant the ledger does not explain.
//! * `AV005 ledger-rewritten`: the ledger branch's history was rewritten.
//! * `AV006 provider-unlisted`: a provider could not be listed, so drift was not checked there.
//! * `AV007 landing-invalid`: a landing that `check --base L^ --head L` fails
//!   (an invalid or duplicate id, an unknown role or resource, a tier cap, a
//!   mixed change, ...): nothing it touched may be granted.
//! * `AV008 grant-mismatch`: a ledger grant whose requester, role, resource or
//!   principal is not what the landed request it names asks for (a forged
//!   line reusing a real request's evidence).
//! * `AV009 grant-outside-window`: a ledger grant made outside the window of
//!   the landed request it names, or recorded with a later end (a re-grant
//!   after the window ended).
//!
//! Landings are judged by the engine ([`crate::engine::landing`]), the same
//! judge `check`, `gate` and `reconcile` use.
//!
//! Threat model of AV005: the ledger branch is append-only. Each ledger commit
//! names the previous head in a `Previous-ledger:` trailer and its
//! `ledger.jsonl` starts with its parent's; a rewrite made with ordinary git
//! tools (amend, rebase, reset) breaks one of those. Whoever can push the
//! branch can forge a consistent chain, so verify also compares the branch
//! with what was seen before: the reflogs of the local and remote-tracking
//! branches (every move a fast-forward, except gitgrant's own rebase onto a
//! newer remote), the remote-tracking branch (one must contain the other),
//! and `--expect-head SHA`, a head recorded earlier outside the repository
//! (a CI log, a ticket): it must still be in the history. Pin the head by
//! storing the `ledger head` line verify prints and passing it next time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use git2::{Oid, Repository};
use serde::Serialize;

use super::replay::short;
use super::{AuditError, Trail};
use crate::engine::landing::{LandingVerdict, Landings};
use crate::history::EventKind;
use crate::ledger::{BRANCH, GrantKey};
use crate::model::policy::Policy;
use crate::provider::{ProviderContext, build};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    /// Stable code, e.g. `AV002`.
    pub code: &'static str,
    /// Stable name, e.g. `landing-unapproved`.
    pub name: &'static str,
    pub request: Option<String>,
    /// The main commit, ledger commit or provider grant the finding is about.
    pub commit: Option<String>,
    pub detail: String,
}

fn finding(code: &'static str, name: &'static str, request: Option<&str>, commit: Option<&str>, detail: String) -> Finding {
    Finding { code, name, request: request.map(str::to_string), commit: commit.map(str::to_string), detail }
}

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub now: DateTime<Utc>,
    /// A ledger head recorded earlier: it must still be in the ledger's history.
    pub expect_head: Option<String>,
    /// List the providers for drift (off: git only, no network).
    pub providers: bool,
    /// The remote whose ledger branch is compared.
    pub remote: String,
}

/// What was looked at, so "clean" says how much was verified.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checked {
    pub landings: usize,
    pub grants: usize,
    pub break_glass_grants: usize,
    pub ledger_commits: usize,
    pub provider_grants: usize,
    /// Break-glass grants whose review window is still open (not findings yet).
    pub reviews_pending: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub clean: bool,
    pub ledger_head: Option<String>,
    pub findings: Vec<Finding>,
    pub checked: Checked,
}

/// Runs every check. Errors only when the trail cannot be read at all.
pub async fn verify(repo_dir: &Path, opts: &VerifyOptions) -> Result<VerifyReport, AuditError> {
    let trail = Trail::open(repo_dir)?;
    let mut findings = Vec::new();
    let mut checked = Checked::default();
    let mut judge = Landings::new(&trail.repo, repo_dir);

    // AV002: every commit on main that added or changed a request.
    let h = &trail.history;
    let mut landings: BTreeSet<usize> = BTreeSet::new();
    for rec in h.requests.values() {
        landings.extend(rec.events.iter().filter(|e| e.kind != EventKind::Removed).map(|e| e.commit));
    }
    for idx in &landings {
        let Some(c) = h.commits.get(*idx) else { continue };
        checked.landings += 1;
        match judge.get(&c.id) {
            Err(e) => findings.push(finding("AV002", "landing-unapproved", None, Some(&c.id), format!("cannot judge {}: {e}", short(&c.id)))),
            Ok(v) => landing_findings(v, &mut findings),
        }
    }

    // AV001: every grant the ledger records.
    let landed: BTreeMap<(&str, &str), ()> = h
        .requests
        .values()
        .flat_map(|r| {
            r.events.iter().filter(|e| e.kind != EventKind::Removed).filter_map(move |e| h.commits.get(e.commit).map(|c| ((r.id.as_str(), c.id.as_str()), ())))
        })
        .collect();
    let grants: Vec<&crate::ledger::Entry> =
        trail.ledger.entries.iter().filter(|e| e.action == "grant" && matches!(e.result.as_str(), "ok" | "observed")).collect();
    let mut seen_grant: BTreeSet<(String, Option<String>)> = BTreeSet::new();
    let main_policy_for_grants = trail.policy_at(&trail.main.to_string());
    for e in &grants {
        checked.grants += 1;
        // One finding per request and landing, however many resources it spans.
        if !seen_grant.insert((e.request.clone(), e.merge_commit.clone())) {
            continue;
        }
        let bad = |detail: String| finding("AV001", "grant-unapproved", Some(&e.request), e.merge_commit.as_deref(), detail);
        let Some(m) = e.merge_commit.as_deref() else {
            findings.push(bad(format!("granted at {} with no landing commit recorded", super::fmt_time(e.time))));
            continue;
        };
        if !landed.contains_key(&(e.request.as_str(), m)) {
            findings.push(bad(format!("granted at {}, but {} did not land {} on main", super::fmt_time(e.time), short(m), e.request)));
            continue;
        }
        let v = match judge.get(m) {
            Ok(v) => v,
            Err(err) => {
                findings.push(bad(format!("cannot judge its landing {}: {err}", short(m))));
                continue;
            }
        };
        if let Some(why) = v.check_failure() {
            findings.push(bad(format!("granted at {}, but its landing fails `check`: {why}", super::fmt_time(e.time))));
            continue;
        }
        // Approved by GitHub reviews: reconcile judged those against the
        // forge; they cannot be re-judged from git. Everything else can.
        let on_github = !e.approvers.is_empty() && e.approvers.iter().all(|a| a.commit != m);
        if !on_github && let Some(why) = v.approval_failure() {
            findings.push(bad(format!("granted at {}, but its landing {why}", super::fmt_time(e.time))));
        }
    }
    // AV008 / AV009: each grant line against the landed request it names.
    for e in &grants {
        let Some(m) = e.merge_commit.as_deref() else { continue };
        if !landed.contains_key(&(e.request.as_str(), m)) {
            continue;
        }
        let Ok(v) = judge.get(m) else { continue };
        let main = main_policy_for_grants.as_ref();
        for f in compare_grant(e, v, main) {
            findings.push(f);
        }
    }

    // AV003: break-glass grants need an after-the-fact review.
    let main_policy = trail.policy_at(&trail.main.to_string());
    break_glass(&trail, main_policy.as_ref(), opts.now, &mut findings, &mut checked)?;

    // AV005: the ledger's own history.
    ledger_history(&trail.repo, trail.ledger.head, Some(trail.ledger.head_text()), opts, &mut findings, &mut checked)?;

    // AV004 / AV006: what the providers hold.
    if opts.providers
        && let Some(policy) = &main_policy
    {
        drift(repo_dir, &trail, policy, opts.now, &mut findings, &mut checked).await;
    }
    findings.sort();
    findings.dedup();
    Ok(VerifyReport { clean: findings.is_empty(), ledger_head: trail.ledger.head.map(|h| h.to_string()), findings, checked })
}

/// AV007 / AV002 for one landing: `check` fails it, or (plain git) its
/// trailers do not approve what it asked for.
fn landing_findings(v: &LandingVerdict, findings: &mut Vec<Finding>) {
    let c = &v.commit;
    let ids = v.touched();
    let mut push = |code: &'static str, name: &'static str, detail: String| {
        if ids.is_empty() {
            findings.push(finding(code, name, None, Some(c), detail.clone()));
        }
        for id in &ids {
            findings.push(finding(code, name, Some(id), Some(c), detail.clone()));
        }
    };
    if let Some(why) = v.check_failure() {
        push("AV007", "landing-invalid", format!("{why}; nothing this landing touched may be granted"));
        return;
    }
    if !v.needs_approval() {
        return;
    }
    if v.direct_push || !v.decision.satisfied {
        let how = if v.direct_push {
            "pushed directly to main (no merge, no Approved-by trailers): a direct push is never granted".to_string()
        } else {
            format!(
                "merged without the approvals its base policies required (Approved-by: {})",
                if v.approved_by.is_empty() { "none".to_string() } else { v.approved_by.join(", ") }
            )
        };
        let ids: Vec<&str> = v.report.requests.iter().filter(|o| o.change.needs_approval()).map(|o| o.id.as_str()).collect();
        let detail = format!("{} {how}: {}", short(c), v.decision.summary());
        if ids.is_empty() {
            findings.push(finding("AV002", "landing-unapproved", None, Some(c), detail.clone()));
        }
        for id in ids {
            findings.push(finding("AV002", "landing-unapproved", Some(id), Some(c), detail.clone()));
        }
    }
}

/// AV008 / AV009: does the ledger line `e` grant what the request it names
/// asked for, when it asked for it? The principal may follow an identity
/// changed on main since the landing, so either policy's answer matches.
fn compare_grant(e: &crate::ledger::Entry, v: &LandingVerdict, main: Option<&Policy>) -> Vec<Finding> {
    let mut out = Vec::new();
    let m = e.merge_commit.as_deref();
    let Some(outcome) = v.report.requests.iter().find(|o| o.id == e.request) else { return out };
    let mut mismatch = Vec::new();
    if !e.requester.is_empty() && !e.requester.eq_ignore_ascii_case(&outcome.requester) {
        mismatch.push(format!("requester `{}`, the request asks for `{}`", e.requester, outcome.requester));
    }
    if !e.role.is_empty() && e.role != outcome.role {
        mismatch.push(format!("role `{}`, the request asks for `{}`", e.role, outcome.role));
    }
    if let Some(r) = &e.resource {
        if !outcome.resources.iter().any(|x| x == r) {
            mismatch.push(format!("resource `{r}`, the request asks for {}", outcome.resources.join(", ")));
        } else if let Some(p) = &e.principal {
            let expected: Vec<String> = [Some(&*v.report.policy), main]
                .into_iter()
                .flatten()
                .filter_map(|pol| crate::engine::grant::principal_key(pol, &outcome.requester, r).ok())
                .flat_map(|(raw, key)| [raw, key])
                .collect();
            if !expected.iter().any(|x| x == p) {
                mismatch.push(format!("principal `{p}`, not {}'s principal for `{r}`", outcome.requester));
            }
        }
    }
    if !mismatch.is_empty() {
        out.push(finding(
            "AV008",
            "grant-mismatch",
            Some(&e.request),
            m,
            format!("the ledger grant at {} does not match the landed request: {}", super::fmt_time(e.time), mismatch.join("; ")),
        ));
    }
    if e.result == "ok"
        && let (Some(start), Some(end)) = (outcome.start, outcome.end)
    {
        let late_end = e.end.is_some_and(|x| x > end);
        if e.time < start || e.time >= end || late_end {
            let what = if late_end && e.time < end {
                format!("records an end of {}", e.end.map(super::fmt_time).unwrap_or_default())
            } else {
                format!("was made at {}", super::fmt_time(e.time))
            };
            out.push(finding(
                "AV009",
                "grant-outside-window",
                Some(&e.request),
                m,
                format!("the ledger grant {what}, outside the request's window {} .. {}", super::fmt_time(start), super::fmt_time(end)),
            ));
        }
    }
    out
}

/// A commit on main carrying `Break-glass-review:` trailers.
struct Review {
    id: String,
    time: DateTime<Utc>,
    requests: Vec<String>,
    approved_by: Vec<String>,
    author: Vec<String>,
    parent: Option<String>,
}

fn break_glass(trail: &Trail, main_policy: Option<&Policy>, now: DateTime<Utc>, findings: &mut Vec<Finding>, checked: &mut Checked) -> Result<(), AuditError> {
    // The first break-glass grant of each request.
    let mut first: BTreeMap<&str, &crate::ledger::Entry> = BTreeMap::new();
    for e in trail.ledger.entries.iter().filter(|e| e.break_glass && e.action == "grant" && matches!(e.result.as_str(), "ok" | "observed")) {
        first.entry(e.request.as_str()).or_insert(e);
    }
    checked.break_glass_grants = first.len();
    if first.is_empty() {
        return Ok(());
    }
    // Review commits need not touch requests/, so the history index does not
    // hold them all: the engine walks main's first parents (and what each
    // merge brought in: a review branch's trailer counts).
    let reviews: Vec<Review> = crate::engine::breakglass::review_landings(&trail.repo, trail.main, None)?
        .into_iter()
        .map(|r| Review { id: r.commit, time: r.time, requests: r.requests, approved_by: r.approved_by, author: r.authors, parent: r.parent })
        .collect();
    for (id, grant) in first {
        let policy_then = grant.base_commit.as_deref().and_then(|b| trail.policy_at(b));
        let Some(bg) = policy_then.as_ref().or(main_policy).and_then(|p| p.break_glass.clone()) else {
            findings.push(finding(
                "AV003",
                "break-glass-unreviewed",
                Some(id),
                grant.merge_commit.as_deref(),
                "break-glass grant, but no policy defines `break_glass` reviewers to review it".into(),
            ));
            continue;
        };
        let deadline = grant.time + bg.review_within.delta();
        let landed = trail.history.landed(id).unwrap_or(grant.time);
        let mut rejected = Vec::new();
        let valid = reviews.iter().filter(|r| r.requests.iter().any(|x| x == id) && r.time >= landed).find(|r| {
            let reviewers_policy = r.parent.as_deref().and_then(|p| trail.policy_at(p));
            let p = reviewers_policy.as_ref().or(main_policy);
            let ok_reviewer = |l: &String| {
                !l.eq_ignore_ascii_case(&grant.requester)
                    && !r.author.iter().any(|a| a.eq_ignore_ascii_case(l))
                    && p.is_some_and(|p| p.in_any(l, &bg.reviewers))
            };
            let ok = r.time <= deadline && r.approved_by.iter().any(ok_reviewer);
            if !ok {
                let why = if r.time > deadline { "after the deadline" } else { "without the approval of a reviewer" };
                rejected.push(format!("{} ({why})", short(&r.id)));
            }
            ok
        });
        if valid.is_some() {
            continue;
        }
        if now <= deadline {
            checked.reviews_pending.push(format!("{id} (due {})", super::fmt_time(deadline)));
            continue;
        }
        let tried = if rejected.is_empty() { String::new() } else { format!("; not counted: {}", rejected.join(", ")) };
        findings.push(finding(
            "AV003",
            "break-glass-unreviewed",
            Some(id),
            grant.merge_commit.as_deref(),
            format!(
                "break-glass grant at {} has no `Break-glass-review: {id}` commit on main approved by a member of {} by {}{tried}",
                super::fmt_time(grant.time),
                bg.reviewers.join(", "),
                super::fmt_time(deadline)
            ),
        ));
    }
    Ok(())
}

fn is_ancestor(repo: &Repository, ancestor: Oid, of: Oid) -> bool {
    ancestor == of || repo.graph_descendant_of(of, ancestor).unwrap_or(false)
}

/// gitgrant's own ref move when the remote ledger was ahead (see `ledger::push`).
const REBASE_MESSAGE: &str = "gitgrant ledger: rebase on remote";

fn ledger_history(
    repo: &Repository,
    head: Option<Oid>,
    known: Option<&str>,
    opts: &VerifyOptions,
    findings: &mut Vec<Finding>,
    checked: &mut Checked,
) -> Result<(), AuditError> {
    let rewritten = |commit: Option<String>, detail: String| Finding { code: "AV005", name: "ledger-rewritten", request: None, commit, detail };
    if let Some(expect) = &opts.expect_head {
        let found = repo.revparse_single(expect).and_then(|o| o.peel_to_commit()).map(|c| c.id());
        match (found, head) {
            (Ok(e), Some(h)) if is_ancestor(repo, e, h) => {}
            (Ok(e), Some(h)) => findings.push(rewritten(
                Some(e.to_string()),
                format!("the expected ledger head {} is not in the history of `{BRANCH}` ({}): entries were removed or rewritten", short(&e.to_string()), short(&h.to_string())),
            )),
            (Ok(e), None) => findings.push(rewritten(Some(e.to_string()), format!("the expected ledger head {} exists but the branch `{BRANCH}` is gone", short(&e.to_string())))),
            (Err(_), _) => findings.push(rewritten(
                Some(expect.clone()),
                format!("the expected ledger head {expect} is not in this repository: the ledger it belonged to was rewritten or not fetched (`git fetch origin {BRANCH}`)"),
            )),
        }
    }
    let Some(head) = head else { return Ok(()) };
    // The chain: each commit names its parent and only appends.
    let mut chain = vec![repo.find_commit(head)?];
    while let Some(p) = chain.last().and_then(|c| c.parent(0).ok()) {
        chain.push(p);
    }
    let ids: Vec<Oid> = chain.iter().map(git2::Commit::id).collect();
    let texts = crate::ledger::ChainTexts::new(repo, &ids, known);
    for (i, c) in chain.iter().enumerate() {
        checked.ledger_commits += 1;
        let named = crate::history::trailers(c.message().unwrap_or(""), "Previous-ledger");
        let parent = chain.get(i + 1);
        let expected = parent.map_or("none".to_string(), |p| p.id().to_string());
        let id = c.id().to_string();
        match named.last() {
            None => {
                findings.push(rewritten(Some(id.clone()), format!("ledger commit {} has no `Previous-ledger:` trailer (not written by gitgrant)", short(&id))))
            }
            Some(n) if *n != expected => findings.push(rewritten(
                Some(id.clone()),
                format!(
                    "ledger commit {} names {} as the previous head, but its parent is {}: history was rewritten below it",
                    short(&id),
                    short(n),
                    short(&expected)
                ),
            )),
            Some(_) => {}
        }
        if parent.is_none() {
            break;
        }
        if !texts.starts(repo, &ids, i, i + 1) {
            findings.push(rewritten(
                Some(id.clone()),
                format!("ledger commit {} changes or removes entries of its parent (the ledger is append-only)", short(&id)),
            ));
        }
    }
    // What was seen before: reflogs and the remote-tracking branch.
    let remote_ref = format!("refs/remotes/{}/{BRANCH}", opts.remote);
    for name in [format!("refs/heads/{BRANCH}"), remote_ref.clone()] {
        let Ok(log) = repo.reflog(&name) else { continue };
        for e in log.iter() {
            let (old, new) = (e.id_old(), e.id_new());
            let message = e.message().ok().flatten().unwrap_or("").trim();
            if old.is_zero() || message.starts_with(REBASE_MESSAGE) {
                continue;
            }
            if !is_ancestor(repo, old, new) {
                findings.push(rewritten(
                    Some(new.to_string()),
                    format!("`{name}` moved from {} to {} without a fast-forward (reflog: {})", short(&old.to_string()), short(&new.to_string()), message),
                ));
            }
        }
    }
    if let Ok(remote) = repo.refname_to_id(&remote_ref)
        && !is_ancestor(repo, remote, head)
        && !is_ancestor(repo, head, remote)
    {
        findings.push(rewritten(
            Some(remote.to_string()),
            format!("the local ledger {} and `{remote_ref}` {} have diverged: one of them was rewritten", short(&head.to_string()), short(&remote.to_string())),
        ));
    }
    Ok(())
}

async fn drift(repo_dir: &Path, trail: &Trail, policy: &Policy, now: DateTime<Utc>, findings: &mut Vec<Finding>, checked: &mut Checked) {
    let open = trail.ledger.open_grants();
    for (name, res) in &policy.resources {
        let ctx = ProviderContext { repo: repo_dir, resource: name, config: res, now };
        let listed = match build(&ctx).await {
            Ok(p) => p.list().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let held = match listed {
            Ok(h) => h,
            Err(e) => {
                findings.push(finding("AV006", "provider-unlisted", None, None, format!("{} {name}: {e}; drift was not checked there", res.provider)));
                continue;
            }
        };
        for h in held {
            checked.provider_grants += 1;
            let a = &h.access;
            let key = |request: &str| GrantKey {
                request: request.to_string(),
                resource: a.resource.clone(),
                principal: a.principal.clone(),
                access: a.access.clone(),
            };
            let unexplained: Vec<&String> = h.requests.iter().filter(|r| !open.contains(&key(r))).collect();
            let any_open = open.iter().any(|k| k.resource == a.resource && k.principal == a.principal && k.access == a.access);
            let what = format!("{} {}: {} {}", a.provider, a.resource, a.principal, a.access);
            if h.requests.is_empty() && !any_open {
                findings.push(finding(
                    "AV004",
                    "drift",
                    None,
                    Some(&h.handle),
                    format!("{what} is held at the provider, marked managed, but the ledger records no open grant for it"),
                ));
            }
            for r in unexplained {
                findings.push(finding(
                    "AV004",
                    "drift",
                    Some(r),
                    Some(&h.handle),
                    format!("{what} is held at the provider for {r}, but the ledger records no open grant of it for that request"),
                ));
            }
        }
    }
}
