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

#[derive(Debug, Parser)]
#[command(name = "gitgrant", version, about = "Temporary production access as code: requests in Git, risk-based approvals, expiry enforced by the cloud.", long_about = None)]
#[command(
    after_help = "Examples:\n  gitgrant check                       judge your working tree against HEAD\n  gitgrant check --base main --head pr  judge a PR branch (CI)\n  gitgrant explain 2026-11-23-alice-orders-db\n  gitgrant schema request > request.schema.json"
)]
pub struct Cli {
    /// The access repository (default: the current directory).
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    pub repo: PathBuf,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub format: Format,
    /// Fix the clock (RFC 3339), for tests and simulation. Without a value
    /// (`gitgrant revoke REQUEST --now`): act immediately.
    #[arg(long, global = true, value_name = "RFC3339", value_parser = parse_now, num_args = 0..=1, default_missing_value = "")]
    pub now: Option<Now>,
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
    /// Early revocation; `--now` revokes at the providers immediately.
    #[command(after_help = "Examples:\n  gitgrant revoke 2026-11-23-alice-orders-db\n  gitgrant revoke 2026-11-23-alice-orders-db --now")]
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

/// `--now` with a time fixes the clock; bare `--now` asks for immediate action (revoke).
#[derive(Debug, Clone, Copy)]
pub enum Now {
    At(DateTime<Utc>),
    Immediately,
}

fn parse_now(s: &str) -> Result<Now, String> {
    if s.is_empty() { Ok(Now::Immediately) } else { parse_time(s).map(Now::At) }
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
    /// A bare `--now` was given (`revoke --now`).
    pub now_bare: bool,
}

pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let (now, now_bare) = match cli.now {
        Some(Now::At(t)) => (t, false),
        Some(Now::Immediately) => (Utc::now(), true),
        None => (Utc::now(), false),
    };
    let g = Global { repo: cli.repo, format: cli.format, now, quiet: cli.quiet, verbose: cli.verbose, color: color(), now_bare };
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

/// Colour for human output on stderr (where diagnostics go): on a terminal,
/// or with `CLICOLOR_FORCE` set; never when `NO_COLOR` is set (no-color.org).
pub(crate) fn color() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let force = std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0");
    !no_color && (force || std::io::stderr().is_terminal())
}

/// A tool error (exit 2): printed as `error: ...` with a hint. The message
/// often carries a path, a ref or a provider's answer: escaped, one line.
pub(crate) fn fail(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {}", crate::render::escape::human(&msg.to_string()));
    2
}

/// The async runtime for provider calls (exit 2 if it cannot start).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, u8> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| fail(format!("cannot start the async runtime: {e}")))
}
