//! `gitgrant gate --pr N`: judge a PR's reviews, publish the verdict on GitHub.
//! `gitgrant gate --merge-group` (or inside a `merge_group` event): judge a
//! merge queue's group commit, publish the verdict on it.

use crate::github::client::Client;
use crate::github::context::{merge_group_event_from_env, pr_event_from_env, repo_slug};
use crate::github::gate::merge_group::{MergeGroupOptions, MergeGroupOutcome, run_merge_group};
use crate::github::gate::{GateOptions, GateOutcome, run_gate};

use super::output::print_diagnostics;
use super::{Format, Global, fail};
use crate::render::escape::{self, human};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pull request (default: the PR of the GitHub Actions event).
    #[arg(long, value_name = "N", conflicts_with = "merge_group")]
    pub pr: Option<u64>,
    /// Judge the merge queue group of the GitHub Actions `merge_group` event
    /// ($GITHUB_EVENT_PATH); the default inside such an event.
    #[arg(long)]
    pub merge_group: bool,
    /// Publish a commit status instead of a check run.
    #[arg(long)]
    pub status: bool,
    /// The repository on GitHub (default: $GITHUB_REPOSITORY).
    #[arg(long, value_name = "OWNER/NAME")]
    pub github_repo: Option<String>,
    /// Do not post or update the sticky PR comment.
    #[arg(long)]
    pub no_comment: bool,
}

pub fn run(g: &Global, a: Args) -> u8 {
    if a.pr.is_none() {
        match (merge_group_event_from_env(), a.merge_group) {
            (Ok(Some(group)), _) => return run_group(g, &a, group),
            (Ok(None), true) => {
                return fail("--merge-group: GITHUB_EVENT_PATH names no merge_group event (run it in a workflow triggered by `merge_group`)");
            }
            // A merge_group payload that is malformed, or an unreadable event.
            (Err(e), _) => return fail(e),
            (Ok(None), false) => {}
        }
    }
    let event = match (pr_event_from_env(), a.pr) {
        (Ok(e), _) => e,
        (Err(_), Some(_)) => None,
        (Err(e), None) => return fail(e),
    };
    let Some(pr) = a.pr.or(event.as_ref().map(|e| e.number)) else {
        return fail("no pull request: pass --pr N (outside a pull_request or pull_request_review workflow)");
    };
    let slug = match repo_slug(a.github_repo.as_deref(), event.as_ref().and_then(|e| e.repository.as_deref())) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let opts = GateOptions { pr, repo_dir: g.repo.clone(), now: g.now, status_only: a.status, comment: !a.no_comment };
    let outcome = rt.block_on(async {
        let client = Client::from_env(slug).await.map_err(|e| e.to_string())?;
        run_gate(&client, &opts).await.map_err(|e| e.to_string())
    });
    match outcome {
        Ok(o) => {
            print_outcome(g, &o);
            o.exit
        }
        Err(e) => fail(e),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn run_group(g: &Global, a: &Args, event: crate::github::context::MergeGroupEvent) -> u8 {
    let slug = match repo_slug(a.github_repo.as_deref(), event.repository.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    let opts = MergeGroupOptions { event, repo_dir: g.repo.clone(), now: g.now, status_only: a.status };
    let outcome = rt.block_on(async {
        let client = Client::from_env(slug).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(run_merge_group(&client, &opts).await)
    });
    match outcome {
        Ok(o) => {
            print_group(g, &o);
            o.exit
        }
        Err(e) => fail(e),
    }
}

fn print_group(g: &Global, o: &MergeGroupOutcome) {
    if g.format == Format::Json {
        match escape::json_pretty(o) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        }
        return;
    }
    for p in &o.prs {
        if let Some(report) = &p.report {
            let sources = |f: &str| report.sources.get(f).cloned();
            print_diagnostics(g, &report.diagnostics, &sources);
        }
        if !g.quiet {
            let head = if p.head_sha.is_empty() { String::new() } else { format!(" at {}", human(p.head_sha.get(..12).unwrap_or(&p.head_sha))) };
            println!("PR #{}{head}: {}: {}", p.number, p.conclusion.as_str(), human(&p.title));
            print!("{}", super::output::slot_lines(&p.decision));
        }
        if let Some(e) = &p.error {
            eprintln!("error: PR #{}: {}", p.number, human(e));
        }
        for n in p.notes.iter().filter(|_| !g.quiet) {
            eprintln!("warning: PR #{}: {}", p.number, human(n));
        }
    }
    for u in &o.unexplained {
        eprintln!("error: refused: {}: {}", human(&u.path), human(&u.reason));
    }
    if let Some(e) = &o.error {
        eprintln!("error: {}", human(e));
    }
    if g.quiet {
        return;
    }
    let published = warnings_and_published(&o.notes, &o.published);
    let prs: Vec<String> = o.prs.iter().map(|p| format!("#{}", p.number)).collect();
    let prs = if prs.is_empty() { String::new() } else { format!(" (PR {})", prs.join(", ")) };
    eprintln!(
        "gate: merge group at {}{prs}: {} ({published}): {}",
        human(o.head_sha.get(..12).unwrap_or(&o.head_sha)),
        o.conclusion.as_str(),
        human(&o.check_run.output.title)
    );
}

fn print_outcome(g: &Global, o: &GateOutcome) {
    if g.format == Format::Json {
        match escape::json_pretty(o) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        }
        return;
    }
    if let Some(report) = &o.report {
        let sources = |f: &str| report.sources.get(f).cloned();
        print_diagnostics(g, &report.diagnostics, &sources);
    }
    if !g.quiet {
        print!("{}", super::output::slot_lines(&o.decision));
    }
    if let Some(e) = &o.error {
        eprintln!("error: {}", human(e));
    }
    if g.quiet {
        return;
    }
    let published = warnings_and_published(&o.notes, &o.published);
    eprintln!(
        "gate: PR #{} at {}: {} ({published}): {}",
        o.pr.number,
        human(o.pr.head_sha.get(..12).unwrap_or(&o.pr.head_sha)),
        o.conclusion.as_str(),
        human(&o.check_run.output.title)
    );
}

/// The warnings both outcomes print, and where the verdict went.
fn warnings_and_published(notes: &[String], p: &crate::github::gate::Published) -> &'static str {
    for n in notes {
        eprintln!("warning: {}", human(n));
    }
    match (p.check_run, p.status) {
        (true, _) => "check run",
        (false, true) => "commit status",
        (false, false) => "nothing published",
    }
}
