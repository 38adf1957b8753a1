//! `gitgrant check`: judge a PR (or the working tree) and say what it needs.

use crate::check::{CheckOptions, CheckReport, Status, run_check};
use crate::diag::render::{escape_data, escape_property};

use super::output::{job_summary, print_diagnostics, request_lines};
use super::{Format, Global, fail};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The branch the change goes into; policies come from its merge-base with HEAD.
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// The change to judge (default: the working tree).
    #[arg(long, value_name = "REF")]
    pub head: Option<String>,
    /// Validate every request in the tree, not only the changed ones.
    #[arg(long)]
    pub all: bool,
}

pub fn run(g: &Global, a: Args) -> u8 {
    // Inside a GitHub Actions PR workflow, the event names the base and head.
    let (base, head) = match (a.base, a.head) {
        (None, None) => match crate::github::context::pr_event_from_env() {
            Ok(Some(e)) => (Some(e.base_sha), Some(e.head_sha)),
            Ok(None) => (None, None),
            Err(e) => return fail(e),
        },
        refs => refs,
    };
    let opts = CheckOptions { base, head, all: a.all, only: None, now: g.now };
    let report = match run_check(&g.repo, &opts) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if g.verbose
        && let Some(h) = &report.history_status
    {
        eprintln!("{h}");
    }
    print_report(g, &report);
    report.status.code()
}

fn print_report(g: &Global, report: &CheckReport) {
    // Only text the check itself read (from the tree it judged) is shown: the
    // working tree may hold another version, or a link to a file outside the
    // repository whose lines must never reach a CI log.
    let sources = |f: &str| report.sources.get(f).cloned();
    match g.format {
        Format::Json | Format::Csv => match serde_json::to_string_pretty(report) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        },
        Format::Human => {
            print_diagnostics(g, &report.diagnostics, &sources);
            if !g.quiet {
                for r in &report.requests {
                    println!("{}", request_lines(r));
                }
                if let Some(pc) = &report.policy_change {
                    println!("policy change ({}): needs {}\n", pc.files.join(", "), crate::check::describe_rules(&pc.approvals.required));
                }
                if let Some(diff) = &report.policy_diff {
                    println!("{diff}");
                }
            }
            if !g.quiet || report.status != Status::Ok {
                eprintln!("{}", verdict(report));
            }
        }
        Format::Github => {
            print_diagnostics(g, &report.diagnostics, &sources);
            for r in &report.requests {
                if let Some(risk) = &r.risk {
                    let title = format!("{} risk {} ({})", r.id, risk.score, risk.tier);
                    println!("::notice file={},title={}::{}", escape_property(&r.file), escape_property(&title), escape_data(&request_lines(r)));
                }
            }
            if std::env::var_os("GITHUB_STEP_SUMMARY").is_some_and(|p| !p.is_empty()) {
                match job_summary(report) {
                    Ok(md) => super::output::append_step_summary(&md),
                    Err(e) => eprintln!("warning: job summary template failed: {e}"),
                }
            }
            if !g.quiet || report.status != Status::Ok {
                eprintln!("{}", verdict(report));
            }
        }
    }
}

fn verdict(report: &CheckReport) -> String {
    let errors = report.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = report.diagnostics.iter().filter(|d| d.severity == crate::diag::Severity::Warning).count();
    let n = report.requests.len();
    let what = format!("{n} request{}{}", if n == 1 { "" } else { "s" }, if report.policy_change.is_some() { " and a policy change" } else { "" });
    match report.status {
        Status::Ok => format!("check passed: {what}, {warnings} warning(s)"),
        Status::Failed => {
            // Count files, not requests: a file that does not parse is no request.
            let files: std::collections::BTreeSet<&str> = report.diagnostics.iter().filter(|d| d.is_error()).map(|d| d.file.as_str()).collect();
            format!("check failed: {errors} error(s) in {} file(s), {warnings} warning(s); judged {what}", files.len())
        }
        Status::Error => format!("check could not judge the change: {errors} error(s) in the policies or repository (exit 2)"),
    }
}
