//! `gitgrant simulate`: replay history under other policies.

use crate::simulate::{SimulateError, SimulateOptions, SimulateReport, simulate};

use super::output::print_diagnostics;
use super::{Format, Global, fail};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ref whose policies to simulate (e.g. a PR branch that changes thresholds).
    #[arg(long, value_name = "REF")]
    pub policies: String,
    /// The branch whose history is replayed and whose policies are the baseline (default: main).
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
}

pub fn run(g: &Global, a: Args) -> u8 {
    let opts = SimulateOptions { base: a.base, policies: a.policies };
    let started = std::time::Instant::now();
    let report = match simulate(&g.repo, &opts) {
        Ok(r) => r,
        Err(SimulateError::InvalidPolicies(name, n, diags, sources)) => {
            print_diagnostics(g, &diags, &|f: &str| sources.get(f).cloned());
            return fail(SimulateError::InvalidPolicies(name, n, Vec::new(), Default::default()));
        }
        Err(e) => return fail(e),
    };
    if g.verbose {
        eprintln!("simulate: replayed {} request version(s) in {} ms", report.replayed, started.elapsed().as_millis());
    }
    match g.format {
        Format::Json => match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(e),
        },
        Format::Human | Format::Github if !g.quiet => print!("{}", text(&report)),
        _ => {}
    }
    0
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The human report: what changes, then the per-tier counts.
pub fn text(r: &SimulateReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "replayed {} request version(s) on main ({}) under the policies at {}", r.replayed, short(&r.base), short(&r.policies));
    if r.changed.is_empty() {
        let _ = writeln!(s, "no request would change tier, approvals or validity");
    } else {
        let _ = writeln!(s, "{} would be judged differently:", r.changed.len());
    }
    for c in &r.changed {
        let _ = writeln!(
            s,
            "  {} v{} ({}, landed {} in {}): {} -> {} on {}; {} changes",
            c.id,
            c.version,
            c.change.as_str(),
            c.landed.format("%Y-%m-%d %H:%M UTC"),
            short(&c.commit),
            c.requester,
            c.role,
            c.resources.join(", "),
            c.changes.join(", ")
        );
        let _ = writeln!(s, "    before: {}", c.before.describe());
        let _ = writeln!(s, "    after:  {}", c.after.describe());
    }
    let width = r.tiers.iter().map(|t| t.tier.len()).chain([7]).max().unwrap_or(7);
    let _ = writeln!(s, "{:<width$}  before  after", "tier");
    for t in r.tiers.iter().chain([&r.invalid]) {
        let _ = writeln!(s, "{:<width$}  {:>6}  {:>5}", t.tier, t.before, t.after);
    }
    s
}
