//! `gitgrant init`: scaffold an access repository.

use std::path::PathBuf;

use super::{Global, fail};
use crate::scaffold::{self, InitError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to create it (default: --repo, i.e. the current directory).
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Replace scaffold files that already exist.
    #[arg(long)]
    pub force: bool,
}

pub fn run(g: &Global, a: Args) -> u8 {
    let dir = a.dir.unwrap_or_else(|| g.repo.clone());
    let report = match scaffold::init(&dir, a.force) {
        Ok(r) => r,
        Err(e @ InitError::Exists(..)) => {
            let code = fail(e);
            eprintln!("  = help: nothing was written; rerun with --force to replace them");
            return code;
        }
        Err(e) => return fail(e),
    };
    if g.quiet {
        return 0;
    }
    println!("created an access repository in {}", dir.display());
    for f in &report.written {
        let note = if report.replaced.contains(f) { "  (replaced)" } else { "" };
        println!("  {f}{note}");
    }
    if report.git_initialised {
        println!("initialised a git repository (branch main): it was not in one");
    }
    println!(
        "\nnext:\n  1. put your people in policies/groups.yaml and policies/identities.yaml\n  2. replace the example resources and roles (they use the local provider)\n  3. gitgrant check --all, then commit and push to main\n  4. make `gitgrant/approval` a required check on main"
    );
    0
}
