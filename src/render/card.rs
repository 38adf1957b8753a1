//! The request card: what a reviewer reads in five seconds, the same in the
//! sticky PR comment, the check-run summary and the job summary.
//!
//! Design choices:
//! - One view ([`CardView`]) built from the judgment (a [`CheckReport`] and
//!   an approval [`Decision`]); rendering never judges. `check` builds it
//!   with no reviews (every slot open, its candidates named), `gate` with
//!   the PR's reviews.
//! - The card is a heading, two lines and a task list: no table wider than
//!   three columns, nothing that scrolls at GitHub's ~800 px comment width.
//!   Details (reason when long, risk factors, diagnostics) are collapsed.
//! - Every string in the view is untrusted; templates escape it by context
//!   (see [`super::markdown`]). Fields the template shows verbatim are built
//!   here from escaped parts and marked safe (`mentions`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::approval::{Decision, IgnoreReason};
use crate::check::{CheckReport, describe_rules};
use crate::diag::Diagnostic;
use crate::risk::Risk;

/// Reasons longer than this go into a collapsed block.
const LONG_REASON: usize = 100;
/// More diagnostics than this are collapsed.
const MANY_DIAGNOSTICS: usize = 3;
/// Risk factors named on the card's risk line.
const TOP_FACTORS: usize = 3;

/// What templates see. Fields are the templates' contract: add, never rename.
#[derive(Debug, Serialize)]
pub struct CardView {
    pub pr: u64,
    pub head: String,
    pub conclusion: &'static str,
    pub satisfied: bool,
    /// The change is valid (no error diagnostics), and the number of errors.
    pub ok: bool,
    pub errors: usize,
    pub title: String,
    pub summary: String,
    pub error: Option<String>,
    pub requests: Vec<RequestView>,
    pub policy_change: Option<PolicyChangeView>,
    /// The effective-access diff of a policy change, and its Markdown.
    pub policy_diff: Option<crate::simulate::PolicyDiff>,
    pub policy_diff_markdown: Option<minijinja::Value>,
    /// Every slot of the PR, in requirement order (each request also has its own).
    pub slots: Vec<SlotView>,
    pub approvers: Vec<String>,
    pub blockers: Vec<String>,
    pub ignored: Vec<IgnoredView>,
    pub diagnostics: Vec<Diagnostic>,
    /// More diagnostics than fit open: the template collapses them.
    pub many_diagnostics: bool,
    pub notes: Vec<String>,
    /// `@login` pings for the people who can fill open slots, when the
    /// policy asks to mention instead of requesting reviews (already safe).
    pub mentions: Option<minijinja::Value>,
    /// `check` (no reviews read) rather than `gate`.
    pub from_check: bool,
    /// The check-run summary renders the card without the footer.
    pub check_run: bool,
}

#[derive(Debug, Serialize)]
pub struct RequestView {
    pub id: String,
    pub file: String,
    pub change: &'static str,
    pub requester: String,
    pub role: String,
    pub resources: Vec<String>,
    /// `2026-12-01 10:00 UTC -> 2026-12-01 12:00 UTC (2h)` (kept for old templates).
    pub window: String,
    /// `Tue 1 Dec 11:00–13:00 CET (10:00–12:00 UTC), 2h`: local first when the
    /// policy has a business-hours timezone.
    pub when: String,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub break_glass: bool,
    pub reason: String,
    pub reason_long: bool,
    pub ticket: Option<String>,
    pub risk: Option<Risk>,
    /// The largest non-zero factors: `sensitivity +25`.
    pub top_factors: Vec<String>,
    pub needs: String,
    pub needs_approval: bool,
    pub slots: Vec<SlotView>,
    pub filled: usize,
}

#[derive(Debug, Serialize)]
pub struct PolicyChangeView {
    pub files: Vec<String>,
    pub needs: String,
    pub slots: Vec<SlotView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SlotView {
    pub label: String,
    pub from: Vec<String>,
    pub filled_by: Option<String>,
    pub candidates: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct IgnoredView {
    pub login: String,
    pub why: String,
}

/// The header of a card: where it is published and what the verdict is.
#[derive(Debug, Clone, Default)]
pub struct Header {
    pub pr: u64,
    pub head: String,
    pub conclusion: &'static str,
    pub satisfied: bool,
    pub title: String,
    pub error: Option<String>,
    pub notes: Vec<String>,
}

pub fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn why(reason: &IgnoreReason) -> String {
    match reason {
        IgnoreReason::RequesterOrAuthor => "requester, PR author or committer: cannot approve".to_string(),
        IgnoreReason::Superseded => "superseded by their later review".to_string(),
        IgnoreReason::Dismissed => "review dismissed".to_string(),
        IgnoreReason::StaleCommit { commit } => format!("approved an older commit ({}): approve again", short(commit)),
        IgnoreReason::NotEligible => "not in a group that must approve".to_string(),
        IgnoreReason::Unused => "every slot they can fill is already filled".to_string(),
        IgnoreReason::ChangesRequestedNotEligible => "requested changes; not in an approving group, so not blocking".to_string(),
    }
}

/// `Tue 1 Dec 11:00–13:00 Europe/Berlin (10:00–12:00 UTC), 2h`; the end
/// date is repeated only when it differs.
pub fn when(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>, tz: Option<chrono_tz::Tz>) -> String {
    let (Some(s), Some(e)) = (start, end) else {
        return "window unknown".to_string();
    };
    let len = crate::model::Duration::from_secs((e - s).num_seconds());
    let span = |a: String, b: String, same_day: bool, b_day: String| if same_day { format!("{a}–{b}") } else { format!("{a} – {b_day} {b}") };
    let utc = span(s.format("%H:%M").to_string(), e.format("%H:%M").to_string(), s.date_naive() == e.date_naive(), e.format("%a %-d %b").to_string());
    match tz.filter(|tz| *tz != chrono_tz::UTC) {
        Some(tz) => {
            let (ls, le) = (s.with_timezone(&tz), e.with_timezone(&tz));
            let local =
                span(ls.format("%H:%M").to_string(), le.format("%H:%M").to_string(), ls.date_naive() == le.date_naive(), le.format("%a %-d %b").to_string());
            format!("{} {local} {tz} ({utc} UTC), {len}", ls.format("%a %-d %b %Y"))
        }
        None => format!("{} {utc} UTC, {len}", s.format("%a %-d %b %Y")),
    }
}

fn slot_view(s: &crate::approval::SlotOutcome) -> SlotView {
    SlotView { label: s.label.clone(), from: s.from.clone(), filled_by: s.filled_by.clone(), candidates: s.candidates.clone() }
}

/// Whether a slot's label (see `CheckReport::required`) belongs to request `id`.
fn slot_of(label: &str, id: &str) -> bool {
    label == id || label.strip_prefix(id).is_some_and(|rest| rest.starts_with(" ("))
}

impl CardView {
    pub fn new(header: Header, report: Option<&CheckReport>, d: &Decision) -> CardView {
        let tz = report.and_then(|r| r.policy.factors.off_hours.as_ref()).map(|o| o.timezone);
        let requests = report
            .iter()
            .flat_map(|r| &r.requests)
            .map(|o| {
                let reason = o.request.as_ref().map(|r| r.reason.clone()).unwrap_or_default();
                let slots: Vec<SlotView> = d.slots.iter().filter(|s| slot_of(&s.label, &o.id)).map(slot_view).collect();
                let mut top: Vec<&crate::risk::Factor> = o.risk.iter().flat_map(|r| &r.factors).filter(|f| f.points != 0).collect();
                top.sort_by_key(|f| std::cmp::Reverse(f.points));
                RequestView {
                    id: o.id.clone(),
                    file: o.file.clone(),
                    change: o.change.as_str(),
                    requester: o.requester.clone(),
                    role: o.role.clone(),
                    resources: o.resources.clone(),
                    window: crate::cli::output::window_text(o),
                    when: when(o.start, o.end, tz),
                    start: o.start,
                    end: o.end,
                    break_glass: o.break_glass,
                    reason_long: reason.chars().count() > LONG_REASON,
                    reason,
                    ticket: o.request.as_ref().and_then(|r| r.ticket.clone()),
                    top_factors: top.iter().take(TOP_FACTORS).map(|f| format!("{} {:+}", f.name, f.points)).collect(),
                    risk: o.risk.clone(),
                    needs: if o.change.needs_approval() { describe_rules(&o.approvals.required) } else { "no approval (ends access early)".to_string() },
                    needs_approval: o.change.needs_approval(),
                    filled: slots.iter().filter(|s| s.filled_by.is_some()).count(),
                    slots,
                }
            })
            .collect();
        let diagnostics = report.map(|r| r.diagnostics.clone()).unwrap_or_default();
        let errors = diagnostics.iter().filter(|x| x.is_error()).count();
        CardView {
            ok: report.is_some_and(|r| r.ok),
            errors,
            pr: header.pr,
            head: header.head,
            conclusion: header.conclusion,
            satisfied: header.satisfied,
            title: header.title,
            summary: d.summary(),
            error: header.error,
            requests,
            policy_change: report.and_then(|r| r.policy_change.as_ref()).map(|pc| PolicyChangeView {
                files: pc.files.clone(),
                needs: describe_rules(&pc.approvals.required),
                slots: d.slots.iter().filter(|s| s.label == "policy change").map(slot_view).collect(),
            }),
            policy_diff: report.and_then(|r| r.policy_diff.clone()),
            policy_diff_markdown: report.and_then(|r| r.policy_diff.as_ref()).map(|pd| minijinja::Value::from_safe_string(crate::simulate::diff::markdown(pd))),
            slots: d.slots.iter().map(slot_view).collect(),
            approvers: d.approvers.clone(),
            blockers: d.blockers.clone(),
            ignored: d.ignored.iter().map(|i| IgnoredView { login: i.login.clone(), why: why(&i.reason) }).collect(),
            many_diagnostics: diagnostics.len() > MANY_DIAGNOSTICS,
            diagnostics,
            notes: header.notes,
            mentions: None,
            from_check: false,
            check_run: false,
        }
    }
}

/// The built-in card, included by the comment, check-run and job-summary
/// templates; a base branch's `templates/card.md.j2` overrides it.
pub const DEFAULT_CARD: &str = include_str!("../../templates/card.md.j2");

/// Renders `name` (with `source`) against `view`, with `card.md.j2` (from
/// `templates`, else built in) available to `{% include %}`.
pub fn render_card_template(
    name: &str,
    source: &str,
    templates: Option<&std::collections::BTreeMap<String, String>>,
    view: &CardView,
) -> Result<String, minijinja::Error> {
    let mut env = super::environment();
    // Line-based templates: a block tag's own line leaves no blank line.
    env.set_syntax(minijinja::syntax::SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build()?);
    let card = templates.and_then(|t| t.get("card.md.j2")).map_or(DEFAULT_CARD, String::as_str);
    env.add_template_owned("card.md.j2".to_string(), card.to_string())?;
    env.add_template_owned(name.to_string(), source.to_string())?;
    env.get_template(name)?.render(minijinja::Value::from(minijinja::value::Serde(view)))
}
