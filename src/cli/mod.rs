//! Command-line interface: flags are parsed here, each subcommand lives in its
//! own file and returns an exit code (0 ok, 1 judged and failed, 2 could not
//! judge). Nothing below `cli` prints or exits.

mod approvals;
mod audit;
mod check;
mod completions;
mod demo;
mod explain;
mod extend;
mod gate;
mod init;
mod monitor;
pub(crate) mod output;
mod plan;
pub mod prune;
mod reconcile;
mod request;
mod revoke;
mod schema;
mod simulate;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Text for people, with source lines and carets (`table` is an alias, for `audit`).
    #[value(alias = "table")]
    Human,
    /// GitHub workflow commands (annotations) plus a job summary.
    Github,
    /// A stable JSON document (see README "Machine-readable output").
    Json,
    /// Comma-separated values with a header row (`gitgrant audit` only).
    Csv,
}

/// `gitgrant --version`: the release and the commit it was built from (build.rs).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("GITGRANT_COMMIT_SHORT"), ")");

#[derive(Debug, Parser)]
#[command(name = "gitgrant", version = VERSION, about = "Temporary production access as code: requests in Git, risk-based approvals, expiry enforced by the cloud.", long_about = None)]
#[command(
    after_help = "Examples:\n  gitgrant check                       judge your working tree against HEAD\n  gitgrant check --base main --head pr  judge a PR branch (CI)\n  gitgrant explain 2026-11-23-alice-orders-db\n  gitgrant schema request > request.schema.json"
)]
pub struct Cli {
    /// The access repository (default: the first of the current directory and
    /// its parents that holds `policies/`, as git finds `.git`).
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub format: Format,
    /// Fix the clock (RFC 3339), for tests, simulation and reproducible output.
    /// It always takes a time and means nothing else (`revoke --immediately` acts now).
    #[arg(long, global = true, value_name = "RFC3339", value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,
    /// Print only errors (documents asked for, like JSON or a schema, still print).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say more on stderr: provider calls and timings (reconcile), the history index (check).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a change: diagnostics, risk, and the approvals it needs.
    #[command(
        after_help = "Without refs, checks the working tree against HEAD (authoring locally).\nPolicies are always read from the base (the merge-base with main), never from the change itself.\n\nExamples:\n  gitgrant check\n  gitgrant check --base origin/main --head HEAD --format github\n  gitgrant check --all --format json"
    )]
    Check(check::Args),
    /// Show a request's risk breakdown and who must approve it.
    #[command(
        after_help = "REQUEST is a request id (file stem) or a path.\n\nExamples:\n  gitgrant explain 2026-11-23-alice-orders-db\n  gitgrant explain requests/2026-11-23-alice-orders-db.yaml --head my-branch"
    )]
    Explain(explain::Args),
    /// Judge `Approved-by:` trailers on a landing commit (plain-git approvals).
    #[command(after_help = "Example:\n  gitgrant approvals --commit HEAD")]
    Approvals(approvals::Args),
    /// What reconcile would grant, keep and revoke at a time; changes nothing.
    #[command(after_help = "Examples:\n  gitgrant plan\n  gitgrant plan --at 2026-12-01T18:00:00Z --format json")]
    Plan(plan::Args),
    /// Grant active approved requests, revoke ended ones; record the run on the ledger branch.
    #[command(
        after_help = "Revokes run before grants; every call is idempotent, so rerunning after a crash is safe.\nExit 1 when a grant or revoke failed, a provider could not be listed, or a request on main was refused.\n\nExamples:\n  gitgrant reconcile\n  gitgrant reconcile --at 2026-12-01T18:00:00Z --concurrency 4"
    )]
    Reconcile(reconcile::Args),
    /// Judge a PR's GitHub reviews; publish the check run (or status) and the sticky comment.
    #[command(
        after_help = "Inside GitHub Actions the PR comes from the event; the base and head commits are read from the local clone.\nAuth: GITHUB_TOKEN, or GITHUB_APP_ID + GITHUB_APP_PRIVATE_KEY. API: GITHUB_API_URL (default api.github.com).\n\nExamples:\n  gitgrant gate\n  gitgrant gate --pr 42 --github-repo acme/access --status"
    )]
    Gate(gate::Args),
    /// Print the JSON Schema of request or policy files (for editors).
    #[command(after_help = "Example:\n  gitgrant schema request > .schema/request.json")]
    Schema(schema::Args),
    /// Remove ended requests from the tree in one commit (history keeps them).
    #[command(
        after_help = "Routine maintenance (e.g. a weekly scheduled workflow): small trees keep check and history fast.\nRemoving an ended request is not an early revocation.\n\nExamples:\n  gitgrant prune --dry-run\n  gitgrant prune --grace 7d && git push origin main"
    )]
    Prune(prune::Args),
    /// The whole lifecycle in a temporary repository on the local provider (no account, no network).
    #[command(after_help = "Example:\n  gitgrant demo")]
    Demo(demo::Args),
    /// Scaffold an access repository: policies, requests, templates, workflows.
    #[command(after_help = "Examples:\n  gitgrant init\n  gitgrant --repo ../access init")]
    Init(init::Args),
    /// Write a request file from flags, or from prompts on a terminal.
    #[command(
        after_help = "Examples:\n  gitgrant request\n  gitgrant request --role db-readonly --resource orders-db --duration 2h --reason \"INC-4211: orders stuck in pending\""
    )]
    Request(request::Args),
    /// A new request that continues an existing one.
    #[command(after_help = "Example:\n  gitgrant extend 2026-11-23-alice-orders-db --by 2h")]
    Extend(extend::Args),
    /// Early revocation; `--immediately` also revokes at the providers at once.
    #[command(after_help = "Examples:\n  gitgrant revoke 2026-11-23-alice-orders-db\n  gitgrant revoke 2026-11-23-alice-orders-db --immediately")]
    Revoke(revoke::Args),
    /// Who had what, when and why: git history joined with the ledger.
    #[command(after_help = "Example:\n  gitgrant audit who --resource orders-db --privilege write --between 2026-10-01 2026-11-01")]
    Audit(audit::Args),
    /// Read provider activity logs for active grants; alert; revoke on a forbidden action.
    #[command(after_help = "Example:\n  gitgrant monitor")]
    Monitor(monitor::Args),
    /// Replay history under other policies: which requests change tier or outcome.
    #[command(
        after_help = "Every request version that landed on main is judged under main's policies and under those at REF.\nExit 0 when it ran; 2 when it could not (e.g. the policies at REF do not load).\n\nExamples:\n  gitgrant simulate --policies raise-auto-threshold\n  gitgrant simulate --policies origin/pr-42 --format json"
    )]
    Simulate(simulate::Args),
    /// Print a shell completion script, or the man page (`--man`).
    #[command(
        after_help = "Examples:\n  gitgrant completions bash > /etc/bash_completion.d/gitgrant\n  gitgrant completions zsh > \"${fpath[1]}/_gitgrant\"\n  gitgrant completions fish > ~/.config/fish/completions/gitgrant.fish\n  gitgrant completions --man > /usr/local/share/man/man1/gitgrant.1"
    )]
    Completions(completions::Args),
}

/// The hint for a `--now` without a time: it used to mean "act now" in `revoke`.
const NOW_HINT: &str = "`--now` fixes the clock and needs a time, e.g. `--now 2026-11-23T14:00:00Z`; to revoke at the providers at once, use `gitgrant revoke REQUEST --immediately`";

fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    parse_time(s).map_err(|e| format!("{e}\n\n  tip: {NOW_HINT}"))
}

pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| format!("`{s}` is not an RFC 3339 time ({e}); e.g. 2026-11-23T14:00:00Z"))
}

/// Settings every subcommand shares.
pub struct Global {
    pub repo: PathBuf,
    pub format: Format,
    pub now: DateTime<Utc>,
    pub quiet: bool,
    pub verbose: bool,
    pub color: bool,
}

pub fn run() -> ExitCode {
    quiet_on_broken_pipe();
    // Every HTTP client (GitHub, GCP, Azure, webhooks) needs the one TLS crypto provider.
    crate::install_crypto_provider();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            if e.kind() == clap::error::ErrorKind::InvalidValue && e.to_string().contains("--now <RFC3339>") && !e.to_string().contains("tip:") {
                eprintln!("\n  tip: {NOW_HINT}");
            }
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let now = cli.now.unwrap_or_else(Utc::now);
    // Commands that read an access repository find its root, like git.
    let needs_repo = !matches!(cli.command, Command::Schema(_) | Command::Demo(_) | Command::Init(_) | Command::Completions(_));
    let repo = if needs_repo {
        match find_access_repo(&cli.repo) {
            Ok(r) => r,
            Err(msg) => return ExitCode::from(fail(msg)),
        }
    } else {
        cli.repo
    };
    let g = Global { repo, format: cli.format, now, quiet: cli.quiet, verbose: cli.verbose, color: color() };
    if g.format == Format::Csv && !matches!(cli.command, Command::Audit(_)) {
        return ExitCode::from(fail("`--format csv` is only supported by `gitgrant audit`; use human, github or json here"));
    }
    let code = match cli.command {
        Command::Check(a) => check::run(&g, a),
        Command::Explain(a) => explain::run(&g, a),
        Command::Approvals(a) => approvals::run(&g, a),
        Command::Plan(a) => plan::run(&g, a),
        Command::Reconcile(a) => reconcile::run(&g, a),
        Command::Schema(a) => schema::run(&g, a),
        Command::Gate(a) => gate::run(&g, a),
        Command::Prune(a) => prune::run(&g, a),
        Command::Demo(a) => demo::run(&g, a),
        Command::Init(a) => init::run(&g, a),
        Command::Request(a) => request::run(&g, a),
        Command::Extend(a) => extend::run(&g, a),
        Command::Revoke(a) => revoke::run(&g, a),
        Command::Audit(a) => audit::run(&g, a),
        Command::Monitor(a) => monitor::run(&g, a),
        Command::Simulate(a) => simulate::run(&g, a),
        Command::Completions(a) => completions::run(&g, a),
    };
    ExitCode::from(code)
}

/// Colour for human output on stderr (where diagnostics go).
pub(crate) fn color() -> bool {
    let var = |k: &str| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned());
    color_wanted(var("NO_COLOR").as_deref(), var("CLICOLOR_FORCE").as_deref(), var("TERM").as_deref(), std::io::stderr().is_terminal())
}

/// Colour on a terminal that can show it, or when forced with `CLICOLOR_FORCE`;
/// never with `NO_COLOR` (no-color.org) and, unless forced, never on `TERM=dumb`.
fn color_wanted(no_color: Option<&str>, force: Option<&str>, term: Option<&str>, terminal: bool) -> bool {
    let no_color = no_color.is_some_and(|v| !v.is_empty());
    let force = force.is_some_and(|v| !v.is_empty() && v != "0");
    !no_color && (force || (terminal && term != Some("dumb")))
}

/// Output into a closed pipe (`gitgrant schema | head`) ends the process
/// quietly with 141, what a shell reports for a command killed by SIGPIPE,
/// instead of the panic `println!` raises. Done once, here, for every command:
/// Rust ignores SIGPIPE, so each write would otherwise have to handle EPIPE.
fn quiet_on_broken_pipe() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied()).unwrap_or("");
        if is_broken_pipe_panic(msg) {
            std::process::exit(BROKEN_PIPE_EXIT);
        }
        previous(info);
    }));
}

/// The exit status after a closed pipe: 128 + SIGPIPE.
pub(crate) const BROKEN_PIPE_EXIT: i32 = 141;

fn is_broken_pipe_panic(msg: &str) -> bool {
    msg.starts_with("failed printing to std") && (msg.contains("os error 32") || msg.contains("Broken pipe"))
}

/// Writes a whole document to stdout; a closed pipe ends the process quietly
/// (see [`quiet_on_broken_pipe`]), any other error is a tool error.
pub(crate) fn write_stdout(bytes: &[u8]) -> u8 {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(BROKEN_PIPE_EXIT),
        Err(e) => fail(format!("cannot write the output: {e}")),
    }
}

/// Does main's tree (in the git repository at `dir`) hold `policies/`?
fn main_has_policies(dir: &std::path::Path) -> bool {
    let Ok(repo) = git2::Repository::open(dir) else { return false };
    let Some(main) = crate::git::main_commit(&repo) else { return false };
    repo.find_commit(main).and_then(|c| c.tree()).is_ok_and(|t| t.get_name("policies").is_some())
}

/// The access repository that `start` is in: `start` or the first of its
/// parents that holds `policies/`. The search stops at a git repository's
/// top (a directory with `.git`), as an access repository is one.
fn find_access_repo(start: &std::path::Path) -> Result<PathBuf, String> {
    let abs = std::path::absolute(start).map_err(|e| format!("`{}`: {e}", start.display()))?;
    for dir in abs.ancestors() {
        if dir.join("policies").is_dir() {
            // Keep the caller's spelling when it is the directory itself (messages show it).
            return Ok(if dir == abs { start.to_path_buf() } else { dir.to_path_buf() });
        }
        if dir.join(".git").exists() {
            // A clone whose working tree lacks policies/ (no checkout, a sparse
            // one) is still an access repository when main's tree has them:
            // plan, reconcile and audit read main from git, not from the disk.
            if main_has_policies(dir) {
                return Ok(if dir == abs { start.to_path_buf() } else { dir.to_path_buf() });
            }
            break;
        }
    }
    Err(format!("not an access repository (no policies/ found in {} or its parents); run `gitgrant init` to create one", abs.display()))
}

/// A tool error (exit 2): printed as `error: ...` with a hint. The message
/// often carries a path, a ref or a provider's answer: escaped, one line.
/// Leaves `big` to the operating system: a command about to exit does not
/// free, one allocation at a time, the hundreds of megabytes it read (a
/// tenth to a fifth of `check --all` or `audit` on a big repository). Only
/// for what holds no unwritten data (outputs are flushed before).
pub(crate) fn exit_soon<T>(big: T) {
    std::mem::forget(big);
}

pub(crate) fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {}", crate::render::escape::human(&without_git2_codes(&msg.to_string())));
    2
}

/// libgit2 errors print as `MESSAGE; class=Repository (6); code=NotFound (-3)`:
/// the tail means nothing to a user. Every tool error passes through here.
pub(crate) fn without_git2_codes(msg: &str) -> String {
    let mut out = msg.to_string();
    for key in ["; class=", "; code="] {
        while let Some(at) = out.find(key) {
            // `KEY Name (n)`: up to and including the closing parenthesis.
            let Some(close) = out[at..].find(')') else { break };
            out.replace_range(at..at + close + 1, "");
        }
    }
    out
}

/// The async runtime for provider calls (exit 2 if it cannot start).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| fail(format!("cannot start the async runtime: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn colour_follows_no_color_clicolor_force_and_term() {
        assert!(color_wanted(None, None, Some("xterm-256color"), true));
        assert!(!color_wanted(None, None, Some("dumb"), true), "TERM=dumb gets no colour");
        assert!(!color_wanted(None, None, Some("xterm"), false), "not a terminal");
        assert!(!color_wanted(Some("1"), Some("1"), Some("xterm"), true), "NO_COLOR wins");
        assert!(color_wanted(Some(""), None, None, true), "an empty NO_COLOR is unset");
        assert!(color_wanted(None, Some("1"), Some("dumb"), false), "forced");
        assert!(!color_wanted(None, Some("0"), Some("dumb"), true));
    }

    #[test]
    fn git2_codes_are_stripped_from_messages() {
        let e = git2::Error::new(git2::ErrorCode::NotFound, git2::ErrorClass::Repository, "could not find repository at '.'");
        let msg = format!("`.` is not a git repository: {e}; run `gitgrant init`");
        assert!(msg.contains("class="), "{msg}");
        assert_eq!(without_git2_codes(&msg), "`.` is not a git repository: could not find repository at '.'; run `gitgrant init`");
        assert_eq!(without_git2_codes("no codes (here)"), "no codes (here)");
    }

    #[test]
    fn broken_pipe_panics_are_recognised() {
        assert!(is_broken_pipe_panic("failed printing to stdout: Broken pipe (os error 32)"));
        assert!(!is_broken_pipe_panic("failed printing to stdout: No space left on device (os error 28)"));
        assert!(!is_broken_pipe_panic("index out of bounds"));
    }

    #[test]
    fn a_bare_now_is_refused_with_a_hint_naming_immediately() {
        let e = Cli::try_parse_from(["gitgrant", "revoke", "x", "--now"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue, "{e}");
        let e = Cli::try_parse_from(["gitgrant", "revoke", "--now", "x"]).unwrap_err();
        assert!(e.to_string().contains("--immediately"), "{e}");
        let cli = Cli::try_parse_from(["gitgrant", "revoke", "x", "--immediately", "--now", "2026-11-23T14:00:00Z"]).unwrap();
        assert_eq!(cli.now.map(|t| t.to_rfc3339()), Some("2026-11-23T14:00:00+00:00".to_string()));
    }
}
