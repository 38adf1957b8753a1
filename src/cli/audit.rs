//! `gitgrant audit`: who had what, when and why: git history joined with the ledger.
//! Subcommands: `who` (holders of an access in a window), `replay` (recompute
//! a recorded decision), `verify` (the trail is complete and untampered).

use std::fmt::Write as _;

use chrono::{DateTime, TimeZone, Utc};
use clap::Subcommand;

use super::{Format, Global, fail};
use crate::audit::replay::{CheckStatus, Selector, replay, select};
use crate::audit::verify::{VerifyOptions, VerifyReport, verify};
use crate::audit::{AuditEvent, Filter, Held, Trail, fmt_time, parse_when, timeline, who};
use crate::model::policy::Privilege;
use crate::render::escape::{self, GhCommand, human, human_join};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
#[command(
    after_help = "WHEN is a date (2026-10-01, midnight UTC), an RFC 3339 time, or a duration back from now (30d, 12h).\n--format human (alias table) groups events per request; json prints one object per line; csv prints a header row.\n\nExamples:\n  gitgrant audit --since 30d\n  gitgrant audit --resource orders-db --format csv > orders-db.csv\n  gitgrant audit who --resource orders-db --privilege write --between 2026-10-01 2026-11-01\n  gitgrant audit replay 2026-11-23-alice-orders-db\n  gitgrant audit verify --expect-head 1a2b3c4d"
)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    filter: FilterArgs,
}

#[derive(Debug, clap::Args)]
struct FilterArgs {
    /// Only events at or after WHEN.
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
    /// Only events before WHEN.
    #[arg(long, value_name = "WHEN")]
    until: Option<String>,
    /// Only events where LOGIN is the requester, the actor or an approver.
    #[arg(long, value_name = "LOGIN")]
    user: Option<String>,
    /// Only requests for this role.
    #[arg(long)]
    role: Option<String>,
    /// Only requests that include this resource.
    #[arg(long)]
    resource: Option<String>,
    /// Only this request id.
    #[arg(long, value_name = "ID")]
    request: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Who held an access to a resource in a time window (from the ledger: grant to revoke).
    #[command(after_help = "Example:\n  gitgrant audit who --resource orders-db --privilege write --between 2026-10-01 2026-11-01")]
    Who(WhoArgs),
    /// Recompute a recorded grant decision from git alone; exit 1 when it no longer holds.
    #[command(
        after_help = "ENTRY names a ledger line: LINE (1-based in ledger.jsonl), LEDGER-COMMIT:LINE, REQUEST (its latest grant), or REQUEST:ACTION.\n\nExamples:\n  gitgrant audit replay 3\n  gitgrant audit replay 2026-11-23-alice-orders-db"
    )]
    Replay(ReplayArgs),
    /// Check the trail: every grant approved, every landing approved, break-glass reviewed, no drift, ledger not rewritten.
    #[command(
        after_help = "Exit 0 and `clean` when nothing is found; 1 with the findings (codes AV001-AV009, see README \"Audit\" and docs/diagnostics.md); 2 when the trail cannot be read.\n\nExamples:\n  gitgrant audit verify\n  gitgrant audit verify --expect-head $(cat last-ledger-head) --format json"
    )]
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
struct WhoArgs {
    #[arg(long)]
    resource: String,
    /// At least this privilege (read < write < admin), from the role under the policies that judged the grant.
    #[arg(long, value_parser = parse_privilege)]
    privilege: Option<Privilege>,
    /// The window [FROM, UNTIL) (WHEN values); default: all of history up to now.
    #[arg(long, num_args = 2, value_names = ["FROM", "UNTIL"])]
    between: Option<Vec<String>>,
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// LINE, LEDGER-COMMIT:LINE, REQUEST or REQUEST:ACTION.
    entry: String,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// A ledger head recorded earlier (printed by every verify): it must still be in the ledger's history.
    #[arg(long, value_name = "SHA")]
    expect_head: Option<String>,
    /// Skip listing the providers (no drift check, no network).
    #[arg(long)]
    no_providers: bool,
    /// The remote whose ledger branch is compared with the local one.
    #[arg(long, default_value = "origin")]
    remote: String,
    /// How rule changes are judged (GitHub reviews or trailers), and the trust root.
    #[command(flatten)]
    trust: super::plan::VerifyArgs,
}

fn parse_privilege(s: &str) -> Result<Privilege, String> {
    match s {
        "read" => Ok(Privilege::Read),
        "write" => Ok(Privilege::Write),
        "admin" => Ok(Privilege::Admin),
        _ => Err(format!("`{s}` is not a privilege; use read, write or admin")),
    }
}

pub fn run(g: &Global, a: Args) -> u8 {
    match a.command {
        None => run_timeline(g, &a.filter),
        Some(Sub::Who(w)) => run_who(g, &w),
        Some(Sub::Replay(r)) => run_replay(g, &r),
        Some(Sub::Verify(v)) => run_verify(g, &v),
    }
}

fn open(g: &Global) -> Result<Trail, u8> {
    Trail::open(&g.repo).map_err(fail)
}

fn run_timeline(g: &Global, f: &FilterArgs) -> u8 {
    let when = |s: &Option<String>| s.as_deref().map(|s| parse_when(s, g.now)).transpose();
    let (since, until) = match (when(&f.since), when(&f.until)) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    let filter = Filter { since, until, user: f.user.clone(), role: f.role.clone(), resource: f.resource.clone(), request: f.request.clone() };
    let trail = match open(g) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let events = timeline(&trail, &filter);
    // Tens of megabytes on a long history: streamed, not built in memory.
    let code = emit(|w| match g.format {
        Format::Json => write_json_lines(w, &events),
        Format::Csv => events_csv(w, &events),
        Format::Human | Format::Github => w.write_all(events_table(&events).as_bytes()),
    });
    super::exit_soon((events, trail));
    code
}

/// Writes to stdout through a buffer; a closed pipe (`| head`) is not an error.
fn emit(f: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> u8 {
    let mut w = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    match f(&mut w).and_then(|()| std::io::Write::flush(&mut w)) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => fail(format!("writing the output: {e}")),
    }
}

fn write_json_lines<T: serde::Serialize>(w: &mut dyn std::io::Write, items: &[T]) -> std::io::Result<()> {
    for i in items {
        escape::write_json(&mut *w, i, false)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

fn print_or_fail(out: Result<String, String>) -> u8 {
    match out {
        Ok(s) => emit(|w| w.write_all(s.as_bytes())),
        Err(e) => fail(e),
    }
}

use escape::write_csv as csv;

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// The documented columns first, then the added ones (same names as the JSON fields).
pub const EVENT_COLUMNS: [&str; 19] = [
    "time",
    "event",
    "request",
    "requester",
    "role",
    "resources",
    "actor",
    "commit",
    "pr",
    "detail",
    "source",
    "approvers",
    "start",
    "end",
    "provider",
    "resource",
    "principal",
    "access",
    "ledger_line",
];

fn events_csv(w: &mut dyn std::io::Write, events: &[AuditEvent]) -> std::io::Result<()> {
    csv(
        w,
        &EVENT_COLUMNS,
        events.iter().map(|e| {
            vec![
                fmt_time(e.time),
                e.event.clone(),
                e.request.clone(),
                e.requester.clone(),
                e.role.clone(),
                e.resources.join(";"),
                e.actor.clone(),
                opt(&e.commit),
                opt(&e.pr),
                e.detail.clone(),
                e.source.to_string(),
                e.approvers.join(";"),
                e.start.map(fmt_time).unwrap_or_default(),
                e.end.map(fmt_time).unwrap_or_default(),
                opt(&e.provider),
                opt(&e.resource),
                opt(&e.principal),
                opt(&e.access),
                opt(&e.ledger_line),
            ]
        }),
    )
}

fn short(c: &Option<String>) -> &str {
    c.as_deref().map_or("", |c| &c[..c.len().min(10)])
}

/// Human: one block per request (in order of its first event), events in time order.
fn events_table(events: &[AuditEvent]) -> String {
    if events.is_empty() {
        return "no audit events match\n".to_string();
    }
    let mut order: Vec<&str> = Vec::new();
    let mut by: std::collections::HashMap<&str, Vec<&AuditEvent>> = std::collections::HashMap::new();
    for e in events {
        let v = by.entry(e.request.as_str()).or_default();
        if v.is_empty() {
            order.push(e.request.as_str());
        }
        v.push(e);
    }
    let mut s = String::new();
    for id in order {
        let list = &by[id];
        let head = list.iter().find(|e| !e.requester.is_empty()).unwrap_or(&list[0]);
        let id = if id.is_empty() { "(no request)".into() } else { human(id) };
        let _ = writeln!(s, "{id} ({} -> {} on {})", human(&head.requester), human(&head.role), human_join(&head.resources, ", "));
        for e in list {
            let _ =
                writeln!(s, "  {}  {:<13} {:<12} {:<10}  {}", fmt_time(e.time), human(&e.event), human(&e.actor), human(short(&e.commit)), human(&e.detail));
        }
        s.push('\n');
    }
    let _ = writeln!(s, "{} event(s)", events.len());
    s
}

fn run_who(g: &Global, w: &WhoArgs) -> u8 {
    let (from, to) = match &w.between {
        Some(v) if v.len() == 2 => match (parse_when(&v[0], g.now), parse_when(&v[1], g.now)) {
            (Ok(f), Ok(t)) if f < t => (f, t),
            (Ok(_), Ok(_)) => return fail("--between FROM UNTIL: FROM must be before UNTIL"),
            (Err(e), _) | (_, Err(e)) => return fail(e),
        },
        _ => (Utc.timestamp_opt(0, 0).single().unwrap_or_default(), g.now),
    };
    let trail = match open(g) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let held = who(&trail, &w.resource, w.privilege, from, to);
    let code = emit(|out| match g.format {
        Format::Json => write_json_lines(out, &held),
        Format::Csv => held_csv(out, &held),
        Format::Human | Format::Github => out.write_all(held_table(&held, w, from, to).as_bytes()),
    });
    super::exit_soon(trail);
    code
}

fn held_csv(w: &mut dyn std::io::Write, held: &[Held]) -> std::io::Result<()> {
    csv(
        w,
        &[
            "principal",
            "requester",
            "role",
            "privilege",
            "provider",
            "resource",
            "access",
            "request",
            "from",
            "to",
            "still_open",
            "granted",
            "revoked",
            "scheduled_end",
            "break_glass",
            "ledger_line",
        ],
        held.iter().map(|h| {
            vec![
                h.principal.clone(),
                h.requester.clone(),
                h.role.clone(),
                opt(&h.privilege),
                opt(&h.provider),
                h.resource.clone(),
                h.access.clone(),
                h.request.clone(),
                fmt_time(h.from),
                fmt_time(h.to),
                h.still_open.to_string(),
                fmt_time(h.granted),
                h.revoked.map(fmt_time).unwrap_or_default(),
                h.scheduled_end.map(fmt_time).unwrap_or_default(),
                h.break_glass.to_string(),
                h.ledger_line.to_string(),
            ]
        }),
    )
}

fn held_table(held: &[Held], w: &WhoArgs, from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let what = w.privilege.map_or("any".to_string(), |p| format!("{p} (or higher)"));
    let mut s = format!("{what} access to {} between {} and {} (from the ledger):\n", human(&w.resource), fmt_time(from), fmt_time(to));
    if held.is_empty() {
        s.push_str("  nobody\n");
        return s;
    }
    for h in held {
        let end = if h.still_open { format!("still open (scheduled end {})", h.scheduled_end.map_or("unknown".to_string(), fmt_time)) } else { fmt_time(h.to) };
        let clipped = if h.granted < from { " (granted earlier)" } else { "" };
        let _ = writeln!(
            s,
            "  {:<14} {:<12} {} ({})  {}{clipped} -> {end}  request {}{}",
            human(&h.principal),
            human(&h.requester),
            human(&h.role),
            opt(&h.privilege),
            fmt_time(h.from),
            human(&h.request),
            if h.break_glass { " [BREAK-GLASS]" } else { "" }
        );
    }
    s
}

fn run_replay(g: &Global, r: &ReplayArgs) -> u8 {
    let trail = match open(g) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let result = select(&trail, &Selector::parse(&r.entry)).and_then(|(line, entry)| replay(&g.repo, &trail, line, entry, g.now));
    let rep = match result {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let out = match g.format {
        Format::Json | Format::Csv => escape::json_pretty(&rep).map(|s| s + "\n").map_err(|e| e.to_string()),
        Format::Human | Format::Github => {
            let e = &rep.entry;
            let mut s = format!(
                "ledger line {}: {} {} on {} {}: {} {} at {}\n",
                rep.line,
                human(&e.action.to_string()),
                human(&e.request),
                human(&opt(&e.provider)),
                human(&opt(&e.resource)),
                human(&opt(&e.principal)),
                human(&opt(&e.access)),
                fmt_time(e.time)
            );
            for c in &rep.checks {
                let tag = match c.status {
                    CheckStatus::Ok => "[ok]     ",
                    CheckStatus::Failed => "[FAILED] ",
                    CheckStatus::Skipped => "[skipped]",
                };
                let _ = writeln!(s, "  {tag} {}: {}", human(c.name), human(&c.detail));
            }
            s.push_str(if rep.holds { "the decision holds: recomputed from git alone\n" } else { "the decision DOES NOT HOLD\n" });
            Ok(s)
        }
    };
    match print_or_fail(out) {
        0 => u8::from(!rep.holds),
        code => code,
    }
}

fn run_verify(g: &Global, v: &VerifyArgs) -> u8 {
    // Acts on what it reads: only its own walk, never the travelling index.
    crate::history::travel::distrust();
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let opts = VerifyOptions { now: g.now, expect_head: v.expect_head.clone(), providers: !v.no_providers, remote: v.remote.clone() };
    let mut report = match rt.block_on(verify(&g.repo, &opts)) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let trust = match rt.block_on(chain_of_trust(g, &v.trust)) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    if let Some((t, ledger)) = &trust {
        report.findings.extend(t.findings(ledger));
        report.findings.sort();
        report.clean = report.findings.is_empty();
    }
    let trust = trust.map(|(t, _)| t);
    let out = match g.format {
        Format::Json => serde_json::to_value(&report)
            .map(|mut v| {
                if let (Some(o), Some(t)) = (v.as_object_mut(), &trust) {
                    o.insert("trust".into(), serde_json::to_value(t).unwrap_or_default());
                }
                v
            })
            .and_then(|v| escape::json_pretty(&v))
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        Format::Csv => {
            let mut buf = Vec::new();
            let rows = report.findings.iter().map(|f| vec![f.code.to_string(), f.name.to_string(), opt(&f.request), opt(&f.commit), f.detail.clone()]);
            csv(&mut buf, &["code", "name", "request", "commit", "detail"], rows)
                .map_err(|e| e.to_string())
                .map(|()| String::from_utf8_lossy(&buf).into_owned())
        }
        Format::Human => Ok(verify_text(&report, v, trust.as_ref())),
        Format::Github => Ok(report
            .findings
            .iter()
            .map(|f| escape::gh_annotation(GhCommand::Error, &format!("gitgrant audit verify {} {}", f.code, f.name), &f.detail) + "\n")
            .chain(std::iter::once(verify_text(&report, v, trust.as_ref())))
            .collect()),
    };
    match print_or_fail(out) {
        0 => u8::from(!report.clean),
        code => code,
    }
}

/// The chain of trust on main, and the ledger it checks grants against.
async fn chain_of_trust(g: &Global, v: &super::plan::VerifyArgs) -> Result<Option<(crate::engine::trust::TrustReport, crate::ledger::Ledger)>, String> {
    let repo = git2::Repository::open(&g.repo).map_err(|e| format!("`{}` is not a git repository: {e}", g.repo.display()))?;
    let client = v.client().await?;
    let api = client.as_ref().map(|c| c as &dyn crate::github::GitHubApi);
    let Some(t) = crate::engine::trust::evaluate_main(&repo, v.trust_root.as_deref(), api).await.map_err(|e| e.to_string())? else { return Ok(None) };
    let ledger = crate::ledger::Ledger::read(&repo).unwrap_or_default();
    Ok(Some((t, ledger)))
}

fn verify_text(r: &VerifyReport, v: &VerifyArgs, trust: Option<&crate::engine::trust::TrustReport>) -> String {
    let mut s = String::new();
    for f in &r.findings {
        let _ = writeln!(s, "{} {:<24} {:<28} {}", f.code, f.name, human(f.request.as_deref().unwrap_or("-")), human(&f.detail));
    }
    let c = &r.checked;
    let providers = if v.no_providers { "providers not listed".to_string() } else { format!("{} provider grant(s)", c.provider_grants) };
    let _ = writeln!(
        s,
        "checked: {} landing(s), {} grant(s), {} break-glass grant(s), {} ledger commit(s), {providers}",
        c.landings, c.grants, c.break_glass_grants, c.ledger_commits
    );
    for p in &c.reviews_pending {
        let _ = writeln!(s, "pending: break-glass review of {}", human(p));
    }
    if let Some(h) = &r.ledger_head {
        let h = human(h);
        let _ = writeln!(s, "ledger head: {h} (pin it: --expect-head {h})");
    }
    if let Some(t) = trust {
        let _ = writeln!(s, "{}", t.root_line());
    }
    if r.clean {
        s.push_str("clean\n");
    } else {
        let _ = writeln!(s, "{} finding(s)", r.findings.len());
    }
    s
}
