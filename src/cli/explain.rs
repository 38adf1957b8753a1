//! `gitgrant explain REQUEST`: every risk factor with its input and points,
//! the tier, and who may fill each approval slot.

use std::fmt::Write;

use serde::Serialize;

use crate::check::{CheckOptions, RequestOutcome, run_check};
use crate::model::policy::ApprovalRule;
use crate::render::escape::{self, human, human_join};
use crate::validate::request::request_id;

use super::output::{candidates, print_diagnostics, request_lines};
use super::{Format, Global, fail};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A request id (file stem) or a path under requests/.
    request: String,
    /// Read the request from this ref (a PR branch) instead of the working tree.
    #[arg(long, value_name = "REF")]
    head: Option<String>,
    /// Read policies from the merge-base of --head with this ref (default: main).
    #[arg(long, value_name = "REF")]
    base: Option<String>,
}

#[derive(Serialize)]
struct Slot<'a> {
    from: &'a [String],
    count: u32,
    candidates: Vec<String>,
}

#[derive(Serialize)]
struct Explanation<'a> {
    request: &'a RequestOutcome,
    approvals: Vec<Slot<'a>>,
    policy_commit: Option<&'a str>,
}

fn id_of(arg: &str) -> Option<String> {
    if arg.ends_with(".yaml") || arg.contains('/') {
        let norm = arg.trim_start_matches("./");
        let idx = norm.find("requests/")?;
        return request_id(&norm[idx..]).map(str::to_string);
    }
    Some(arg.to_string())
}

pub fn run(g: &Global, a: Args) -> u8 {
    let Some(id) = id_of(&a.request) else {
        return fail(format!("`{}` is not a request id or a path under requests/", a.request));
    };
    let opts = CheckOptions { base: a.base, head: a.head, all: false, only: Some(id.clone()), now: g.now };
    let report = match run_check(&g.repo, &opts) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let sources = |f: &str| report.sources.get(f).cloned();
    let Some(outcome) = report.requests.iter().find(|r| r.id == id) else {
        print_diagnostics(g, &report.diagnostics, &sources);
        return fail(format!("no request `{id}` under requests/ (looked in {})", report.head));
    };
    let exclude = [outcome.requester.as_str()];
    let slots: Vec<Slot> = outcome
        .approvals
        .required
        .iter()
        .map(|r: &ApprovalRule| Slot { from: &r.from, count: r.count, candidates: candidates(&report.policy, &r.from, &exclude) })
        .collect();
    let diags: Vec<_> = report.diagnostics.iter().filter(|d| d.file == outcome.file).cloned().collect();
    match g.format {
        Format::Json => {
            let e = Explanation { request: outcome, approvals: slots, policy_commit: report.base.as_deref() };
            match escape::json_pretty(&e) {
                Ok(s) => println!("{s}"),
                Err(e) => return fail(e),
            }
        }
        _ => {
            print_diagnostics(g, &diags, &sources);
            if !g.quiet {
                print!("{}", explain_text(outcome, &slots, report.base.as_deref()));
            }
        }
    }
    if diags.iter().any(|d| d.is_error()) { 1 } else { 0 }
}

fn explain_text(o: &RequestOutcome, slots: &[Slot], base: Option<&str>) -> String {
    let mut s = request_lines(o);
    if let Some(b) = base {
        let _ = writeln!(s, "  policies from {}", human(b.get(..12).unwrap_or(b)));
    }
    let Some(risk) = &o.risk else {
        let _ = writeln!(s, "\nno risk score: the request does not resolve (see the errors above)");
        return s;
    };
    let _ = writeln!(s, "\n  {:<20} {:>6}  input", "factor", "points");
    for f in &risk.factors {
        let _ = writeln!(s, "  {:<20} {:>6}  {}", human(f.name), f.points, human(&f.detail));
    }
    let clamp = if risk.raw_sum != risk.score { format!(" (sum {}, clamped to 0..100)", risk.raw_sum) } else { String::new() };
    let _ = writeln!(s, "  {:<20} {:>6}{clamp}", "score", risk.score);
    let _ = writeln!(s, "  {:<20} {:>6}", "tier", human(&risk.tier));
    if o.break_glass {
        let _ = writeln!(s, "\n  BREAK-GLASS: the break-glass approvals apply instead of the tier's; an after-the-fact review must land on main");
    }
    if slots.is_empty() {
        let _ = writeln!(s, "\napprovals: none required (the PR's required check must still pass)");
    } else {
        let _ = writeln!(s, "\napprovals needed ({} never counts; one person fills one slot):", human(&o.requester));
        for slot in slots {
            let who = if slot.candidates.is_empty() { "nobody eligible: fix the policy".to_string() } else { human_join(&slot.candidates, ", ") };
            let _ = writeln!(s, "  {} from {}: {who}", slot.count, human_join(slot.from, " or "));
        }
    }
    s
}
