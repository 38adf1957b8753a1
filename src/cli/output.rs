//! Shared rendering for reports: diagnostics in each format, request lines,
//! and the Markdown job summary.

use std::fmt::Write;

use crate::check::{CheckReport, RequestOutcome, describe_rules};
use crate::diag::{Diagnostic, Severity, render};
use crate::model::policy::Policy;
use crate::render::escape::{human, human_join, time_short};

use super::{Format, Global};

/// Prints diagnostics in the chosen text format (JSON embeds them instead).
pub fn print_diagnostics(g: &Global, diags: &[Diagnostic], sources: &dyn Fn(&str) -> Option<String>) {
    for d in diags {
        if g.quiet && d.severity != Severity::Error {
            continue;
        }
        match g.format {
            Format::Human => eprint!("{}", render::human(d, sources, g.color)),
            Format::Github => println!("{}", render::github(d)),
            Format::Json | Format::Csv => {}
        }
    }
}

pub fn window_text(o: &RequestOutcome) -> String {
    match (o.start, o.end) {
        (Some(s), Some(e)) => {
            let len = crate::model::Duration::from_secs((e - s).num_seconds());
            format!("{} -> {} ({len})", time_short(s), time_short(e))
        }
        _ => "unknown".to_string(),
    }
}

/// A few lines per request for the human format.
pub fn request_lines(o: &RequestOutcome) -> String {
    let mut s = String::new();
    let flag = if o.break_glass { " [BREAK-GLASS]" } else { "" };
    let _ = writeln!(s, "{} ({}){flag}", human(&o.id), o.change.as_str());
    if o.requester.is_empty() {
        return s;
    }
    let _ = writeln!(s, "  {} -> {} on {}", human(&o.requester), human(&o.role), human_join(&o.resources, ", "));
    if o.change == crate::check::Change::Removed {
        let _ = writeln!(s, "  removed: access ends early at the next reconcile; no approval needed");
        return s;
    }
    let _ = writeln!(s, "  window  {}", window_text(o));
    if let Some(r) = &o.risk {
        let parts: Vec<String> = r.factors.iter().filter(|f| f.points != 0).map(|f| format!("{} {:+}", human(f.name), f.points)).collect();
        let _ =
            writeln!(s, "  risk    {} (tier {}){}", r.score, human(&r.tier), if parts.is_empty() { String::new() } else { format!(": {}", parts.join(", ")) });
    }
    match o.change {
        crate::check::Change::Shrink => {
            let _ = writeln!(s, "  needs   no approval: it only narrows a merged request (early revocation)");
        }
        _ if o.risk.is_some() => {
            let _ = writeln!(s, "  needs   {}", human(&describe_rules(&o.approvals.required)));
        }
        _ => {}
    }
    s
}

/// Who could fill a slot of `from` groups: members, minus the excluded.
pub fn candidates(policy: &Policy, from: &[String], excluded: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = from.iter().flat_map(|g| policy.members(g)).filter(|m| !excluded.iter().any(|e| e.eq_ignore_ascii_case(m))).collect();
    out.sort();
    out.dedup();
    out
}

/// The job summary (Markdown) from `templates/job-summary.md.j2` at the base,
/// or the built-in one: the same request cards as the PR comment, with every
/// approval slot open and the people who can fill it.
pub fn job_summary(report: &CheckReport) -> Result<String, minijinja::Error> {
    use crate::approval::{ApprovalInput, Requirement, evaluate};
    use crate::render::card::{CardView, Header, render_card_template};
    let source = report.policy.templates.get("job-summary.md.j2").map_or(DEFAULT_JOB_SUMMARY, String::as_str);
    let requirements: Vec<Requirement> = report.required().into_iter().map(|(label, r)| Requirement { from: r.from, count: r.count, label }).collect();
    let groups = report.policy.group_members();
    let excluded: Vec<String> = report.requests.iter().filter(|r| r.change.needs_approval()).map(|r| r.requester.clone()).collect();
    let decision = evaluate(&ApprovalInput { requirements: &requirements, groups: &groups, reviews: &[], head_commit: "", excluded: &excluded });
    let header = Header { title: decision.summary(), conclusion: if report.ok { "success" } else { "failure" }, ..Header::default() };
    let mut view = CardView::new(header, Some(report), &decision);
    view.from_check = true;
    render_card_template("job-summary.md.j2", source, Some(&report.policy.templates), &view)
}

/// Appends Markdown to the Actions job summary (`$GITHUB_STEP_SUMMARY`), when
/// set; a failure to write is a warning (the summary is a courtesy).
pub fn append_step_summary(md: &str) {
    if let Err(e) = crate::render::escape::append_step_summary(md) {
        eprintln!("warning: {e}");
    }
}

pub const DEFAULT_JOB_SUMMARY: &str = include_str!("../../templates/job-summary.md.j2");

/// One line per approval slot: filled by whom, or who could fill it.
pub fn slot_lines(decision: &crate::approval::Decision) -> String {
    let mut out = String::new();
    for slot in &decision.slots {
        let from = human_join(&slot.from, " or ");
        match &slot.filled_by {
            Some(who) => out.push_str(&format!("  [x] {} from {from}: {}\n", human(&slot.label), human(who))),
            None => {
                let who = if slot.candidates.is_empty() { "nobody eligible".to_string() } else { human_join(&slot.candidates, ", ") };
                out.push_str(&format!("  [ ] {} from {from}: could approve: {who}\n", human(&slot.label)));
            }
        }
    }
    out
}

/// A progress bar on stderr for long runs (reconcile, audit): drawn only when
/// stderr is a terminal and the output is for people (not `--quiet`, not
/// JSON); hidden otherwise, so callers use it unconditionally.
pub fn progress(g: &Global, len: u64, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    let shown = std::io::stderr().is_terminal() && !g.quiet && g.format == Format::Human && len > 0;
    if !shown {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::stderr());
    // No colours in the template: NO_COLOR needs nothing special here.
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// A `-v` line on stderr that does not tear a progress bar.
pub fn verbose_line(g: &Global, bar: &indicatif::ProgressBar, line: &str) {
    if !g.verbose {
        return;
    }
    if bar.is_hidden() {
        eprintln!("{}", human(line));
    } else {
        bar.println(human(line));
    }
}

/// Text from a provider, a request or a file on one line of output: control
/// characters (line breaks included) become spaces, so none can start a new
/// line or a workflow command.
pub fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}
