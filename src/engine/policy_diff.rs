//! The effective-access diff of a policy change: who gains or loses
//! eligibility (groups expanded to members), which tiers and approval rules
//! move, and which open or active requests would now be judged differently.
//! A pure function of (base policy, head policy, requests, history, now).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::judgement::{Judgement, judge};
use super::request::{Change, describe_rules};
use crate::history::History;
use crate::model::policy::{ApprovalRule, Policy, ProviderKind};
use crate::model::request::Request;
use crate::validate::RequestContext;

#[derive(Debug, Clone, Default, Serialize)]
pub struct PolicyDiff {
    pub eligibility: Vec<EligibilityChange>,
    pub tiers: Vec<TierChange>,
    /// `policy_changes` and `break_glass` approval rules that changed.
    pub rules: Vec<RuleChange>,
    /// Risk factors whose points changed (scores move; see `requests`).
    pub factors: Vec<String>,
    /// Open or active requests judged differently under the head policies.
    pub requests: Vec<Rejudged>,
    /// What the diff cannot see (GitHub team members are resolved by `gate`).
    pub notes: Vec<String>,
}

impl PolicyDiff {
    pub fn is_empty(&self) -> bool {
        self.eligibility.is_empty() && self.tiers.is_empty() && self.rules.is_empty() && self.factors.is_empty() && self.requests.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Gain {
    Gains,
    Loses,
}

/// `login` gains or loses eligibility for `role` on `resources`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EligibilityChange {
    pub login: String,
    pub role: String,
    pub change: Gain,
    pub resources: Vec<String>,
}

/// A tier as reviewers compare it: its score range and what it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierView {
    pub min_score: i64,
    pub max_score: i64,
    pub approvals: Vec<ApprovalRule>,
    pub max_duration: Option<String>,
}

/// A tier added (`before` null), removed (`after` null) or moved.
#[derive(Debug, Clone, Serialize)]
pub struct TierChange {
    pub tier: String,
    pub before: Option<TierView>,
    pub after: Option<TierView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleChange {
    pub rule: &'static str,
    pub before: Vec<ApprovalRule>,
    pub after: Vec<ApprovalRule>,
}

/// A request judged under the base and under the head policies.
#[derive(Debug, Clone, Serialize)]
pub struct Rejudged {
    pub id: String,
    pub file: String,
    pub requester: String,
    pub role: String,
    pub resources: Vec<String>,
    /// `active` (on main, window open), `upcoming` (on main, not started) or `open` (not on main).
    pub state: &'static str,
    pub changes: Vec<&'static str>,
    pub before: Judgement,
    pub after: Judgement,
}

/// Every (login, role, resource) a policy makes requestable: the login is in
/// an eligible group, the role grants on the resource's provider, and the
/// login has a principal there (the rules `validate_request` enforces).
fn eligibility(p: &Policy) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for (role_name, role) in &p.roles {
        let logins: BTreeSet<String> = role.eligible.iter().flat_map(|g| p.members(g)).collect();
        for login in logins {
            let Some(identity) = p.identities.get(&login) else { continue };
            for (res_name, res) in &p.resources {
                if role.grants.has(res.provider) && (res.provider == ProviderKind::Local || identity.principal(&login, res.provider).is_some()) {
                    out.insert((login.clone(), role_name.clone(), res_name.clone()));
                }
            }
        }
    }
    out
}

fn eligibility_changes(base: &Policy, head: &Policy) -> Vec<EligibilityChange> {
    let (before, after) = (eligibility(base), eligibility(head));
    let mut grouped: BTreeMap<(String, String, Gain), Vec<String>> = BTreeMap::new();
    for (set, other, change) in [(&after, &before, Gain::Gains), (&before, &after, Gain::Loses)] {
        for (login, role, res) in set.difference(other) {
            grouped.entry((login.clone(), role.clone(), change)).or_default().push(res.clone());
        }
    }
    grouped.into_iter().map(|((login, role, change), resources)| EligibilityChange { login, role, change, resources }).collect()
}

fn tier_views(p: &Policy) -> BTreeMap<String, TierView> {
    let mut min = 0;
    let mut out = BTreeMap::new();
    for t in &p.tiers {
        out.insert(
            t.name.clone(),
            TierView { min_score: min, max_score: t.max_score, approvals: t.approvals.clone(), max_duration: t.max_duration.as_ref().map(ToString::to_string) },
        );
        min = t.max_score.saturating_add(1);
    }
    out
}

fn tier_changes(base: &Policy, head: &Policy) -> Vec<TierChange> {
    let (before, after) = (tier_views(base), tier_views(head));
    // In the head's order (then removed ones): reviewers read tiers low to high.
    let names = head.tiers.iter().chain(&base.tiers).map(|t| t.name.clone());
    let mut seen = BTreeSet::new();
    names
        .filter(|n| seen.insert(n.clone()))
        .filter_map(|n| {
            let (b, a) = (before.get(&n).cloned(), after.get(&n).cloned());
            (b != a).then_some(TierChange { tier: n, before: b, after: a })
        })
        .collect()
}

fn rule_changes(base: &Policy, head: &Policy) -> Vec<RuleChange> {
    let bg = |p: &Policy| p.break_glass.as_ref().map(|b| b.approvals.clone()).unwrap_or_default();
    let mut out = Vec::new();
    if base.policy_changes != head.policy_changes {
        out.push(RuleChange { rule: "policy_changes", before: base.policy_changes.clone(), after: head.policy_changes.clone() });
    }
    if bg(base) != bg(head) {
        out.push(RuleChange { rule: "break_glass", before: bg(base), after: bg(head) });
    }
    out
}

/// Factor names whose settings differ (compared as their JSON form).
fn factor_changes(base: &Policy, head: &Policy) -> Vec<String> {
    let (b, h) = (serde_json::to_value(&base.factors).unwrap_or_default(), serde_json::to_value(&head.factors).unwrap_or_default());
    let empty = serde_json::Map::new();
    let (b, h) = (b.as_object().unwrap_or(&empty), h.as_object().unwrap_or(&empty));
    let keys: BTreeSet<&String> = b.keys().chain(h.keys()).collect();
    keys.into_iter().filter(|k| b.get(*k) != h.get(*k)).cloned().collect()
}

/// The effective-access diff from `base` to `head`. `requests` are the
/// request files of the head tree; ended ones are skipped.
pub fn policy_diff(base: &Policy, head: &Policy, requests: &[Request], history: &History, now: DateTime<Utc>) -> PolicyDiff {
    let known: BTreeSet<String> = history.requests.keys().cloned().chain(requests.iter().map(|r| r.id.clone())).collect();
    let mut rejudged = Vec::new();
    for req in requests {
        let landed = history.landed(&req.id);
        let default_start = landed.unwrap_or(now);
        let Some(window) = req.window(default_start).filter(|w| w.end > now) else { continue };
        let state = match landed {
            None => "open",
            Some(_) if window.start <= now => "active",
            Some(_) => "upcoming",
        };
        // Judged as if requested now: "ends in the past" is not news here.
        let ctx = RequestContext { now, default_start, known_ids: &known, check_past: false };
        let before = judge(req, Change::New, base, history, &ctx);
        let after = judge(req, Change::New, head, history, &ctx);
        let changes = before.differences(&after);
        if !changes.is_empty() {
            rejudged.push(Rejudged {
                id: req.id.clone(),
                file: req.file.clone(),
                requester: req.requester.clone(),
                role: req.role.clone(),
                resources: req.resources.clone(),
                state,
                changes,
                before,
                after,
            });
        }
    }
    rejudged.sort_by(|a, b| a.id.cmp(&b.id));
    let teams: BTreeSet<&str> = base.groups.iter().chain(&head.groups).filter(|(_, g)| g.github_team.is_some()).map(|(n, _)| n.as_str()).collect();
    let notes = teams.into_iter().map(|g| format!("group `{g}` also takes members from a GitHub team; only its listed members are expanded here")).collect();
    PolicyDiff {
        eligibility: eligibility_changes(base, head),
        tiers: tier_changes(base, head),
        rules: rule_changes(base, head),
        factors: factor_changes(base, head),
        requests: rejudged,
        notes,
    }
}

fn tier_text(t: &TierView) -> String {
    let cap = t.max_duration.as_ref().map_or(String::new(), |d| format!(", at most {d}"));
    format!("scores {}-{}, needs {}{cap}", t.min_score, t.max_score, describe_rules(&t.approvals))
}

/// Markdown for the job summary and the PR comment; every name is escaped
/// (logins, roles and resources come from the PR under review).
pub fn markdown(diff: &PolicyDiff) -> String {
    let e = crate::render::escape_markdown;
    let rules = |r: &[ApprovalRule]| e(&describe_rules(r));
    let mut s = String::from("#### Effective access change\n\n");
    if diff.is_empty() {
        s.push_str("Nobody gains or loses access, no tier moves, no open request is judged differently.\n\n");
    }
    if !diff.eligibility.is_empty() {
        s.push_str("| who | change | role | resources |\n|---|---|---|---|\n");
        for x in &diff.eligibility {
            let change = if x.change == Gain::Gains { "**gains**" } else { "**loses**" };
            let _ = writeln!(s, "| {} | {change} | {} | {} |", e(&x.login), e(&x.role), e(&x.resources.join(", ")));
        }
        s.push('\n');
    }
    if !diff.tiers.is_empty() {
        let view = |t: &Option<TierView>| t.as_ref().map_or("(none)".to_string(), |t| e(&tier_text(t)));
        s.push_str("| tier | before | after |\n|---|---|---|\n");
        for t in &diff.tiers {
            let _ = writeln!(s, "| {} | {} | {} |", e(&t.tier), view(&t.before), view(&t.after));
        }
        s.push('\n');
    }
    for r in &diff.rules {
        let _ = writeln!(s, "- `{}`: needs {} → {}", r.rule, rules(&r.before), rules(&r.after));
    }
    if !diff.factors.is_empty() {
        let _ = writeln!(s, "- risk factors changed: {}", e(&diff.factors.join(", ")));
    }
    if !diff.rules.is_empty() || !diff.factors.is_empty() {
        s.push('\n');
    }
    if !diff.requests.is_empty() {
        s.push_str("| request | state | changes | before | after |\n|---|---|---|---|---|\n");
        for r in &diff.requests {
            let _ = writeln!(s, "| {} | {} | {} | {} | {} |", e(&r.id), r.state, r.changes.join(", "), e(&r.before.describe()), e(&r.after.describe()));
        }
        s.push('\n');
    }
    for n in &diff.notes {
        let _ = writeln!(s, "> Note: {}\n", e(n));
    }
    s
}

/// The human form: one section per kind of change.
impl fmt::Display for PolicyDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::render::escape::{human as h, human_join as hj};
        let mut s = String::new();
        let _ = writeln!(s, "effective access change:");
        if self.is_empty() {
            let _ = writeln!(s, "  none: nobody gains or loses access, no tier moves, no open request is judged differently");
        }
        if !self.eligibility.is_empty() {
            let _ = writeln!(s, "  eligibility");
            for e in &self.eligibility {
                let sign = if e.change == Gain::Gains { '+' } else { '-' };
                let _ = writeln!(s, "    {sign} {} {} {} on {}", h(&e.login), if sign == '+' { "gains" } else { "loses" }, h(&e.role), hj(&e.resources, ", "));
            }
        }
        if !self.tiers.is_empty() {
            let _ = writeln!(s, "  tiers");
            for t in &self.tiers {
                let line = match (&t.before, &t.after) {
                    (Some(b), Some(a)) => format!("{}: {} -> {}", h(&t.tier), h(&tier_text(b)), h(&tier_text(a))),
                    (None, Some(a)) => format!("{}: added ({})", h(&t.tier), h(&tier_text(a))),
                    (Some(b), None) => format!("{}: removed (was {})", h(&t.tier), h(&tier_text(b))),
                    (None, None) => continue,
                };
                let _ = writeln!(s, "    {line}");
            }
        }
        for r in &self.rules {
            let _ = writeln!(s, "  {}: needs {} -> {}", h(r.rule), h(&describe_rules(&r.before)), h(&describe_rules(&r.after)));
        }
        if !self.factors.is_empty() {
            let _ = writeln!(s, "  risk factors changed: {}", hj(&self.factors, ", "));
        }
        if !self.requests.is_empty() {
            let _ = writeln!(s, "  requests judged differently");
            for r in &self.requests {
                let _ = writeln!(
                    s,
                    "    {} ({}, {} -> {} on {}): {} changes",
                    h(&r.id),
                    r.state,
                    h(&r.requester),
                    h(&r.role),
                    hj(&r.resources, ", "),
                    hj(&r.changes, ", ")
                );
                let _ = writeln!(s, "      before: {}", h(&r.before.describe()));
                let _ = writeln!(s, "      after:  {}", h(&r.after.describe()));
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "  note: {}", h(n));
        }
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::model::policy::{Group, Identity, Origin, Tier};

    fn group(members: &[&str]) -> Group {
        Group {
            members: members.iter().map(|m| m.to_string()).collect(),
            github_team: None,
            origin: Origin { file: String::new(), pos: crate::diag::Pos::FILE },
        }
    }

    fn policy() -> Policy {
        let tree = crate::source::FsTree::new(env!("CARGO_MANIFEST_DIR"));
        let load = crate::validate::load_policy(&tree);
        assert!(!load.diagnostics.has_errors());
        load.policy
    }

    #[test]
    fn a_new_member_gains_every_role_of_the_group_where_they_have_a_principal() {
        let base = policy();
        let mut head = base.clone();
        head.groups.insert("dba".into(), group(&["carol", "heidi"]));
        let d = policy_diff(&base, &head, &[], &History::default(), Utc::now());
        let heidi: Vec<(&str, Gain, Vec<String>)> =
            d.eligibility.iter().filter(|e| e.login == "heidi").map(|e| (e.role.as_str(), e.change, e.resources.clone())).collect();
        let pg = vec!["billing-db".to_string(), "orders-db".into(), "staging-db".into()];
        // db-readonly: heidi already had it through `developers`.
        assert_eq!(heidi, vec![("db-admin", Gain::Gains, pg.clone()), ("db-write", Gain::Gains, pg)]);
        assert!(d.tiers.is_empty() && d.rules.is_empty() && d.factors.is_empty());
    }

    #[test]
    fn removing_an_identity_key_loses_only_that_provider() {
        let base = policy();
        let mut head = base.clone();
        head.identities.insert("ivan".into(), Identity { principals: [(ProviderKind::Postgres, "ivan".to_string())].into() });
        let d = policy_diff(&base, &head, &[], &History::default(), Utc::now());
        assert_eq!(d.eligibility.len(), 1, "{d}");
        assert_eq!(d.eligibility[0].change, Gain::Loses);
        assert_eq!(d.eligibility[0].resources, vec!["analytics-gcp".to_string()]);
    }

    #[test]
    fn a_threshold_move_shows_both_ranges_of_both_tiers() {
        let base = policy();
        let mut head = base.clone();
        head.tiers[0] = Tier { max_score: 24, ..head.tiers[0].clone() };
        let d = policy_diff(&base, &head, &[], &History::default(), Utc::now());
        let names: Vec<&str> = d.tiers.iter().map(|t| t.tier.as_str()).collect();
        assert_eq!(names, ["auto", "low"]);
        let low = &d.tiers[1];
        assert_eq!((low.before.as_ref().unwrap().min_score, low.after.as_ref().unwrap().min_score), (20, 25));
        assert!(d.to_string().contains("auto: scores 0-19, needs no approvals, at most 4h -> scores 0-24"), "{d}");
    }
}
