//! `gitgrant check`: judge a PR (or the working tree) and say what it needs.

use crate::check::{CheckOptions, CheckReport, Status};
use crate::render::escape::{self, GhCommand, human, human_join};

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
    /// How rule changes on the base's history are judged (GitHub reviews or trailers), and the trust root.
    #[command(flatten)]
    pub verify: super::plan::VerifyArgs,
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
    // One repository handle for the check and the chain of trust: the trust
    // walk then reads main's commits and root trees from libgit2's object
    // cache instead of inflating them a second time.
    let repo = match crate::check::open_for(&g.repo, &opts) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let mut report = match crate::check::check_in(repo.as_ref(), &opts, &crate::source::FsTree::new(&g.repo)) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if let Err(code) = chain_of_trust(g, repo.as_ref(), &a.verify, &mut report) {
        return code;
    }
    if g.verbose
        && let Some(h) = &report.history_status
    {
        eprintln!("{}", human(h));
    }
    print_report(g, &report);
    let code = report.status.code();
    // The repository too: freeing libgit2's cache of main's commits (the
    // trust walk's) was a tenth of a warm check on 100,000 commits.
    super::exit_soon((report, repo));
    code
}

fn print_report(g: &Global, report: &CheckReport) {
    // Only text the check itself read (from the tree it judged) is shown: the
    // working tree may hold another version, or a link to a file outside the
    // repository whose lines must never reach a CI log.
    let sources = |f: &str| report.sources.get(f).cloned();
    match g.format {
        Format::Json | Format::Csv => match escape::json_pretty(report) {
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
                    println!("policy change ({}): needs {}\n", human_join(&pc.files, ", "), human(&crate::check::describe_rules(&pc.approvals.required)));
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
                    println!("{}", escape::gh_command(GhCommand::Notice, &[("file", &r.file), ("title", &title)], &request_lines(r)));
                }
            }
            if std::env::var_os("GITHUB_STEP_SUMMARY").is_some_and(|p| !p.is_empty()) {
                match job_summary(report) {
                    Ok(md) => {
                        if let Err(e) = escape::append_step_summary(&md) {
                            eprintln!("warning: {e}");
                        }
                    }
                    Err(e) => eprintln!("warning: job summary template failed: {}", human(&e.to_string())),
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

/// The chain of trust at the base the change was judged by (GG310): the
/// policies of an unapproved rule change judge nothing. Only for a change
/// between two commits (a PR); a working-tree check is a local preview.
fn chain_of_trust(g: &Global, repo: Option<&git2::Repository>, verify: &super::plan::VerifyArgs, report: &mut CheckReport) -> Result<(), u8> {
    let Some(base) = report.base.as_deref().and_then(|b| git2::Oid::from_str(b).ok()) else { return Ok(()) };
    if git2::Oid::from_str(&report.head).is_err() {
        return Ok(());
    }
    let opened;
    let repo = match repo {
        Some(r) => r,
        None => {
            opened = git2::Repository::open(&g.repo).map_err(fail)?;
            &opened
        }
    };
    let rt = super::runtime()?;
    let trust = rt.block_on(async {
        let client = verify.client().await?;
        let api = client.as_ref().map(|c| c as &dyn crate::github::GitHubApi);
        crate::engine::trust::evaluate(repo, base, verify.trust_root.as_deref(), api).await.map_err(|e| e.to_string())
    });
    let trust = trust.map_err(fail)?;
    let diags = trust.diagnostics(report.requests.is_empty());
    if diags.iter().any(crate::diag::Diagnostic::is_error) && report.status == Status::Ok {
        report.status = Status::Failed;
        report.ok = false;
    }
    report.diagnostics.extend(diags);
    report.diagnostics.sort_by(|a, b| (&a.file, a.line, a.column, a.code).cmp(&(&b.file, b.line, b.column, b.code)));
    Ok(())
}
