//! `gitgrant reconcile`: run the plan, then record it on the ledger branch.

use chrono::{DateTime, Utc};
use git2::Repository;
use std::time::Duration;

use super::{Format, Global, fail};
use futures::StreamExt;

use crate::ledger::{self, Ledger, lock};
use crate::reconcile::{ActionKind, ExecOptions, execute_by_resource, ledger_entries};
use crate::render::escape::{self, GhCommand, human};

/// The ledger flags of the commands that change the providers.
#[derive(Debug, clap::Args)]
pub struct LedgerArgs {
    /// Do not write the ledger branch (not recommended: the audit trail is the point).
    #[arg(long)]
    pub no_ledger: bool,
    /// The remote whose `gitgrant-ledger` branch is the ledger: fetched before planning, pushed after.
    #[arg(long, default_value = "origin")]
    pub remote: String,
    /// How long to wait for another gitgrant run on this repository to finish.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub lock_wait: u64,
    /// A run lock older than this is stale and taken over (a lock whose process is gone on this host is, at once).
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    pub lock_stale: u64,
}

/// Publishes the history index this run read on the branch
/// `gitgrant-index` and pushes it, so a fresh CI clone (which has every
/// branch) walks only newer commits. A cache: failing costs the next clone time, never a decision,
/// so it only warns.
fn share_index(repo: &Repository, main: &str, remote: &str) {
    use crate::history::travel;
    let result = travel::publish(repo, &crate::history::index_path(repo), main).map_err(|e| e.to_string()).and_then(|_| travel::push(repo, remote));
    if let Err(e) = result {
        eprintln!("warning: the history index could not be shared on `{}`: {}", travel::INDEX_BRANCH, crate::render::escape::human(&e));
    }
}

/// What a command that changes the providers does before touching any:
/// takes the run lock (another run: wait, then exit with `busy` and a
/// message), clears ref locks a killed run left, fetches the remote's ledger,
/// reads it, and checks it can be written. Warnings go to stderr.
pub(super) fn open_for_run(g: &Global, a: &LedgerArgs, command: &str, busy: u8) -> Result<(Repository, Ledger, lock::RunLock), u8> {
    let repo = Repository::open(&g.repo).map_err(|e| fail(format!("`{}` is not a git repository: {e}", g.repo.display())))?;
    let mut notes = Vec::new();
    let opts = lock::LockOptions { wait: Duration::from_secs(a.lock_wait), stale_after: Duration::from_secs(a.lock_stale) };
    let held = match lock::acquire(&repo, command, opts, &mut notes) {
        Ok(l) => l,
        Err(lock::LockError::Busy { path, holder, waited }) => {
            eprintln!(
                "notice: another gitgrant run holds the run lock {path}: {holder}; waited {waited} s. Nothing was changed; \
                 the running one does this work (if it is gone, the lock is taken over once it is older than --lock-stale)"
            );
            return Err(busy);
        }
        Err(e) => return Err(fail(e)),
    };
    notes.extend(lock::clear_stale_ref_locks(&repo));
    if !a.no_ledger {
        ledger::fetch(&g.repo, &a.remote).map_err(fail)?;
    }
    let ledger = Ledger::read(&repo).map_err(fail)?;
    notes.extend(ledger.notes.iter().cloned());
    if !a.no_ledger {
        lock::check_writable(&repo).map_err(fail)?;
    }
    for n in notes {
        eprintln!("warning: {}", super::output::one_line(&n));
    }
    Ok((repo, ledger, held))
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
    /// The run's deadline: provider calls still running after this are abandoned and reported (exit 1); listing gets at most half of it.
    #[arg(long, default_value_t = 600, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub deadline: u64,
    #[command(flatten)]
    pub ledger: LedgerArgs,
    #[command(flatten)]
    pub verify: super::plan::VerifyArgs,
}

/// Delivers this run's events (and any not yet delivered) to the policies'
/// sinks; the failures, as warnings.
async fn notify(g: &Global, a: &Args, desired: &crate::reconcile::Desired, ledger: &Ledger, plan: &crate::reconcile::Plan, at: DateTime<Utc>) -> Vec<String> {
    let n = &desired.policy.notifications;
    if n.sinks.is_empty() {
        return Vec::new();
    }
    let since = at - chrono::Duration::hours(crate::notify::stream::HORIZON_HOURS);
    // Landings first: a reader sees "landed" before "granted".
    let mut events = crate::notify::stream::landed(&desired.landed, since, at);
    events.extend(crate::notify::stream::from_ledger(&ledger.entries, since, &desired.policy));
    let ends: Vec<(String, DateTime<Utc>)> = plan
        .actions
        .iter()
        .filter(|x| matches!(x.action, ActionKind::Keep | ActionKind::Grant))
        .filter_map(|x| x.end.map(|end| x.requests.iter().map(move |r| (r.clone(), end))))
        .flatten()
        .collect();
    events.extend(crate::notify::stream::expiring(&ledger.entries, &ends, at, n));
    // The GitHub sink comments with the run's token even when approvals are judged by trailers (--plain-git).
    let gh = if n.sinks.iter().any(|s| s.kind == crate::model::policy::SinkKind::Github) {
        let verify = super::plan::VerifyArgs { github_repo: a.verify.github_repo.clone(), plain_git: false, trust_root: None };
        verify.client().await
    } else {
        Ok(None)
    };
    let mut warnings = Vec::new();
    let client = match gh {
        Ok(c) => c,
        Err(e) => {
            warnings.push(format!("the GitHub sink cannot comment: {e}"));
            None
        }
    };
    let commenter = client.as_ref().map(|c| c as &dyn crate::notify::stream::Commenter);
    let report = crate::notify::stream::run_round(&g.repo, &a.ledger.remote, true, &events, n, &[], commenter).await;
    warnings.extend(report.failed);
    warnings
}

pub fn run(g: &Global, a: Args) -> u8 {
    // Acts on what it reads: only its own walk, never the travelling index.
    crate::history::travel::distrust();
    let started = tokio::time::Instant::now();
    let at = a.at.unwrap_or(g.now);
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let (repo, mut ledger, _lock) = match open_for_run(g, &a.ledger, "reconcile", 0) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let budget = Duration::from_secs(a.deadline);
    let base = ExecOptions::from_env();
    let opts = ExecOptions {
        concurrency: a.concurrency.into(),
        attempts: a.attempts,
        list_timeout: base.list_timeout.min(budget / 2),
        deadline: Some(started + budget),
        ..base
    };
    let (desired, providers, plan) = match rt.block_on(super::plan::prepare_with(g, &a.verify, at, &opts)) {
        Ok(x) => x,
        Err(code) => return code,
    };
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
    // Each resource's lines are committed (locally) as soon as it is done, so
    // a run killed later leaves them recorded; one push at the end.
    let record = !a.ledger.no_ledger;
    let mut outcomes = Vec::new();
    let mut entries = Vec::new();
    let mut ledger_error: Option<String> = None;
    rt.block_on(async {
        let mut done = std::pin::pin!(execute_by_resource(&plan, &providers, &opts, &on_done));
        while let Some((resource, outs)) = done.next().await {
            let lines = ledger_entries(&plan.part(Some(&resource)), &outs, &ledger, at);
            if record && !lines.is_empty() && ledger_error.is_none() {
                let summary = format!("gitgrant reconcile at {}: {resource}", crate::model::stamp(&at));
                if let Err(e) = ledger.append(&repo, &lines, &summary) {
                    ledger_error = Some(e.to_string());
                }
            }
            entries.extend(lines);
            outcomes.extend(outs);
        }
    });
    bar.finish_and_clear();
    outcomes.sort_by(|x, y| {
        (x.action.action, &x.action.resource, &x.action.principal, &x.action.access).cmp(&(
            y.action.action,
            &y.action.resource,
            &y.action.principal,
            &y.action.access,
        ))
    });
    let refusals = ledger_entries(&plan.part(None), &[], &ledger, at);
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.ok).collect();
    let summary = format!(
        "gitgrant reconcile at {}: {} granted, {} revoked, {} failed",
        crate::model::stamp(&at),
        outcomes.iter().filter(|o| o.ok && o.action.action == ActionKind::Grant).count(),
        outcomes.iter().filter(|o| o.ok && o.action.action == ActionKind::Revoke).count(),
        failed.len()
    );
    if record && ledger_error.is_none() {
        let done = if refusals.is_empty() { Ok(()) } else { ledger.append(&repo, &refusals, &summary).map(drop) };
        if let Err(e) = done.and_then(|()| ledger.publish(&repo, &a.ledger.remote, &summary)) {
            ledger_error = Some(e.to_string());
        }
    }
    entries.extend(refusals);
    if !a.ledger.no_ledger {
        share_index(&repo, &plan.main, &a.ledger.remote);
    }
    // Notifications: derived from the ledger as recorded (so what failed or
    // was never sent is derived again next run), after the ledger is pushed.
    let notify_failed = if record && ledger_error.is_none() { rt.block_on(notify(g, &a, &desired, &ledger, &plan, at)) } else { Vec::new() };
    match g.format {
        Format::Json => {
            let doc = serde_json::json!({
                "at": at, "main": plan.main, "outcomes": outcomes, "refused": plan.refused,
                "failures": plan.failures, "rule_changes_in_force": plan.rule_changes_in_force, "ledger": entries, "ledger_error": ledger_error,
            });
            match escape::json_pretty(&doc) {
                Ok(s) => println!("{s}"),
                Err(e) => return fail(e),
            }
        }
        Format::Human if g.quiet => super::plan::print_errors(&plan),
        _ => {
            print!("{}", super::plan::render_plan(&plan));
            for o in &outcomes {
                let status = if o.ok { "done".to_string() } else { format!("FAILED after {} attempt(s): {}", o.attempts, o.error.clone().unwrap_or_default()) };
                println!(
                    "{:<6} {} {} {} {}: {}",
                    o.action.action.as_str(),
                    o.action.provider,
                    human(&o.action.resource),
                    human(&o.action.principal),
                    human(&o.action.access),
                    human(&status)
                );
            }
            if !entries.is_empty() && !a.ledger.no_ledger && ledger_error.is_none() {
                println!("ledger: {} line(s) recorded on `{}`", entries.len(), ledger::BRANCH);
            }
            if g.format == Format::Github {
                super::output::append_step_summary(&crate::render::reconcile::reconcile_summary(&plan, &outcomes, at));
                for o in &failed {
                    let what = format!("{} {} {} for {}", o.action.action.as_str(), o.action.provider, o.action.resource, o.action.principal);
                    println!("{}", escape::gh_annotation(GhCommand::Error, "gitgrant reconcile", &format!("{what}: {}", o.error.clone().unwrap_or_default())));
                }
                print!("{}", super::plan::plan_annotations(&plan));
                for w in &plan.warnings {
                    println!("{}", escape::gh_annotation(GhCommand::Warning, "gitgrant reconcile", w));
                }
            }
        }
    }
    if let Some(e) = &ledger_error {
        eprintln!("error: the ledger could not be written: {}", human(e));
    }
    for w in &notify_failed {
        if g.format == Format::Github {
            println!("{}", escape::gh_annotation(GhCommand::Warning, "gitgrant notify", w));
        }
        eprintln!("warning: notification: {}", human(w));
    }
    // A resource that is down: its first failure, then one line for the calls not attempted.
    let mut skipped: std::collections::BTreeMap<(String, String), usize> = std::collections::BTreeMap::new();
    for o in &failed {
        let error = o.error.clone().unwrap_or_default();
        if error.starts_with("not attempted: ") {
            *skipped.entry((o.action.provider.to_string(), o.action.resource.clone())).or_default() += 1;
            continue;
        }
        eprintln!("error: {} failed: {}", o.action.action.as_str(), human(&error));
    }
    for ((provider, resource), n) in skipped {
        eprintln!(
            "error: {provider} {}: {n} more call(s) not attempted: the resource is unreachable (above); rerun reconcile once it is back",
            human(&resource)
        );
    }
    u8::from(!failed.is_empty() || !plan.failures.is_empty() || !plan.refused.is_empty() || !plan.rule_changes_in_force.is_empty() || ledger_error.is_some())
}
