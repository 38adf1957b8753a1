//! `gitgrant request`: write a request file from flags or prompts.
//!
//! The draft is judged by `check`'s own engine (the working tree plus the
//! draft, against HEAD) before anything is written, so the risk and the
//! approvals shown are the ones the pull request will get.

use std::io::IsTerminal;
use std::path::Path;

use chrono::{DateTime, Utc};
use git2::Repository;

use super::output::{print_diagnostics, request_lines};
use super::{Global, fail};
use crate::check::{CheckOptions, CheckReport, describe_rules, run_check_on};
use crate::model::policy::Policy;
use crate::scaffold::draft::{Draft, gh_login};
use crate::scaffold::overlay::Overlay;
use crate::source::{FsTree, GitTree, Tree};
use crate::validate::load_policy;
use crate::validate::request::{REQUEST_DIR, request_id};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The role to ask for (from policies/).
    #[arg(long)]
    pub role: Option<String>,
    /// A resource the role applies to (repeat, or separate with commas).
    #[arg(long = "resource", value_delimiter = ',', value_name = "NAME")]
    pub resources: Vec<String>,
    /// How long, e.g. `90m`, `2h`.
    #[arg(long, value_name = "DUR")]
    pub duration: Option<String>,
    /// Why you need access (at least 10 characters).
    #[arg(long)]
    pub reason: Option<String>,
    /// Incident or change ticket.
    #[arg(long)]
    pub ticket: Option<String>,
    /// When access starts (default: when the request lands on main).
    #[arg(long, value_name = "RFC3339", value_parser = super::parse_time)]
    pub start: Option<DateTime<Utc>>,
    /// Emergency access under the policy's break-glass rules.
    #[arg(long)]
    pub break_glass: bool,
    /// The requester's GitHub login (default: the `user:` in GitHub CLI's hosts.yml).
    #[arg(long = "as", value_name = "LOGIN")]
    pub requester: Option<String>,
    /// Then create a branch, commit, push it and open the pull request.
    #[arg(long)]
    pub open_pr: bool,
    #[command(flatten)]
    pub pr: PrArgs,
}

/// Where `--open-pr` pushes and opens the pull request.
#[derive(Debug, Clone, clap::Args)]
pub struct PrArgs {
    /// The remote to push the branch to.
    #[arg(long, default_value = "origin")]
    pub remote: String,
    /// The branch the pull request goes into.
    #[arg(long, default_value = "main")]
    pub base: String,
    /// The repository on GitHub (default: $GITHUB_REPOSITORY, else the remote's URL).
    #[arg(long, value_name = "OWNER/NAME")]
    pub github_repo: Option<String>,
}

/// The rules a new request is written under: HEAD's policies (those the
/// working tree is checked against), or the working tree's before the first commit.
pub(super) fn current_policy(dir: &Path) -> Result<Policy, String> {
    let repo = Repository::open(dir).map_err(|e| format!("`{}` is not a git repository: {e} (`gitgrant init` creates one)", dir.display()))?;
    let head = crate::check::head_commit(&repo);
    let load = match head {
        Some(h) => load_policy(&GitTree::new(&repo, h).map_err(|e| e.to_string())?),
        None => load_policy(&FsTree::new(dir)),
    };
    if load.empty {
        return Err(format!("no policies in {} (`gitgrant init` scaffolds them)", dir.display()));
    }
    if load.diagnostics.has_errors() {
        return Err("the policies are invalid; run `gitgrant check --all` to see why".to_string());
    }
    Ok(load.policy)
}

/// The requester: `--as`, else GitHub CLI's login.
pub(super) fn requester(flag: Option<String>) -> Result<String, String> {
    flag.or_else(gh_login)
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| "cannot tell who you are: pass `--as LOGIN` (your GitHub login) or log in with `gh auth login`".to_string())
}

pub fn run(g: &Global, a: Args) -> u8 {
    let policy = match current_policy(&g.repo) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let who = match requester(a.requester.clone()) {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let mut missing = Vec::new();
    if a.role.is_none() {
        missing.push("--role");
    }
    if a.resources.is_empty() {
        missing.push("--resource");
    }
    if a.duration.is_none() {
        missing.push("--duration");
    }
    if a.reason.is_none() {
        missing.push("--reason");
    }
    let terminal = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let interactive = !missing.is_empty();
    if interactive && !terminal {
        return fail(format!("missing {} (not on a terminal, so gitgrant cannot ask)", missing.join(", ")));
    }
    let draft = if interactive {
        match prompt(&policy, &who, &a) {
            Ok(d) => d,
            Err(e) => return fail(e),
        }
    } else {
        Draft {
            requester: who,
            role: a.role.clone().unwrap_or_default(),
            resources: a.resources.clone(),
            start: a.start,
            duration: a.duration.clone().unwrap_or_default(),
            reason: a.reason.clone().unwrap_or_default(),
            ticket: a.ticket.clone().filter(|t| !t.trim().is_empty()),
            break_glass: a.break_glass,
            extends: None,
        }
    };
    submit(g, &draft, interactive, a.open_pr.then_some(&a.pr))
}

/// Judges the draft, shows the verdict, writes it when valid (after a
/// confirmation on a terminal), and opens the pull request if asked.
pub(super) fn submit(g: &Global, draft: &Draft, confirm: bool, pr_args: Option<&PrArgs>) -> u8 {
    let fs = FsTree::new(&g.repo);
    let taken: std::collections::BTreeSet<String> =
        fs.list(REQUEST_DIR).unwrap_or_default().iter().filter_map(|e| request_id(&e.path)).map(str::to_string).collect();
    let Some(id) = draft.id(g.now, &|id| taken.contains(id)) else {
        return fail("cannot find a free request id; remove old requests (`gitgrant prune`)");
    };
    let path = format!("{REQUEST_DIR}/{id}.yaml");
    let text = draft.to_yaml();
    let report = match judge(&g.repo, &fs, &path, &text, g.now) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let sources = |f: &str| report.sources.get(f).cloned();
    print_diagnostics(g, &report.diagnostics, &sources);
    let Some(outcome) = report.requests.iter().find(|r| r.id == id) else {
        return fail(format!("{path} was not judged; is `{REQUEST_DIR}/` a link?"));
    };
    println!("{}", request_lines(outcome));
    if report.diagnostics.iter().any(|d| d.is_error()) {
        eprintln!("not written: fix the errors above and run `gitgrant request` again");
        return 1;
    }
    if confirm {
        let question = format!("Write {path}?");
        match dialoguer::Confirm::new().with_prompt(question).default(true).wait_for_newline(true).interact() {
            Ok(true) => {}
            Ok(false) => {
                eprintln!("nothing written");
                return 1;
            }
            Err(e) => return fail(format!("prompt failed: {e}")),
        }
    }
    let full = g.repo.join(&path);
    let written = std::fs::create_dir_all(g.repo.join(REQUEST_DIR)).and_then(|_| {
        use std::io::Write;
        std::fs::OpenOptions::new().write(true).create_new(true).open(&full).and_then(|mut f| f.write_all(text.as_bytes()))
    });
    if let Err(e) = written {
        return fail(format!("cannot write {}: {e}", full.display()));
    }
    println!("wrote {}", crate::render::escape::human(&path));
    match pr_args {
        Some(pr) => open_pr(g, pr, &id, &path, draft, &report),
        None => {
            if !g.quiet {
                println!("next: commit it on a branch and open a pull request (or rerun with --open-pr)");
            }
            0
        }
    }
}

/// `check` over the working tree with the draft added, against HEAD.
fn judge(repo: &Path, fs: &FsTree, path: &str, text: &str, now: DateTime<Utc>) -> Result<CheckReport, String> {
    let overlay = Overlay { inner: fs, path: path.to_string(), text: text.to_string() };
    let id = request_id(path).map(str::to_string);
    let opts = CheckOptions { base: None, head: None, all: false, only: id, now };
    run_check_on(repo, &opts, &overlay).map_err(|e| e.to_string())
}

/// Asks for what the flags left out, offering only what the requester may ask for.
fn prompt(policy: &Policy, who: &str, a: &Args) -> Result<Draft, String> {
    use dialoguer::{Confirm, Input, MultiSelect, Select};
    let err = |e: dialoguer::Error| format!("prompt failed: {e}");
    let roles: Vec<(&String, &crate::model::policy::Role)> = policy.roles.iter().filter(|(_, r)| policy.in_any(who, &r.eligible)).collect();
    if roles.is_empty() {
        return Err(format!("`{who}` is eligible for no role: membership changes go through a policy PR (policies/groups.yaml)"));
    }
    let role_name = match &a.role {
        Some(r) => r.clone(),
        None => {
            let items: Vec<String> = roles
                .iter()
                .map(|(n, r)| {
                    format!(
                        "{n} ({}, at most {}){}",
                        r.privilege.as_str(),
                        r.max_duration,
                        r.description.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
                    )
                })
                .collect();
            let i = Select::new().with_prompt(format!("Role for {who}")).items(&items).default(0).interact().map_err(err)?;
            roles[i].0.clone()
        }
    };
    let role = policy.roles.get(&role_name).ok_or_else(|| format!("unknown role `{role_name}`"))?;
    let resources = if a.resources.is_empty() {
        let names: Vec<&String> = policy.resources.iter().filter(|(_, r)| role.grants.has(r.provider)).map(|(n, _)| n).collect();
        let items: Vec<String> = names
            .iter()
            .map(|n| {
                let r = &policy.resources[*n];
                format!("{n} ({}, {})", r.environment, r.sensitivity.as_str())
            })
            .collect();
        let picked = if names.len() == 1 {
            vec![0]
        } else {
            loop {
                let p = MultiSelect::new().with_prompt("Resources (space selects, enter confirms)").items(&items).interact().map_err(err)?;
                if !p.is_empty() {
                    break p;
                }
                eprintln!("pick at least one resource");
            }
        };
        picked.into_iter().map(|i| names[i].clone()).collect()
    } else {
        a.resources.clone()
    };
    let max = role.max_duration;
    let duration = match &a.duration {
        Some(d) => d.clone(),
        None => Input::<String>::new()
            .with_prompt(format!("Duration (at most {max})"))
            .default("1h".to_string())
            .validate_with(|s: &String| match s.trim().parse::<crate::model::Duration>() {
                Ok(d) if d <= max || a.break_glass => Ok(()),
                Ok(_) => Err(format!("role `{role_name}` allows at most {max}")),
                Err(e) => Err(e.to_string()),
            })
            .interact_text()
            .map_err(err)?,
    };
    let reason = match &a.reason {
        Some(r) => r.clone(),
        None => Input::<String>::new()
            .with_prompt("Reason")
            .validate_with(|s: &String| if s.trim().chars().count() >= 10 { Ok(()) } else { Err("at least 10 characters: say why you need access") })
            .interact_text()
            .map_err(err)?,
    };
    let ticket = match &a.ticket {
        Some(t) => Some(t.clone()),
        None => {
            let pattern = role.ticket_pattern.clone();
            let required = role.require_ticket;
            let prompt = match (&pattern, required) {
                (Some(p), true) => format!("Ticket (required, {})", p.as_str()),
                (Some(p), false) => format!("Ticket ({}; empty for none)", p.as_str()),
                (None, true) => "Ticket (required)".to_string(),
                (None, false) => "Ticket (empty for none)".to_string(),
            };
            let t = Input::<String>::new()
                .with_prompt(prompt)
                .allow_empty(!required)
                .validate_with(move |s: &String| -> Result<(), String> {
                    let s = s.trim();
                    match &pattern {
                        Some(p) if !s.is_empty() && !p.is_match(s) => Err(format!("must match {}", p.as_str())),
                        _ => Ok(()),
                    }
                })
                .interact_text()
                .map_err(err)?;
            Some(t.trim().to_string()).filter(|t| !t.is_empty())
        }
    };
    let start = match a.start {
        Some(s) => Some(s),
        None => {
            let s = Input::<String>::new()
                .with_prompt("Start (RFC 3339, e.g. 2026-12-01T10:00:00Z; empty: when the pull request merges)")
                .allow_empty(true)
                .validate_with(|s: &String| if s.trim().is_empty() { Ok(()) } else { super::parse_time(s.trim()).map(|_| ()) })
                .interact_text()
                .map_err(err)?;
            match s.trim() {
                "" => None,
                t => Some(super::parse_time(t)?),
            }
        }
    };
    let break_glass = a.break_glass
        || (policy.break_glass.is_some()
            && role.break_glass
            && Confirm::new()
                .with_prompt("Break-glass (emergency: fewer approvals, short window, reviewed afterwards)?")
                .default(false)
                // Line-based, like every other prompt: a typed `n` + Enter must
                // not leave the Enter to answer the next question.
                .wait_for_newline(true)
                .interact()
                .map_err(err)?);
    Ok(Draft {
        requester: who.to_string(),
        role: role_name,
        resources,
        start,
        duration: duration.trim().to_string(),
        reason,
        ticket,
        break_glass,
        extends: None,
    })
}

/// One line for the PR body and the summary: what the change needs.
pub(super) fn needs_text(report: &CheckReport, id: &str) -> String {
    report.requests.iter().find(|r| r.id == id).map_or_else(String::new, |r| describe_rules(&r.approvals.required))
}

/// `--open-pr`: what a person would do by hand — a branch, a commit, a push —
/// then the pull request through the GitHub API.
fn open_pr(g: &Global, pr: &PrArgs, id: &str, path: &str, draft: &Draft, report: &CheckReport) -> u8 {
    let branch = format!("request/{id}");
    let title = format!("{}: {} on {} ({})", draft.requester, draft.role, draft.resources.join(", "), draft.duration);
    let message = format!("{title}\n\n{}", draft.reason);
    let steps: [&[&str]; 4] =
        [&["switch", "-c", &branch], &["add", "--", path], &["commit", "-q", "-m", &message, "--", path], &["push", "-u", &pr.remote, &branch]];
    for args in steps {
        match std::process::Command::new("git").arg("-C").arg(&g.repo).args(args).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => return fail(format!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim())),
            Err(e) => return fail(format!("cannot run git: {e}")),
        }
    }
    println!("pushed branch {} to {}", crate::render::escape::human(&branch), crate::render::escape::human(&pr.remote));
    let slug = match pr.github_repo.clone().or_else(|| remote_slug(&g.repo, &pr.remote)) {
        Some(s) => s,
        None => return fail("cannot tell the GitHub repository: pass --github-repo OWNER/NAME"),
    };
    let slug = match crate::github::context::repo_slug(Some(&slug), None) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let body = pr_body(draft, id, path, report);
    let new = crate::github::NewPullRequest { title, head: branch, base: pr.base.clone(), body };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let opened = rt.block_on(async {
        let client = crate::github::client::Client::from_env(slug.clone()).await?;
        crate::github::GitHubApi::create_pull_request(&client, &new).await
    });
    match opened {
        Ok((number, url)) => {
            println!("opened pull request #{number} on {}: {}", crate::render::escape::human(&slug.to_string()), crate::render::escape::human(&url));
            0
        }
        Err(e) => fail(format!("the branch is pushed, but the pull request could not be opened: {e}")),
    }
}

/// `owner/name` from a GitHub remote URL (`git@github.com:o/n.git`, `https://github.com/o/n`).
fn remote_slug(repo: &Path, remote: &str) -> Option<String> {
    let r = Repository::open(repo).ok()?;
    let url = r.find_remote(remote).ok()?.url().ok()?.to_string();
    let rest = url.split_once("github.com").map(|(_, r)| r)?.trim_start_matches([':', '/']);
    let rest = rest.trim_end_matches('/').trim_end_matches(".git");
    Some(rest.to_string())
}

/// The PR description: the request in words, every user-typed string escaped.
pub(super) fn pr_body(draft: &Draft, id: &str, path: &str, report: &CheckReport) -> String {
    use crate::render::escape_markdown as md;
    let mut s = String::new();
    s += &format!(
        "**{}** asks for **{}** on {}.\n\n",
        md(&draft.requester),
        md(&draft.role),
        draft.resources.iter().map(|r| md(r)).collect::<Vec<_>>().join(", ")
    );
    s += "| | |\n|---|---|\n";
    s += &format!("| request | {} |\n", md(id));
    if let Some(o) = report.requests.iter().find(|r| r.id == id) {
        s += &format!("| window | {} |\n", md(&super::output::window_text(o)));
        if let Some(r) = &o.risk {
            s += &format!("| risk | {} (tier {}) |\n", r.score, md(&r.tier));
        }
    } else {
        s += &format!("| duration | {} |\n", md(&draft.duration));
    }
    s += &format!("| needs | {} |\n", md(&needs_text(report, id)));
    s += &format!("| reason | {} |\n", md(&draft.reason));
    if let Some(t) = &draft.ticket {
        s += &format!("| ticket | {} |\n", md(t));
    }
    if let Some(e) = &draft.extends {
        s += &format!("| extends | {} |\n", md(e));
    }
    if draft.break_glass {
        s += "\n**Break-glass**: emergency access, reviewed after the fact.\n";
    }
    s += &format!("\nFile: {}. The gitgrant/approval check says who must approve; merging is the approval.\n", md(path));
    s
}
