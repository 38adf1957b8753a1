//! `gitgrant completions`: shell completion scripts, and the man pages.
//!
//! The man pages live here (`--man`) rather than in their own subcommand:
//! both are generated from the same clap definition and installed by
//! packagers in the same step. `--man` prints `gitgrant(1)`; `--man --out DIR`
//! writes it and one page per subcommand (`gitgrant-check.1`,
//! `gitgrant-audit-verify.1`, ...), which the SUBCOMMANDS sections refer to.

use std::path::PathBuf;

use clap::CommandFactory;

use super::{Global, fail, write_stdout};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to print a completion script for.
    #[arg(value_enum, required_unless_present = "man")]
    pub shell: Option<clap_complete::Shell>,
    /// Print the man page (roff) instead, e.g. `gitgrant completions --man > gitgrant.1`.
    #[arg(long, conflicts_with = "shell")]
    pub man: bool,
    /// With `--man`: write `gitgrant.1` and a `gitgrant-<command>.1` per subcommand into DIR.
    #[arg(long, requires = "man", value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(_g: &Global, a: Args) -> u8 {
    let mut cmd = super::Cli::command();
    if let Some(shell) = a.shell {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, "gitgrant", &mut out);
        return write_stdout(&out);
    }
    let pages = match man_pages() {
        Ok(p) => p,
        Err(e) => return fail(format!("cannot render the man pages: {e}")),
    };
    let Some(dir) = a.out else {
        // The top page only: the first one.
        return pages.first().map_or(0, |(_, text)| write_stdout(text));
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return fail(format!("--out {}: {e}", dir.display()));
    }
    for (name, text) in &pages {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            return fail(format!("cannot write {}: {e}", path.display()));
        }
    }
    println!("wrote {} man pages to {}", pages.len(), dir.display());
    0
}

/// Every page as (file name, roff): `gitgrant.1` first, then each subcommand's,
/// depth first.
pub fn man_pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = super::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    collect(&cmd, &mut out)?;
    Ok(out)
}

fn collect(cmd: &clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    out.push((man.get_filename(), page(&man, cmd)?));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, out)?;
    }
    Ok(())
}

/// clap_mangen's sections, plus EXIT STATUS and ENVIRONMENT (the same for
/// every command: the exit codes are a contract of the whole tool).
fn page(man: &clap_mangen::Man, cmd: &clap::Command) -> std::io::Result<Vec<u8>> {
    let mut w = Vec::new();
    man.render_title(&mut w)?;
    man.render_name_section(&mut w)?;
    man.render_synopsis_section(&mut w)?;
    man.render_description_section(&mut w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut w)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut w)?;
    }
    if cmd.get_after_help().is_some() || cmd.get_after_long_help().is_some() {
        man.render_extra_section(&mut w)?;
    }
    w.extend_from_slice(EXIT_AND_ENVIRONMENT.as_bytes());
    if cmd.get_version().is_some() {
        man.render_version_section(&mut w)?;
    }
    Ok(w)
}

const EXIT_AND_ENVIRONMENT: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success.
.TP
\fB1\fR
The input was judged and failed: an invalid request, approvals missing, a grant or revoke that failed.
.TP
\fB2\fR
gitgrant could not judge: bad flags, not an access repository, an unreadable repository, invalid policy files.
.TP
\fB141\fR
The output went into a closed pipe (as for a command killed by SIGPIPE).
.SH ENVIRONMENT
.TP
\fBGITHUB_TOKEN\fR, \fBGITHUB_APP_ID\fR, \fBGITHUB_APP_PRIVATE_KEY\fR
GitHub authentication for gate, reconcile (GitHub mode), request \-\-open\-pr, revoke and monitor \-\-github\-issue.
.TP
\fBGITHUB_REPOSITORY\fR, \fBGITHUB_API_URL\fR
The repository on GitHub and the API to use (set by GitHub Actions).
.TP
\fBGITHUB_STEP_SUMMARY\fR
check \-\-format github appends the job summary to this file.
.TP
\fBNO_COLOR\fR
Set to anything non\-empty: no colour.
.TP
\fBCLICOLOR_FORCE\fR
Set (not 0): colour even when stderr is not a terminal.
.TP
\fBTERM\fR
\fBdumb\fR: no colour.
.PP
Providers read their credentials from the environment the way their SDKs do (\fBAWS_*\fR, \fBGOOGLE_*\fR, \fBAZURE_*\fR, \fBKUBECONFIG\fR, and the variables that policies name, such as \fBdsn_env\fR).
"#;
