//! `gitgrant completions`: shell completion scripts, and the man page.
//!
//! The man page lives here (`--man`) rather than in its own subcommand: both
//! are generated from the same clap definition and installed by packagers in
//! the same step.

use std::io::Write;

use clap::CommandFactory;

use super::{Global, fail};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to print a completion script for.
    #[arg(value_enum, required_unless_present = "man")]
    pub shell: Option<clap_complete::Shell>,
    /// Print the man page (roff) instead, e.g. `gitgrant completions --man > gitgrant.1`.
    #[arg(long, conflicts_with = "shell")]
    pub man: bool,
}

pub fn run(_g: &Global, a: Args) -> u8 {
    let mut cmd = super::Cli::command();
    let mut out = Vec::new();
    let written = match a.shell {
        Some(shell) => {
            clap_complete::generate(shell, &mut cmd, "gitgrant", &mut out);
            Ok(())
        }
        None => clap_mangen::Man::new(cmd).render(&mut out),
    };
    match written.and_then(|()| std::io::stdout().lock().write_all(&out)) {
        Ok(()) => 0,
        Err(e) => fail(format!("cannot write the output: {e}")),
    }
}
