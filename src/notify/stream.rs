//! The event stream: events derived from the ledger lines a run recorded
//! (so a crashed or failed delivery is derived again on the next run), the
//! expiring-soon warnings, and one delivery round over the configured sinks.

use chrono::{DateTime, Utc};

use super::{Event, Format, Grant, Kind, Outbox, RevokeWhy, Webhook};
use crate::ledger::Entry;
use crate::model::policy::{Notifications, Policy, SinkKind};
use crate::monitor::breakglass;
use crate::reconcile::desired::Landing;

/// How far back ledger lines still produce events: a sink that was down
/// longer than this misses them (they stay on the ledger).
pub const HORIZON_HOURS: i64 = 48;

fn event(kind: Kind, e: &Entry, key: DateTime<Utc>) -> Event {
    Event {
        id: Event::stable_id(&kind, &e.request, key),
        kind,
        request: e.request.clone(),
        requester: e.requester.clone(),
        role: e.role.clone(),
        resources: e.resources.clone(),
        at: e.time,
        end: e.end,
        pr: e.pr,
    }
}

/// One `landed` per request and landing commit made in `since..=at` (older
/// ones are not announced: a first run on an old repository does not flood).
/// The id is keyed by the landing's time, so reruns repeat it exactly.
pub fn landed(landings: &[Landing], since: DateTime<Utc>, at: DateTime<Utc>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for l in landings.iter().filter(|l| l.time >= since && l.time <= at) {
        let approvers: std::collections::BTreeSet<String> = l.evidence.approvers.iter().map(|a| a.login.to_ascii_lowercase()).collect();
        let kind = Kind::Landed { commit: l.evidence.landing_commit.clone(), approvers: approvers.into_iter().collect() };
        let id = Event::stable_id(&kind, &l.request, l.time);
        if out.iter().any(|o| o.id == id) {
            continue;
        }
        out.push(Event {
            id,
            kind,
            request: l.request.clone(),
            requester: l.requester.clone(),
            role: l.role.clone(),
            resources: l.resources.clone(),
            at: l.time,
            end: Some(l.end),
            pr: l.evidence.pr,
        });
    }
    out
}

/// The reason of a line recording an unratified break-glass grant:
/// reconcile's refusal, or monitor's finding (`[key] rule `RULE`: reason`).
/// Only at those places, never from text that quotes evidence or requests.
fn unratified_reason(e: &Entry) -> Option<&str> {
    match e.action.as_str() {
        "verify-failed" => Some(e.detail.as_str()),
        "finding" => {
            e.detail.strip_prefix('[').and_then(|d| d.split_once("] ")).and_then(|(_, rest)| rest.strip_prefix(&format!("rule `{}`: ", breakglass::RULE)))
        }
        _ => None,
    }
    .filter(|r| r.starts_with(breakglass::UNRATIFIED))
}

/// `break_glass_overdue` for a line that records an unratified break-glass
/// grant; keyed by the due time, so reconcile's and monitor's lines are one
/// event.
fn overdue(e: &Entry, policy: &Policy) -> Option<Event> {
    let review_by = breakglass::overdue_due(unratified_reason(e)?)?;
    let (reviewer_groups, reviewers) = breakglass::reviewers(policy);
    Some(event(Kind::BreakGlassOverdue { review_by, reviewer_groups, reviewers }, e, review_by))
}

/// The events the ledger's lines since `since` stand for: one per request
/// and kind (a request granted on three resources is one `granted`). An
/// unratified break-glass grant is one `break_glass_overdue` naming the
/// reviewers `policy` lists (not a `refused` or `monitor_finding`).
pub fn from_ledger(entries: &[Entry], since: DateTime<Utc>, policy: &Policy) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for (i, line) in entries.iter().enumerate().filter(|(_, e)| e.time >= since) {
        // Revoke lines name the access, not always who and what: take those
        // from the request's last grant line before it.
        let mut filled;
        let mut e = line;
        if e.requester.is_empty()
            && let Some(g) = entries[..i].iter().rev().find(|g| g.action == "grant" && g.request == e.request && !g.requester.is_empty())
        {
            filled = e.clone();
            filled.requester.clone_from(&g.requester);
            filled.role.clone_from(&g.role);
            filled.resources.clone_from(&g.resources);
            filled.pr = filled.pr.or(g.pr);
            e = &filled;
        }
        // Refusals and findings name who and what but not the PR: the grant's.
        let with_pr;
        if e.pr.is_none()
            && let Some(pr) = entries[..i].iter().rev().find(|g| g.action == "grant" && g.request == e.request).and_then(|g| g.pr)
        {
            with_pr = Entry { pr: Some(pr), ..e.clone() };
            e = &with_pr;
        }
        let own;
        if e.resources.is_empty()
            && let Some(r) = &e.resource
        {
            own = Entry { resources: vec![r.clone()], ..e.clone() };
            e = &own;
        }
        let mut push = |ev: Event| {
            if !out.iter().any(|o| o.id == ev.id) {
                out.push(ev);
            }
        };
        match (e.action.as_str(), e.result.as_str()) {
            ("grant", "ok") => {
                let key = e.end.unwrap_or(e.time);
                if e.break_glass {
                    push(event(Kind::BreakGlassOpened, e, key));
                }
                push(event(Kind::Granted, e, key));
            }
            ("revoke", "ok") => {
                let why = if e.sticky {
                    RevokeWhy::Sticky
                } else if e.end.is_some_and(|end| end <= e.time) || e.late_by.is_some() {
                    RevokeWhy::Expired
                } else {
                    RevokeWhy::Early
                };
                push(event(Kind::Revoked { why }, e, e.time));
            }
            ("verify-failed" | "finding", _) if let Some(ev) = overdue(e, policy) => push(ev),
            ("verify-failed", _) => push(event(Kind::Refused { reason: e.detail.clone() }, e, e.time)),
            ("finding", _) => {
                let mut ev = event(Kind::MonitorFinding { detail: e.detail.clone(), action: e.result.clone() }, e, e.time);
                // Several findings per request at one instant: the finding key keeps them apart.
                let key = e.detail.strip_prefix('[').and_then(|d| d.split_once(']')).map(|(k, _)| k.to_string()).unwrap_or_default();
                ev.id = format!("{}:{key}", ev.id);
                push(ev);
            }
            _ => {}
        }
    }
    out
}

/// `expiring_soon` for every request still granted (its latest `grant` line
/// on the ledger has no later `revoke`) whose `end` is within `lead` of `now`.
/// `ends`: request id and the end of the access that serves it now.
pub fn expiring(entries: &[Entry], ends: &[(String, DateTime<Utc>)], now: DateTime<Utc>, n: &Notifications) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for (request, end) in ends {
        let Some(g) = entries.iter().rev().find(|e| e.action == "grant" && e.result == "ok" && &e.request == request) else { continue };
        let grant = Grant { request: request.clone(), requester: g.requester.clone(), role: g.role.clone(), resources: g.resources.clone(), end: *end };
        if let Some(mut ev) = super::expiring_soon(&grant, now, n.expiring_soon, n.extend_by)
            && !out.iter().any(|o| o.id == ev.id)
        {
            ev.pr = g.pr;
            out.push(ev);
        }
    }
    out
}

/// Posts a comment on a pull request (the GitHub sink's I/O boundary).
#[async_trait::async_trait]
pub trait Commenter: Send + Sync {
    async fn comment(&self, pr: u64, body: &str) -> Result<(), String>;
}

#[async_trait::async_trait]
impl<T: crate::github::GitHubApi + ?Sized> Commenter for T {
    async fn comment(&self, pr: u64, body: &str) -> Result<(), String> {
        self.create_comment(pr, body).await.map(drop).map_err(|e| e.to_string())
    }
}

/// The PR comment for `e`: the headline as escaped Markdown text.
pub fn github_body(e: &Event) -> String {
    format!("**gitgrant**: {}", crate::render::markdown::text(&super::headline(e)))
}

/// What a delivery round did, for the run's output.
#[derive(Debug, Default)]
pub struct Report {
    pub sent: usize,
    pub already: usize,
    /// One line per failed delivery (retried on the next run).
    pub failed: Vec<String>,
}

fn wants(events: &[String], e: &Event) -> bool {
    events.is_empty() || events.iter().any(|k| k == e.kind.name())
}

/// Sends each event to each sink that wants it and has not had it; a sink
/// counts an event delivered only on success (2xx). A webhook whose URL
/// variable is unset is a failure (retried next run).
pub async fn deliver(
    events: &[Event],
    n: &Notifications,
    extra: &[(Webhook, Vec<String>)],
    env: &dyn Fn(&str) -> Option<String>,
    github: Option<&dyn Commenter>,
    outbox: &mut Outbox,
    client: &reqwest::Client,
) -> Report {
    let mut report = Report::default();
    let timeout = std::time::Duration::from_secs(10);
    let mut hooks: Vec<(Webhook, Vec<String>)> = extra.to_vec();
    let mut gh: Vec<(String, Vec<String>)> = Vec::new();
    for s in &n.sinks {
        match s.kind {
            SinkKind::Github => gh.push((s.name.clone(), s.events.clone())),
            SinkKind::Slack | SinkKind::Json => {
                let var = s.url_env.clone().unwrap_or_default();
                let format = if s.kind == SinkKind::Slack { Format::Slack } else { Format::Json };
                match env(&var).filter(|u| !u.trim().is_empty()) {
                    Some(url) => hooks.push((Webhook { name: s.name.clone(), url, format, timeout }, s.events.clone())),
                    None => {
                        let pending = events.iter().filter(|e| wants(&s.events, e) && !outbox.has(&s.name, &e.id)).count();
                        if pending > 0 {
                            report
                                .failed
                                .push(format!("sink `{}`: the environment variable `{var}` is not set; {pending} event(s) kept for the next run", s.name));
                        }
                    }
                }
            }
        }
    }
    for (hook, kinds) in &hooks {
        for e in events.iter().filter(|e| wants(kinds, e)) {
            if outbox.has(&hook.name, &e.id) {
                report.already += 1;
                continue;
            }
            match hook.send(client, e).await {
                Ok(()) => {
                    outbox.mark(&hook.name, &e.id);
                    report.sent += 1;
                }
                Err(err) => report.failed.push(format!("sink `{}`: event {}: {err}; retried on the next run", hook.name, e.id)),
            }
        }
    }
    for (name, kinds) in &gh {
        for e in events.iter().filter(|e| wants(kinds, e)) {
            let Some(pr) = e.pr else { continue };
            if outbox.has(name, &e.id) {
                report.already += 1;
                continue;
            }
            let Some(api) = github else {
                report.failed.push(format!("sink `{name}`: no GitHub token (GITHUB_TOKEN) to comment on PR #{pr}; retried on the next run"));
                break;
            };
            match api.comment(pr, &github_body(e)).await {
                Ok(()) => {
                    outbox.mark(name, &e.id);
                    report.sent += 1;
                }
                Err(err) => report.failed.push(format!("sink `{name}`: event {}: {err}; retried on the next run", e.id)),
            }
        }
    }
    report
}

/// One whole round for a command: fetch the outbox, deliver, save it (pushed
/// with `push`). Failures are returned as warnings, never as a failed run.
pub async fn run_round(
    repo_dir: &std::path::Path,
    remote: &str,
    push: bool,
    events: &[Event],
    n: &Notifications,
    extra: &[(Webhook, Vec<String>)],
    github: Option<&dyn Commenter>,
) -> Report {
    let mut report = Report::default();
    if events.is_empty() || (n.sinks.is_empty() && extra.is_empty()) {
        return report;
    }
    let loaded = if push { super::store::fetch(repo_dir, remote) } else { Ok(()) }.and_then(|()| {
        let repo = git2::Repository::open(repo_dir).map_err(|e| e.to_string())?;
        super::store::load(&repo, remote)
    });
    let mut outbox = match loaded {
        Ok(o) => o,
        Err(e) => {
            // Without the outbox nothing is sent: sending blind would repeat.
            report.failed.push(format!("notifications not sent (retried on the next run): {e}"));
            return report;
        }
    };
    let client = match crate::http_client() {
        Ok(c) => c,
        Err(e) => {
            report.failed.push(format!("notifications not sent (retried on the next run): {e}"));
            return report;
        }
    };
    let env = |k: &str| std::env::var(k).ok();
    let r = deliver(events, n, extra, &env, github, &mut outbox, &client).await;
    report = r;
    if report.sent > 0
        && let Err(e) = super::store::save(repo_dir, remote, &outbox, push)
    {
        report.failed.push(format!("{e} (what was sent may be sent once more on the next run)"));
    }
    report
}
