//! `gate --merge-group`: the required `gitgrant/approval` check on a merge
//! queue's group commit.
//!
//! A merge queue merges queued PRs onto the base branch in a temporary
//! branch (`gh-readonly-queue/<base>/pr-<N>-<parent sha>`) and asks for every
//! required check on that group commit. Nothing earlier carries over: a check
//! run on a PR's head says nothing about the group commit, and is not trusted.
//!
//! Design choices:
//! - The PRs the group adds are read from the queue branches: the event's
//!   `head_ref` names the last PR and the commit it was merged onto; when
//!   that commit is not the group's base, it is the group commit of the entry
//!   ahead, whose own queue branch (in the clone, fetched with every branch)
//!   names the next PR, down to the base.
//! - Each PR is judged again exactly as `gate --pr N` judges it
//!   ([`super::judge`]: its base's rules, its head's requests, its reviews at
//!   its head, GitHub's file list cross-checked against the clone).
//! - The group commit is what will land, not the PRs' heads: its changes to
//!   requests and rule files relative to `base_sha` must be exactly the
//!   judged PRs' (the same blob at every such path as the PR that changes
//!   it, the base's blob everywhere else). Anything else is refused (fail
//!   closed), so naming the PRs from branch names cannot smuggle in a change:
//!   a wrong name only fails the comparison.
//! - A PR head that is not in the clone (a squash or rebase queue keeps only
//!   the PR's changes, not its commits) is fetched as `refs/pull/N/head` from
//!   `origin`, with the client's token in an `http.extraheader` passed
//!   through the environment (never in a command line, never persisted).
//! - No sticky comment and no review requests: a merge group is not a
//!   conversation, and every PR in it was already commented on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use git2::{Oid, Repository};
use serde::Serialize;

use super::{GateOptions, Published, conclude, judge, publish, view_of};
use crate::approval::Decision;
use crate::check::CheckReport;
use crate::github::context::{MergeGroupEvent, QUEUE_PREFIX, QueueRef, parse_queue_ref};
use crate::github::{CheckOutput, CheckRun, Conclusion, GitHubApi};
use crate::render::card::short;
use crate::render::markdown;

/// At most this many PRs in one group (GitHub's own maximum is 100).
const MAX_ENTRIES: usize = 100;

#[derive(Debug, Clone)]
pub struct MergeGroupOptions {
    pub event: MergeGroupEvent,
    pub repo_dir: PathBuf,
    pub now: DateTime<Utc>,
    /// Publish a commit status instead of a check run.
    pub status_only: bool,
}

/// One PR of the group, judged again.
#[derive(Debug, Serialize)]
pub struct QueuedPr {
    pub number: u64,
    /// The head GitHub reports now (empty when the PR could not be read).
    pub head_sha: String,
    pub conclusion: Conclusion,
    /// 0 satisfied, 1 judged and not satisfied, 2 could not judge.
    pub exit: u8,
    pub title: String,
    pub error: Option<String>,
    pub decision: Decision,
    pub notes: Vec<String>,
    #[serde(skip)]
    pub report: Option<CheckReport>,
}

/// A judged path whose content in the group commit no judged PR explains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unexplained {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct MergeGroupOutcome {
    pub head_sha: String,
    pub base_sha: String,
    pub head_ref: String,
    /// The PRs the group adds, in queue order.
    pub prs: Vec<QueuedPr>,
    pub unexplained: Vec<Unexplained>,
    pub conclusion: Conclusion,
    /// 0 every PR approved and the group is exactly them; 1 judged and
    /// refused; 2 could not judge or publish.
    pub exit: u8,
    pub error: Option<String>,
    pub notes: Vec<String>,
    pub check_run: CheckRun,
    pub published: Published,
}

/// Judges the merge group of `opts.event` and publishes the verdict on its
/// head commit. Every failure is part of the outcome (a failure verdict is
/// still published: the queue then drops the group instead of waiting).
pub async fn run_merge_group(api: &dyn GitHubApi, opts: &MergeGroupOptions) -> MergeGroupOutcome {
    let ev = &opts.event;
    let mut notes = Vec::new();
    let (prs, unexplained, error) = match judge_group(api, opts).await {
        Ok((prs, unexplained)) => (prs, unexplained, None),
        Err((prs, e)) => (prs, Vec::new(), Some(e)),
    };
    let (conclusion, exit) = conclude_group(&prs, &unexplained, error.as_deref());
    let title = title_of(&prs, &unexplained, error.is_some(), conclusion);
    let output = CheckOutput { summary: summary(ev, &title, &prs, &unexplained, error.as_deref()), title, text: None };
    let mut exit = exit;
    let (check_run, published) = publish(api, &ev.head_sha, conclusion, None, output, opts.status_only, &mut notes, &mut exit).await;
    MergeGroupOutcome {
        head_sha: ev.head_sha.clone(),
        base_sha: ev.base_sha.clone(),
        head_ref: ev.head_ref.clone(),
        prs,
        unexplained,
        conclusion,
        exit,
        error,
        notes,
        check_run,
        published,
    }
}

type Judged = (Vec<QueuedPr>, Vec<Unexplained>);

async fn judge_group(api: &dyn GitHubApi, opts: &MergeGroupOptions) -> Result<Judged, (Vec<QueuedPr>, String)> {
    let ev = &opts.event;
    let none = |e: String| (Vec::new(), e);
    let queue = parse_queue_ref(&ev.head_ref).map_err(none)?;
    let base_branch = ev.base_ref.strip_prefix("refs/heads/").unwrap_or(&ev.base_ref);
    if base_branch != queue.base {
        return Err(none(format!("the merge group ref `{}` is for branch `{}`, but the group's base is `{}`", ev.head_ref, queue.base, ev.base_ref)));
    }
    let numbers = {
        let repo = open(&opts.repo_dir).map_err(none)?;
        let base = commit(&repo, &ev.base_sha, "the merge group's base").map_err(none)?;
        let head = commit(&repo, &ev.head_sha, "the merge group's commit").map_err(none)?;
        if base == head || !repo.graph_descendant_of(head, base).unwrap_or(false) {
            return Err(none(format!("the merge group's commit {} does not build on its base {}", short(&ev.head_sha), short(&ev.base_sha))));
        }
        entries(&repo, &queue, base).map_err(none)?
    };

    let mut prs = Vec::new();
    let mut heads = Vec::new();
    let token = api.git_token().await;
    for number in numbers {
        let (queued, head) = judge_pr(api, opts, number, &queue.base, token.as_deref()).await;
        prs.push(queued);
        if let Some(h) = head {
            heads.push(h);
        }
    }
    if prs.iter().any(|p| p.exit == 2) {
        return Err((prs, "a pull request of the group could not be judged (see below)".to_string()));
    }
    let repo = open(&opts.repo_dir).map_err(|e| (Vec::new(), e))?;
    match compare_trees(&repo, &ev.base_sha, &ev.head_sha, &heads) {
        Ok(unexplained) => Ok((prs, unexplained)),
        Err(e) => Err((prs, e)),
    }
}

/// What the tree comparison needs of one judged PR.
struct PrHead {
    number: u64,
    base_sha: String,
    head_sha: String,
}

/// Reads PR `number` and judges it as `gate --pr` does. Returns the PR's
/// base and head for the tree comparison when it could be judged.
async fn judge_pr(api: &dyn GitHubApi, opts: &MergeGroupOptions, number: u64, base: &str, token: Option<&str>) -> (QueuedPr, Option<PrHead>) {
    let failed = |head_sha: String, exit: u8, error: String| QueuedPr {
        number,
        head_sha,
        conclusion: Conclusion::Failure,
        exit,
        title: if exit == 2 { "could not judge this PR".to_string() } else { "not mergeable".to_string() },
        error: Some(error),
        decision: super::unsatisfied(),
        notes: Vec::new(),
        report: None,
    };
    let pr = match api.pull_request(number).await {
        Ok(pr) => pr,
        Err(e) => return (failed(String::new(), 2, format!("cannot read PR #{number}: {e}")), None),
    };
    if pr.base_ref != base {
        return (failed(pr.head_sha, 2, format!("PR #{number} targets `{}`, not the queue's `{base}`", pr.base_ref)), None);
    }
    if pr.state != "open" {
        return (failed(pr.head_sha, 1, format!("PR #{number} is {}, not open", pr.state)), None);
    }
    if let Err(e) = ensure_commit(&opts.repo_dir, &pr.head_sha, number, token) {
        return (failed(pr.head_sha, 2, e), None);
    }
    let gate_opts = GateOptions { pr: number, repo_dir: opts.repo_dir.clone(), now: opts.now, status_only: opts.status_only, comment: false };
    let verdict = judge(api, &pr, &gate_opts).await;
    let (conclusion, exit) = conclude(&verdict);
    let title = view_of(&pr, &verdict, conclusion).title;
    let head = PrHead { number, base_sha: pr.base_sha.clone(), head_sha: pr.head_sha.clone() };
    let queued = QueuedPr {
        number,
        head_sha: pr.head_sha,
        conclusion,
        exit,
        title,
        error: verdict.error,
        decision: verdict.decision,
        notes: verdict.notes,
        report: verdict.report,
    };
    (queued, Some(head))
}

fn open(dir: &Path) -> Result<Repository, String> {
    crate::git::open(dir).map_err(|e| e.to_string())
}

fn commit(repo: &Repository, sha: &str, what: &str) -> Result<Oid, String> {
    crate::git::resolve(repo, sha).map_err(|_| format!("{what} {} is not in the local clone: check out the merge group with `fetch-depth: 0`", short(sha)))
}

/// The PRs the group adds, in queue order: the event's entry, then each
/// entry it was merged onto, down to the base.
fn entries(repo: &Repository, last: &QueueRef, base: Oid) -> Result<Vec<u64>, String> {
    let known = queue_refs(repo, &last.base);
    let mut out = vec![last.pr];
    let mut parent = last.parent_sha.clone();
    while Oid::from_str(&parent).ok() != Some(base) {
        let Some(entry) = known.get(&parent) else {
            return Err(format!(
                "the merge group for PR #{} was merged onto {}, which is neither the group's base {} nor the commit of a queue branch `{QUEUE_PREFIX}{}/pr-<N>-<sha>` in the clone: fetch every branch (`fetch-depth: 0`) and rerun",
                last.pr,
                short(&parent),
                short(&base.to_string()),
                last.base
            ));
        };
        if out.contains(&entry.pr) || out.len() >= MAX_ENTRIES {
            return Err(format!("the queue branches of `{}` loop back to PR #{}: cannot tell which PRs the group adds", last.base, entry.pr));
        }
        out.push(entry.pr);
        parent = entry.parent_sha.clone();
    }
    out.reverse();
    Ok(out)
}

/// Queue entries for `base` in the clone, by the group commit they point at:
/// local branches and remote-tracking ones (a CI checkout has only those).
fn queue_refs(repo: &Repository, base: &str) -> BTreeMap<String, QueueRef> {
    let mut out = BTreeMap::new();
    for glob in [format!("refs/heads/{QUEUE_PREFIX}*"), format!("refs/remotes/*/{QUEUE_PREFIX}*")] {
        let Ok(refs) = repo.references_glob(&glob) else { continue };
        for r in refs.flatten() {
            let (Ok(name), Ok(target)) = (r.name(), r.peel_to_commit()) else { continue };
            let Some(at) = name.find(QUEUE_PREFIX) else { continue };
            let Some(entry) = name.get(at..).and_then(|n| parse_queue_ref(n).ok()).filter(|q| q.base == base) else { continue };
            out.insert(target.id().to_string(), entry);
        }
    }
    out
}

/// Makes sure PR `number`'s head commit is in the clone, fetching
/// `refs/pull/N/head` from `origin` when it is not.
fn ensure_commit(dir: &Path, sha: &str, number: u64, token: Option<&str>) -> Result<(), String> {
    let present = || crate::git::open(dir).ok().is_some_and(|r| Oid::from_str(sha).ok().is_some_and(|o| r.find_commit(o).is_ok()));
    if present() {
        return Ok(());
    }
    let refspec = format!("+refs/pull/{number}/head:refs/remotes/origin/pull/{number}/head");
    let mut cmd = std::process::Command::new("git");
    cmd.arg("-C").arg(dir).args(["fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "origin", &refspec]).env("GIT_TERMINAL_PROMPT", "0");
    if let Some(token) = token {
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
        cmd.env("GIT_CONFIG_COUNT", "1").env("GIT_CONFIG_KEY_0", "http.extraheader").env("GIT_CONFIG_VALUE_0", format!("AUTHORIZATION: basic {basic}"));
    }
    let fetched = match cmd.output() {
        Ok(out) if out.status.success() => String::new(),
        Ok(out) => format!(" (git fetch: {})", String::from_utf8_lossy(&out.stderr).lines().find(|l| !l.trim().is_empty()).unwrap_or("failed").trim()),
        Err(e) => format!(" (running git: {e})"),
    };
    if present() {
        return Ok(());
    }
    Err(format!(
        "PR #{number}'s head {} is not in the clone, not even after fetching refs/pull/{number}/head from origin{fetched}: the job needs `contents: read`",
        short(sha)
    ))
}

/// A path's entry in a commit's tree: (blob id, file mode), or none.
fn entry_at(repo: &Repository, commit: Oid, path: &str) -> Result<Option<(Oid, i32)>, git2::Error> {
    let tree = repo.find_commit(commit)?.tree()?;
    match tree.get_path(Path::new(path)) {
        Ok(e) => Ok(Some((e.id(), e.filemode()))),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The group's judged paths against the judged PRs' (see the module docs).
fn compare_trees(repo: &Repository, base_sha: &str, head_sha: &str, prs: &[PrHead]) -> Result<Vec<Unexplained>, String> {
    let git = |e: &dyn std::fmt::Display| format!("comparing the merge group with its pull requests: {e}");
    let base = commit(repo, base_sha, "the merge group's base")?;
    let head = commit(repo, head_sha, "the merge group's commit")?;
    let mut out = Vec::new();
    // Path -> (the PR that changes it, its entry at that PR's head).
    let mut expected: BTreeMap<String, (u64, Option<(Oid, i32)>)> = BTreeMap::new();
    for pr in prs {
        let pr_head = commit(repo, &pr.head_sha, &format!("PR #{}'s head", pr.number))?;
        let pr_base = commit(repo, &pr.base_sha, &format!("PR #{}'s base", pr.number))?;
        let from = crate::git::merge_base(repo, pr_base, pr_head, ("base", "head")).map_err(|e| git(&e))?;
        for change in crate::engine::classify::changed_paths_git(repo, from, pr_head).map_err(|e| git(&e))? {
            let at = entry_at(repo, pr_head, &change.path).map_err(|e| git(&e))?;
            if let Some((other, _)) = expected.get(&change.path) {
                out.push(Unexplained {
                    reason: format!("changed by both PR #{other} and PR #{}, which were judged apart, never together: queue them one at a time", pr.number),
                    path: change.path.clone(),
                });
            }
            expected.insert(change.path, (pr.number, at));
        }
    }
    let group: BTreeSet<String> = crate::engine::classify::changed_paths_git(repo, base, head).map_err(|e| git(&e))?.into_iter().map(|c| c.path).collect();
    let paths: BTreeSet<&String> = group.iter().chain(expected.keys()).collect();
    for path in paths {
        if out.iter().any(|u| &u.path == path) {
            continue;
        }
        let actual = entry_at(repo, head, path).map_err(|e| git(&e))?;
        let reason = match expected.get(path) {
            Some((n, want)) if *want != actual => format!("differs from PR #{n}'s head: the group does not land what was judged"),
            Some(_) => continue,
            None if entry_at(repo, base, path).map_err(|e| git(&e))? != actual => "changed by the merge group, but by none of its pull requests".to_string(),
            None => continue,
        };
        out.push(Unexplained { path: path.clone(), reason });
    }
    Ok(out)
}

fn conclude_group(prs: &[QueuedPr], unexplained: &[Unexplained], error: Option<&str>) -> (Conclusion, u8) {
    if error.is_some() || prs.is_empty() {
        return (Conclusion::Failure, 2);
    }
    if !unexplained.is_empty() || prs.iter().any(|p| p.conclusion != Conclusion::Success) {
        // A queue cannot wait for reviews: anything short of approved fails.
        return (Conclusion::Failure, 1);
    }
    (Conclusion::Success, 0)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn title_of(prs: &[QueuedPr], unexplained: &[Unexplained], error: bool, conclusion: Conclusion) -> String {
    if error {
        return "could not judge this merge group".to_string();
    }
    if !unexplained.is_empty() {
        return format!("refused: {} no judged pull request explains", plural(unexplained.len(), "change", "changes"));
    }
    let failing: Vec<String> = prs.iter().filter(|p| p.conclusion != Conclusion::Success).map(|p| format!("#{}", p.number)).collect();
    match conclusion {
        Conclusion::Success => format!("merge group approved: {}", plural(prs.len(), "pull request", "pull requests")),
        _ => format!("not approved: PR {}", failing.join(", ")),
    }
}

/// The check-run summary. PR numbers are ours (integers) and may autolink;
/// everything else from a PR or a file name is escaped.
fn summary(ev: &MergeGroupEvent, title: &str, prs: &[QueuedPr], unexplained: &[Unexplained], error: Option<&str>) -> String {
    let mut s = format!("### gitgrant: {}\n\n", markdown::text(title));
    s.push_str(&format!(
        "Merge group {} on {} (base {}). Each pull request is judged again at its head, with its own reviews; the group must land exactly their changes to requests and rule files.\n\n",
        markdown::code(short(&ev.head_sha)),
        markdown::code(&ev.base_ref),
        markdown::code(short(&ev.base_sha))
    ));
    if let Some(e) = error {
        s.push_str(&format!("**Could not judge:** {}\n\n", markdown::text(e)));
    }
    for p in prs {
        let head = if p.head_sha.is_empty() { String::new() } else { format!(" at {}", markdown::code(short(&p.head_sha))) };
        s.push_str(&format!("- PR #{}{head}: **{}**: {}\n", p.number, p.conclusion.as_str(), markdown::text(&p.title)));
        if let Some(e) = &p.error {
            s.push_str(&format!("  - {}\n", markdown::text(e)));
        }
    }
    if !unexplained.is_empty() {
        s.push_str("\n**Refused** (the group's content is not what was judged):\n\n");
        for u in unexplained {
            s.push_str(&format!("- {}: {}\n", markdown::code(&u.path), markdown::text(&u.reason)));
        }
    }
    super::clamp(s, "summary")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn commit(repo: &Repository, parent: Option<Oid>, msg: &str) -> Oid {
        let sig = git2::Signature::new("t", "t@example.com", &git2::Time::new(1_790_000_000, 0)).unwrap();
        let tree = repo.find_tree(repo.treebuilder(None).unwrap().write().unwrap()).unwrap();
        let parents: Vec<git2::Commit> = parent.map(|p| repo.find_commit(p).unwrap()).into_iter().collect();
        let refs: Vec<&git2::Commit> = parents.iter().collect();
        repo.commit(None, &sig, &sig, msg, &tree, &refs).unwrap()
    }

    #[test]
    fn the_queue_branches_chain_the_group_down_to_its_base() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let base = commit(&repo, None, "main");
        let g5 = commit(&repo, Some(base), "PR 5 merged onto main");
        let g6 = commit(&repo, Some(g5), "PR 6 merged onto PR 5's group");
        // As a CI clone has them: remote-tracking; plus another base's entry at the same commit.
        repo.reference(&format!("refs/remotes/origin/gh-readonly-queue/main/pr-5-{base}"), g5, false, "").unwrap();
        repo.reference(&format!("refs/remotes/origin/gh-readonly-queue/release/pr-9-{base}"), g5, false, "").unwrap();
        repo.reference(&format!("refs/remotes/origin/gh-readonly-queue/main/pr-6-{g5}"), g6, false, "").unwrap();

        let last = |pr: u64, parent: Oid| QueueRef { base: "main".into(), pr, parent_sha: parent.to_string() };
        assert_eq!(entries(&repo, &last(6, g5), base).unwrap(), vec![5, 6], "queue order: the entry ahead first");
        assert_eq!(entries(&repo, &last(5, base), base).unwrap(), vec![5], "alone in its group");

        // Merged onto a commit no queue branch names: which PR brought it in is unknown.
        let stray = commit(&repo, Some(base), "pushed by someone");
        let e = entries(&repo, &last(7, stray), base).unwrap_err();
        assert!(e.contains("neither the group's base") && e.contains("fetch-depth: 0"), "{e}");

        // A queue branch that names its own PR again loops: refused, not followed forever.
        repo.reference(&format!("refs/remotes/origin/gh-readonly-queue/main/pr-8-{g6}"), g6, false, "").unwrap();
        let e = entries(&repo, &last(8, g6), base).unwrap_err();
        assert!(e.contains("loop back to PR #8"), "{e}");
    }
}
