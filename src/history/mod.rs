//! One pass over the first-parent history of the main branch, diffing only
//! `requests/`, into an index the risk factors and audit query.
//!
//! Why first-parent: on main, each first-parent step is one landing (a merge,
//! a squash, or a direct push). Why compare tree ids ourselves instead of
//! `git log -- path`: libgit2 has no pathspec-limited log, and comparing the
//! `requests/` subtree id first skips every commit that did not touch it.
//! Consecutive `requests/` trees are diffed on their raw bytes ([`rawtree`]),
//! which keeps a walk over big trees cheaper than `git log --raw`.
//! Blobs are parsed once per blob id, so reverts and renames cost nothing.
//! [`read_history_cached`] keeps the result as an incremental index.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use git2::{ObjectType, Oid, Repository};
use serde::{Deserialize, Serialize};

mod codec;
mod lookup;
mod rawtree;
pub mod travel;

pub use codec::Detail;

use crate::model::request::{Request, Window};
use crate::source::SourceFile;
use crate::validate::request::request_id;

/// One version of a request as it stood on main: what history queries need,
/// compact and serialisable (the incremental index stores it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub requester: String,
    pub role: String,
    pub resources: Vec<String>,
    pub start: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub duration_secs: Option<i64>,
    pub reason: String,
    pub ticket: Option<String>,
    pub break_glass: bool,
    pub extends: Option<String>,
}

impl From<&Request> for Version {
    fn from(r: &Request) -> Self {
        Version {
            requester: r.requester.clone(),
            role: r.role.clone(),
            resources: r.resources.clone(),
            start: r.start,
            until: r.until,
            duration_secs: r.duration.map(|d| d.secs()),
            reason: r.reason.clone(),
            ticket: r.ticket.clone(),
            break_glass: r.break_glass,
            extends: r.extends.clone(),
        }
    }
}

impl Version {
    /// The window, with `landed` as the default start (same rule as [`Request::window`]).
    pub fn window(&self, landed: DateTime<Utc>) -> Option<Window> {
        let start = self.start.unwrap_or(landed);
        let end = match (self.until, self.duration_secs) {
            (Some(u), _) => u,
            (None, Some(d)) => start.checked_add_signed(chrono::TimeDelta::seconds(d))?,
            (None, None) => return None,
        };
        Some(Window { start, end })
    }
}

/// What happened to a request file in one first-parent commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Added,
    Modified,
    Removed,
}

/// A commit on main that changed requests, with what audit needs from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    pub id: String,
    pub time: DateTime<Utc>,
    pub author: String,
    pub author_email: String,
    pub summary: String,
    pub parents: usize,
    /// `Approved-by:` trailer logins.
    pub approved_by: Vec<String>,
    /// PR number from "Merge pull request #N" or a squash title "... (#N)".
    pub pr: Option<u64>,
    /// Request ids from `Break-glass-review:` trailers.
    pub break_glass_reviews: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    pub commit: usize,
    pub path: String,
}

/// The facts about one request id over the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub id: String,
    pub events: Vec<Event>,
    /// The latest parsed version (None if it never parsed).
    pub latest: Option<Version>,
    /// When the id first landed: the default start of its window.
    pub landed: DateTime<Utc>,
    pub landed_commit: usize,
    /// When it was removed from main (None: still there).
    pub removed_at: Option<DateTime<Utc>>,
    /// Windows over time: (from commit time, window), for "active at" queries.
    pub windows: Vec<(DateTime<Utc>, Option<Window>)>,
    /// Removed or shrunk while it was active.
    pub ended_early_at: Vec<DateTime<Utc>>,
}

impl RequestRecord {
    /// Does it count among the requests of `who` (lowercase)? An id whose
    /// file was later handed to someone else counts for its latest requester only.
    pub(crate) fn counts_for(&self, who: &str) -> bool {
        self.latest.as_ref().is_none_or(|l| l.requester == who)
    }

    /// The window in force at time `t` per main's history (None: not on main).
    /// A removal is recorded as a `None` window, so the last entry rules.
    pub fn window_at(&self, t: DateTime<Utc>) -> Option<Window> {
        self.windows.iter().rev().find(|(from, _)| *from <= t).and_then(|(_, w)| *w)
    }
}

/// The history index: commits that touched requests/ and a record per id.
/// `PartialEq` lets tests prove a warm (incremental) read equals a cold one.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub commits: Vec<CommitInfo>,
    pub requests: BTreeMap<String, RequestRecord>,
    /// Per requester (lowercase): ids of their requests, in landing order.
    pub by_requester: HashMap<String, Vec<String>>,
    /// The newest commit covered (the walk's start).
    #[serde(with = "opt_oid")]
    pub head: Option<Oid>,
    /// The root commit (no parent) the first-parent chain starts from. An
    /// index whose root has gained a parent (built in a shallow clone, then
    /// `git fetch --unshallow`) or is unknown here is rebuilt, never trusted.
    #[serde(with = "opt_oid")]
    pub root: Option<Oid>,
    /// First-parent commits walked in all.
    pub walked: usize,
    /// Set when read with [`Detail::Decisions`]: `commits` and the records'
    /// `events` were not decoded (they hold only what was walked since).
    #[serde(skip)]
    pub(crate) skipped: Option<codec::Skipped>,
    /// The ledger's facts (grants of a role, monitor findings) recorded
    /// before a time (set by [`crate::engine::facts::add_ledger`], not from
    /// git history). "Held the role before" counts these grants only: a
    /// request that reached main but was refused (a direct push, a landing
    /// `check` fails) never held anything.
    #[serde(skip)]
    pub ledger: LedgerFacts,
    /// Per-requester facts pre-aggregated on first use ([`lookup`]).
    #[serde(skip)]
    pub(crate) lookup: Derived<lookup::Cache>,
    /// The (requester, id) pairs `by_requester` lists, kept between walks.
    #[serde(skip)]
    pub(crate) listed: Derived<Listed>,
}

/// The pairs of [`History::by_requester`] as a set, so that walking a few
/// commits forward ([`advance`], once per landing judged) does not rebuild
/// it from every request ever listed. Not part of the history's value:
/// clones start empty, every one compares equal, and it is rebuilt whenever
/// it does not hold as many pairs as `by_requester` lists.
#[derive(Debug, Default)]
pub(crate) struct Listed(Option<std::collections::HashSet<(String, String)>>);

/// State derived from a [`History`] and kept beside it to save work, not part
/// of its value: a clone starts empty and every one compares equal, so two
/// histories are equal exactly when their facts are.
#[derive(Debug, Default)]
pub(crate) struct Derived<T>(T);

impl<T: Default> Clone for Derived<T> {
    fn clone(&self) -> Self {
        Derived::default()
    }
}

impl<T> PartialEq for Derived<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> Eq for Derived<T> {}

impl<T> std::ops::Deref for Derived<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Derived<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl Listed {
    /// The set for `by_requester`, rebuilt if it is missing or out of step.
    fn take(&mut self, by_requester: &HashMap<String, Vec<String>>) -> std::collections::HashSet<(String, String)> {
        let n: usize = by_requester.values().map(Vec::len).sum();
        match self.0.take() {
            Some(set) if set.len() == n => set,
            _ => by_requester.iter().flat_map(|(who, ids)| ids.iter().map(move |id| (who.clone(), id.clone()))).collect(),
        }
    }

    /// Keeps the set [`Listed::take`] gave out, brought up to date, for the next walk.
    fn put(&mut self, set: std::collections::HashSet<(String, String)>) {
        self.0 = Some(set);
    }
}

pub use crate::risk::MAX_EARLY_REVOCATIONS;

/// Every fact the ledger recorded, per requester (lowercase): the earliest
/// grant of each role and the sorted times of monitor findings. Built once
/// per ledger read; [`LedgerFacts`] cuts it at a time without copying it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recorded {
    first_grant: HashMap<String, HashMap<String, DateTime<Utc>>>,
    findings: HashMap<String, Vec<DateTime<Utc>>>,
}

impl Recorded {
    /// A grant of `role` to `who` at `t`.
    pub fn grant(&mut self, who: &str, role: &str, t: DateTime<Utc>) {
        let e = self.first_grant.entry(who.to_ascii_lowercase()).or_default().entry(role.to_string()).or_insert(t);
        if t < *e {
            *e = t;
        }
    }

    /// A monitor finding against `who` at `t`.
    pub fn finding(&mut self, who: &str, t: DateTime<Utc>) {
        let v = self.findings.entry(who.to_ascii_lowercase()).or_default();
        let at = v.partition_point(|f| *f <= t);
        v.insert(at, t);
    }
}

/// The ledger's facts recorded before `as_of` (every one without it): the
/// facts a landing is judged with are those recorded before its time, so
/// judging landing after landing only moves `as_of`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LedgerFacts {
    pub all: std::sync::Arc<Recorded>,
    pub as_of: Option<DateTime<Utc>>,
}

impl LedgerFacts {
    /// Facts at times before both `t` and `as_of` count.
    fn bound(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        self.as_of.map_or(t, |a| a.min(t))
    }

    fn held_before(&self, who: &str, role: &str, t: DateTime<Utc>) -> bool {
        self.all.first_grant.get(who).and_then(|m| m.get(role)).is_some_and(|at| *at < self.bound(t))
    }

    fn findings_before(&self, who: &str, t: DateTime<Utc>) -> u32 {
        let bound = self.bound(t);
        self.all.findings.get(who).map_or(0, |v| v.partition_point(|f| *f < bound) as u32)
    }
}

impl History {
    /// Did `requester` hold `role` (a window that started) before `t`?
    /// Only grants the ledger recorded count (see [`History::grants`]).
    pub fn held_before(&self, requester: &str, role: &str, t: DateTime<Utc>, _except: &str) -> bool {
        self.ledger.held_before(&requester.to_ascii_lowercase(), role, t)
    }

    /// Records a ledger grant of `role` to `requester` at `t` (tests, and
    /// histories built without a ledger branch).
    pub fn record_grant(&mut self, requester: &str, role: &str, t: DateTime<Utc>) {
        std::sync::Arc::make_mut(&mut self.ledger.all).grant(requester, role, t);
    }

    /// How many of `requester`'s grants ended early before `t` (capped).
    pub fn early_revocations(&self, requester: &str, t: DateTime<Utc>) -> u32 {
        self.per_requester(requester).early_before(t)
    }

    /// Requests of `requester` on main whose window contains `t`, except `except`.
    pub fn active_at(&self, requester: &str, t: DateTime<Utc>, except: &str) -> Vec<String> {
        self.per_requester(requester).active_at(self, requester, t, except)
    }

    /// [`Self::held_before`], [`Self::early_revocations`] and [`Self::active_at`]
    /// as lookups over the requester's pre-aggregated facts ([`lookup`]),
    /// built once per requester: never a scan of their records per request.
    pub fn facts(&self, requester: &str, role: &str, t: DateTime<Utc>, except: &str) -> (bool, u32, Vec<String>) {
        let p = self.per_requester(requester);
        (self.held_before(requester, role, t, except), p.early_before(t), p.active_at(self, requester, t, except))
    }

    /// The scans [`Self::facts`] replaced, kept to prove the lookups equal them.
    #[cfg(test)]
    fn facts_by_scan(
        &self,
        grants: &[(String, String, DateTime<Utc>)],
        requester: &str,
        role: &str,
        t: DateTime<Utc>,
        except: &str,
    ) -> (bool, u32, Vec<String>) {
        let who = requester.to_ascii_lowercase();
        let held = grants.iter().any(|(w, r, at)| *w == who && r == role && *at < t && self.ledger.as_of.is_none_or(|a| *at < a));
        let (mut early, mut active) = (0usize, Vec::new());
        for r in self.of(requester) {
            early += r.ended_early_at.iter().filter(|e| **e < t).count();
            if r.id == except {
                continue;
            }
            if r.removed_at.is_none() && r.window_at(t).is_some_and(|w| w.contains(t)) {
                active.push(r.id.clone());
            }
        }
        (held, (early as u32).min(MAX_EARLY_REVOCATIONS), active)
    }

    /// `requester`'s requests. An id whose file was later handed to someone
    /// else (a new request under the same id) counts for its latest requester only.
    #[cfg(test)]
    fn of<'a>(&'a self, requester: &str) -> impl Iterator<Item = &'a RequestRecord> {
        let who = requester.to_ascii_lowercase();
        let ids = self.by_requester.get(&who);
        ids.into_iter().flatten().filter_map(|id| self.requests.get(id)).filter(move |r| r.counts_for(&who))
    }

    /// Monitor findings recorded against `requester` before `t`.
    pub fn findings_before(&self, requester: &str, t: DateTime<Utc>) -> u32 {
        self.ledger.findings_before(&requester.to_ascii_lowercase(), t)
    }

    /// How many commits the history holds, decoded or not.
    pub fn commit_count(&self) -> usize {
        self.skipped.as_ref().map_or(0, |s| s.commits) + self.commits.len()
    }

    /// When `id` first landed on main, if it did.
    pub fn landed(&self, id: &str) -> Option<DateTime<Utc>> {
        self.requests.get(id).map(|r| r.landed)
    }
}

use crate::git::commit_time;
pub use crate::git::{pr_number, trailers};

/// The id of `requests/` in `commit`'s tree, if it is a directory.
fn requests_tree_id(repo: &Repository, commit: &git2::Commit) -> Result<Option<Oid>, git2::Error> {
    let root = repo.find_tree(commit.tree_id())?;
    Ok(root.get_name("requests").filter(|e| e.kind() == Some(ObjectType::Tree)).map(|e| e.id()))
}

/// The first-parent chain from `head` back to `stop` (exclusive; to the root
/// without one), oldest first. `None` if `stop` is not on the chain.
fn first_parent_chain(repo: &Repository, head: Oid, stop: Option<Oid>) -> Result<Option<Vec<Oid>>, git2::Error> {
    let mut out = Vec::new();
    let mut c = repo.find_commit(head)?;
    loop {
        if Some(c.id()) == stop {
            break;
        }
        out.push(c.id());
        match c.parent(0) {
            Ok(p) => c = p,
            Err(e) if e.code() == git2::ErrorCode::NotFound && stop.is_none() => break,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    out.reverse();
    Ok(Some(out))
}

/// Parses a request blob quietly (history keeps what parses; validation of
/// the current tree reports the rest).
fn parse_blob(repo: &Repository, id: Oid, path: &str) -> Option<Version> {
    let bytes = crate::source::git::read_blob(repo, id).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let file = SourceFile { path: path.to_string(), text };
    let raw = crate::source::parse_yaml(&file, "request").ok()?;
    let mut sink = crate::diag::Diagnostics::default();
    Some(Version::from(&crate::validate::request::lower_raw(request_id(path)?, path, raw, &mut sink)))
}

/// Parses each distinct blob of `pending` once; on two threads when there
/// are many (each thread with its own repository handle: libgit2 handles are
/// not shared across threads).
fn parse_blobs(repo: &Repository, pending: &[(usize, DateTime<Utc>, String, Option<Oid>)]) -> HashMap<Oid, Option<Version>> {
    let mut seen = std::collections::HashSet::new();
    let blobs: Vec<(Oid, &str)> = pending.iter().filter_map(|(_, _, p, b)| b.filter(|b| seen.insert(*b)).map(|b| (b, p.as_str()))).collect();
    let parse_with = |repo: &Repository, chunk: &[(Oid, &str)]| chunk.iter().map(|&(b, p)| (b, parse_blob(repo, b, p))).collect::<Vec<_>>();
    if blobs.len() < 2048 {
        return parse_with(repo, &blobs).into_iter().collect();
    }
    let (mine, theirs) = blobs.split_at(blobs.len() / 2);
    let git_dir = repo.path().to_path_buf();
    std::thread::scope(|s| {
        let other = s.spawn(move || Repository::open(&git_dir).map(|r| parse_with(&r, theirs)));
        let mut out: HashMap<Oid, Option<Version>> = parse_with(repo, mine).into_iter().collect();
        match other.join() {
            Ok(Ok(v)) => out.extend(v),
            // The second handle failed to open: parse the rest here.
            _ => out.extend(parse_with(repo, theirs)),
        }
        out
    })
}

/// Reads the first-parent history ending at `head` into a [`History`] (cold).
/// A shallow clone is refused ([`crate::git::refuse_shallow`]).
pub fn read_history(repo: &Repository, head: Oid) -> Result<History, git2::Error> {
    crate::git::refuse_shallow(repo)?;
    let mut h = History::default();
    extend(repo, &mut h, head, None)?;
    Ok(h)
}

/// Main's history as of `head`: `prev` walked forward when the commit it
/// covers is a first-parent ancestor of `head` (only the commits between are
/// read), else a cold walk. Judging every landing of main in order (`audit
/// verify`) is then one walk of history, not one per landing.
pub fn advance(repo: &Repository, prev: Option<History>, head: Oid) -> Result<History, git2::Error> {
    if let Some(mut h) = prev
        && h.skipped.is_none()
        && let Some(covered) = h.head
    {
        if covered == head {
            return Ok(h);
        }
        // Walking back from `head` finds `covered` within the few commits
        // between two landings; no ancestry test first (a merge-base search
        // per landing). When it is not on the chain, the walk reaches the
        // root, no more than the cold read that follows.
        if let Some(chain) = first_parent_chain(repo, head, Some(covered))? {
            extend_chain(repo, &mut h, head, Some(covered), chain)?;
            return Ok(h);
        }
    }
    read_history(repo, head)
}

/// Walks the first-parent commits after `from` (exclusive) up to `head` and
/// adds them to `h`. `from` must be the head `h` already covers, on the chain.
fn extend(repo: &Repository, h: &mut History, head: Oid, from: Option<Oid>) -> Result<usize, git2::Error> {
    crate::git::refuse_shallow(repo)?;
    let chain = first_parent_chain(repo, head, from)?.ok_or_else(|| git2::Error::from_str("the indexed commit is not on the first-parent chain"))?;
    extend_chain(repo, h, head, from, chain)
}

/// [`extend`] over `chain`, the first-parent commits after `from` up to
/// `head`, oldest first ([`first_parent_chain`]).
fn extend_chain(repo: &Repository, h: &mut History, head: Oid, from: Option<Oid>, chain: Vec<Oid>) -> Result<usize, git2::Error> {
    crate::git::refuse_shallow(repo)?;
    if from.is_none() {
        // The walk stopped at a commit without a (readable) parent: it must
        // be a real root, not a cut-off history missing its parents' objects.
        let root = chain.first().copied().unwrap_or(head);
        if repo.find_commit(root)?.parent_count() != 0 {
            return Err(crate::git::shallow_error());
        }
        h.root = Some(root);
    }
    // libgit2 re-hashes every object it reads (SHA-1 with collision
    // detection) unless told not to: 3/4 of a cold walk over big trees went
    // there. git itself does not verify on read; `git fsck` does.
    git2::opts::strict_hash_verification(false);
    let odb = repo.odb()?;
    let mut prev_id = match from {
        Some(f) => requests_tree_id(repo, &repo.find_commit(f)?)?,
        None => None,
    };
    let mut prev_tree = prev_id.map(|id| rawtree::RawTree::read(&odb, id)).transpose()?;
    // Walk first, parse after: request blobs are then parsed on both cores
    // (parsing every version that ever landed is most of a cold walk's work).
    let mut pending: Vec<(usize, DateTime<Utc>, String, Option<Oid>)> = Vec::new();
    for &oid in &chain {
        let commit = repo.find_commit(oid)?;
        // Most commits on main change requests/; those that don't cost one small tree read.
        let sub_id = requests_tree_id(repo, &commit)?;
        if sub_id == prev_id {
            continue;
        }
        let (tree, changes) = rawtree::diff_versions(&odb, prev_tree.as_ref(), sub_id, "requests")?;
        prev_tree = tree;
        prev_id = sub_id;
        let changes: Vec<_> = changes.into_iter().filter(|(p, _, _)| request_id(p).is_some()).collect();
        if changes.is_empty() {
            continue;
        }
        let time = commit_time(&commit);
        let message = commit.message().unwrap_or("");
        let summary = commit.summary().ok().flatten().unwrap_or("").to_string();
        let idx = h.commit_count();
        h.commits.push(CommitInfo {
            id: oid.to_string(),
            time,
            author: commit.author().name().unwrap_or("").to_string(),
            author_email: commit.author().email().unwrap_or("").to_string(),
            pr: pr_number(&summary),
            summary,
            parents: commit.parent_count(),
            approved_by: crate::approval::parse_trailers(message),
            break_glass_reviews: trailers(message, "Break-glass-review"),
        });
        pending.extend(changes.into_iter().map(|(path, _old, new)| (idx, time, path, new)));
    }
    let parsed = parse_blobs(repo, &pending);
    // (requester, id) pairs already listed in `by_requester`: a set, not a
    // scan of the requester's whole list per version, and kept for the next
    // walk (not rebuilt from every request ever listed each time).
    let mut listed = h.listed.take(&h.by_requester);
    for (idx, time, path, new_blob) in pending {
        let Some(id) = request_id(&path) else { continue };
        let version = new_blob.and_then(|b| parsed.get(&b).cloned().flatten());
        apply(h, &mut listed, id, &path, idx, time, new_blob.is_some(), version);
    }
    h.listed.put(listed);
    h.walked += chain.len();
    h.head = Some(head);
    Ok(chain.len())
}

/// How a cached read went, for `-v` output and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// No usable index: a full walk.
    Cold,
    /// The index covered part of history; `n` newer commits were walked.
    Warm(usize),
}

/// Where the incremental index lives: inside the git directory, never in the
/// tree. Binary ([`codec`]): a JSON index was too slow to parse on long histories.
pub fn index_path(repo: &Repository) -> std::path::PathBuf {
    repo.path().join("gitgrant").join("history-index.bin")
}

/// Reads history through the incremental index at `path`: reuses it when the
/// commit it covers is a first-parent ancestor of `head` (verified by walking),
/// walks only the newer commits, and saves the result. A missing, corrupt,
/// outdated-format or rewritten-history index is rebuilt from scratch.
/// An index ahead of `head` (a first-parent descendant) is kept for later runs.
pub fn read_history_cached(repo: &Repository, head: Oid, path: &std::path::Path) -> Result<(History, CacheUse), git2::Error> {
    read_history_cached_with(repo, head, path, Detail::Full)
}

/// [`read_history_cached`], decoding only what `detail` asks for: `check`
/// needs no commit metadata, and skipping it keeps a warm read of a
/// 100,000-commit index within a few milliseconds.
pub fn read_history_cached_with(repo: &Repository, head: Oid, path: &std::path::Path, detail: Detail<'_>) -> Result<(History, CacheUse), git2::Error> {
    crate::git::refuse_shallow(repo)?;
    travel::seed(repo, path);
    if let Detail::Requesters(_) = detail {
        // A partial read can't be extended and saved: only an exact hit is served.
        if let Some(h) = codec::read(path, detail).filter(|h| h.head == Some(head) && root_holds(repo, h.root)) {
            return Ok((h, CacheUse::Warm(0)));
        }
        return read_history_cached_with(repo, head, path, Detail::Decisions);
    }
    let cached = codec::read(path, detail).filter(|h| root_holds(repo, h.root));
    let mut keep_cached = false;
    let (h, used) = match cached.and_then(|h| h.head.map(|c| (h, c))) {
        Some((h, covered)) if covered == head => (h, CacheUse::Warm(0)),
        Some((mut h, covered)) if on_first_parent_chain(repo, head, covered)? => {
            let n = extend(repo, &mut h, head, Some(covered))?;
            (h, CacheUse::Warm(n))
        }
        Some((_, covered)) => {
            // An index ahead of `head` (a PR with an older merge-base) still
            // serves every newer check: read cold, but keep it.
            keep_cached = on_first_parent_chain(repo, covered, head)?;
            (read_history(repo, head)?, CacheUse::Cold)
        }
        None => (read_history(repo, head)?, CacheUse::Cold),
    };
    if used != CacheUse::Warm(0) && !keep_cached {
        save_index(path, &h);
    }
    Ok((h, used))
}

/// Is `root` a commit of this repository that still has no parent? (An
/// index built in a shallow clone recorded the cut-off commit, which gains a
/// parent after `git fetch --unshallow`; one from another repository names a
/// commit unknown here.)
fn root_holds(repo: &Repository, root: Option<Oid>) -> bool {
    root.and_then(|r| repo.find_commit(r).ok()).is_some_and(|c| c.parent_count() == 0)
}

/// Is `ancestor` on the first-parent chain of `head`? (An unknown commit, as
/// in an index copied from another repository, is not.)
fn on_first_parent_chain(repo: &Repository, head: Oid, ancestor: Oid) -> Result<bool, git2::Error> {
    if repo.find_commit(ancestor).is_err() || !repo.graph_descendant_of(head, ancestor).unwrap_or(false) {
        return Ok(false);
    }
    Ok(first_parent_chain(repo, head, Some(ancestor))?.is_some())
}

/// Best effort: a cache that cannot be written only costs time next run.
fn save_index(path: &std::path::Path, h: &History) {
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let bytes = match &h.skipped {
        None => codec::encode(h, None),
        // Sections this run did not decode are copied from the file it read.
        Some(skipped) if skipped.partial => return,
        Some(skipped) => match codec::read_skipped(path, skipped) {
            Some((commits, events)) => codec::encode(h, Some((&commits, &events))),
            None => return,
        },
    };
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    if std::fs::write(&tmp, bytes).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

mod opt_oid {
    use git2::Oid;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Oid>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(o) => s.serialize_some(&o.to_string()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Oid>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| Oid::from_str(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

#[allow(clippy::too_many_arguments)]
fn apply(
    h: &mut History,
    listed: &mut std::collections::HashSet<(String, String)>,
    id: &str,
    path: &str,
    commit: usize,
    time: DateTime<Utc>,
    present: bool,
    version: Option<Version>,
) {
    h.lookup.changed(id);
    let is_new = !h.requests.contains_key(id) || h.requests.get(id).is_some_and(|r| r.removed_at.is_some());
    let rec = h.requests.entry(id.to_string()).or_insert_with(|| RequestRecord {
        id: id.to_string(),
        events: Vec::new(),
        latest: None,
        landed: time,
        landed_commit: commit,
        removed_at: None,
        windows: Vec::new(),
        ended_early_at: Vec::new(),
    });
    if !present {
        // Removal: early if the window in force had started and not ended.
        if rec.window_at(time).is_some_and(|w| w.contains(time)) {
            rec.ended_early_at.push(time);
        }
        rec.removed_at = Some(time);
        rec.windows.push((time, None));
        rec.events.push(Event { kind: EventKind::Removed, commit, path: path.to_string() });
        return;
    }
    if is_new && rec.removed_at.is_some() {
        // Re-added after removal: a new landing.
        rec.removed_at = None;
        rec.landed = time;
        rec.landed_commit = commit;
    }
    let kind = if is_new { EventKind::Added } else { EventKind::Modified };
    let window = version.as_ref().and_then(|v| v.window(rec.landed));
    if kind == EventKind::Modified {
        let before = rec.window_at(time);
        if let (Some(b), Some(w)) = (before, window)
            && b.contains(time)
            && w.end < b.end
        {
            rec.ended_early_at.push(time);
        }
    }
    rec.windows.push((time, window));
    rec.events.push(Event { kind, commit, path: path.to_string() });
    if let Some(v) = version {
        if listed.insert((v.requester.clone(), id.to_string())) {
            h.by_requester.entry(v.requester.clone()).or_default().push(id.to_string());
        }
        rec.latest = Some(v);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn facts_lookups_equal_the_scans_they_replace_on_random_histories() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let base = 1_790_000_000i64;
        let (mut held, mut early, mut active) = (0, 0, 0);
        let at = |s: i64| chrono::TimeZone::timestamp_opt(&Utc, s, 0).single().unwrap();
        for round in 0..20 {
            let mut h = History::default();
            let mut listed = std::collections::HashSet::new();
            let mut grants: Vec<(String, String, DateTime<Utc>)> = Vec::new();
            let who = ["ana", "bob", "Cy"];
            let mut clock = base;
            for c in 0..600 {
                // Mostly forward in time; sometimes a commit dated earlier (clock skew).
                clock += if next(10) == 0 { -(next(7200) as i64) } else { next(3600) as i64 };
                let id = format!("2026-12-01-r{}", next(60));
                let present = next(5) != 0;
                let version = (present && next(8) != 0).then(|| {
                    let start = (next(3) != 0).then(|| at(clock + next(20_000) as i64 - 5_000));
                    Version {
                        requester: who[next(3) as usize].to_ascii_lowercase(),
                        role: format!("role{}", next(3)),
                        resources: vec!["a".into()],
                        start,
                        until: (next(2) == 0).then(|| at(clock + next(40_000) as i64)),
                        duration_secs: Some(1 + next(30_000) as i64),
                        reason: "r".into(),
                        ticket: None,
                        break_glass: false,
                        extends: None,
                    }
                });
                h.commits.push(CommitInfo {
                    id: format!("{c}"),
                    time: at(clock),
                    author: String::new(),
                    author_email: String::new(),
                    summary: String::new(),
                    parents: 1,
                    approved_by: vec![],
                    pr: None,
                    break_glass_reviews: vec![],
                });
                apply(&mut h, &mut listed, &id, &format!("requests/{id}.yaml"), c, at(clock), present, version);
                h.walked += 1; // as `extend` counts each commit
                // Asked while the history grows (as a forward walk does): the
                // cached facts must follow every change.
                if next(10) == 0 {
                    let (w, role, t, except) =
                        (who[next(3) as usize], format!("role{}", next(3)), at(clock + next(20_000) as i64 - 10_000), format!("2026-12-01-r{}", next(60)));
                    assert_eq!(
                        h.facts(w, &role, t, &except),
                        h.facts_by_scan(&grants, w, &role, t, &except),
                        "round {round} commit {c}: {w} {role} {t} {except}"
                    );
                }
            }
            for w in who {
                for _ in 0..next(6) {
                    let (role, t) = (format!("role{}", next(3)), at(base + next(800_000) as i64));
                    h.record_grant(w, &role, t);
                    grants.push((w.to_ascii_lowercase(), role, t));
                }
            }
            for q in 0..300 {
                // The ledger as of a landing time (or every line of it).
                h.ledger.as_of = (next(3) != 0).then(|| at(base + next(1_000_000) as i64));
                let (w, role) = (who[next(3) as usize], format!("role{}", next(3)));
                let t = at(base + next(1_000_000) as i64);
                let except = format!("2026-12-01-r{}", next(60));
                let got = h.facts(w, &role, t, &except);
                assert_eq!(got, h.facts_by_scan(&grants, w, &role, t, &except), "round {round} query {q}: {w} {role} {t} {except}");
                held += usize::from(got.0);
                early += usize::from(got.1 > 0);
                active += usize::from(got.2.len() > 1);
            }
        }
        // The histories exercise every fact (a comparison of empty answers proves nothing).
        assert!(held > 100 && early > 100 && active > 100, "held {held}, early {early}, several active {active}");
    }

    /// Three commits on main, each adding a request; returns their ids.
    fn three_commits(repo: &Repository) -> Vec<Oid> {
        let sig = git2::Signature::new("carol", "carol@example.com", &git2::Time::new(1_790_000_000, 0)).unwrap();
        let mut parent: Option<Oid> = None;
        let mut out = Vec::new();
        for i in 0..3 {
            let text = format!("requester: carol\nrole: r\nresources: [a]\nduration: 1h\nreason: a long enough reason {i}\n");
            let blob = repo.blob(text.as_bytes()).unwrap();
            let base = parent.map(|p| repo.find_commit(p).unwrap().tree().unwrap().get_name("requests").unwrap().id());
            let mut sub = repo.treebuilder(base.map(|b| repo.find_tree(b).unwrap()).as_ref()).unwrap();
            sub.insert(format!("2026-12-01-carol-{i}.yaml"), blob, 0o100644).unwrap();
            let sub = sub.write().unwrap();
            let mut root = repo.treebuilder(None).unwrap();
            root.insert("requests", sub, 0o040000).unwrap();
            let tree = repo.find_tree(root.write().unwrap()).unwrap();
            let parents: Vec<git2::Commit> = parent.iter().map(|p| repo.find_commit(*p).unwrap()).collect();
            let refs: Vec<&git2::Commit> = parents.iter().collect();
            let c = repo.commit(Some("refs/heads/main"), &sig, &sig, &format!("land {i}"), &tree, &refs).unwrap();
            out.push(c);
            parent = Some(c);
        }
        out
    }

    #[test]
    fn an_index_whose_root_gained_a_parent_is_rebuilt_never_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let ids = three_commits(&repo);
        let path = index_path(&repo);
        let (cold, used) = read_history_cached(&repo, ids[2], &path).unwrap();
        assert_eq!(used, CacheUse::Cold);
        assert_eq!(cold.root, Some(ids[0]), "the chain's root is recorded");
        assert_eq!(read_history_cached(&repo, ids[2], &path).unwrap().1, CacheUse::Warm(0));

        // What an index built in a `--depth 2` clone looked like: its walk
        // stopped at commit 1 and missed commit 0's request. After
        // `git fetch --unshallow`, commit 1 has a parent: rebuilt.
        let mut shallow_built = read_history(&repo, ids[2]).unwrap();
        shallow_built.root = Some(ids[1]);
        shallow_built.requests.remove("2026-12-01-carol-0");
        save_index(&path, &shallow_built);
        let (h, used) = read_history_cached(&repo, ids[2], &path).unwrap();
        assert_eq!(used, CacheUse::Cold);
        assert_eq!(h, cold);
        assert!(h.requests.contains_key("2026-12-01-carol-0"));
        // Also for a partial (per-requester) read.
        save_index(&path, &shallow_built);
        let who = std::collections::BTreeSet::from(["carol".to_string()]);
        let (h, used) = read_history_cached_with(&repo, ids[2], &path, Detail::Requesters(&who)).unwrap();
        assert_eq!(used, CacheUse::Cold);
        assert!(h.requests.contains_key("2026-12-01-carol-0"));

        // A root unknown here (an index copied from another repository): rebuilt.
        let mut foreign = cold.clone();
        foreign.root = Some(Oid::from_str("0123456789abcdef0123456789abcdef01234567").unwrap());
        save_index(&path, &foreign);
        assert_eq!(read_history_cached(&repo, ids[2], &path).unwrap(), (cold, CacheUse::Cold));
    }

    #[test]
    fn parsing_blobs_on_two_threads_gives_what_one_thread_does() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let t = chrono::TimeZone::timestamp_opt(&Utc, 1_790_000_000, 0).single().unwrap();
        let mut pending = Vec::new();
        for i in 0..2500 {
            let text = match i % 5 {
                0 => format!("requester: [not, a, string{i}]\n"),
                _ => format!("requester: user{}\nrole: r{}\nresources: [a]\nduration: {}h\nreason: a long enough reason {i}\n", i % 7, i % 3, 1 + i % 4),
            };
            let blob = repo.blob(text.as_bytes()).unwrap();
            // Every blob twice (a revert): parsed once.
            for _ in 0..2 {
                pending.push((i, t, format!("requests/2026-12-01-x{i}.yaml"), Some(blob)));
            }
            pending.push((i, t, format!("requests/2026-12-01-gone{i}.yaml"), None));
        }
        let parsed = parse_blobs(&repo, &pending);
        assert_eq!(parsed.len(), 2500);
        for (_, _, path, blob) in &pending {
            if let Some(b) = blob {
                assert_eq!(parsed[b], parse_blob(&repo, *b, path), "{path}");
            }
        }
        assert_eq!(parsed.values().filter(|v| v.is_none()).count(), 500);
    }
}
