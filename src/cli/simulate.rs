//! `gitgrant simulate`: replay history under other policies.

use crate::render::escape::{self, human, human_join, time_short};
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
        Format::Json => match escape::json_pretty(&report) {
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
    let _ = writeln!(s, "replayed {} request version(s) on main ({}) under the policies at {}", r.replayed, human(short(&r.base)), human(short(&r.policies)));
    if r.changed.is_empty() {
        let _ = writeln!(s, "no request would change tier, approvals or validity");
    } else {
        let _ = writeln!(s, "{} would be judged differently:", r.changed.len());
    }
    for c in &r.changed {
        let _ = writeln!(
            s,
            "  {} v{} ({}, landed {} in {}): {} -> {} on {}; {} changes",
            human(&c.id),
            c.version,
            c.change.as_str(),
            time_short(c.landed),
            human(short(&c.commit)),
            human(&c.requester),
            human(&c.role),
            human_join(&c.resources, ", "),
            human_join(&c.changes, ", ")
        );
        let _ = writeln!(s, "    before: {}", human(&c.before.describe()));
        let _ = writeln!(s, "    after:  {}", human(&c.after.describe()));
    }
    let width = r.tiers.iter().map(|t| human(&t.tier).chars().count()).chain([7]).max().unwrap_or(7);
    let _ = writeln!(s, "{:<width$}  before  after", "tier");
    for t in r.tiers.iter().chain([&r.invalid]) {
        let _ = writeln!(s, "{:<width$}  {:>6}  {:>5}", human(&t.tier), t.before, t.after);
    }
    s
}
