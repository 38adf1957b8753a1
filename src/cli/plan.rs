//! `gitgrant plan`: what reconcile would grant, keep and revoke. Changes nothing.

use chrono::{DateTime, Utc};

use super::{Format, Global, fail};
use crate::reconcile::{ActionKind, DesiredError, Plan, prepare};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The time to plan for (default: now, or --now).
    #[arg(long, value_name = "RFC3339", value_parser = super::parse_time)]
    pub at: Option<DateTime<Utc>>,
    #[command(flatten)]
    pub verify: VerifyArgs,
}

/// How landings are re-verified: GitHub reviews or `Approved-by:` trailers.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The repository on GitHub whose PR reviews approve requests (default: $GITHUB_REPOSITORY).
    /// GitHub mode is used when a token (GITHUB_TOKEN or GITHUB_APP_ID) is set.
    #[arg(long, value_name = "OWNER/NAME")]
    pub github_repo: Option<String>,
    /// Judge landings by their `Approved-by:` trailers even when a GitHub token is set.
    #[arg(long)]
    pub plain_git: bool,
}

impl VerifyArgs {
    /// The GitHub client for verification, or None in plain-git mode.
    pub async fn client(&self) -> Result<Option<crate::github::client::Client>, String> {
        let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
        if self.plain_git || !(set("GITHUB_TOKEN") || set("GITHUB_APP_ID")) {
            return Ok(None);
        }
        let slug = crate::github::context::repo_slug(self.github_repo.as_deref(), None)
            .map_err(|e| format!("{e} (or pass --plain-git to judge `Approved-by:` trailers instead)"))?;
        crate::github::client::Client::from_env(slug).await.map(Some).map_err(|e| e.to_string())
    }
}

/// Computes the plan with the verification mode the flags and environment select.
pub(super) async fn prepare_with(
    g: &Global,
    verify: &VerifyArgs,
    at: DateTime<Utc>,
) -> Result<(crate::reconcile::Desired, std::collections::BTreeMap<String, std::sync::Arc<dyn crate::provider::Provider>>, Plan), u8> {
    let client = verify.client().await.map_err(fail)?;
    let api = client.as_ref().map(|c| c as &dyn crate::github::GitHubApi);
    let prepared = prepare(&g.repo, at, api).await.map_err(|e| desired_error(g, e))?;
    // A provider compiled out of this binary cannot be planned: could not judge (exit 2).
    if let Some(e) = crate::provider::first_compiled_out(&prepared.0.policy.resources) {
        return Err(fail(e));
    }
    Ok(prepared)
}

pub fn run(g: &Global, a: Args) -> u8 {
    let at = a.at.unwrap_or(g.now);
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let plan = match rt.block_on(prepare_with(g, &a.verify, at)) {
        Ok((_, _, plan)) => plan,
        Err(code) => return code,
    };
    match g.format {
        Format::Json => match serde_json::to_string_pretty(&plan) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(e),
        },
        _ if g.quiet => print_errors(&plan),
        _ => print!("{}", render_plan(&plan)),
    }
    u8::from(!plan.failures.is_empty())
}

/// `--quiet`: of the plan, only what went wrong (on stderr).
pub(super) fn print_errors(plan: &Plan) {
    for r in &plan.refused {
        eprintln!("error: refused {}: {}", r.request, r.reason);
    }
    for f in &plan.failures {
        eprintln!("error: {} {}: {}", f.provider, f.resource, f.error);
    }
}

/// Prints why desired state could not be computed; exit 2.
pub(super) fn desired_error(g: &Global, e: DesiredError) -> u8 {
    if let DesiredError::InvalidPolicy(diags) = &e {
        let sources = |f: &str| std::fs::read_to_string(g.repo.join(f)).ok();
        super::output::print_diagnostics(g, diags, &sources);
    }
    fail(e)
}

/// The plan as an aligned table for people, then refusals and expiry notes.
pub fn render_plan(plan: &Plan) -> String {
    let mut out = format!("plan at {} (main {})\n", plan.at.to_rfc3339(), &plan.main[..plan.main.len().min(10)]);
    if plan.actions.is_empty() {
        out.push_str("  nothing is granted and nothing needs granting\n");
    }
    let rows: Vec<[String; 5]> = plan
        .actions
        .iter()
        .map(|a| {
            [
                a.action.as_str().to_string(),
                if a.requests.is_empty() { "(none)".to_string() } else { a.requests.join(",") },
                format!("{} {}", a.provider, a.resource),
                if a.principal.is_empty() { "(unattached)".to_string() } else { a.principal.clone() },
                a.access.clone(),
            ]
        })
        .collect();
    let header = ["ACTION", "REQUEST", "RESOURCE", "PRINCIPAL", "ACCESS"].map(String::from);
    if !rows.is_empty() {
        let widths: Vec<usize> = (0..5).map(|i| rows.iter().chain([&header]).map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
        let line = |r: &[String; 5]| {
            let cells: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            format!("  {}\n", cells.join("  ").trim_end())
        };
        out.push_str(&line(&header));
        for (r, a) in rows.iter().zip(&plan.actions) {
            out.push_str(&line(r));
            out.push_str(&format!("      {}\n", a.reason));
        }
    }
    for r in &plan.refused {
        out.push_str(&format!("refused {}: {}\n", r.request, r.reason));
    }
    for f in &plan.failures {
        out.push_str(&format!("error   {} {}: {}\n", f.provider, f.resource, f.error));
    }
    let no_expiry: Vec<&str> = plan
        .actions
        .iter()
        .filter(|a| a.action != ActionKind::Revoke && !plan.native_expiry.get(&a.resource).copied().unwrap_or(false))
        .map(|a| a.resource.as_str())
        .collect();
    let mut no_expiry = no_expiry;
    no_expiry.dedup();
    if !no_expiry.is_empty() {
        out.push_str(&format!("note: no native expiry at {}: access there ends only when reconcile runs after the end time\n", no_expiry.join(", ")));
    }
    let count = |k: ActionKind| plan.actions.iter().filter(|a| a.action == k).count();
    out.push_str(&format!(
        "{} to grant, {} to revoke, {} kept, {} refused, {} provider error(s)\n",
        count(ActionKind::Grant),
        count(ActionKind::Revoke),
        count(ActionKind::Keep),
        plan.refused.len(),
        plan.failures.len()
    ));
    out
}
