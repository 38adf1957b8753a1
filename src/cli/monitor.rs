//! `gitgrant monitor`: read provider activity logs for active grants; alert; revoke on a forbidden action.

use chrono::{DateTime, Utc};

use super::{Format, Global, fail};
use crate::github::GitHubApi;
use crate::ledger;
use crate::monitor::{self, MonitorRun};
use crate::reconcile::desired_state;
use crate::render::escape::{self, GhCommand, human, human_join};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The time to monitor for (default: now, or --now).
    #[arg(long, value_name = "RFC3339", value_parser = super::parse_time)]
    pub at: Option<DateTime<Utc>>,
    /// Also summarise granted versus used for each watched grant, with suggestions for tighter roles and durations.
    #[arg(long)]
    pub report: bool,
    /// Report only: do not carry out `revoke: true` rules.
    #[arg(long)]
    pub no_revoke: bool,
    /// Post new findings to this Slack-compatible webhook (`{"text": ...}`).
    #[arg(long, env = "GITGRANT_MONITOR_WEBHOOK", value_name = "URL")]
    pub webhook: Option<String>,
    /// Open a GitHub issue listing new findings (needs GITHUB_TOKEN and --github-repo or $GITHUB_REPOSITORY).
    #[arg(long)]
    pub github_issue: bool,
    #[command(flatten)]
    pub ledger: super::reconcile::LedgerArgs,
    #[command(flatten)]
    pub verify: super::plan::VerifyArgs,
}

pub fn run(g: &Global, a: Args) -> u8 {
    // Acts on what it reads: only its own walk, never the travelling index.
    crate::history::travel::distrust();
    let at = a.at.unwrap_or(g.now);
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let (repo, mut ledger, _lock) = match super::reconcile::open_for_run(g, &a.ledger, "monitor", 0) {
        Ok(x) => x,
        Err(code) => return code,
    };
    rt.block_on(async {
        let client = match a.verify.client().await {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        let api = client.as_ref().map(|c| c as &dyn GitHubApi);
        let desired = match desired_state(&g.repo, at, api).await {
            Ok(d) => d,
            Err(e) => return super::plan::desired_error(g, e),
        };
        let sources = monitor::sources_for(&g.repo, &desired.policy).await;
        let opts = monitor::Options { revoke: !a.no_revoke, report: a.report };
        let run = monitor::run(&g.repo, &desired, &ledger, &sources, &opts).await;
        let mut problems: Vec<String> = Vec::new();
        if !run.ledger.is_empty() && !a.ledger.no_ledger {
            let summary =
                format!("gitgrant monitor at {}: {} new finding(s), {} revocation(s)", crate::model::stamp(&at), run.new.len(), run.revocations.len());
            if let Err(e) = ledger.record(&repo, &run.ledger, &summary, &a.ledger.remote) {
                problems.push(format!("the ledger: {e}"));
            }
        }
        let new: Vec<monitor::rules::Finding> = run.findings.iter().filter(|f| run.new.contains(&f.key())).cloned().collect();
        if !new.is_empty() {
            let revoked: Vec<String> = run.revocations.iter().filter(|r| r.ok).map(|r| r.request.clone()).collect();
            if a.github_issue {
                let title = format!("gitgrant monitor: {} finding(s) at {}", new.len(), crate::model::stamp(&at));
                let body = monitor::issue::body(&new, &revoked, &desired.policy);
                match issue_client(&a).await {
                    Ok(c) => match c.create_issue(&title, &body).await {
                        Ok((n, url)) => eprintln!("opened issue #{n} {}", human(&url)),
                        Err(e) => problems.push(format!("opening the findings issue: {e}")),
                    },
                    Err(e) => problems.push(e),
                }
            }
        }
        // Findings go through the notification stream: derived from the
        // ledger as recorded, delivered (policies' sinks, --webhook) only
        // after a 2xx, retried next run otherwise.
        let mut warnings = Vec::new();
        if !a.ledger.no_ledger && problems.is_empty() {
            let n = &desired.policy.notifications;
            let since = at - chrono::Duration::hours(crate::notify::stream::HORIZON_HOURS);
            let events = crate::notify::stream::from_ledger(&ledger.entries, since, &desired.policy);
            let extra: Vec<(crate::notify::Webhook, Vec<String>)> = a
                .webhook
                .iter()
                .map(|url| {
                    let hook = crate::notify::Webhook {
                        name: "monitor-webhook".into(),
                        url: url.clone(),
                        format: crate::notify::Format::Slack,
                        timeout: std::time::Duration::from_secs(20),
                    };
                    // An unreviewed break-glass grant is a finding here, `break_glass_overdue` in the stream.
                    (hook, vec!["monitor_finding".to_string(), "break_glass_overdue".to_string()])
                })
                .collect();
            let gh = client.as_ref().map(|c| c as &dyn crate::notify::stream::Commenter);
            warnings = crate::notify::stream::run_round(&g.repo, &a.ledger.remote, true, &events, n, &extra, gh).await.failed;
        }
        if let Err(code) = print(g, &run, !a.ledger.no_ledger && problems.is_empty()) {
            return code;
        }
        for w in &warnings {
            eprintln!("warning: notification: {}", human(w));
        }
        for e in run.errors.iter().chain(problems.iter()) {
            eprintln!("error: {}", human(e));
        }
        for r in run.revocations.iter().filter(|r| !r.ok) {
            let error = r.error.clone().unwrap_or_default();
            eprintln!("error: revoking {} at {} {} failed: {}", human(&r.request), r.provider, human(&r.resource), human(&error));
        }
        if !run.errors.is_empty() || !problems.is_empty() {
            return 2;
        }
        u8::from(!run.new.is_empty() || run.revocations.iter().any(|r| !r.ok))
    })
}

/// The client for the findings issue: independent of how landings are verified
/// (`--plain-git` still opens issues).
async fn issue_client(a: &Args) -> Result<crate::github::client::Client, String> {
    let slug = crate::github::context::repo_slug(a.verify.github_repo.as_deref(), None).map_err(|e| format!("--github-issue: {e}"))?;
    crate::github::client::Client::from_env(slug).await.map_err(|e| format!("--github-issue: {e}"))
}

fn print(g: &Global, run: &MonitorRun, ledger_written: bool) -> Result<(), u8> {
    if g.format == Format::Json {
        let s = escape::json_pretty(run).map_err(fail)?;
        println!("{s}");
        return Ok(());
    }
    println!("monitor at {}: {} grant(s) watched, {} finding(s) ({} new)", crate::model::stamp(&run.at), run.watched, run.findings.len(), run.new.len());
    for f in &run.findings {
        let new = if run.new.contains(&f.key()) { "NEW " } else { "" };
        println!(
            "{new}finding [{}] rule `{}`: {}",
            human(&serde_json::to_value(&f.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()),
            human(&f.rule),
            human(&f.message)
        );
        if !f.events.is_empty() {
            println!("  evidence: {}", human(&f.evidence()));
        }
        if g.format == Format::Github {
            println!("{}", escape::gh_annotation(GhCommand::Warning, &format!("gitgrant monitor {}", f.rule), &f.message));
        }
    }
    for r in &run.revocations {
        let status = if r.ok { "done".to_string() } else { format!("FAILED: {}", human(&r.error.clone().unwrap_or_default())) };
        println!("revoke {} {} {} {} (request {}): {status}", r.provider, human(&r.resource), human(&r.principal), human(&r.access), human(&r.request));
    }
    if !run.unmonitored.is_empty() {
        println!("not monitored (no activity source for the provider): {}", human_join(&run.unmonitored, ", "));
    }
    if !run.usage.is_empty() {
        println!("granted versus used:");
        for u in &run.usage {
            let state = if u.active { "active" } else { "ended" };
            println!(
                "  {} on {} ({state}, role {}, {}): {} event(s)",
                human(&u.request),
                human(&u.resource),
                human(&u.role),
                human(&monitor::window_text(&u.window)),
                u.events
            );
            for s in &u.suggestions {
                println!("    - {}", human(s));
            }
        }
    }
    if ledger_written && !run.ledger.is_empty() {
        println!("ledger: {} line(s) recorded on `{}`", run.ledger.len(), ledger::BRANCH);
    }
    Ok(())
}
