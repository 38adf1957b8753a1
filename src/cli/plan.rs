//! `gitgrant plan`: what reconcile would grant, keep and revoke. Changes nothing.

use chrono::{DateTime, Utc};

use super::{Format, Global, fail};
use crate::reconcile::{ActionKind, DesiredError, Plan};
use crate::render::escape::{self, human};

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
#[group(id = "landing_verification")]
pub struct VerifyArgs {
    /// The repository on GitHub whose PR reviews approve requests (default: $GITHUB_REPOSITORY).
    /// GitHub mode is used when a token (GITHUB_TOKEN or GITHUB_APP_ID) is set.
    #[arg(long, value_name = "OWNER/NAME")]
    pub github_repo: Option<String>,
    /// Judge landings by their `Approved-by:` trailers even when a GitHub token is set.
    #[arg(long)]
    pub plain_git: bool,
    /// Start the chain of trust for rule files at this commit of main's first-parent
    /// history (default: the first commit that added policies/). See docs/src/chain-of-trust.md.
    #[arg(long, value_name = "SHA", env = crate::engine::trust::ENV_TRUST_ROOT)]
    pub trust_root: Option<String>,
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
    opts: &crate::reconcile::ExecOptions,
) -> Result<(crate::reconcile::Desired, std::collections::BTreeMap<String, std::sync::Arc<dyn crate::provider::Provider>>, Plan), u8> {
    let client = verify.client().await.map_err(fail)?;
    let api = client.as_ref().map(|c| c as &dyn crate::github::GitHubApi);
    let (desired, providers, mut plan) = crate::reconcile::prepare_with_options(&g.repo, at, api, opts).await.map_err(|e| desired_error(g, e))?;
    // A provider compiled out of this binary cannot be planned: could not judge (exit 2).
    if let Some(e) = crate::provider::first_compiled_out(&desired.policy.resources) {
        return Err(fail(e));
    }
    crate::reconcile::enforce_trust(&g.repo, &mut plan, verify.trust_root.as_deref(), api).await.map_err(fail)?;
    Ok((desired, providers, plan))
}

pub fn run(g: &Global, a: Args) -> u8 {
    // Shows what reconcile would do, from the same walk reconcile trusts.
    crate::history::travel::distrust();
    let at = a.at.unwrap_or(g.now);
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let plan = match rt.block_on(prepare_with(g, &a.verify, at, &crate::reconcile::ExecOptions::from_env())) {
        Ok((_, _, plan)) => plan,
        Err(code) => return code,
    };
    match g.format {
        Format::Json => match escape::json_pretty(&plan) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(e),
        },
        _ if g.quiet => print_errors(&plan),
        _ => {
            print!("{}", render_plan(&plan));
            if g.format == Format::Github {
                print!("{}", plan_annotations(&plan));
            }
        }
    }
    // A rule change in force is reported, not a failure: the reconcile
    // workflow runs `plan` before `reconcile`, which must still revoke.
    u8::from(!plan.failures.is_empty())
}

/// `--quiet`: of the plan, only what went wrong (on stderr).
pub(super) fn print_errors(plan: &Plan) {
    for f in &plan.rule_changes_in_force {
        eprintln!("error: {}", in_force_line(f));
    }
    for r in &plan.refused {
        eprintln!("error: refused {}: {}", human(&r.request), human(&r.reason));
    }
    for f in &plan.failures {
        eprintln!("error: {} {}: {}", f.provider, human(&f.resource), human(&f.error));
    }
}

/// `--format github`: an error annotation per refused request and provider error.
pub(super) fn plan_annotations(plan: &Plan) -> String {
    let mut out = String::new();
    for r in &plan.refused {
        out.push_str(&escape::gh_annotation(escape::GhCommand::Error, &format!("gitgrant refused {}", r.request), &r.reason));
        out.push('\n');
    }
    for f in &plan.failures {
        out.push_str(&escape::gh_annotation(escape::GhCommand::Error, &format!("gitgrant {} {}", f.provider, f.resource), &f.error));
        out.push('\n');
    }
    out
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
    let mut out = format!("plan at {} (main {})\n", crate::model::stamp(&plan.at), human(plan.main.get(..10).unwrap_or(&plan.main)));
    for w in &plan.warnings {
        out.push_str(&format!("  warning: {}\n", human(w)));
    }
    for m in &plan.missed {
        out.push_str(&format!(
            "  missed: {} (window {} to {} passed between two runs; recorded by reconcile)\n",
            human(&m.request),
            crate::model::stamp(&m.start),
            crate::model::stamp(&m.end)
        ));
    }
    if plan.actions.is_empty() {
        out.push_str("  nothing is granted and nothing needs granting\n");
    }
    let rows: Vec<[String; 5]> = plan
        .actions
        .iter()
        .map(|a| {
            [
                a.action.as_str().to_string(),
                if a.requests.is_empty() { "(none)".to_string() } else { escape::human_join(&a.requests, ",") },
                format!("{} {}", a.provider, human(&a.resource)),
                if a.principal.is_empty() { "(unattached)".to_string() } else { human(&a.principal).into_owned() },
                human(&a.access).into_owned(),
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
            out.push_str(&format!("      {}\n", human(&a.reason)));
        }
    }
    for f in &plan.rule_changes_in_force {
        out.push_str(&format!("{}\n", in_force_line(f)));
    }
    for r in &plan.refused {
        out.push_str(&format!("refused {}: {}\n", human(&r.request), human(&r.reason)));
    }
    for f in &plan.failures {
        out.push_str(&format!("error   {} {}: {}\n", f.provider, human(&f.resource), human(&f.error)));
    }
    let no_expiry: Vec<&str> = plan
        .actions
        .iter()
        .filter(|a| a.action != ActionKind::Revoke && !plan.native_expiry.get(&a.resource).copied().unwrap_or(false))
        .map(|a| a.resource.as_str())
        .collect();
    let no_expiry: Vec<String> = no_expiry.into_iter().map(|r| human(r).into_owned()).collect();
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

/// One unapproved rule change in force, with its fix (GG310).
fn in_force_line(f: &crate::engine::trust::InForce) -> String {
    use crate::engine::trust::TrustReport;
    format!("{} {}: nothing new is granted; {}", crate::diag::Code::RuleChangeInForce.as_str(), TrustReport::describe(f), TrustReport::fix(f))
}
