//! `gitgrant extend`: a new request continuing an existing one.
//!
//! The extension starts when the old request ends, for the same requester
//! and role, and is linked by `extends:`; it is judged as a new request.

use super::request::{PrArgs, submit};
use super::{Global, fail};
use crate::check::{CheckOptions, run_check};
use crate::scaffold::draft::Draft;
use crate::validate::request::request_id;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request to extend: its id or its path.
    #[arg(value_name = "REQUEST")]
    pub request: String,
    /// How much longer, e.g. `1h`.
    #[arg(long, value_name = "DUR")]
    pub by: String,
    /// Why more time is needed (default: the old reason, marked as an extension).
    #[arg(long)]
    pub reason: Option<String>,
    /// A ticket (default: the old one).
    #[arg(long)]
    pub ticket: Option<String>,
    /// Then create a branch, commit, push it and open the pull request.
    #[arg(long)]
    pub open_pr: bool,
    #[command(flatten)]
    pub pr: PrArgs,
}

pub fn run(g: &Global, a: Args) -> u8 {
    let id = request_id(&a.request).unwrap_or(&a.request).to_string();
    if let Err(e) = a.by.trim().parse::<crate::model::Duration>() {
        return fail(format!("--by `{}`: {e}", a.by));
    }
    // The old request as main has it, with the window main gave it (its landing time when it has no start).
    let opts = CheckOptions { base: None, head: Some("HEAD".to_string()), all: false, only: Some(id.clone()), now: g.now };
    let report = match run_check(&g.repo, &opts) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let Some(old) = report.requests.iter().find(|r| r.id == id) else {
        return fail(format!("no request `{id}` in the committed tree; extend a request that is on main (see `gitgrant check --all`)"));
    };
    if old.change != crate::check::Change::Unchanged {
        return fail(format!("`{id}` is not on main yet (it is {} on this branch); merge it first, then extend it", old.change.as_str()));
    }
    let (Some(req), Some(end)) = (&old.request, old.end) else {
        return fail(format!("`{id}` has no valid window; fix it first (`gitgrant explain {id}`)"));
    };
    let draft = Draft {
        requester: req.requester.clone(),
        role: req.role.clone(),
        resources: req.resources.clone(),
        start: Some(end),
        duration: a.by.trim().to_string(),
        reason: a.reason.unwrap_or_else(|| format!("Extends {id}: {}", req.reason)),
        ticket: a.ticket.or_else(|| req.ticket.clone()),
        break_glass: false,
        extends: Some(id.clone()),
    };
    submit(g, &draft, false, a.open_pr.then_some(&a.pr))
}
