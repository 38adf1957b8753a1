//! `gitgrant gate --pr N`: judge a PR's reviews, publish the verdict on GitHub.

use crate::github::client::Client;
use crate::github::context::{pr_event_from_env, repo_slug};
use crate::github::gate::{GateOptions, GateOutcome, run_gate};

use super::output::print_diagnostics;
use super::{Format, Global, fail};
use crate::render::escape::{self, human};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pull request (default: the PR of the GitHub Actions event).
    #[arg(long, value_name = "N")]
    pub pr: Option<u64>,
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
    let event = match (pr_event_from_env(), a.pr) {
        (Ok(e), _) => e,
        (Err(_), Some(_)) => None,
        (Err(e), None) => return fail(e),
    };
    let Some(pr) = a.pr.or(event.as_ref().map(|e| e.number)) else {
        return fail("no pull request: pass --pr N (outside a pull_request or pull_request_review workflow)");
    };
    let slug = match repo_slug(a.github_repo.as_deref(), event.as_ref()) {
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
    for n in &o.notes {
        eprintln!("warning: {}", human(n));
    }
    let published = match (o.published.check_run, o.published.status) {
        (true, _) => "check run",
        (false, true) => "commit status",
        (false, false) => "nothing published",
    };
    eprintln!(
        "gate: PR #{} at {}: {} ({published}): {}",
        o.pr.number,
        human(o.pr.head_sha.get(..12).unwrap_or(&o.pr.head_sha)),
        o.conclusion.as_str(),
        human(&o.check_run.output.title)
    );
}
