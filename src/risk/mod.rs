//! Risk scoring: a pure function of the request, its window, the policy and
//! the requester's history. Every factor reports its input and its points, so
//! `explain` can show reviewers exactly why a request needs what it needs.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;

use crate::model::policy::{ApprovalRule, Policy, Sensitivity, Tier};
use crate::model::request::{Request, Window};

/// One factor's contribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Factor {
    pub name: &'static str,
    pub points: i64,
    /// The input, in words: `high (orders-db)`, `3h`, `Sat 03:00 Europe/Berlin`.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Risk {
    pub score: i64,
    pub tier: String,
    pub factors: Vec<Factor>,
    /// The raw sum before clamping to 0..=100.
    pub raw_sum: i64,
}

/// Facts about the requester from main's history, at the request's start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequesterFacts {
    pub held_role_before: bool,
    pub early_revocations: u32,
    /// Ids of the requester's other requests active at the start time.
    pub active_grants: Vec<String>,
    /// Monitor findings the ledger recorded against the requester before the start.
    pub monitor_findings: u32,
}

/// How many past early revocations the risk factor counts at most.
pub const MAX_EARLY_REVOCATIONS: u32 = 3;

/// How many past monitor findings the risk factor counts at most.
pub const MAX_MONITOR_FINDINGS: u32 = 3;

/// Is `t` outside the business hours of `oh`?
fn off_hours(oh: &crate::model::policy::OffHours, t: DateTime<Utc>) -> (bool, String) {
    let local = t.with_timezone(&oh.timezone);
    let minute = local.hour() * 60 + local.minute();
    let day = local.weekday().num_days_from_monday();
    let inside = oh.days.contains(&day) && minute >= oh.from_minute && minute < oh.to_minute;
    (!inside, format!("starts {} {}", local.format("%a %H:%M"), oh.timezone))
}

/// Scores `req` over `window`. The result is deterministic: factors in a fixed order.
pub fn score(req: &Request, window: Window, policy: &Policy, facts: &RequesterFacts) -> Risk {
    let f = &policy.factors;
    let mut factors = Vec::new();
    let resources: Vec<_> = req.resources.iter().filter_map(|r| policy.resources.get(r).map(|x| (r, x))).collect();

    if !f.sensitivity.is_empty() {
        let top = resources.iter().map(|(_, r)| r.sensitivity).max();
        let names: Vec<&str> = resources.iter().filter(|(_, r)| Some(r.sensitivity) == top).map(|(n, _)| n.as_str()).collect();
        let points = top.and_then(|s| f.sensitivity.get(&s).copied()).unwrap_or(0);
        let detail = top.map_or("no known resource".to_string(), |s: Sensitivity| format!("{s} ({})", names.join(", ")));
        factors.push(Factor { name: "sensitivity", points, detail });
    }
    if let Some(role) = policy.roles.get(&req.role)
        && !f.privilege.is_empty()
    {
        factors.push(Factor {
            name: "privilege",
            points: f.privilege.get(&role.privilege).copied().unwrap_or(0),
            detail: format!("{} (role {})", role.privilege, req.role),
        });
    }
    if !f.environment.is_empty() {
        let best =
            resources.iter().map(|(n, r)| (f.environment.get(&r.environment).copied().unwrap_or(0), r.environment.as_str(), n.as_str())).max_by_key(|x| x.0);
        let (points, detail) = best.map_or((0, "no known resource".to_string()), |(p, env, n)| (p, format!("{env} ({n})")));
        factors.push(Factor { name: "environment", points, detail });
    }
    if f.per_hour != 0 {
        let hours = window.length().started_hours();
        factors.push(Factor {
            name: "duration",
            points: f.per_hour.saturating_mul(hours),
            detail: format!("{} = {hours} started hour(s) x {}", window.length(), f.per_hour),
        });
    }
    if let Some(oh) = &f.off_hours {
        let (outside, detail) = off_hours(oh, window.start);
        let detail = if outside { format!("{detail}, outside business hours") } else { format!("{detail}, within business hours") };
        factors.push(Factor { name: "off_hours", points: if outside { oh.points } else { 0 }, detail });
    }
    if f.first_time != 0 {
        let first = !facts.held_role_before;
        let detail = if first { format!("{} has not held {} before", req.requester, req.role) } else { format!("{} held {} before", req.requester, req.role) };
        factors.push(Factor { name: "first_time", points: if first { f.first_time } else { 0 }, detail });
    }
    if f.early_revocations != 0 {
        let n = facts.early_revocations;
        factors.push(Factor {
            name: "early_revocations",
            points: f.early_revocations.saturating_mul(i64::from(n)),
            detail: format!("{n} past grant(s) ended early (at most {} counted)", MAX_EARLY_REVOCATIONS),
        });
    }
    if f.active_grants != 0 {
        let n = facts.active_grants.len() as i64;
        let detail =
            if n == 0 { "no other active grants at the start".to_string() } else { format!("{n} active at the start: {}", facts.active_grants.join(", ")) };
        factors.push(Factor { name: "active_grants", points: f.active_grants.saturating_mul(n), detail });
    }
    if f.monitor_findings != 0 {
        let n = facts.monitor_findings.min(MAX_MONITOR_FINDINGS);
        factors.push(Factor {
            name: "monitor_findings",
            points: f.monitor_findings.saturating_mul(i64::from(n)),
            detail: format!("{} monitor finding(s) recorded against {} (at most {MAX_MONITOR_FINDINGS} counted)", facts.monitor_findings, req.requester),
        });
    }
    if f.missing_ticket != 0 {
        let missing = req.ticket.as_deref().is_none_or(|t| t.trim().is_empty());
        let detail = if missing { "no ticket".to_string() } else { format!("ticket {}", req.ticket.as_deref().unwrap_or("")) };
        factors.push(Factor { name: "missing_ticket", points: if missing { f.missing_ticket } else { 0 }, detail });
    }
    if f.break_glass != 0 || req.break_glass {
        let detail = if req.break_glass { "break-glass requested" } else { "not break-glass" };
        factors.push(Factor { name: "break_glass", points: if req.break_glass { f.break_glass } else { 0 }, detail: detail.to_string() });
    }
    // Saturating: policy points are unbounded numbers and must not overflow.
    let raw_sum: i64 = factors.iter().fold(0i64, |sum, f| sum.saturating_add(f.points));
    let score = raw_sum.clamp(0, 100);
    let tier = policy.tier_for(score).map_or_else(|| "none".to_string(), |t| t.name.clone());
    Risk { score, tier, factors, raw_sum }
}

/// What a scored request needs: its tier's approvals, or break-glass's.
pub fn required_approvals<'p>(req: &Request, risk: &Risk, policy: &'p Policy) -> &'p [ApprovalRule] {
    if req.break_glass
        && let Some(bg) = &policy.break_glass
    {
        return &bg.approvals;
    }
    tier(risk, policy).map_or(&[], |t| t.approvals.as_slice())
}

pub fn tier<'p>(risk: &Risk, policy: &'p Policy) -> Option<&'p Tier> {
    policy.tiers.iter().find(|t| t.name == risk.tier)
}
