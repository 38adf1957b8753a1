//! `gitgrant reconcile`: run the plan, then record it on the ledger branch.

use chrono::{DateTime, Utc};
use git2::Repository;
use std::time::Duration;

use super::{Format, Global, fail};
use crate::ledger::{self, Ledger};
use crate::reconcile::execute::execute_observed;
use crate::reconcile::{ActionKind, ExecOptions, ledger_entries};

/// The ledger flags of the commands that change the providers.
#[derive(Debug, clap::Args)]
pub struct LedgerArgs {
    /// Do not write the ledger branch (not recommended: the audit trail is the point).
    #[arg(long)]
    pub no_ledger: bool,
    /// The remote to push the ledger branch to, when it exists.
    #[arg(long, default_value = "origin")]
    pub remote: String,
}

/// Publishes the history index this run read on `refs/gitgrant/index` and
/// pushes it, so a fresh CI clone that fetches the ref walks only newer
/// commits. A cache: failing costs the next clone time, never a decision,
/// so it only warns.
fn share_index(repo: &Repository, main: &str, remote: &str) {
    use crate::history::travel;
    let result = travel::publish(repo, &crate::history::index_path(repo), main).map_err(|e| e.to_string()).and_then(|_| travel::push(repo, remote));
    if let Err(e) = result {
        eprintln!("warning: the history index could not be shared on `{}`: {}", travel::INDEX_REF, e.escape_debug());
    }
}

/// Opens the repository and reads its ledger before anything changes, so a
/// corrupt ledger stops a run first (exit 2).
pub(super) fn open_with_ledger(g: &Global) -> Result<(Repository, Ledger), u8> {
    let repo = Repository::open(&g.repo).map_err(|e| fail(format!("`{}` is not a git repository: {e}", g.repo.display())))?;
    let ledger = Ledger::read(&repo).map_err(fail)?;
    Ok((repo, ledger))
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The time to reconcile for (default: now, or --now).
    #[arg(long, value_name = "RFC3339", value_parser = super::parse_time)]
    pub at: Option<DateTime<Utc>>,
    /// Provider calls in flight per provider kind.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Attempts per provider call on throttling and 5xx (the first included).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub attempts: u32,
    #[command(flatten)]
    pub ledger: LedgerArgs,
    #[command(flatten)]
    pub verify: super::plan::VerifyArgs,
}

pub fn run(g: &Global, a: Args) -> u8 {
    let at = a.at.unwrap_or(g.now);
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let (repo, mut ledger) = match open_with_ledger(g) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let (_, providers, plan) = match rt.block_on(super::plan::prepare_with(g, &a.verify, at)) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let opts = ExecOptions { concurrency: a.concurrency.into(), attempts: a.attempts, ..ExecOptions::from_env() };
    let calls = plan.actions.iter().filter(|x| x.action != ActionKind::Keep || x.update_marker).count();
    let bar = super::output::progress(g, calls as u64, "reconcile");
    let on_done = |o: &crate::reconcile::Outcome, took: Duration| {
        bar.inc(1);
        let result = if o.ok { "ok".to_string() } else { format!("FAILED: {}", o.error.clone().unwrap_or_default()) };
        let line = format!(
            "{} {} {} {} {}: {result} in {} ms ({} attempt(s))",
            o.action.action.as_str(),
            o.action.provider,
            o.action.resource,
            o.action.principal,
            o.action.access,
            took.as_millis(),
            o.attempts
        );
        super::output::verbose_line(g, &bar, &line);
    };
    let outcomes = rt.block_on(execute_observed(&plan, &providers, &opts, &on_done));
    bar.finish_and_clear();
    let entries = ledger_entries(&plan, &outcomes, &ledger, at);
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.ok).collect();
    let summary = format!(
        "gitgrant reconcile at {}: {} granted, {} revoked, {} failed",
        at.to_rfc3339(),
        outcomes.iter().filter(|o| o.ok && o.action.action == ActionKind::Grant).count(),
        outcomes.iter().filter(|o| o.ok && o.action.action == ActionKind::Revoke).count(),
        failed.len()
    );
    let mut ledger_error = None;
    if !entries.is_empty()
        && !a.ledger.no_ledger
        && let Err(e) = ledger.record(&repo, &entries, &summary, &a.ledger.remote)
    {
        ledger_error = Some(e.to_string());
    }
    if !a.ledger.no_ledger {
        share_index(&repo, &plan.main, &a.ledger.remote);
    }
    match g.format {
        Format::Json => {
            let doc = serde_json::json!({
                "at": at, "main": plan.main, "outcomes": outcomes, "refused": plan.refused,
                "failures": plan.failures, "ledger": entries, "ledger_error": ledger_error,
            });
            match serde_json::to_string_pretty(&doc) {
                Ok(s) => println!("{s}"),
                Err(e) => return fail(e),
            }
        }
        Format::Human if g.quiet => super::plan::print_errors(&plan),
        _ => {
            print!("{}", super::plan::render_plan(&plan));
            for o in &outcomes {
                let status = if o.ok { "done".to_string() } else { format!("FAILED after {} attempt(s): {}", o.attempts, o.error.clone().unwrap_or_default()) };
                println!("{:<6} {} {} {} {}: {status}", o.action.action.as_str(), o.action.provider, o.action.resource, o.action.principal, o.action.access);
            }
            if !entries.is_empty() && !a.ledger.no_ledger && ledger_error.is_none() {
                println!("ledger: {} line(s) recorded on `{}`", entries.len(), ledger::BRANCH);
            }
            if g.format == Format::Github {
                for o in &failed {
                    println!(
                        "::error title=gitgrant reconcile::{} {} {} for {}: {}",
                        o.action.action.as_str(),
                        o.action.provider,
                        o.action.resource,
                        o.action.principal,
                        o.error.clone().unwrap_or_default()
                    );
                }
                for r in &plan.refused {
                    println!("::error title=gitgrant refused {}::{}", r.request, r.reason.replace('\n', " "));
                }
            }
        }
    }
    if let Some(e) = &ledger_error {
        eprintln!("error: the ledger could not be written: {e}");
    }
    for o in &failed {
        eprintln!("error: {} failed: {}", o.action.action.as_str(), o.error.clone().unwrap_or_default());
    }
    u8::from(!failed.is_empty() || !plan.failures.is_empty() || !plan.refused.is_empty() || ledger_error.is_some())
}
