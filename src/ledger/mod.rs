//! The ledger: what reconcile actually did, as JSON lines on the
//! `gitgrant-ledger` branch. Written with git2 straight into the object
//! database (the work tree is never touched). Each commit's parent is the
//! previous ledger head and its message names it (`Previous-ledger:`), so a
//! rewrite is detectable.
//!
//! **The ledger is the remote's.** CI works in a fresh clone that has only
//! `refs/remotes/<remote>/gitgrant-ledger`; the local branch is a cache that
//! counts only when it is ahead (a run whose push failed, or was killed before
//! it). [`Ledger::read`] therefore takes the most advanced of the local branch
//! and every remote-tracking copy; when they have diverged, the remote one is
//! the base and the local lines it lacks are carried as *pending* and written
//! on top of it with the next append.
//!
//! **Every line has an identity** ([`Entry::identity`]: run id, action,
//! request, resource, principal, access). Rebasing a run's lines onto a head
//! that moved (a push rejected because another clone pushed first, a local
//! compare-and-swap lost to another process) re-appends exactly the lines the
//! new head lacks by identity: nothing dropped, nothing doubled.
//!
//! Rule: nothing is recorded that did not happen, and nothing that happened
//! is left out. Reconcile records each provider's results as soon as that
//! provider finishes (a local commit), and pushes once at the end; a run
//! killed in between leaves them on the local branch, which the next run on
//! that machine pushes. A grant made but not recorded at all (killed between
//! the provider call and the commit) is found at the provider by the next run
//! and recorded then, marked `observed`.

pub mod lock;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use git2::{Oid, Repository, Signature};
use serde::{Deserialize, Serialize};

pub const BRANCH: &str = "gitgrant-ledger";
pub const FILE: &str = "ledger.jsonl";

/// An approver and the commit they approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    pub login: String,
    pub commit: String,
}

/// One line of the ledger. Fields may be added, never renamed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub time: DateTime<Utc>,
    /// `grant`, `revoke`, `grant-failed`, `revoke-failed`, `verify-failed`, `finding` (monitor).
    pub action: String,
    pub request: String,
    #[serde(default)]
    pub requester: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
    #[serde(default)]
    pub approvers: Vec<Approver>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr: Option<u64>,
    /// The commit that landed the approved version of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_commit: Option<String>,
    /// The commit whose policies judged it (the landing commit's first parent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_score: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default)]
    pub break_glass: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
    /// The risk factors behind `risk_score` (evidence for `gitgrant audit replay`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risk_factors: Vec<RiskFactor>,
    /// `ok`, `failed`, or `observed` (found at the provider, not done by this run).
    pub result: String,
    #[serde(default)]
    pub detail: String,
    /// A revocation that holds (`revoke --now`, a monitor rule, an unratified
    /// break-glass grant): reconcile does not grant the request again while
    /// the version it revoked is on main.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sticky: bool,
    /// The run that wrote the line (set on append): part of its identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// A revoke done after the access's end: by how much (`1d 2h 5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_by: Option<String>,
}

impl Entry {
    /// The line's stable identity: run id, action, request, provider,
    /// resource, principal and access (and, for lines about no access such as
    /// monitor findings, the detail). Lines written before run ids existed are
    /// identified by their whole text.
    pub fn identity(&self) -> String {
        match &self.run {
            Some(run) => {
                let opt = |o: &Option<String>| o.clone().unwrap_or_default();
                let extra = if self.access.is_none() { self.detail.as_str() } else { "" };
                [run.as_str(), &self.action, &self.request, &opt(&self.provider), &opt(&self.resource), &opt(&self.principal), &opt(&self.access), extra]
                    .join("\u{1f}")
            }
            None => serde_json::to_string(self).unwrap_or_default(),
        }
    }

    /// The (request, resource, principal, access) this entry is about, for grant bookkeeping.
    pub fn key(&self) -> Option<GrantKey> {
        Some(GrantKey { request: self.request.clone(), resource: self.resource.clone()?, principal: self.principal.clone()?, access: self.access.clone()? })
    }
}

/// One risk factor as recorded with a grant: its points and its input in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskFactor {
    pub name: String,
    pub points: i64,
    #[serde(default)]
    pub detail: String,
}

impl From<&crate::risk::Factor> for RiskFactor {
    fn from(f: &crate::risk::Factor) -> Self {
        RiskFactor { name: f.name.to_string(), points: f.points, detail: f.detail.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantKey {
    pub request: String,
    pub resource: String,
    pub principal: String,
    pub access: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger branch `{BRANCH}`: {0}")]
    Git(#[from] git2::Error),
    #[error("ledger branch `{BRANCH}`, {FILE} line {line}: {message} (the ledger is append-only; restore it from the remote)")]
    Corrupt { line: usize, message: String },
    #[error("ledger branch `{BRANCH}` kept moving while this run was writing it (five attempts); rerun reconcile")]
    Raced,
    #[error(
        "ledger branch `{BRANCH}` is locked by `{0}` (another git process, or a run killed while writing it); when no gitgrant or git runs, remove that file, or rerun reconcile, which clears it under its run lock"
    )]
    Locked(String),
    #[error("fetching `{BRANCH}` from `{0}`: {1} (the ledger is the remote's: fix access to the remote, or pass --remote)")]
    Fetch(String, String),
    #[error("pushing `{BRANCH}`: {0}")]
    Push(String),
}

/// The ref of the local ledger branch (a cache of the remote's).
pub const LOCAL_REF: &str = "refs/heads/gitgrant-ledger";

/// The reflog message of a ledger ref move that rebases local lines onto a
/// remote head (not a rewrite; `audit verify` knows it).
pub const REBASE_MESSAGE: &str = "gitgrant ledger: rebase on remote";

/// The ledger as of its most advanced head (empty when no branch exists).
#[derive(Debug, Default)]
pub struct Ledger {
    /// The commit `entries` were read from (without the pending lines).
    pub head: Option<Oid>,
    /// Every line: the head's, then the pending ones.
    pub entries: Vec<Entry>,
    text: String,
    /// Where the local branch pointed when read (the compare-and-swap value).
    local: Option<Oid>,
    /// Lines of a diverged local branch the head lacks, written with the next append.
    pending: Vec<Entry>,
    /// The id this instance stamps on the lines it writes.
    run: String,
    /// Every line this instance wrote (for a rebase after a lost race).
    written: Vec<Entry>,
    /// The head before this instance's first append, and how many commits it made since.
    run_base: Option<(Option<Oid>, usize)>,
    /// What reading did that a user should know (a diverged local branch).
    pub notes: Vec<String>,
}

impl Ledger {
    /// An empty ledger with no branch, for unit tests of code that queries one.
    #[cfg(test)]
    pub(crate) fn empty() -> Ledger {
        Ledger::default()
    }

    /// Reads the most advanced of the local ledger branch and every
    /// remote-tracking `refs/remotes/*/gitgrant-ledger` (fetch first to see
    /// the remote's latest; see [`fetch`]). Diverged local lines become pending.
    pub fn read(repo: &Repository) -> Result<Ledger, LedgerError> {
        let local = ref_id(repo, LOCAL_REF)?;
        let mut heads = Vec::new();
        for r in repo.references_glob(&format!("refs/remotes/*/{BRANCH}"))? {
            if let Some(oid) = r?.target() {
                heads.push(oid);
            }
        }
        heads.extend(local);
        let mut base: Option<Oid> = None;
        let mut others = Vec::new();
        for h in heads {
            match base {
                None => base = Some(h),
                Some(b) if is_ancestor(repo, h, b) => {}
                Some(b) if is_ancestor(repo, b, h) => base = Some(h),
                Some(_) => others.push(h),
            }
        }
        let text = match base {
            None => String::new(),
            Some(h) => text_at(repo, h)?,
        };
        let mut entries = parse(&text)?;
        let mut known: BTreeSet<String> = entries.iter().map(Entry::identity).collect();
        let mut pending = Vec::new();
        let mut notes = Vec::new();
        for o in others.into_iter().filter(|o| base.is_none_or(|b| !is_ancestor(repo, *o, b))) {
            let before = pending.len();
            for e in entries_at(repo, o)? {
                if known.insert(e.identity()) {
                    pending.push(e);
                }
            }
            notes.push(format!(
                "the local ledger branch ({}) and the remote's ({}) have diverged; {} local line(s) the remote lacks will be written on top of the remote's",
                short(o),
                base.map(short).unwrap_or_default(),
                pending.len() - before
            ));
        }
        entries.extend(pending.iter().cloned());
        Ok(Ledger { head: base, entries, text, local, pending, run: run_id(), written: Vec::new(), run_base: None, notes })
    }

    /// The text of the ledger file at [`Ledger::head`] (it parsed).
    pub fn head_text(&self) -> &str {
        &self.text
    }

    /// The run id stamped on the lines this instance writes.
    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// Lines not yet on the head (a diverged local branch's).
    pub fn pending(&self) -> &[Entry] {
        &self.pending
    }

    /// Grants the ledger says are in place: granted (or observed) and not
    /// revoked or released since, per request share.
    pub fn open_grants(&self) -> BTreeSet<GrantKey> {
        self.open_until(&["revoke", "release"]).into_keys().collect()
    }

    /// Grants done (or observed) and not closed since by one of `closers`
    /// (`revoke`, and for a per-request view `release`), with the end the
    /// latest grant line recorded.
    pub fn open_until(&self, closers: &[&str]) -> BTreeMap<GrantKey, Option<DateTime<Utc>>> {
        let mut open = BTreeMap::new();
        for e in &self.entries {
            let Some(k) = e.key() else { continue };
            if !matches!(e.result.as_str(), "ok" | "observed") {
                continue;
            }
            if e.action == "grant" {
                open.insert(k, e.end);
            } else if closers.contains(&e.action.as_str()) {
                open.remove(&k);
            }
        }
        open
    }

    /// Has a `verify-failed` for `request` at `commit` been recorded already?
    pub fn refusal_recorded(&self, request: &str, commit: Option<&str>) -> bool {
        self.entries.iter().any(|e| e.action == "verify-failed" && e.request == request && e.merge_commit.as_deref() == commit)
    }

    /// Requests revoked with a hold ([`Entry::sticky`]), and when (the latest).
    /// A hold whose provider call failed holds too: reconcile then refuses the
    /// request and revokes the grant itself, retrying until it is gone.
    pub fn sticky_revocations(&self) -> std::collections::BTreeMap<String, DateTime<Utc>> {
        let mut out = std::collections::BTreeMap::new();
        for e in self.entries.iter().filter(|e| e.sticky && (e.action == "revoke" || e.action == "revoke-failed")) {
            out.insert(e.request.clone(), e.time);
        }
        out
    }

    /// Monitor findings recorded against `requester` (lowercase login) before `t`.
    pub fn findings_for(&self, requester: &str, t: DateTime<Utc>) -> usize {
        self.entries.iter().filter(|e| e.action == "finding" && e.time < t && e.requester.eq_ignore_ascii_case(requester)).count()
    }

    /// The time of the latest line (any action): when a run last changed anything.
    pub fn last_time(&self) -> Option<DateTime<Utc>> {
        self.entries.iter().map(|e| e.time).max()
    }

    /// Appends `entries` (one local commit) and pushes the branch to `remote`
    /// when it exists: what every command that changes the providers does last.
    pub fn record(&mut self, repo: &Repository, entries: &[Entry], summary: &str, remote: &str) -> Result<Oid, LedgerError> {
        let oid = self.append(repo, entries, summary)?;
        self.publish(repo, remote, summary)?;
        Ok(oid)
    }

    /// Pushes what this instance (and any earlier interrupted run) appended
    /// locally to `remote`, rebasing by identity when the remote moved; then
    /// re-reads, so this instance stays usable.
    pub fn publish(&mut self, repo: &Repository, remote: &str, summary: &str) -> Result<(), LedgerError> {
        self.squash(repo, summary)?;
        let dir = repo.workdir().unwrap_or_else(|| repo.path());
        push(dir, remote, summary)?;
        let fresh = Ledger::read(repo)?;
        let (run, written) = (std::mem::take(&mut self.run), std::mem::take(&mut self.written));
        *self = Ledger { run, written, ..fresh };
        Ok(())
    }

    /// Appends `entries` (with the pending lines before them) in one commit on
    /// the local ledger branch. The ref moves only if it still points where it
    /// did when read (compare-and-swap); when another process moved it, the
    /// ledger is read again and this instance's lines the new head lacks (by
    /// identity) are appended there instead, up to five times.
    pub fn append(&mut self, repo: &Repository, entries: &[Entry], summary: &str) -> Result<Oid, LedgerError> {
        let mut new: Vec<Entry> = entries
            .iter()
            .cloned()
            .map(|mut e| {
                if e.run.is_none() {
                    e.run = Some(self.run.clone());
                }
                e
            })
            .collect();
        for _ in 0..5 {
            match self.try_append(repo, &new, summary)? {
                Some(oid) => return Ok(oid),
                None => {
                    let fresh = Ledger::read(repo)?;
                    let known: BTreeSet<String> = fresh.entries.iter().map(Entry::identity).collect();
                    let mut seen = BTreeSet::new();
                    new = self.written.iter().chain(new.iter()).filter(|e| !known.contains(&e.identity()) && seen.insert(e.identity())).cloned().collect();
                    let (run, written) = (std::mem::take(&mut self.run), std::mem::take(&mut self.written));
                    // Another process moved the branch: never squash across its commits.
                    *self = Ledger { run, written, run_base: None, ..fresh };
                }
            }
        }
        Err(LedgerError::Raced)
    }

    /// The local commits this instance made (one per provider, for crash
    /// consistency) become one commit for the run, named `summary`, before they
    /// are published: one ledger commit per run. They were never pushed, so
    /// nothing published is rewritten; the reflog says so (`REBASE_MESSAGE`).
    fn squash(&mut self, repo: &Repository, summary: &str) -> Result<(), LedgerError> {
        let (Some((base, commits)), Some(head)) = (self.run_base, self.head) else { return Ok(()) };
        if commits < 2 || self.local != Some(head) {
            return Ok(());
        }
        let tree = repo.find_commit(head)?.tree()?;
        let parent = base.map(|b| repo.find_commit(b)).transpose()?;
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let previous = base.map_or_else(|| "none".to_string(), |b| b.to_string());
        let sig = signature(repo)?;
        let oid = repo.commit(None, &sig, &sig, &format!("{summary}\n\nPrevious-ledger: {previous}\n"), &tree, &parents)?;
        let moved = repo.reference_matching(LOCAL_REF, oid, true, head, &format!("{REBASE_MESSAGE}: one commit for the run"));
        match moved {
            Ok(_) => {
                self.head = Some(oid);
                self.local = Some(oid);
                self.run_base = Some((base, 1));
                Ok(())
            }
            // Another process appended meanwhile: keep the commits as they are.
            Err(e) if matches!(e.code(), git2::ErrorCode::Modified | git2::ErrorCode::Exists) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// One compare-and-swap attempt; `None` when the local branch moved.
    fn try_append(&mut self, repo: &Repository, new: &[Entry], summary: &str) -> Result<Option<Oid>, LedgerError> {
        let all: Vec<Entry> = self.pending.iter().chain(new.iter()).cloned().collect();
        if all.is_empty() {
            // Nothing to write: at most bring the local cache up to the head.
            let Some(head) = self.head else { return Ok(Some(Oid::ZERO_SHA1)) };
            if self.local != Some(head) && !self.move_local(repo, head, "gitgrant ledger: fast-forward to remote")? {
                return Ok(None);
            }
            return Ok(Some(head));
        }
        let mut text = self.text.clone();
        for e in &all {
            let line = serde_json::to_string(e).map_err(|err| LedgerError::Corrupt { line: 0, message: err.to_string() })?;
            text.push_str(&line);
            text.push('\n');
        }
        let blob = repo.blob(text.as_bytes())?;
        let mut tb = repo.treebuilder(None)?;
        tb.insert(FILE, blob, 0o100644)?;
        let readme = repo.blob(LEDGER_README.as_bytes())?;
        tb.insert("README.md", readme, 0o100644)?;
        let tree = repo.find_tree(tb.write()?)?;
        let sig = signature(repo)?;
        let parent = self.head.map(|h| repo.find_commit(h)).transpose()?;
        let previous = self.head.map_or_else(|| "none".to_string(), |h| h.to_string());
        let message = format!("{summary}\n\nPrevious-ledger: {previous}\n");
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        let oid = repo.commit(None, &sig, &sig, &message, &tree, &parents)?;
        let base = self.head;
        if !self.move_local(repo, oid, "gitgrant ledger")? {
            return Ok(None);
        }
        let (first, n) = self.run_base.unwrap_or((base, 0));
        self.run_base = Some((first, n + 1));
        self.head = Some(oid);
        self.text = text;
        self.pending.clear();
        self.entries.extend_from_slice(new);
        self.written.extend_from_slice(new);
        Ok(Some(oid))
    }

    /// Moves the local branch to `to` if it is still where it was read;
    /// `false` when another process moved it first.
    fn move_local(&mut self, repo: &Repository, to: Oid, message: &str) -> Result<bool, LedgerError> {
        // A move that is not a fast-forward of the local branch is a rebase onto the remote.
        let message = match self.local {
            Some(old) if !is_ancestor(repo, old, to) => REBASE_MESSAGE,
            _ => message,
        };
        let updated = match self.local {
            Some(old) => repo.reference_matching(LOCAL_REF, to, true, old, message),
            None => repo.reference(LOCAL_REF, to, false, message),
        };
        match updated {
            Ok(_) => {
                self.local = Some(to);
                Ok(true)
            }
            Err(e) if matches!(e.code(), git2::ErrorCode::Modified | git2::ErrorCode::Exists) => Ok(false),
            Err(e) if e.code() == git2::ErrorCode::Locked => Err(LedgerError::Locked(repo.path().join(format!("{LOCAL_REF}.lock")).display().to_string())),
            Err(e) => Err(e.into()),
        }
    }
}

/// A run id: UTC time, process id and a random suffix (unique across clones).
fn run_id() -> String {
    format!("{}-{}-{:08x}", Utc::now().format("%Y%m%dT%H%M%SZ"), std::process::id(), fastrand::u32(..))
}

fn ref_id(repo: &Repository, name: &str) -> Result<Option<Oid>, LedgerError> {
    match repo.refname_to_id(name) {
        Ok(oid) => Ok(Some(oid)),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn is_ancestor(repo: &Repository, ancestor: Oid, of: Oid) -> bool {
    ancestor == of || repo.graph_descendant_of(of, ancestor).unwrap_or(false)
}

fn short(oid: Oid) -> String {
    oid.to_string().chars().take(10).collect()
}

const LEDGER_README: &str = "# gitgrant ledger\n\nWritten by `gitgrant reconcile`: one JSON object per line in `ledger.jsonl`, \
one commit per run that changed anything. Append-only; each commit names the previous ledger head \
(`Previous-ledger:`), so `gitgrant audit verify` detects a rewrite. Do not edit by hand.\n";

/// Parses the ledger's lines; a big ledger on every core, in contiguous
/// chunks of lines merged in order (the same entries, and the same first
/// corrupt line, as one thread would find).
fn parse(text: &str) -> Result<Vec<Entry>, LedgerError> {
    let threads = if text.len() < PARALLEL_BYTES { 1 } else { std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(8) };
    parse_on(text, threads)
}

/// Below this many bytes (a few hundred lines) the ledger is parsed on one thread.
const PARALLEL_BYTES: usize = 256 * 1024;

fn parse_on(text: &str, threads: usize) -> Result<Vec<Entry>, LedgerError> {
    let parse_chunk = |(first_line, chunk): (usize, &str)| -> Result<Vec<Entry>, LedgerError> {
        chunk
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| serde_json::from_str(l).map_err(|e| LedgerError::Corrupt { line: first_line + i + 1, message: e.to_string() }))
            .collect()
    };
    let chunks = line_chunks(text, threads.max(1));
    if chunks.len() <= 1 {
        return parse_chunk((0, text));
    }
    let mut out = Vec::new();
    // In order: the first corrupt line is the one a single thread names.
    for part in crate::par::map_chunks(&chunks, |&c| parse_chunk(c)) {
        out.extend(part?);
    }
    Ok(out)
}

/// `text` cut into about `n` pieces at line ends: (lines before the piece, piece).
fn line_chunks(text: &str, n: usize) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let (mut start, mut lines) = (0, 0);
    let step = text.len().div_ceil(n).max(1);
    while start < text.len() {
        let target = (start + step).min(text.len());
        // The end of the line that holds `target` (or the text's end).
        let end = text.as_bytes()[target..].iter().position(|&b| b == b'\n').map_or(text.len(), |p| target + p + 1);
        let piece = &text[start..end];
        out.push((lines, piece));
        lines += piece.matches('\n').count();
        start = end;
    }
    out
}

/// The repository's committer, or a fixed gitgrant identity in CI clones without one.
fn signature(repo: &Repository) -> Result<Signature<'static>, git2::Error> {
    match repo.signature() {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Signature::now("gitgrant", "gitgrant@localhost"),
    }
}

/// Is `remote` configured in the repository at `repo_dir`?
pub fn has_remote(repo: &Repository, remote: &str) -> bool {
    repo.find_remote(remote).is_ok()
}

/// Fetches the remote's ledger branch into `refs/remotes/<remote>/gitgrant-ledger`
/// (what the next [`Ledger::read`] sees). `Ok(false)` when the remote is not
/// configured or has no ledger branch yet; an unreachable remote is an error,
/// so no run plans from a ledger it could not see.
pub fn fetch(repo_dir: &Path, remote: &str) -> Result<bool, LedgerError> {
    let repo = Repository::open(repo_dir)?;
    if !has_remote(&repo, remote) {
        return Ok(false);
    }
    let refspec = format!("+refs/heads/{BRANCH}:refs/remotes/{remote}/{BRANCH}");
    let out = git(repo_dir, &["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote, &refspec])?;
    if out.status.success() {
        return Ok(true);
    }
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if stderr.contains("couldn't find remote ref") {
        return Ok(false);
    }
    Err(LedgerError::Fetch(remote.to_string(), stderr.trim().to_string()))
}

/// Pushes the local ledger branch to `remote` when it exists. On a rejection
/// (another run pushed first) the remote ledger is fetched, the ledger read
/// again (the local lines it lacks become pending, by identity) and appended
/// on top of it, up to five times: nothing local is dropped or doubled.
///
/// Uses the `git` command so the push authenticates the way the clone does
/// (credential helpers, the Actions checkout token).
pub fn push(repo_dir: &Path, remote: &str, summary: &str) -> Result<(), LedgerError> {
    let repo = Repository::open(repo_dir)?;
    let local = ref_id(&repo, LOCAL_REF)?;
    if !has_remote(&repo, remote) || local.is_none() {
        return Ok(());
    }
    // Already published (the remote-tracking copy is where the local branch is).
    if ref_id(&repo, &format!("refs/remotes/{remote}/{BRANCH}"))? == local {
        return Ok(());
    }
    let refspec = format!("{LOCAL_REF}:refs/heads/{BRANCH}");
    for _ in 0..5 {
        let out = git(repo_dir, &["push", "--quiet", remote, &refspec])?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        if !(stderr.contains("non-fast-forward") || stderr.contains("rejected") || stderr.contains("fetch first")) {
            return Err(LedgerError::Push(stderr.trim().to_string()));
        }
        fetch(repo_dir, remote)?;
        let mut ledger = Ledger::read(&repo)?;
        let rebased = format!("{summary} (rebased on the remote ledger)");
        ledger.append(&repo, &[], &rebased)?;
    }
    Err(LedgerError::Push("the remote ledger kept moving; rerun reconcile".into()))
}

/// The ledger texts of `chain` (commits of the ledger branch, newest
/// first), each as [`read_at`] reads it (a version that does not parse
/// reads as empty), without reading most of them: a version whose blob id
/// is that of a prefix of the newest text cut at a line end *is* that prefix
/// (a blob id is the hash of the bytes), so only the newest is read and
/// parsed, and each other version costs a hash of the prefix. Reading and
/// parsing every one of the 100 versions of an 85 MB ledger (inflating the
/// same 85 MB base each time) was most of `audit verify`'s time.
pub struct ChainTexts {
    newest: String,
    /// Per commit of the chain: Some(length) when its text is `newest[..length]`.
    prefix: Vec<Option<usize>>,
}

impl ChainTexts {
    /// `known`: a text already read and parsed (the [`Ledger`]'s), used for
    /// the newest version when it is that version's (same blob id).
    pub fn new(repo: &Repository, chain: &[Oid], known: Option<&str>) -> ChainTexts {
        git2::opts::strict_hash_verification(false);
        let blob_of = |c: Oid| -> Option<Option<Oid>> {
            let tree = repo.find_commit(c).ok()?.tree().ok()?;
            Some(tree.get_name(FILE).map(|e| e.id()))
        };
        let newest_blob = chain.first().and_then(|c| blob_of(*c)).flatten();
        let newest = match known.filter(|k| newest_blob.is_some_and(|b| blob_id(k.as_bytes()).as_ref() == b.as_bytes())) {
            Some(k) => Some(k.to_string()),
            // Only a newest text that parses stands for its prefixes: a prefix
            // cut at a line end then parses too (lines are parsed one by one).
            None => newest_blob.and_then(|b| repo.find_blob(b).ok()).and_then(|b| String::from_utf8(b.content().to_vec()).ok()).filter(|t| parse(t).is_ok()),
        };
        let Some(newest) = newest else {
            return ChainTexts { newest: String::new(), prefix: vec![None; chain.len()] };
        };
        let odb = repo.odb().ok();
        let sizes: Vec<Option<(Oid, usize)>> = chain
            .iter()
            .map(|c| match blob_of(*c)? {
                // No ledger file: read as empty, a prefix of anything.
                None => Some((Oid::ZERO_SHA1, 0)),
                Some(b) => {
                    let (size, kind) = odb.as_ref()?.read_header(b).ok()?;
                    (kind == git2::ObjectType::Blob).then_some((b, size))
                }
            })
            .collect();
        let bytes = newest.as_bytes();
        let is_prefix = |v: &Option<(Oid, usize)>| -> Option<usize> {
            let (b, size) = (*v)?;
            if size == 0 {
                return Some(0);
            }
            if size > bytes.len() || (size < bytes.len() && bytes[size - 1] != b'\n') {
                return None;
            }
            (blob_id(&bytes[..size]).as_ref() == b.as_bytes()).then_some(size)
        };
        // Hashing is the work left: on two threads for a long chain.
        let prefix = if sizes.len() < 8 {
            sizes.iter().map(is_prefix).collect()
        } else {
            let (a, b) = sizes.split_at(sizes.len() / 2);
            crate::par::map_chunks(&[a, b], |half| half.iter().map(is_prefix).collect::<Vec<_>>()).concat()
        };
        ChainTexts { newest, prefix }
    }

    /// The text of commit `i` of the chain, as [`read_at`] reads it.
    pub fn text(&self, repo: &Repository, chain: &[Oid], i: usize) -> std::borrow::Cow<'_, str> {
        match self.prefix.get(i).copied().flatten() {
            Some(n) => std::borrow::Cow::Borrowed(&self.newest[..n]),
            None => std::borrow::Cow::Owned(chain.get(i).and_then(|c| read_at(repo, *c).ok()).map(|(t, _)| t).unwrap_or_default()),
        }
    }

    /// Is version `i`'s text a prefix of version `j`'s? Without reading
    /// either when both are prefixes of the newest.
    pub fn starts(&self, repo: &Repository, chain: &[Oid], j: usize, i: usize) -> bool {
        match (self.prefix.get(j).copied().flatten(), self.prefix.get(i).copied().flatten()) {
            (Some(nj), Some(ni)) => ni <= nj,
            _ => self.text(repo, chain, j).starts_with(&*self.text(repo, chain, i)),
        }
    }
}

/// The git blob id (SHA-1) of `bytes`.
/// (The `sha1` crate: it uses the CPU's SHA instructions where there are
/// some, 4 to 5 times ring's portable SHA-1 here.)
fn blob_id(bytes: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    h.finalize().into()
}

/// The ledger text and its entries as of `commit` on the ledger branch (for audit).
pub fn read_at(repo: &Repository, commit: Oid) -> Result<(String, Vec<Entry>), LedgerError> {
    let text = text_at(repo, commit)?;
    let entries = parse(&text)?;
    Ok((text, entries))
}

/// The ledger text last read, by the blob it came from. One command reads the
/// same ledger more than once (`audit verify`: for the trail, and again for
/// the judge's ledger facts), and a big ledger stored as a deep delta chain
/// costs seconds to inflate. A blob id names its content, so a hit is exact.
static LAST_TEXT: std::sync::Mutex<Option<(Oid, std::sync::Arc<str>)>> = std::sync::Mutex::new(None);

fn text_at(repo: &Repository, commit: Oid) -> Result<String, LedgerError> {
    // A big ledger (100 MB) is read on every audit: skip libgit2's re-hashing
    // of the blob on read (SHA-1 with collision detection), as git does.
    git2::opts::strict_hash_verification(false);
    let tree = repo.find_commit(commit)?.tree()?;
    let Some(id) = tree.get_name(FILE).map(|e| e.id()) else { return Ok(String::new()) };
    if let Ok(last) = LAST_TEXT.lock()
        && let Some((_, text)) = last.as_ref().filter(|(b, _)| *b == id)
    {
        return Ok(text.to_string());
    }
    let text = String::from_utf8_lossy(repo.find_blob(id)?.content()).into_owned();
    if let Ok(mut last) = LAST_TEXT.lock() {
        *last = Some((id, std::sync::Arc::from(text.as_str())));
    }
    Ok(text)
}

fn entries_at(repo: &Repository, commit: Oid) -> Result<Vec<Entry>, LedgerError> {
    parse(&text_at(repo, commit)?)
}

fn git(dir: &Path, args: &[&str]) -> Result<std::process::Output, LedgerError> {
    std::process::Command::new("git").arg("-C").arg(dir).args(args).output().map_err(|e| LedgerError::Push(format!("running git: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn line(request: &str) -> Entry {
        Entry { action: "grant".into(), request: request.into(), result: "ok".into(), access: Some("user".into()), ..Entry::default() }
    }

    /// The ledger parsed on several threads is the one thread's: the same
    /// entries in the same order, and the same first corrupt line.
    #[test]
    fn parsing_on_threads_equals_one_thread() {
        let mut text = String::new();
        for i in 0..500 {
            text.push_str(&serde_json::to_string(&line(&format!("req-{i:04}"))).unwrap());
            text.push_str(if i % 7 == 0 { "\r\n\n" } else { "\n" });
        }
        let one = parse_on(&text, 1).unwrap();
        assert_eq!(one.len(), 500);
        assert_eq!(one[499].request, "req-0499");
        for threads in [2, 3, 8, 1000] {
            assert!(line_chunks(&text, threads).len() > 1, "{threads} threads: one chunk");
            assert_eq!(parse_on(&text, threads).unwrap(), one, "{threads} threads");
        }
        // Two corrupt lines: the first one is named, whichever thread read it.
        let mut lines: Vec<&str> = text.split('\n').collect();
        lines[400] = "{not json";
        lines[100] = "{\"time\": 1}";
        let bad = lines.join("\n");
        let want = parse_on(&bad, 1).unwrap_err().to_string();
        assert!(want.contains("line 101:"), "{want}");
        for threads in [2, 3, 8] {
            assert_eq!(parse_on(&bad, threads).unwrap_err().to_string(), want, "{threads} threads");
        }
    }

    /// Issue 14, what broke 4: two writers on one repository. The loser of the
    /// compare-and-swap re-reads and appends its lines on the new head: both
    /// writers' lines are there, once each.
    #[test]
    fn a_lost_compare_and_swap_rebases_by_identity() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let mut first = Ledger::read(&repo).unwrap();
        let mut second = Ledger::read(&repo).unwrap();
        first.append(&repo, &[line("a")], "first").unwrap();
        second.append(&repo, &[line("b")], "second").unwrap();
        second.append(&repo, &[line("c")], "second again").unwrap();
        first.append(&repo, &[line("d")], "first again").unwrap();
        let l = Ledger::read(&repo).unwrap();
        let requests: Vec<&str> = l.entries.iter().map(|e| e.request.as_str()).collect();
        assert_eq!(requests, vec!["a", "b", "c", "d"]);
        let ids: BTreeSet<String> = l.entries.iter().map(Entry::identity).collect();
        assert_eq!(ids.len(), 4);
        assert!(l.entries.iter().all(|e| e.run.is_some()));
    }

    /// Reading versions in turn (the cache of the last text read) always gives
    /// each commit its own text, also when a version is read again.
    #[test]
    fn each_version_reads_as_itself_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let mut l = Ledger::read(&repo).unwrap();
        let one = l.append(&repo, &[line("a")], "one").unwrap();
        let two = l.append(&repo, &[line("b")], "two").unwrap();
        let requests = |c: Oid| read_at(&repo, c).unwrap().1.iter().map(|e| e.request.clone()).collect::<Vec<_>>();
        for _ in 0..2 {
            assert_eq!(requests(two), ["a", "b"]);
            assert_eq!(requests(two), ["a", "b"]);
            assert_eq!(requests(one), ["a"]);
        }
        assert_eq!(Ledger::read(&repo).unwrap().entries.len(), 2);
    }

    #[test]
    fn identity_ignores_time_and_falls_back_to_the_whole_line() {
        let mut a = Entry { run: Some("r1".into()), ..line("x") };
        let b = Entry { time: Utc::now(), ..a.clone() };
        assert_eq!(a.identity(), b.identity());
        a.run = None;
        assert_ne!(a.identity(), Entry { time: Utc::now(), ..a.clone() }.identity(), "old lines: the whole text");
    }

    /// The append-only check's texts, read through blob ids of prefixes of
    /// the newest version, say exactly what reading every version says, for
    /// every pair of versions: appends, an edited middle version, a cut in
    /// the middle of a line, a version that does not parse, one without the
    /// file, one where the file is a directory.
    #[test]
    fn chain_texts_equal_reading_every_version() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let sig = Signature::new("g", "g@example.com", &git2::Time::new(1_790_000_000, 0)).unwrap();
        let lines: Vec<String> = (0..12).map(|i| serde_json::to_string(&line(&format!("r{i}"))).unwrap() + "\n").collect();
        let upto = |n: usize| lines[..n].concat();
        // Oldest first; `None`: no ledger file; `Some(Err(()))`: a directory.
        let versions: Vec<Option<Result<String, ()>>> = vec![
            None,
            Some(Ok(String::new())),
            Some(Ok(upto(1))),
            Some(Ok(upto(3))),
            Some(Ok(upto(3).replace("r1", "rX"))),
            Some(Ok(upto(4)[..upto(4).len() - 7].to_string())),
            Some(Ok(upto(4) + "not json\n")),
            Some(Err(())),
            Some(Ok(upto(6))),
            Some(Ok(upto(12))),
        ];
        let mut parent: Option<Oid> = None;
        let mut chain = Vec::new();
        for v in &versions {
            let mut tb = repo.treebuilder(None).unwrap();
            match v {
                None => {}
                Some(Ok(text)) => {
                    tb.insert(FILE, repo.blob(text.as_bytes()).unwrap(), 0o100644).unwrap();
                }
                Some(Err(())) => {
                    let mut sub = repo.treebuilder(None).unwrap();
                    sub.insert("x", repo.blob(b"x").unwrap(), 0o100644).unwrap();
                    tb.insert(FILE, sub.write().unwrap(), 0o040000).unwrap();
                }
            }
            let tree = repo.find_tree(tb.write().unwrap()).unwrap();
            let parents: Vec<git2::Commit> = parent.iter().map(|p| repo.find_commit(*p).unwrap()).collect();
            let refs: Vec<&git2::Commit> = parents.iter().collect();
            let c = repo.commit(None, &sig, &sig, "ledger", &tree, &refs).unwrap();
            chain.push(c);
            parent = Some(c);
        }
        chain.reverse();
        let read = |c: Oid| read_at(&repo, c).map(|(t, _)| t).unwrap_or_default();
        let texts = ChainTexts::new(&repo, &chain, None);
        // Most versions are prefixes of the newest: not read (else this proves nothing).
        assert_eq!(texts.prefix.iter().filter(|p| p.is_some()).count(), 6, "{:?}", texts.prefix);
        for i in 0..chain.len() {
            assert_eq!(texts.text(&repo, &chain, i), read(chain[i]), "version {i}");
            for j in 0..chain.len() {
                assert_eq!(texts.starts(&repo, &chain, j, i), read(chain[j]).starts_with(&read(chain[i])), "{j} starts with {i}");
            }
        }
        // A known text that is the newest version's stands for it; another is ignored.
        for known in [upto(12), upto(11)] {
            let with = ChainTexts::new(&repo, &chain, Some(&known));
            assert_eq!(with.prefix, texts.prefix);
            assert_eq!(with.text(&repo, &chain, 0), read(chain[0]));
        }
        // A newest version that does not parse stands for nothing: every text is read.
        let broken = ChainTexts::new(&repo, &chain[3..], None);
        assert!(broken.prefix.iter().all(Option::is_none));
        for i in 0..chain.len() - 3 {
            assert_eq!(broken.text(&repo, &chain[3..], i), read(chain[i + 3]));
        }
    }
}
