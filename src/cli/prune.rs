//! `gitgrant prune`: remove ended requests from the tree in one commit.
//!
//! Why: every `check` lists `requests/`, and every commit's `requests/` tree
//! grows with the number of files in it, which is what makes history walks
//! slow. Git history keeps the removed files, so audit and the risk history
//! lose nothing. A removal after a window ended is not an early revocation
//! (see `history::apply`), so pruning never counts against anyone.

use std::path::Path;

use chrono::{DateTime, Utc};
use git2::{Oid, Repository, Signature, StatusOptions};
use serde::Serialize;

use crate::diag::Diagnostics;
use crate::history::{index_path, read_history_cached};
use crate::model::Duration;
use crate::source::{GitTree, Tree, TreeError};
use crate::validate::load_request;
use crate::validate::request::{REQUEST_DIR, request_id};

use super::{Format, Global, fail};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep requests that ended less than this long ago. The default, 1d, leaves
    /// scheduled reconcile, audit and monitor runs time to see a grant end (and
    /// late provider activity logs to be matched) while its file is still in the tree.
    #[arg(long, value_name = "DUR", default_value = "1d", value_parser = parse_grace)]
    pub grace: Duration,
    /// The branch to prune; it must be the checked-out branch (default: main).
    #[arg(long, value_name = "NAME", default_value = "main")]
    pub branch: String,
    /// List the requests that would be removed, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_grace(s: &str) -> Result<Duration, String> {
    s.parse::<Duration>().map_err(|e| e.to_string())
}

/// A request file to remove.
#[derive(Debug, Clone, Serialize)]
pub struct Ended {
    pub id: String,
    pub file: String,
    pub end: DateTime<Utc>,
}

/// A request file prune leaves in place although it may have ended.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub id: String,
    pub file: String,
    pub reason: String,
}

/// What prune removes, and what it keeps and why.
#[derive(Debug, Clone, Serialize)]
pub struct PrunePlan {
    pub branch: String,
    /// The commit the plan was made from (the prune commit's parent).
    pub head: String,
    /// Requests whose window ended at or before this time are removed.
    pub cutoff: DateTime<Utc>,
    pub prune: Vec<Ended>,
    pub kept: Vec<Kept>,
    pub dry_run: bool,
    /// The prune commit (None: dry run, or nothing to prune).
    pub commit: Option<String>,
    #[serde(skip)]
    head_oid: Option<Oid>,
}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error("`{0}` is not a git repository: {1}")]
    NotARepo(String, git2::Error),
    #[error("the repository has no commits on a branch (HEAD is detached or unborn); check out `{0}` first")]
    NoBranch(String),
    #[error("prune commits to `{expected}`, but `{current}` is checked out; run `git switch {expected}` or pass `--branch {current}`")]
    WrongBranch { current: String, expected: String },
    #[error("uncommitted changes under requests/ ({}); commit or stash them first, prune only commits removals", .0.join(", "))]
    Dirty(Vec<String>),
    #[error("reading the repository: {0}")]
    Git(#[from] git2::Error),
    #[error("reading requests: {0}")]
    Tree(#[from] TreeError),
}

/// Finds the requests on `branch` (the checked-out branch) whose window ended
/// at or before `now - grace`. A request another remaining request `extends`
/// is kept, so `check --all` still resolves the chain.
pub fn plan(repo: &Repository, branch: &str, now: DateTime<Utc>, grace: Duration) -> Result<PrunePlan, PruneError> {
    let head_oid = current_branch_head(repo, branch)?;
    let cutoff = now - grace.delta();
    let tree = GitTree::new(repo, head_oid)?;
    let (history, _) = read_history_cached(repo, head_oid, &index_path(repo))?;
    let mut ended: Vec<Ended> = Vec::new();
    let mut kept = Vec::new();
    // What each staying request extends; and each ended file's own `extends`.
    let mut staying: Vec<Option<String>> = Vec::new();
    let mut extends_of: std::collections::HashMap<String, Option<String>> = std::collections::HashMap::new();
    for entry in tree.list(REQUEST_DIR)? {
        let Some(id) = request_id(&entry.path) else { continue };
        let mut sink = Diagnostics::default();
        let Some(req) = load_request(&tree, &entry, &mut sink) else {
            kept.push(Kept { id: id.to_string(), file: entry.path.clone(), reason: "does not parse: cannot tell when it ends".into() });
            continue;
        };
        let window = history.landed(id).and_then(|landed| req.window(landed));
        match window {
            Some(w) if w.end <= cutoff => {
                extends_of.insert(entry.path.clone(), req.extends.clone());
                ended.push(Ended { id: id.to_string(), file: entry.path.clone(), end: w.end });
            }
            Some(_) => staying.push(req.extends.clone()),
            None => kept.push(Kept { id: id.to_string(), file: entry.path.clone(), reason: "no valid window: cannot tell when it ends".into() }),
        }
    }
    // Keep what a staying request extends, transitively.
    loop {
        let needed: std::collections::BTreeSet<&str> = staying.iter().flatten().map(String::as_str).collect();
        let (keep, rest): (Vec<Ended>, Vec<Ended>) = ended.into_iter().partition(|e| needed.contains(e.id.as_str()));
        ended = rest;
        if keep.is_empty() {
            break;
        }
        for e in keep {
            staying.push(extends_of.get(&e.file).cloned().flatten());
            kept.push(Kept { id: e.id, file: e.file, reason: "ended, but a request that stays extends it".into() });
        }
    }
    ended.sort_by(|a, b| a.file.cmp(&b.file));
    kept.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(PrunePlan { branch: branch.to_string(), head: head_oid.to_string(), cutoff, prune: ended, kept, dry_run: true, commit: None, head_oid: Some(head_oid) })
}

/// The tip of `branch`, which must be what HEAD points to.
fn current_branch_head(repo: &Repository, branch: &str) -> Result<Oid, PruneError> {
    let head = repo.head().map_err(|_| PruneError::NoBranch(branch.to_string()))?;
    if !head.is_branch() {
        return Err(PruneError::NoBranch(branch.to_string()));
    }
    let current = head.shorthand().unwrap_or("").to_string();
    if current != branch {
        return Err(PruneError::WrongBranch { current, expected: branch.to_string() });
    }
    Ok(head.peel_to_commit()?.id())
}

/// Tracked files under requests/ that differ from HEAD (staged or not).
fn dirty_requests(repo: &Repository) -> Result<Vec<String>, git2::Error> {
    if repo.is_bare() {
        return Ok(Vec::new());
    }
    let mut opts = StatusOptions::new();
    opts.pathspec(format!("{REQUEST_DIR}/")).include_untracked(false).include_ignored(false);
    let statuses = repo.statuses(Some(&mut opts))?;
    Ok(statuses.iter().filter(|s| !s.status().is_empty() && !s.status().is_ignored()).map(|s| String::from_utf8_lossy(s.path_bytes()).into_owned()).collect())
}

/// The commit message: a summary, why, and one `Pruned: <id>` trailer per request.
fn message(plan: &PrunePlan, grace: Duration) -> String {
    let n = plan.prune.len();
    let mut m = format!("gitgrant prune: remove {n} ended request{}\n\n", if n == 1 { "" } else { "s" });
    m.push_str(&format!(
        "Their windows ended at or before {} (now minus a grace of {grace}).\nGit history keeps them: audit and the risk history read past commits.\n\n",
        plan.cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ));
    for e in &plan.prune {
        m.push_str(&format!("Pruned: {}\n", e.id));
    }
    m
}

/// Commits the removals on the plan's branch (only if it still points at the
/// planned commit), then removes the files from the index and work tree;
/// nothing else in either is touched. The commit is dated `now`, so history
/// sees every removal after its window ended.
pub fn apply(repo: &Repository, plan: &mut PrunePlan, now: DateTime<Utc>, grace: Duration) -> Result<Oid, PruneError> {
    let dirty = dirty_requests(repo)?;
    if !dirty.is_empty() {
        return Err(PruneError::Dirty(dirty));
    }
    let parent_oid = current_branch_head(repo, &plan.branch)?;
    if Some(parent_oid) != plan.head_oid {
        return Err(PruneError::Git(git2::Error::from_str("the branch moved while pruning; run prune again")));
    }
    let parent = repo.find_commit(parent_oid)?;
    let mut update = git2::build::TreeUpdateBuilder::new();
    for e in &plan.prune {
        update.remove(&e.file);
    }
    let tree = repo.find_tree(update.create_updated(repo, &parent.tree()?)?)?;
    let when = git2::Time::new(now.timestamp(), 0);
    let sig = match repo.signature() {
        Ok(s) => Signature::new(s.name().unwrap_or("gitgrant"), s.email().unwrap_or("gitgrant@localhost"), &when)?,
        Err(_) => Signature::new("gitgrant", "gitgrant@localhost", &when)?,
    };
    let refname = format!("refs/heads/{}", plan.branch);
    // `repo.commit` refuses if the branch tip is no longer `parent` (compare-and-swap).
    let oid = repo.commit(Some(&refname), &sig, &sig, &message(plan, grace), &tree, &[&parent])?;
    if let Some(workdir) = repo.workdir() {
        let mut index = repo.index()?;
        for e in &plan.prune {
            index.remove_path(Path::new(&e.file))?;
            remove_file_and_empty_dirs(workdir, &e.file);
        }
        index.write()?;
    }
    plan.dry_run = false;
    plan.commit = Some(oid.to_string());
    Ok(oid)
}

/// Best effort: a file left behind shows up in `git status` as untracked.
fn remove_file_and_empty_dirs(workdir: &Path, rel: &str) {
    let _ = std::fs::remove_file(workdir.join(rel));
    let mut dir = Path::new(rel).parent();
    while let Some(d) = dir.filter(|d| d.starts_with(REQUEST_DIR) && *d != Path::new(REQUEST_DIR)) {
        if std::fs::remove_dir(workdir.join(d)).is_err() {
            break;
        }
        dir = d.parent();
    }
}

pub fn run(g: &Global, a: Args) -> u8 {
    let repo = match Repository::open(&g.repo) {
        Ok(r) => r,
        Err(e) => return fail(PruneError::NotARepo(g.repo.display().to_string(), e)),
    };
    let mut p = match plan(&repo, &a.branch, g.now, a.grace) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if !a.dry_run
        && !p.prune.is_empty()
        && let Err(e) = apply(&repo, &mut p, g.now, a.grace)
    {
        return fail(e);
    }
    p.dry_run = a.dry_run || p.prune.is_empty();
    match g.format {
        Format::Json => match crate::render::escape::json_pretty(&p) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(e),
        },
        Format::Human | Format::Github | Format::Csv if !g.quiet => print!("{}", text(&p, g.quiet)),
        Format::Human | Format::Github | Format::Csv => {}
    }
    0
}

fn text(p: &PrunePlan, quiet: bool) -> String {
    use crate::render::escape::{human, time_short};
    use std::fmt::Write;
    let mut s = String::new();
    let cutoff = time_short(p.cutoff);
    let branch = human(&p.branch);
    let n = p.prune.len();
    let what = format!("{n} ended request{}", if n == 1 { "" } else { "s" });
    match (&p.commit, p.dry_run, n) {
        (_, _, 0) => {
            let _ = writeln!(s, "nothing to prune: no request on {branch} ended at or before {cutoff}");
        }
        (_, true, _) => {
            let _ = writeln!(s, "would remove {what} from {branch} (dry run, nothing changed; ended at or before {cutoff}):");
        }
        (Some(c), false, _) => {
            let _ =
                writeln!(s, "removed {what} from {branch} in commit {} (ended at or before {cutoff}); push it to publish:", human(c.get(..12).unwrap_or(c)));
        }
        (None, false, _) => {}
    }
    if !quiet {
        for e in &p.prune {
            let _ = writeln!(s, "  {}  ended {}", human(&e.file), time_short(e.end));
        }
        if !p.kept.is_empty() {
            let _ = writeln!(s, "kept:");
            for k in &p.kept {
                let _ = writeln!(s, "  {}  {}", human(&k.file), human(&k.reason));
            }
        }
    }
    s
}
