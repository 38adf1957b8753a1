//! The monitor's decisions, pure: which events break which rule
//! ([`evaluate`]), and what a finished grant actually used ([`usage`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;

use super::activity::ActivityEvent;
use crate::model::policy::{Monitor, MonitorCheck, ProviderKind};
use crate::model::request::Window;

/// A grant monitor looks at: one request on one resource.
#[derive(Debug, Clone, Serialize)]
pub struct Watched {
    pub request: String,
    pub requester: String,
    pub role: String,
    pub resources: Vec<String>,
    pub resource: String,
    pub provider: ProviderKind,
    pub principal: String,
    pub window: Window,
    /// Active now (else: ended within the lookback).
    pub active: bool,
}

/// An event cited as evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRef {
    pub id: String,
    pub time: DateTime<Utc>,
    pub action: String,
}

impl From<&ActivityEvent> for EventRef {
    fn from(e: &ActivityEvent) -> Self {
        EventRef { id: e.id.clone(), time: e.time, action: e.action.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    DeniedAction,
    Volume,
    OutsideWindow,
    /// A break-glass grant whose after-the-fact review did not land in time.
    BreakGlassUnreviewed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: String,
    pub kind: FindingKind,
    pub request: String,
    pub requester: String,
    pub role: String,
    pub resource: String,
    pub provider: ProviderKind,
    pub principal: String,
    /// Does the rule revoke the grant?
    pub revoke: bool,
    pub message: String,
    pub events: Vec<EventRef>,
}

impl Finding {
    /// Stable across runs for the same evidence: the ledger records each finding once.
    pub fn key(&self) -> String {
        let first = self.events.first().map_or("-", |e| e.id.as_str());
        format!("{}/{}/{}/{first}", self.rule, self.request, self.resource)
    }

    /// The evidence in one line: `id at time: action`, at most 20 events.
    pub fn evidence(&self) -> String {
        let mut parts: Vec<String> = self.events.iter().take(20).map(|e| format!("{} at {}: {}", e.id, crate::model::stamp(&e.time), e.action)).collect();
        if self.events.len() > 20 {
            parts.push(format!("and {} more", self.events.len() - 20));
        }
        parts.join("; ")
    }
}

/// Case-insensitive glob: `*` any run of characters, `?` one.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Applies every rule that covers `w.role` to `events` (the principal's
/// activity from the window's start to now or the end of the lookback).
pub fn evaluate(w: &Watched, events: &[ActivityEvent], monitor: &Monitor) -> Vec<Finding> {
    let mut out = Vec::new();
    let late = w.window.end.checked_add_signed(TimeDelta::seconds(monitor.grace.secs())).unwrap_or(w.window.end);
    for rule in monitor.rules.iter().filter(|r| r.roles.is_empty() || r.roles.contains(&w.role)) {
        let finding = |kind: FindingKind, message: String, evidence: Vec<&ActivityEvent>| Finding {
            rule: rule.name.clone(),
            kind,
            request: w.request.clone(),
            requester: w.requester.clone(),
            role: w.role.clone(),
            resource: w.resource.clone(),
            provider: w.provider,
            principal: w.principal.clone(),
            revoke: rule.revoke,
            message,
            events: evidence.into_iter().map(EventRef::from).collect(),
        };
        match &rule.check {
            MonitorCheck::DenyActions(globs) => {
                let hits: Vec<&ActivityEvent> = events.iter().filter(|e| globs.iter().any(|g| glob_match(g, &e.action))).collect();
                if !hits.is_empty() {
                    let actions: BTreeSet<&str> = hits.iter().map(|e| e.action.as_str()).collect();
                    let msg = format!(
                        "{} performed forbidden action(s) {} ({} event(s)) under {}",
                        w.principal,
                        actions.into_iter().collect::<Vec<_>>().join(", "),
                        hits.len(),
                        w.request
                    );
                    out.push(finding(FindingKind::DeniedAction, msg, hits));
                }
            }
            MonitorCheck::MaxEventsPerHour(max) => {
                let mut hours: BTreeMap<DateTime<Utc>, Vec<&ActivityEvent>> = BTreeMap::new();
                for e in events.iter().filter(|e| w.window.contains(e.time)) {
                    let hour = e.time.duration_trunc(TimeDelta::hours(1)).unwrap_or(e.time);
                    hours.entry(hour).or_default().push(e);
                }
                if let Some((hour, hits)) = hours.into_iter().find(|(_, v)| v.len() > *max as usize) {
                    let msg = format!(
                        "{} made {} calls in the hour from {} (at most {max} expected) under {}",
                        w.principal,
                        hits.len(),
                        crate::model::stamp(&hour),
                        w.request
                    );
                    out.push(finding(FindingKind::Volume, msg, hits));
                }
            }
            MonitorCheck::OutsideWindow => {
                let hits: Vec<&ActivityEvent> = events.iter().filter(|e| e.time < w.window.start || e.time >= late).collect();
                if !hits.is_empty() {
                    let msg = format!(
                        "{} was active {} time(s) outside the window {} to {} of {} (access still held?)",
                        w.principal,
                        hits.len(),
                        crate::model::stamp(&w.window.start),
                        crate::model::stamp(&w.window.end),
                        w.request
                    );
                    out.push(finding(FindingKind::OutsideWindow, msg, hits));
                }
            }
        }
    }
    out
}

/// Granted versus used, for `monitor --report`.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub request: String,
    pub requester: String,
    pub role: String,
    pub resource: String,
    pub window: Window,
    pub active: bool,
    pub events: usize,
    /// Distinct `service:Action`s seen in the window, sorted.
    pub actions: Vec<String>,
    pub first: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
    pub suggestions: Vec<String>,
}

/// What the grant was used for, and how the role or the duration could be tighter.
pub fn usage(w: &Watched, events: &[ActivityEvent]) -> Usage {
    let inside: Vec<&ActivityEvent> = events.iter().filter(|e| w.window.contains(e.time)).collect();
    let actions: BTreeSet<String> = inside.iter().map(|e| e.action.clone()).collect();
    let first = inside.iter().map(|e| e.time).min();
    let last = inside.iter().map(|e| e.time).max();
    let mut suggestions = Vec::new();
    let length = w.window.end - w.window.start;
    match last {
        None => suggestions
            .push(format!("no activity recorded in the window: `{}` may not have been needed for this work (or the activity source misses it)", w.role)),
        Some(last) => {
            let services: BTreeSet<&str> = actions.iter().filter_map(|a| a.split(':').next()).collect();
            suggestions.push(format!(
                "used {} distinct action(s) in {} service(s): {}; a role granting only these would be narrower than `{}`",
                actions.len(),
                services.len(),
                actions.iter().cloned().collect::<Vec<_>>().join(", "),
                w.role
            ));
            let used = last - w.window.start;
            // Round up to a quarter hour: a suggestion, not a measurement.
            let quarters = (used.num_seconds() + 899).div_euclid(900).max(1);
            let enough = TimeDelta::seconds(quarters * 900);
            if enough * 2 <= length {
                suggestions.push(format!(
                    "activity ended {} into a {} window: a default duration of {} would have been enough",
                    human(used),
                    human(length),
                    human(enough)
                ));
            }
        }
    }
    Usage {
        request: w.request.clone(),
        requester: w.requester.clone(),
        role: w.role.clone(),
        resource: w.resource.clone(),
        window: w.window,
        active: w.active,
        events: inside.len(),
        actions: actions.into_iter().collect(),
        first,
        last,
        suggestions,
    }
}

/// `1h30m`, `45m`, `20s`: the duration grammar requests use.
fn human(d: TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if out.is_empty() || (sec > 0 && h == 0) {
        out.push_str(&format!("{sec}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::Duration;
    use crate::model::policy::MonitorRule;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }
    fn ev(id: &str, time: &str, action: &str) -> ActivityEvent {
        ActivityEvent { id: id.into(), time: t(time), principal: "alice".into(), action: action.into(), resource: None }
    }
    fn watched() -> Watched {
        Watched {
            request: "r1".into(),
            requester: "alice".into(),
            role: "ops".into(),
            resources: vec!["acct".into()],
            resource: "acct".into(),
            provider: ProviderKind::AwsIam,
            principal: "alice".into(),
            window: Window { start: t("2026-12-01T10:00:00Z"), end: t("2026-12-01T12:00:00Z") },
            active: true,
        }
    }
    fn rule(name: &str, roles: &[&str], check: MonitorCheck) -> MonitorRule {
        MonitorRule { name: name.into(), roles: roles.iter().map(|s| s.to_string()).collect(), check, revoke: true }
    }

    #[test]
    fn globs() {
        assert!(glob_match("iam:*", "iam:CreateUser"));
        assert!(glob_match("*:delete*", "s3:DeleteBucket"));
        assert!(glob_match("s3:Get?bject", "s3:GetObject"));
        assert!(glob_match("*", "anything:At"));
        assert!(!glob_match("iam:*", "s3:GetObject"));
        assert!(!glob_match("*:Delete*", "s3:GetObjectDelete"));
        assert!(glob_match("*Delete*", "s3:GetObjectDelete"));
        assert!(!glob_match("s3:Get", "s3:GetObject"));
    }

    #[test]
    fn rules_fire_on_what_they_name_and_only_for_their_roles() {
        let m = Monitor {
            grace: Duration::from_secs(300),
            lookback: Duration::from_secs(86_400),
            rules: vec![
                rule("no-iam", &["ops"], MonitorCheck::DenyActions(vec!["iam:*".into(), "*:delete*".into()])),
                rule("other-role", &["db"], MonitorCheck::DenyActions(vec!["*".into()])),
                rule("volume", &[], MonitorCheck::MaxEventsPerHour(2)),
                rule("late", &[], MonitorCheck::OutsideWindow),
            ],
        };
        let events = vec![
            ev("e1", "2026-12-01T10:01:00Z", "s3:GetObject"),
            ev("e2", "2026-12-01T10:02:00Z", "iam:CreateAccessKey"),
            ev("e3", "2026-12-01T11:10:00Z", "s3:DeleteBucket"),
            ev("e4", "2026-12-01T10:30:00Z", "s3:ListBucket"),
            ev("e5", "2026-12-01T12:04:00Z", "s3:GetObject"), // within grace
            ev("e6", "2026-12-01T12:06:00Z", "s3:GetObject"), // late
        ];
        let f = evaluate(&watched(), &events, &m);
        let got: Vec<(&str, Vec<&str>)> = f.iter().map(|f| (f.rule.as_str(), f.events.iter().map(|e| e.id.as_str()).collect())).collect();
        assert_eq!(got, vec![("no-iam", vec!["e2", "e3"]), ("volume", vec!["e1", "e2", "e4"]), ("late", vec!["e6"])]);
        assert!(f[0].message.contains("iam:CreateAccessKey, s3:DeleteBucket"), "{}", f[0].message);
        assert!(evaluate(&watched(), &events[..1], &m).is_empty());
    }

    #[test]
    fn usage_suggests_narrower_roles_and_shorter_windows() {
        let u = usage(&watched(), &[ev("e1", "2026-12-01T10:01:00Z", "s3:GetObject"), ev("e2", "2026-12-01T10:20:00Z", "s3:ListBucket")]);
        assert_eq!(u.actions, vec!["s3:GetObject", "s3:ListBucket"]);
        assert!(u.suggestions[0].contains("2 distinct action(s) in 1 service(s)"), "{:?}", u.suggestions);
        assert!(u.suggestions[1].contains("a default duration of 30m"), "{:?}", u.suggestions);
        let idle = usage(&watched(), &[]);
        assert!(idle.suggestions[0].starts_with("no activity recorded"));
    }
}
