//! `gitgrant approvals --commit SHA`: are a landing commit's trailers enough?

use crate::check::landing::judge_landing;

use super::output::print_diagnostics;
use super::{Format, Global, fail};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The commit that landed the change on main (a merge or squash commit).
    #[arg(long, value_name = "SHA", default_value = "HEAD")]
    commit: String,
}

pub fn run(g: &Global, a: Args) -> u8 {
    let v = match judge_landing(&g.repo, &a.commit, g.now) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let code = if v.report.status == crate::check::Status::Error {
        2
    } else if v.decision.satisfied && v.report.ok {
        0
    } else {
        1
    };
    match g.format {
        Format::Json => match crate::render::escape::json_pretty(&v) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(e),
        },
        _ => {
            let sources = |f: &str| v.report.sources.get(f).cloned();
            print_diagnostics(g, &v.report.diagnostics, &sources);
            if g.quiet {
                return code;
            }
            println!("commit {}{}", &v.commit[..12.min(v.commit.len())], if v.direct_push { " (direct push: no merge, no Approved-by trailers)" } else { "" });
            println!("approved by: {}", if v.approved_by.is_empty() { "nobody".to_string() } else { crate::render::escape::human_join(&v.approved_by, ", ") });
            print!("{}", super::output::slot_lines(&v.decision));
            println!("{}", crate::render::escape::human(&v.decision.summary()));
        }
    }
    code
}
