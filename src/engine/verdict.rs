//! `check`: judge a change to an access repository.
//!
//! The rules come from the **base** (the merge-base with main), never from the
//! head, so a PR cannot change the rules it is judged by. Each changed request
//! file is classified (new, modified, shrink, removed); new and modified ones
//! are validated, scored and given the approvals they need.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use git2::{Oid, Repository};
use serde::Serialize;

use crate::diag::{Code, Diagnostic, Diagnostics, Pos};
use crate::history::{Detail, History};
use crate::model::policy::{ApprovalRule, Policy};
use crate::model::request::Request;
use crate::risk::RequesterFacts;
use crate::source::{EmptyTree, FsTree, GitTree, Tree};
use crate::validate::request::{REQUEST_DIR, is_ignorable, request_id};
use crate::validate::{RequestContext, load_policy, load_request, validate_request};

use super::classify::{self as diff, FileChange, changed_paths};
pub use super::request::{Approvals, Change, RequestOutcome, describe_rules, evaluate};
use super::rule_files::{is_rule_file, under};

#[derive(Debug, Clone, Serialize)]
pub struct PolicyChange {
    pub files: Vec<String>,
    pub approvals: Approvals,
}

/// Exit status contract: 0 ok, 1 judged and failed, 2 could not judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    Ok,
    Failed,
    Error,
}

impl Status {
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Failed => 1,
            Status::Error => 2,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub diagnostics: Vec<Diagnostic>,
    pub requests: Vec<RequestOutcome>,
    pub policy_change: Option<PolicyChange>,
    /// Who gains or loses access, which tiers move, which requests are judged
    /// differently (a PR that changes valid policies only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_diff: Option<super::policy_diff::PolicyDiff>,
    /// The commit the rules were read from (None: working tree bootstrap).
    pub base: Option<String>,
    pub head: String,
    #[serde(skip)]
    pub status: Status,
    /// File texts read, for rendering source lines.
    #[serde(skip)]
    pub sources: BTreeMap<String, String>,
    /// Shared: every landing verdict of a run judged by the same policies
    /// holds one copy (a 1,000-role policy cloned per landing cost GBs).
    #[serde(skip)]
    pub policy: std::sync::Arc<Policy>,
    /// How the history index was read (for `-v`).
    #[serde(skip)]
    pub history_status: Option<String>,
}

impl CheckReport {
    /// Every approval the change needs at once (for the approval engine).
    pub fn required(&self) -> Vec<(String, ApprovalRule)> {
        let mut out = Vec::new();
        if let Some(pc) = &self.policy_change {
            out.extend(pc.approvals.required.iter().map(|r| ("policy change".to_string(), r.clone())));
        }
        for r in &self.requests {
            if r.change.needs_approval() {
                let label = match &r.risk {
                    Some(risk) if r.break_glass => {
                        format!("{} (break-glass, score {})", r.id, risk.score)
                    }
                    Some(risk) => format!("{} (tier {}, score {})", r.id, risk.tier, risk.score),
                    None => r.id.clone(),
                };
                out.extend(r.approvals.required.iter().map(|a| (label.clone(), a.clone())));
            }
        }
        out
    }
}

#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    pub base: Option<String>,
    pub head: Option<String>,
    /// Validate every request in the head tree, not only changed ones.
    pub all: bool,
    /// Judge only this request id (for `explain`); implies looking at the whole tree.
    pub only: Option<String>,
    pub now: DateTime<Utc>,
}

/// Why a change could not be judged: the repository or a revision could not
/// be read ([`crate::git::GitError`]), or the files in it.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error("reading files: {0}")]
    Tree(#[from] crate::source::TreeError),
}

impl From<git2::Error> for CheckError {
    fn from(e: git2::Error) -> Self {
        CheckError::Git(crate::git::GitError::Git(e))
    }
}

pub use crate::git::{head_commit, main_commit};

/// Resolves a ref or commit-ish to a commit id ([`crate::git::resolve`]).
pub fn resolve(repo: &Repository, name: &str) -> Result<Oid, CheckError> {
    Ok(crate::git::resolve(repo, name)?)
}

pub fn run_check(repo_dir: &std::path::Path, opts: &CheckOptions) -> Result<CheckReport, CheckError> {
    run_check_on(repo_dir, opts, &FsTree::new(repo_dir))
}

/// [`run_check`] with `worktree` standing for the working tree (used when no
/// `head` is given): `request` judges a file before writing it.
pub fn run_check_on(repo_dir: &std::path::Path, opts: &CheckOptions, worktree: &dyn Tree) -> Result<CheckReport, CheckError> {
    let repo = open_for(repo_dir, opts)?;
    check_in(repo.as_ref(), opts, worktree)
}

/// The repository a check of `repo_dir` reads (`None`: a directory that is
/// not a repository, judged by its own files when no commits are named).
pub fn open_for(repo_dir: &std::path::Path, opts: &CheckOptions) -> Result<Option<Repository>, CheckError> {
    match (Repository::open(repo_dir), &opts.base, &opts.head) {
        (Ok(r), _, _) => Ok(Some(r)),
        (Err(e), None, None) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        (Err(e), _, _) => Err(crate::git::GitError::NotARepo(repo_dir.display().to_string(), e).into()),
    }
}

/// [`run_check_on`] with the repository already open (`None`: a directory
/// that is not a repository, judged by its own files).
pub fn check_in(repo: Option<&Repository>, opts: &CheckOptions, worktree: &dyn Tree) -> Result<CheckReport, CheckError> {
    let fs = worktree;
    match repo {
        None => judge(None, None, &EmptyTree, fs, None, opts, true, None),
        Some(repo) => {
            let head_oid = match &opts.head {
                Some(h) => Some(resolve(repo, h)?),
                None => None,
            };
            let head_name = opts.head.clone().unwrap_or_default();
            let base_oid = match (&opts.base, head_oid) {
                (Some(b), Some(h)) => Some(crate::git::merge_base(repo, resolve(repo, b)?, h, (b, &head_name))?),
                (Some(b), None) => Some(resolve(repo, b)?),
                (None, Some(h)) => match main_commit(repo) {
                    Some(m) => Some(crate::git::merge_base(repo, m, h, ("main", &head_name))?),
                    None => None,
                },
                (None, None) => head_commit(repo),
            };
            let base_tree = base_oid.map(|b| GitTree::new(repo, b)).transpose()?;
            let head_tree = head_oid.map(|h| GitTree::new(repo, h)).transpose()?;
            let base: &dyn Tree = base_tree.as_ref().map_or(&EmptyTree as &dyn Tree, |t| t as &dyn Tree);
            let head: &dyn Tree = head_tree.as_ref().map_or(fs, |t| t as &dyn Tree);
            judge(Some(repo), base_oid, base, head, head_oid, opts, head_oid.is_none(), None)
        }
    }
}

/// `check --base P --head L` for a commit `head` whose first parent is
/// `parent`, judged at `now` with `history`: main's history as of `parent`
/// (what [`check_in`] reads at that base, here kept by the caller and walked
/// forward from landing to landing instead of re-read for each one). Its
/// ledger facts are replaced by those recorded before `now`.
pub fn check_landing(
    repo: &Repository,
    parent: Option<Oid>,
    head: Oid,
    now: DateTime<Utc>,
    history: &mut History,
    policies: &mut BasePolicies,
) -> Result<CheckReport, CheckError> {
    let opts = CheckOptions { base: parent.map(|p| p.to_string()), head: Some(head.to_string()), all: false, only: None, now };
    let base_tree = parent.map(|b| GitTree::new(repo, b)).transpose()?;
    let head_tree = GitTree::new(repo, head)?;
    let base: &dyn Tree = base_tree.as_ref().map_or(&EmptyTree as &dyn Tree, |t| t as &dyn Tree);
    judge(Some(repo), parent, base, &head_tree, Some(head), &opts, false, Some((history, policies)))
}

/// The policies of a base as `check` loads them, shared.
#[derive(Clone)]
struct BaseLoad {
    policy: std::sync::Arc<Policy>,
    diagnostics: Diagnostics,
    empty: bool,
    sources: BTreeMap<String, String>,
}

impl From<crate::validate::policy::PolicyLoad> for BaseLoad {
    fn from(l: crate::validate::policy::PolicyLoad) -> Self {
        BaseLoad { policy: std::sync::Arc::new(l.policy), diagnostics: l.diagnostics, empty: l.empty, sources: l.sources }
    }
}

/// Base policies loaded once per distinct (`policies/`, `templates/`) tree:
/// the rules change in a handful of commits, not per landing, and parsing a
/// 1,000-role policy per landing was most of the cost of judging one.
#[derive(Default)]
pub struct BasePolicies(std::collections::HashMap<(Option<Oid>, Option<Oid>), BaseLoad>);

impl BasePolicies {
    fn load(&mut self, repo: Option<&Repository>, commit: Oid, tree: &dyn Tree) -> BaseLoad {
        let key = repo.and_then(|r| r.find_commit(commit).ok()).and_then(|c| c.tree().ok()).map(|root| {
            (root.get_name(crate::validate::policy::POLICY_DIR).map(|e| e.id()), root.get_name(crate::validate::policy::TEMPLATE_DIR).map(|e| e.id()))
        });
        let Some(key) = key else { return BaseLoad::from(load_policy(tree)) };
        self.0.entry(key).or_insert_with(|| BaseLoad::from(load_policy(tree))).clone()
    }

    /// What `check` judges by with `commit` as its base: its policies, or
    /// none (the defaults) when it has no policy files.
    pub fn policy_at(&mut self, repo: &Repository, commit: &str) -> Option<std::sync::Arc<Policy>> {
        let oid = Oid::from_str(commit).ok()?;
        let tree = GitTree::new(repo, oid).ok()?;
        let load = self.load(Some(repo), oid, &tree);
        Some(if load.empty { Default::default() } else { load.policy })
    }
}

#[allow(clippy::too_many_arguments)]
fn judge(
    repo: Option<&Repository>,
    base_oid: Option<Oid>,
    base: &dyn Tree,
    head: &dyn Tree,
    head_oid: Option<Oid>,
    opts: &CheckOptions,
    working_tree: bool,
    preset: Option<(&mut History, &mut BasePolicies)>,
) -> Result<CheckReport, CheckError> {
    let (preset, mut policies) = match preset {
        Some((h, p)) => (Some(h), Some(p)),
        None => (None, None),
    };
    let mut d = Diagnostics::default();
    let mut sources = BTreeMap::new();
    let head_label = head_oid.map_or_else(|| "working tree".to_string(), |o| o.to_string());
    let changes = match (repo, base_oid, head_oid) {
        (Some(repo), Some(b), Some(h)) => diff::changed_paths_git(repo, b, h)?,
        _ => changed_paths(base, head)?,
    };
    let policy_files: Vec<String> = changes.iter().filter(|c| is_rule_file(&c.path)).map(|c| c.path.clone()).collect();
    let request_changes: Vec<&FileChange> = changes.iter().filter(|c| under(&c.path, REQUEST_DIR)).collect();

    // The rules: from the base. A repository with no policies at its base can
    // only be judged locally, by its own working tree (bootstrapping).
    let mut base_load = match (&mut policies, base_oid) {
        (Some(cache), Some(b)) => cache.load(repo, b, base),
        _ => BaseLoad::from(load_policy(base)),
    };
    sources.append(&mut base_load.sources);
    let mut status = Status::Ok;
    let bootstrap = base_load.empty && (base_oid.is_none() || working_tree);
    let policy = if bootstrap {
        let head_load = load_policy(head);
        if head_load.empty {
            d.push(
                Diagnostic::new(Code::NoPolicies, "policies", Pos::FILE, "no policy files found")
                    .help("create policies/*.yaml (`gitgrant init` scaffolds them)"),
            );
            status = Status::Error;
        } else if head_load.diagnostics.has_errors() {
            status = Status::Error;
        }
        d.extend(head_load.diagnostics);
        sources.extend(head_load.sources);
        std::sync::Arc::new(head_load.policy)
    } else if base_load.empty {
        d.push(
            Diagnostic::new(Code::NoPolicies, "policies", Pos::FILE, format!("the base ({}) has no policies to judge this change by", base.label()))
                .help("land the first policies on main directly (the bootstrap commit), then open PRs"),
        );
        return Ok(finish(d, Vec::new(), None, base_oid, head_label, Status::Error, sources, Default::default()));
    } else {
        if base_load.diagnostics.has_errors() {
            status = Status::Error;
        }
        d.extend(base_load.diagnostics);
        base_load.policy
    };

    let mut policy_change = None;
    // The proposed policies, when valid: the effective-access diff compares them with the base.
    let mut head_policy = None;
    if !policy_files.is_empty() && !bootstrap {
        // The proposed policies must themselves be valid to land.
        let head_load = load_policy(head);
        if head_load.diagnostics.has_errors() {
            status = Status::Error;
        } else if !head_load.empty {
            head_policy = Some(head_load.policy.clone());
        }
        d.extend(head_load.diagnostics);
        // The proposed text: a diagnostic about it must show its lines.
        sources.extend(head_load.sources);
        for f in &policy_files {
            d.push(
                Diagnostic::new(Code::PolicyChange, f, Pos::FILE, "policy change: judged by the base policies")
                    .help(format!("needs {}", describe_rules(&policy.policy_changes))),
            );
        }
        policy_change = Some(PolicyChange { files: policy_files.clone(), approvals: Approvals { required: policy.policy_changes.clone(), satisfied: None } });
        if let Some(first) = request_changes.first() {
            d.push(
                Diagnostic::new(
                    Code::MixedChange,
                    &first.path,
                    Pos::FILE,
                    "this change edits rule files (policies/, templates/, .github/, CODEOWNERS) and requests/ together",
                )
                .help("split it: land the policy change in its own PR first, then the request (a request is always judged by the policies already on main)"),
            );
        }
    }

    // Every id in the head tree, to catch clashes in any sub-directory.
    let head_entries = head.list(REQUEST_DIR)?;
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &head_entries {
        if let Some(id) = request_id(&e.path) {
            ids.entry(id.to_string()).or_default().push(e.path.clone());
        }
    }

    let mut history_status = None;
    let owned;
    let history: &History = match (repo, base_oid, preset) {
        (Some(repo), Some(b), Some(h)) => {
            debug_assert_eq!(h.head, Some(b), "the preset history is main's as of the base");
            h.ledger = Default::default();
            if super::facts::counts_ledger(&policy) {
                super::facts::add_ledger(h, repo, opts.now);
            }
            &*h
        }
        (Some(repo), Some(b), _) => {
            // A PR check needs the history of its requesters only (old and new
            // versions); `--all`, `explain` and a policy diff read every record.
            let who = (!opts.all && opts.only.is_none() && head_policy.is_none()).then(|| requesters_of(&request_changes, base, head));
            let detail = who.as_ref().map_or(Detail::Decisions, Detail::Requesters);
            let started = std::time::Instant::now();
            let (mut h, used) = crate::history::read_history_cached_with(repo, b, &crate::history::index_path(repo), detail)?;
            // Only when the factor is on: reading the ledger costs time on every check.
            if super::facts::counts_ledger(&policy) {
                super::facts::add_ledger(&mut h, repo, opts.now);
            }
            let how = match used {
                crate::history::CacheUse::Cold => "cold: no usable index, full walk".to_string(),
                crate::history::CacheUse::Warm(n) => format!("warm: {n} newer commit(s) walked"),
            };
            history_status = Some(format!("history index {how}; {} request record(s), {} ms", h.requests.len(), started.elapsed().as_millis()));
            owned = h;
            &owned
        }
        _ => {
            owned = History::default();
            &owned
        }
    };
    let policy_diff = head_policy.map(|hp| {
        let mut sink = Diagnostics::default();
        let requests: Vec<Request> = head_entries.iter().filter(|e| request_id(&e.path).is_some()).filter_map(|e| load_request(head, e, &mut sink)).collect();
        super::policy_diff::policy_diff(&policy, &hp, &requests, history, opts.now)
    });
    let mut to_judge: Vec<(String, Change)> = Vec::new();
    let mut outcomes = Vec::new();
    for c in &request_changes {
        match (c.in_base, c.in_head) {
            (true, false) => outcomes.push(removed(c, base, history)),
            (false, true) => to_judge.push((c.path.clone(), Change::New)),
            (true, true) => to_judge.push((c.path.clone(), Change::Modified)),
            (false, false) => {}
        }
    }
    if opts.all || opts.only.is_some() {
        let changed: BTreeSet<&str> = request_changes.iter().map(|c| c.path.as_str()).collect();
        for e in &head_entries {
            if !changed.contains(e.path.as_str()) {
                to_judge.push((e.path.clone(), Change::Unchanged));
            }
        }
    }

    if let Some(only) = &opts.only {
        to_judge.retain(|(p, _)| request_id(p) == Some(only.as_str()));
        outcomes.retain(|o: &RequestOutcome| &o.id == only);
    }
    // Every file is read here, on this thread (trees are not shared across
    // threads); parsing, validating and scoring run on several threads
    // ([`judge_items`]), and the results are merged in this order: the
    // report is the same whatever the number of threads.
    let mut items = Vec::new();
    for (path, change) in to_judge {
        // head_entries is sorted by path (Tree::list): no linear scan per file.
        let Some(entry) = head_entries.binary_search_by(|e| e.path.as_str().cmp(path.as_str())).ok().map(|i| &head_entries[i]) else {
            continue;
        };
        let mut clash = None;
        if let Some(id) = request_id(&path) {
            if let Some(paths) = ids.get(id).filter(|p| p.len() > 1) {
                let others: Vec<&str> = paths.iter().filter(|p| **p != path).map(String::as_str).collect();
                clash = Some(
                    Diagnostic::new(Code::DuplicateRequestId, &path, Pos::FILE, format!("request id `{id}` is also used by {}", others.join(", ")))
                        .help("ids are file stems and must be unique across requests/; rename this file"),
                );
            }
        } else if is_ignorable(&path) {
            continue;
        }
        let source = head.read_source(entry);
        items.push(Item { entry, change, clash, source });
    }
    let shared = Shared { policy: &policy, history, now: opts.now };
    let judged = judge_items(&items, &shared, judge_threads(items.len()));
    let known_ids: std::cell::OnceCell<BTreeSet<String>> = std::cell::OnceCell::new();
    let with_base = WithBase { base, known_ids: &known_ids };
    for (item, (mut local, step)) in items.into_iter().zip(judged) {
        d.extend(item.clash);
        let outcome = match step {
            Step::Judged(o) => Some(*o),
            Step::Unparsed => None,
            Step::NeedsBase(req) => judge_parsed(&item.entry.path, *req, item.change, &shared, Some(&with_base), &mut local).ok(),
        };
        // The text is kept only to render this file's diagnostics (and every
        // file that does not parse: its diagnostics show its lines).
        if (outcome.is_none() || !local.is_empty())
            && let Ok(src) = item.source
        {
            sources.insert(item.entry.path.clone(), src.text);
        }
        d.extend(local);
        outcomes.extend(outcome);
    }
    // Files with diagnostics raised outside the loop (an id clash) show their lines too.
    let missing: BTreeSet<String> = d.iter().map(|x| x.file.clone()).filter(|f| under(f, REQUEST_DIR) && !sources.contains_key(f)).collect();
    for f in missing {
        if let Some(e) = head.entry(&f)
            && let Ok(src) = head.read_source(&e)
        {
            sources.insert(f, src.text);
        }
    }
    outcomes.sort_by(|a, b| a.file.cmp(&b.file));
    if d.has_errors() && status == Status::Ok {
        status = Status::Failed;
    }
    let mut report = finish(d, outcomes, policy_change, base_oid, head_label, status, sources, policy);
    report.policy_diff = policy_diff;
    report.history_status = history_status;
    Ok(report)
}

/// One file `check` judges, read from the head tree.
struct Item<'e> {
    entry: &'e crate::source::Entry,
    change: Change,
    /// Its id is used by another file too.
    clash: Option<Diagnostic>,
    source: Result<crate::source::SourceFile, Diagnostic>,
}

/// What judging a file needs besides the file, shared by every thread.
struct Shared<'a> {
    policy: &'a Policy,
    history: &'a History,
    now: DateTime<Utc>,
}

/// The base tree, for the files that need it (an edited request is compared
/// with its version at the base; an extension with the request it extends):
/// judged on the thread that owns the tree.
struct WithBase<'a> {
    base: &'a dyn Tree,
    /// Ids on main at the base (for `extends`): its request files, listed only if asked.
    known_ids: &'a std::cell::OnceCell<BTreeSet<String>>,
}

enum Step {
    Judged(Box<RequestOutcome>),
    /// The file is no request (its diagnostics say why).
    Unparsed,
    /// Parsed; the rest of its judgement needs the base tree.
    NeedsBase(Box<Request>),
}

/// How many threads judge `n` files: every core for a big tree (`check
/// --all`), one for a PR's few files. `GITGRANT_THREADS` overrides it.
fn judge_threads(n: usize) -> usize {
    let wanted = std::env::var("GITGRANT_THREADS").ok().and_then(|v| v.trim().parse::<usize>().ok()).filter(|t| *t > 0);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(8);
    match wanted {
        Some(t) => t,
        None if n >= 64 => cores,
        None => 1,
    }
}

/// Parses, validates and scores `items` on `threads` threads, in contiguous
/// chunks: one (diagnostics, step) per item, in `items` order.
fn judge_items(items: &[Item<'_>], shared: &Shared<'_>, threads: usize) -> Vec<(Diagnostics, Step)> {
    let one = |item: &Item<'_>| {
        let mut d = Diagnostics::default();
        let parsed = crate::validate::request::parse_request(item.entry, || item.source.clone(), &mut d);
        let step = match parsed {
            None => Step::Unparsed,
            Some(req) => match judge_parsed(&item.entry.path, req, item.change, shared, None, &mut d) {
                Ok(o) => Step::Judged(Box::new(o)),
                Err(req) => Step::NeedsBase(req),
            },
        };
        (d, step)
    };
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(one).collect();
    }
    let chunks: Vec<&[Item<'_>]> = items.chunks(items.len().div_ceil(threads)).collect();
    crate::par::map_chunks(&chunks, |c| c.iter().map(one).collect::<Vec<_>>()).into_iter().flatten().collect()
}

/// Judges one parsed request: its change, validation, risk and approvals,
/// with diagnostics to `d` (which holds the parse's). `Err(req)` when it
/// needs the base tree and `base` is `None` (the caller retries with it).
fn judge_parsed(
    path: &str,
    req: Request,
    change: Change,
    shared: &Shared<'_>,
    base: Option<&WithBase<'_>>,
    d: &mut Diagnostics,
) -> Result<RequestOutcome, Box<Request>> {
    let needs_base = change == Change::Modified || req.extends.is_some();
    let base = match base {
        Some(b) => b,
        None if needs_base => return Err(Box::new(req)),
        None => &WithBase { base: &EmptyTree, known_ids: &std::cell::OnceCell::new() },
    };
    let (policy, history, now) = (shared.policy, shared.history, shared.now);
    let mut change = change;
    let landed = history.landed(&req.id);
    if change == Change::Modified {
        let mut sink = Diagnostics::default();
        let old = base.base.entry(path).and_then(|e| load_request(base.base, &e, &mut sink));
        if let Some(old) = &old {
            change = diff::change_of(&req, Some(old), landed.unwrap_or(now));
        }
        if change == Change::Unchanged {
            // The text changed, its content did not (a comment, a key
            // moved): nothing new is asked, nothing shrinks.
            d.push(
                Diagnostic::new(Code::ContentUnchanged, path, Pos::FILE, "the file's text changed but the request it asks for did not")
                    .help("it keeps the approval of the landing that approved this content at this path"),
            );
        }
        if change == Change::Modified {
            d.push(
                Diagnostic::new(Code::ModifiedRequest, path, Pos::FILE, "this request is already on main and the edit widens or changes it")
                    .help("it is judged again as a new request and needs approval again; to end access early, only shorten the window or drop resources"),
            );
        }
    }
    let default_start = match change {
        Change::New => now,
        _ => landed.unwrap_or(now),
    };
    let no_ids = BTreeSet::new();
    let base_ids =
        || -> BTreeSet<String> { base.base.list(REQUEST_DIR).unwrap_or_default().iter().filter_map(|e| request_id(&e.path)).map(str::to_string).collect() };
    let known = if req.extends.is_some() { base.known_ids.get_or_init(base_ids) } else { &no_ids };
    let ctx = RequestContext { now, default_start, known_ids: known, check_past: change.needs_approval() };
    if change != Change::Shrink {
        validate_request(&req, policy, &ctx, d);
    }
    if change.needs_approval()
        && let Some(old_id) = &req.extends
        && let Some(old) = base_request(base.base, old_id)
    {
        let old_window = old.window(history.landed(old_id).unwrap_or(now));
        crate::validate::request::validate_extends(&req, req.window(default_start), &old, old_window, d);
    }
    let parse_ok = d.iter().all(|x| !x.is_error());
    Ok(evaluate(req, change, parse_ok, policy, history, default_start, d))
}

#[allow(clippy::too_many_arguments)]
fn finish(
    d: Diagnostics,
    requests: Vec<RequestOutcome>,
    policy_change: Option<PolicyChange>,
    base: Option<Oid>,
    head: String,
    status: Status,
    sources: BTreeMap<String, String>,
    policy: std::sync::Arc<Policy>,
) -> CheckReport {
    CheckReport {
        ok: status == Status::Ok,
        diagnostics: d.into_sorted(),
        requests,
        policy_change,
        policy_diff: None,
        base: base.map(|b| b.to_string()),
        head,
        status,
        sources,
        policy,
        history_status: None,
    }
}

fn removed(c: &FileChange, base: &dyn Tree, history: &History) -> RequestOutcome {
    let mut sink = Diagnostics::default();
    let old = base.entry(&c.path).and_then(|e| load_request(base, &e, &mut sink));
    let window = old.as_ref().and_then(|o| o.window(history.landed(&o.id).unwrap_or_default()));
    RequestOutcome {
        id: request_id(&c.path).unwrap_or(&c.path).to_string(),
        file: c.path.clone(),
        change: Change::Removed,
        requester: old.as_ref().map(|o| o.requester.clone()).unwrap_or_default(),
        role: old.as_ref().map(|o| o.role.clone()).unwrap_or_default(),
        resources: old.as_ref().map(|o| o.resources.clone()).unwrap_or_default(),
        start: window.map(|w| w.start),
        end: window.map(|w| w.end),
        break_glass: old.as_ref().is_some_and(|o| o.break_glass),
        valid: true,
        risk: None,
        approvals: Approvals { required: Vec::new(), satisfied: None },
        facts: RequesterFacts::default(),
        request: old,
    }
}

/// The request `id` as the base has it (what an extension continues).
fn base_request(base: &dyn Tree, id: &str) -> Option<Request> {
    let entry = base.list(REQUEST_DIR).ok()?.into_iter().find(|e| request_id(&e.path) == Some(id))?;
    load_request(base, &entry, &mut Diagnostics::default())
}

/// Requesters (lowercase) of the changed request files, before and after:
/// whose history a PR check needs.
fn requesters_of(changes: &[&FileChange], base: &dyn Tree, head: &dyn Tree) -> BTreeSet<String> {
    let mut sink = Diagnostics::default();
    let mut out = BTreeSet::new();
    for c in changes {
        for (tree, present) in [(base, c.in_base), (head, c.in_head)] {
            if present && let Some(r) = tree.entry(&c.path).and_then(|e| load_request(tree, &e, &mut sink)) {
                out.insert(r.requester);
            }
        }
    }
    out
}
