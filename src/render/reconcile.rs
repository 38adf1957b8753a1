//! The reconcile job summary: what was granted, kept, revoked and refused,
//! in one table of five columns, what needs a person first (failed calls,
//! revocations that came late, refusals), then the rest.

use chrono::{DateTime, Utc};

use super::markdown::text;
use crate::reconcile::{ActionKind, Outcome, Plan};

/// A revoke this long after the marker's end counts as late.
const LATE_AFTER_SECS: i64 = 300;

struct Row {
    rank: u8,
    result: &'static str,
    request: String,
    access: String,
    until: String,
    detail: String,
}

fn until(end: Option<DateTime<Utc>>) -> String {
    end.map(|e| e.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
}

/// Markdown for `$GITHUB_STEP_SUMMARY` after `reconcile`.
pub fn reconcile_summary(plan: &Plan, outcomes: &[Outcome], at: DateTime<Utc>) -> String {
    let mut rows = Vec::new();
    for o in outcomes {
        let a = &o.action;
        let access = format!("{} {}: {}", a.provider, a.resource, a.access);
        let held_end = a.held.as_ref().and_then(|h| h.end);
        let late = a.action == ActionKind::Revoke && held_end.is_some_and(|e| (at - e).num_seconds() > LATE_AFTER_SECS);
        let (rank, result) = match (o.ok, a.action) {
            (false, ActionKind::Revoke) => (0, "FAILED revoke"),
            (false, _) => (1, "FAILED grant"),
            (true, ActionKind::Revoke) if late => (2, "revoked late"),
            (true, ActionKind::Revoke) => (5, "revoked"),
            (true, ActionKind::Grant) => (4, "granted"),
            (true, ActionKind::Keep) => (6, "kept"),
        };
        let mut detail = format!("for {}", a.principal);
        if let Some(e) = &o.error {
            detail.push_str(&format!("; {e} (after {} attempt(s))", o.attempts));
        } else if late && let Some(e) = held_end {
            detail.push_str(&format!("; ended {}", until(Some(e))));
        }
        rows.push(Row { rank, result, request: a.requests.join(", "), access, until: until(a.end), detail });
    }
    // Keeps that made no call have no outcome.
    for a in plan.actions.iter().filter(|a| a.action == ActionKind::Keep && !a.update_marker) {
        rows.push(Row {
            rank: 6,
            result: "kept",
            request: a.requests.join(", "),
            access: format!("{} {}: {}", a.provider, a.resource, a.access),
            until: until(a.end),
            detail: format!("for {}", a.principal),
        });
    }
    for r in &plan.refused {
        rows.push(Row {
            rank: 3,
            result: "refused",
            request: r.request.clone(),
            access: format!("{} on {}", r.role, r.resources.join(", ")),
            until: String::new(),
            detail: r.reason.clone(),
        });
    }
    for f in &plan.failures {
        rows.push(Row {
            rank: 0,
            result: "FAILED provider",
            request: String::new(),
            access: format!("{} {}", f.provider, f.resource),
            until: String::new(),
            detail: f.error.clone(),
        });
    }
    rows.sort_by(|a, b| (a.rank, &a.request, &a.access).cmp(&(b.rank, &b.request, &b.access)));

    let count = |r: &str| rows.iter().filter(|x| x.result == r).count();
    let failed = rows.iter().filter(|x| x.rank <= 1).count();
    let mut out = format!(
        "## gitgrant reconcile at {}: {} granted, {} revoked, {} kept, {} refused, {} failed\n\n",
        at.format("%Y-%m-%d %H:%M UTC"),
        count("granted"),
        count("revoked") + count("revoked late"),
        count("kept"),
        count("refused"),
        failed
    );
    // Late runs first: a schedule that stopped is what a reader must act on.
    for w in &plan.warnings {
        out.push_str(&format!("> **Warning:** {}\n\n", text(w)));
    }
    for m in &plan.missed {
        out.push_str(&format!(
            "> **Missed:** {} ({} on {}): its whole window, {} to {}, passed between two runs\n\n",
            text(&m.request),
            text(&m.role),
            text(&m.resources.join(", ")),
            m.start.format("%Y-%m-%d %H:%M UTC"),
            m.end.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    if rows.is_empty() {
        out.push_str("Nothing to grant or revoke.\n");
        return out;
    }
    out.push_str("| result | request | access | until | detail |\n|---|---|---|---|---|\n");
    for r in &rows {
        let result = if r.rank <= 3 { format!("**{}**", r.result) } else { r.result.to_string() };
        out.push_str(&format!("| {result} | {} | {} | {} | {} |\n", text(&r.request), text(&r.access), text(&r.until), text(&r.detail)));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::model::policy::ProviderKind;
    use crate::provider::{Access, Held};
    use crate::reconcile::Action;
    use crate::reconcile::desired::Refusal;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn action(kind: ActionKind, request: &str, end: Option<&str>) -> Action {
        Action {
            action: kind,
            request: request.into(),
            requests: vec![request.into()],
            provider: ProviderKind::Postgres,
            resource: "orders-db".into(),
            principal: "alice".into(),
            access: "readonly".into(),
            end: end.map(t),
            reason: String::new(),
            update_marker: false,
            spec: None,
            held: None,
            entitlements: Vec::new(),
        }
    }

    fn done(a: Action, error: Option<&str>) -> Outcome {
        Outcome { ok: error.is_none(), attempts: if error.is_some() { 5 } else { 1 }, error: error.map(str::to_string), action: a, transient_failure: false }
    }

    #[test]
    fn failed_and_late_come_first_in_five_columns() {
        let at = t("2026-12-01T12:00:00Z");
        let mut late = action(ActionKind::Revoke, "r-late", None);
        late.held = Some(Held {
            access: Access { provider: ProviderKind::Postgres, resource: "orders-db".into(), principal: "alice".into(), access: "readonly".into() },
            requests: Default::default(),
            end: Some(t("2026-12-01T09:00:00Z")),
            handle: String::new(),
        });
        let keep = action(ActionKind::Keep, "r-keep", Some("2026-12-01T14:00:00Z"));
        let plan = Plan {
            at,
            main: "abc".into(),
            actions: vec![keep],
            refused: vec![Refusal {
                request: "r-refused".into(),
                requester: "mallory".into(),
                role: "db-admin".into(),
                resources: vec!["orders-db".into()],
                commit: None,
                reason: "direct push | no approvals <b>".into(),
            }],
            failures: vec![],
            native_expiry: Default::default(),
            rule_changes_in_force: vec![],
            warnings: vec![],
            missed: vec![],
        };
        let outcomes = vec![
            done(action(ActionKind::Grant, "r-granted", Some("2026-12-01T13:00:00Z")), None),
            done(late, None),
            done(action(ActionKind::Revoke, "r-failed", None), Some("connection refused")),
        ];
        let md = reconcile_summary(&plan, &outcomes, at);
        insta::assert_snapshot!(md);
        let html = crate::render::markdown::tests::gfm_html(&md);
        let order: Vec<usize> = ["r-failed", "r-late", "r-refused", "r-granted", "r-keep"].iter().map(|r| html.find(r).unwrap()).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{md}");
        for row in html.split("<tr>").skip(1) {
            assert!(row.matches("<td").count() <= 5 && row.matches("<th").count() <= 5, "{row}");
        }
        assert!(!html.contains("<b>"), "{html}");
    }

    #[test]
    fn an_overdue_run_and_a_missed_window_are_said_first() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-01T14:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let plan = Plan {
            at,
            main: "abc".into(),
            actions: vec![],
            refused: vec![],
            failures: vec![],
            native_expiry: Default::default(),
            rule_changes_in_force: vec![],
            warnings: vec!["the ledger holds 1 grant(s) open past their end <b>".into()],
            missed: vec![crate::reconcile::plan::Missed {
                request: "heidi-b".into(),
                requester: "heidi".into(),
                role: "user".into(),
                resources: vec!["sandbox".into()],
                start: at - chrono::Duration::hours(2),
                end: at - chrono::Duration::hours(1),
            }],
        };
        let md = reconcile_summary(&plan, &[], at);
        let warning = md.find("> **Warning:** the ledger holds 1 grant(s) open past their end &lt;b&gt;").expect(&md);
        let missed = md.find("> **Missed:** heidi-b (user on sandbox): its whole window, 2026-12-01 12:00 UTC to 2026-12-01 13:00 UTC").expect(&md);
        assert!(warning < missed && missed < md.find("Nothing to grant or revoke.").expect(&md), "{md}");
    }
}
