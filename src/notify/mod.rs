//! Notifications people act on: one event stream, several sinks, durable
//! and idempotent delivery.
//!
//! `reconcile` and `monitor` derive the events from the ledger lines they
//! recorded ([`stream`]), deliver them to the sinks named in the policies,
//! and keep the outbox on the ref `refs/gitgrant/notify` ([`store`]).
//!
//! Design choices:
//! - Every [`Event`] has a stable id built from what it is about (kind,
//!   request, and the instant that makes it unique: the grant's end for
//!   `expiring_soon`), so a rerun produces the same ids.
//! - An event counts as delivered to a sink only after a 2xx answer. The
//!   [`Outbox`] keeps `sink/event-id` pairs already delivered; everything
//!   else is sent again on the next run. Its storage is a small JSON file of
//!   its own (not the ledger's JSON lines), so it can live on the ledger
//!   branch or in a ref without touching the ledger format.
//! - Text from requests reaches Slack only through [`slack_escape`] (`&`,
//!   `<`, `>` as entities: no `<!channel>`, `<@U…>` or `<url|label>`
//!   injection; no backslash escapes, which Slack shows literally).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The version of the JSON event schema (`docs/src/notifications.md`).
pub const SCHEMA: &str = "gitgrant.event/v1";

/// Why a grant ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeWhy {
    /// The request was removed or shortened before its end.
    Early,
    /// The window ended.
    Expired,
    /// A managed grant no active request explains.
    Sticky,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kind {
    /// An approved version of the request reached main: `commit` is the
    /// landing commit, `approvers` the logins whose approval counted.
    Landed {
        commit: String,
        approvers: Vec<String>,
    },
    Granted,
    Revoked {
        why: RevokeWhy,
    },
    Refused {
        reason: String,
    },
    BreakGlassOpened,
    /// No valid review of a break-glass grant landed by `review_by`; its
    /// access is revoked. `reviewers` (members of `reviewer_groups`, as the
    /// policies on main list them) are the people who must review it.
    BreakGlassOverdue {
        review_by: DateTime<Utc>,
        reviewer_groups: Vec<String>,
        reviewers: Vec<String>,
    },
    ExpiringSoon {
        extend_command: String,
    },
    /// A `gitgrant monitor` finding (`detail` as recorded on the ledger).
    MonitorFinding {
        detail: String,
        action: String,
    },
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Landed { .. } => "landed",
            Kind::Granted => "granted",
            Kind::Revoked { .. } => "revoked",
            Kind::Refused { .. } => "refused",
            Kind::BreakGlassOpened => "break_glass_opened",
            Kind::BreakGlassOverdue { .. } => "break_glass_overdue",
            Kind::ExpiringSoon { .. } => "expiring_soon",
            Kind::MonitorFinding { .. } => "monitor_finding",
        }
    }
}

/// One thing that happened to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(flatten)]
    pub kind: Kind,
    pub request: String,
    pub requester: String,
    pub role: String,
    pub resources: Vec<String>,
    /// When it happened (or was noticed).
    pub at: DateTime<Utc>,
    /// When the access ends, where known.
    pub end: Option<DateTime<Utc>>,
    pub pr: Option<u64>,
}

impl Event {
    /// The stable id: `kind:request:key`, `key` being the instant that makes
    /// the event unique (the end for grants and warnings, `at` otherwise).
    pub fn stable_id(kind: &Kind, request: &str, key: DateTime<Utc>) -> String {
        format!("{}:{request}:{}", kind.name(), key.format("%Y%m%dT%H%M%SZ"))
    }
}

/// A grant an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub request: String,
    pub requester: String,
    pub role: String,
    pub resources: Vec<String>,
    pub end: DateTime<Utc>,
}

/// The `expiring_soon` warning for `g`, when `now` is within `lead` of its
/// end (and before it); with the exact command to extend it by `by`.
pub fn expiring_soon(g: &Grant, now: DateTime<Utc>, lead: crate::model::Duration, by: crate::model::Duration) -> Option<Event> {
    if now >= g.end || g.end - now > lead.delta() {
        return None;
    }
    let kind = Kind::ExpiringSoon { extend_command: format!("gitgrant extend {} --by {by}", g.request) };
    Some(Event {
        id: Event::stable_id(&kind, &g.request, g.end),
        kind,
        request: g.request.clone(),
        requester: g.requester.clone(),
        role: g.role.clone(),
        resources: g.resources.clone(),
        at: now,
        end: Some(g.end),
        pr: None,
    })
}

/// Escapes text for Slack's mrkdwn: the three control characters as
/// entities, newlines as spaces. Nothing else (Slack shows backslashes).
pub fn slack_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// One line a person reads, in plain words.
pub fn headline(e: &Event) -> String {
    let what = format!("{} -> {} on {}", e.requester, e.role, e.resources.join(", "));
    match &e.kind {
        Kind::Landed { approvers, .. } => {
            let by = if approvers.is_empty() { "no approval required".to_string() } else { format!("approved by {}", approvers.join(", ")) };
            let pr = e.pr.map(|n| format!(" (PR #{n})")).unwrap_or_default();
            format!("request {} landed{pr}: {what}, {by}", e.request)
        }
        Kind::Granted => format!("granted {what} ({})", e.request),
        Kind::Revoked { why } => {
            format!("revoked ({}) {what} ({})", serde_json::to_value(why).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(), e.request)
        }
        Kind::Refused { reason } => format!("refused {}: {reason}", e.request),
        Kind::BreakGlassOpened => format!("BREAK-GLASS opened: {what} ({})", e.request),
        Kind::BreakGlassOverdue { review_by, reviewer_groups, reviewers } => {
            let who = match (reviewers.is_empty(), reviewer_groups.is_empty()) {
                (false, _) => format!("{} ({})", reviewers.join(", "), reviewer_groups.join(", ")),
                (true, false) => format!("the members of {}", reviewer_groups.join(", ")),
                (true, true) => "the policy owners".to_string(),
            };
            format!(
                "BREAK-GLASS not reviewed: {} ({what}) was due for review by {}; access revoked. Reviewers who must act: {who}, with a commit on main carrying \"Break-glass-review: {}\"",
                e.request,
                review_by.format("%Y-%m-%d %H:%M UTC"),
                e.request
            )
        }
        Kind::ExpiringSoon { extend_command } => {
            let end = e.end.map(|t| t.format("%H:%M UTC").to_string()).unwrap_or_default();
            format!("{what} ends at {end}; to extend: {extend_command}")
        }
        Kind::MonitorFinding { detail, action } => format!("monitor finding ({action}) on {} ({what}): {detail}", e.request),
    }
}

/// The body for a Slack-compatible incoming webhook.
pub fn slack_payload(e: &Event) -> serde_json::Value {
    serde_json::json!({ "text": slack_escape(&headline(e)) })
}

/// The body for the generic JSON webhook: the event under a versioned schema.
pub fn json_payload(e: &Event) -> serde_json::Value {
    serde_json::json!({ "schema": SCHEMA, "event": e })
}

/// Where events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Slack,
    Json,
}

/// An HTTP webhook sink. The URL comes from an environment variable named in
/// the policies, never from the file itself (it is a secret).
#[derive(Debug, Clone)]
pub struct Webhook {
    pub name: String,
    pub url: String,
    pub format: Format,
    pub timeout: std::time::Duration,
}

impl Webhook {
    /// Sends one event; `Ok` only on a 2xx answer.
    pub async fn send(&self, client: &reqwest::Client, e: &Event) -> Result<(), String> {
        let body = match self.format {
            Format::Slack => slack_payload(e),
            Format::Json => json_payload(e),
        };
        let resp = client.post(&self.url).timeout(self.timeout).json(&body).send().await.map_err(|err| {
            if err.is_timeout() { format!("no answer within {}s", self.timeout.as_secs_f32()) } else { format!("cannot reach the webhook: {err}") }
        })?;
        let status = resp.status();
        if status.is_success() { Ok(()) } else { Err(format!("HTTP {}", status.as_u16())) }
    }
}

/// `sink/event-id` pairs delivered so far (durable between runs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbox {
    pub delivered: BTreeSet<String>,
}

impl Outbox {
    /// Whether `sink` already got event `id`.
    pub fn has(&self, sink: &str, id: &str) -> bool {
        self.delivered.contains(&Outbox::key(sink, id))
    }
    /// Records that `sink` got event `id`.
    pub fn mark(&mut self, sink: &str, id: &str) {
        self.delivered.insert(Outbox::key(sink, id));
    }
}

impl Outbox {
    pub fn from_json(text: &str) -> Result<Outbox, serde_json::Error> {
        if text.trim().is_empty() { Ok(Outbox::default()) } else { serde_json::from_str(text) }
    }
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
    fn key(sink: &str, id: &str) -> String {
        format!("{sink}/{id}")
    }
}

/// What one delivery round did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub sent: Vec<String>,
    /// `sink/event-id: error`, to retry on the next run.
    pub failed: Vec<String>,
    pub skipped: usize,
}

/// Sends every event not yet delivered to each sink, recording successes in
/// `outbox`. Failures stay undelivered (retried next run).
pub async fn deliver(events: &[Event], sinks: &[Webhook], outbox: &mut Outbox, client: &reqwest::Client) -> Delivery {
    let mut out = Delivery::default();
    for sink in sinks {
        for e in events {
            let key = Outbox::key(&sink.name, &e.id);
            if outbox.delivered.contains(&key) {
                out.skipped += 1;
                continue;
            }
            match sink.send(client, e).await {
                Ok(()) => {
                    outbox.delivered.insert(key.clone());
                    out.sent.push(key);
                }
                Err(err) => out.failed.push(format!("{key}: {err}")),
            }
        }
    }
    out
}

pub mod store;
pub mod stream;

#[cfg(test)]
mod tests;
