//! The ledger: what reconcile actually did, as JSON lines on the
//! `gitgrant-ledger` branch. Written with git2 straight into the object
//! database (the work tree is never touched), one commit per run that
//! changed anything. Each commit's parent is the previous ledger head and
//! its message names it (`Previous-ledger:`), so a rewrite is detectable.
//!
//! Rule: nothing is recorded that did not happen, and nothing that happened
//! is left out. A run killed between a provider call and the ledger commit
//! leaves a grant the ledger does not know; the next run sees it at the
//! provider and records it then, marked `observed`.

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
}

impl Entry {
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
    #[error("ledger branch `{BRANCH}` moved while this run was writing it (another run?); rerun reconcile")]
    Raced,
    #[error("pushing `{BRANCH}`: {0}")]
    Push(String),
}

/// The ledger as of its branch head (empty when the branch does not exist).
#[derive(Debug, Default)]
pub struct Ledger {
    pub head: Option<Oid>,
    pub entries: Vec<Entry>,
    text: String,
}

impl Ledger {
    /// An empty ledger with no branch, for unit tests of code that queries one.
    #[cfg(test)]
    pub(crate) fn empty() -> Ledger {
        Ledger::default()
    }

    pub fn read(repo: &Repository) -> Result<Ledger, LedgerError> {
        let head = match repo.refname_to_id(&format!("refs/heads/{BRANCH}")) {
            Ok(oid) => Some(oid),
            Err(e) if e.code() == git2::ErrorCode::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let text = match head {
            None => String::new(),
            Some(h) => text_at(repo, h)?,
        };
        let entries = parse(&text)?;
        Ok(Ledger { head, entries, text })
    }

    /// Grants the ledger says are in place: granted (or observed) and not revoked since.
    pub fn open_grants(&self) -> BTreeSet<GrantKey> {
        self.open_until(&["revoke"]).into_keys().collect()
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

    /// Appends `entries` in one commit on the ledger branch; the ref moves
    /// only if it still points where this ledger was read (compare-and-swap).
    /// Appends `entries` (one commit) and pushes the branch to `remote` when
    /// it exists: what every command that changes the providers does last.
    pub fn record(&mut self, repo: &Repository, entries: &[Entry], summary: &str, remote: &str) -> Result<Oid, LedgerError> {
        let oid = self.append(repo, entries, summary)?;
        let dir = repo.workdir().unwrap_or_else(|| repo.path());
        push(dir, remote, summary)?;
        Ok(oid)
    }

    pub fn append(&mut self, repo: &Repository, entries: &[Entry], summary: &str) -> Result<Oid, LedgerError> {
        let mut text = self.text.clone();
        for e in entries {
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
        let refname = format!("refs/heads/{BRANCH}");
        let updated = match self.head {
            Some(old) => repo.reference_matching(&refname, oid, true, old, "gitgrant ledger"),
            None => repo.reference(&refname, oid, false, "gitgrant ledger"),
        };
        match updated {
            Ok(_) => {}
            Err(e) if matches!(e.code(), git2::ErrorCode::Modified | git2::ErrorCode::Exists) => return Err(LedgerError::Raced),
            Err(e) => return Err(e.into()),
        }
        self.head = Some(oid);
        self.text = text;
        self.entries.extend_from_slice(entries);
        Ok(oid)
    }
}

const LEDGER_README: &str = "# gitgrant ledger\n\nWritten by `gitgrant reconcile`: one JSON object per line in `ledger.jsonl`, \
one commit per run that changed anything. Append-only; each commit names the previous ledger head \
(`Previous-ledger:`), so `gitgrant audit verify` detects a rewrite. Do not edit by hand.\n";

fn parse(text: &str) -> Result<Vec<Entry>, LedgerError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| LedgerError::Corrupt { line: i + 1, message: e.to_string() }))
        .collect()
}

/// The repository's committer, or a fixed gitgrant identity in CI clones without one.
fn signature(repo: &Repository) -> Result<Signature<'static>, git2::Error> {
    match repo.signature() {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Signature::now("gitgrant", "gitgrant@localhost"),
    }
}

/// Pushes the ledger branch to `remote` when it exists. On a non-fast-forward
/// (another run pushed first) the remote ledger is fetched and the local
/// entries it lacks (those after the common ancestor) are re-appended on top
/// of it, up to three times; nothing local is dropped.
///
/// Uses the `git` command so the push authenticates the way the clone does
/// (credential helpers, the Actions checkout token).
pub fn push(repo_dir: &Path, remote: &str, summary: &str) -> Result<(), LedgerError> {
    let repo = Repository::open(repo_dir)?;
    if repo.find_remote(remote).is_err() {
        return Ok(());
    }
    let refspec = format!("refs/heads/{BRANCH}:refs/heads/{BRANCH}");
    for _ in 0..3 {
        let out = git(repo_dir, &["push", "--quiet", remote, &refspec])?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        if !(stderr.contains("non-fast-forward") || stderr.contains("rejected") || stderr.contains("fetch first")) {
            return Err(LedgerError::Push(stderr.trim().to_string()));
        }
        let fetched = git(repo_dir, &["fetch", "--quiet", remote, &format!("refs/heads/{BRANCH}")])?;
        if !fetched.status.success() {
            return Err(LedgerError::Push(String::from_utf8_lossy(&fetched.stderr).trim().to_string()));
        }
        let theirs = repo.refname_to_id("FETCH_HEAD")?;
        let local = Ledger::read(&repo)?;
        let Some(ours_head) = local.head else { return Ok(()) };
        let common = match repo.merge_base(ours_head, theirs) {
            Ok(b) => entries_at(&repo, b)?.len(),
            Err(_) => 0,
        };
        let ours: Vec<Entry> = local.entries[common.min(local.entries.len())..].to_vec();
        repo.reference(&format!("refs/heads/{BRANCH}"), theirs, true, "gitgrant ledger: rebase on remote")?;
        let mut ledger = Ledger::read(&repo)?;
        ledger.append(&repo, &ours, summary)?;
    }
    Err(LedgerError::Push("the remote ledger kept moving; rerun reconcile".into()))
}

/// The ledger text and its entries as of `commit` on the ledger branch (for audit).
pub fn read_at(repo: &Repository, commit: Oid) -> Result<(String, Vec<Entry>), LedgerError> {
    let text = text_at(repo, commit)?;
    let entries = parse(&text)?;
    Ok((text, entries))
}

fn text_at(repo: &Repository, commit: Oid) -> Result<String, LedgerError> {
    let tree = repo.find_commit(commit)?.tree()?;
    Ok(match tree.get_name(FILE) {
        None => String::new(),
        Some(e) => String::from_utf8_lossy(repo.find_blob(e.id())?.content()).into_owned(),
    })
}

fn entries_at(repo: &Repository, commit: Oid) -> Result<Vec<Entry>, LedgerError> {
    parse(&text_at(repo, commit)?)
}

fn git(dir: &Path, args: &[&str]) -> Result<std::process::Output, LedgerError> {
    std::process::Command::new("git").arg("-C").arg(dir).args(args).output().map_err(|e| LedgerError::Push(format!("running git: {e}")))
}
