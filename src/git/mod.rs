//! The git questions gitgrant asks, in one place: which commit is main, what
//! a name resolves to, merge-bases, commit times, trailers, short ids, and
//! who wrote the commits a landing brought in.
//!
//! Callers open the repository once ([`open`]) and pass the handle down:
//! judging a hundred landings in one `reconcile` run must not reopen it a
//! hundred times. Reading *trees* at a revision is [`crate::source::GitTree`].

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use git2::{Oid, Repository};

/// Why the repository or a revision could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("`{0}` is not a git repository: {1}")]
    NotARepo(String, git2::Error),
    #[error("cannot resolve `{0}`: {1} (fetch it first, e.g. `git fetch origin main`)")]
    BadRef(String, git2::Error),
    #[error("`{0}` and `{1}` have no common ancestor")]
    NoMergeBase(String, String),
    #[error("reading the repository: {0}")]
    Git(#[from] git2::Error),
}

/// Opens the repository at `dir` (or the one containing it).
pub fn open(dir: &Path) -> Result<Repository, GitError> {
    Repository::open(dir).map_err(|e| GitError::NotARepo(dir.display().to_string(), e))
}

/// Resolves a ref or commit-ish to a commit id.
pub fn resolve(repo: &Repository, name: &str) -> Result<Oid, GitError> {
    repo.revparse_single(name).and_then(|o| o.peel_to_commit()).map(|c| c.id()).map_err(|e| GitError::BadRef(name.to_string(), e))
}

/// The head commit of the local repository, if it has one.
pub fn head_commit(repo: &Repository) -> Option<Oid> {
    repo.head().ok().and_then(|h| h.peel_to_commit().ok()).map(|c| c.id())
}

/// The branch whose first-parent history is "main": `main`, else
/// `origin/main`, else `master`, else HEAD.
pub fn main_commit(repo: &Repository) -> Option<Oid> {
    for name in ["refs/heads/main", "refs/remotes/origin/main", "refs/heads/master"] {
        if let Ok(oid) = repo.refname_to_id(name) {
            return Some(oid);
        }
    }
    head_commit(repo)
}

/// What a shallow clone is told: its history is cut off, so requester facts,
/// landings and approvals read from it would be wrong, not merely slow.
pub const SHALLOW_HINT: &str = "this is a shallow clone: its history is cut off, so gitgrant cannot judge requester history, landings or approvals from it. \
Fetch the whole history: `git fetch --unshallow` (GitHub Actions: `actions/checkout` with `fetch-depth: 0`)";

/// The error every history reader returns in a shallow clone.
pub fn shallow_error() -> git2::Error {
    git2::Error::new(git2::ErrorCode::GenericError, git2::ErrorClass::Repository, SHALLOW_HINT)
}

/// Refuses a shallow repository (exit 2 at every command that reads history).
pub fn refuse_shallow(repo: &Repository) -> Result<(), git2::Error> {
    if repo.is_shallow() { Err(shallow_error()) } else { Ok(()) }
}

/// The merge-base of `a` and `b`; the names are for the message. A shallow
/// clone is refused first (its missing merge-base is not the real problem).
pub fn merge_base(repo: &Repository, a: Oid, b: Oid, names: (&str, &str)) -> Result<Oid, GitError> {
    refuse_shallow(repo)?;
    repo.merge_base(a, b).map_err(|_| GitError::NoMergeBase(names.0.to_string(), names.1.to_string()))
}

/// When `c` was committed (UTC; the epoch if out of range).
pub fn commit_time(c: &git2::Commit) -> DateTime<Utc> {
    Utc.timestamp_opt(c.time().seconds(), 0).single().unwrap_or_default()
}

/// When the commit `id` was made, if it exists.
pub fn time_of(repo: &Repository, id: &str) -> Option<DateTime<Utc>> {
    let c = repo.find_commit(Oid::from_str(id).ok()?).ok()?;
    Some(commit_time(&c))
}

/// The first ten characters of a commit id, for messages.
pub fn short(id: &str) -> &str {
    id.get(..id.len().min(10)).unwrap_or(id)
}

/// Parses `Key: value` trailers (key case-insensitive) from the last
/// paragraph of a commit message. `Approved-by` has its own, stricter
/// parser: [`crate::approval::parse_trailers`].
pub fn trailers(message: &str, key: &str) -> Vec<String> {
    let last = message.trim_end().rsplit("\n\n").next().unwrap_or("");
    last.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(key).then(|| v.trim().to_string())
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// The PR number a landing commit names, if any: "Merge pull request #N"
/// or a squash title "... (#N)".
pub fn pr_number(summary: &str) -> Option<u64> {
    if let Some(rest) = summary.strip_prefix("Merge pull request #") {
        return rest.split_whitespace().next()?.parse().ok();
    }
    let trimmed = summary.trim_end().strip_suffix(')')?;
    let open = trimmed.rfind("(#")?;
    trimmed.get(open + 2..)?.parse().ok()
}

/// GitHub logins guessed from a git identity: the `NNN+login@users.noreply`
/// form, else the e-mail's local part, and the name when it is a valid login.
pub fn login_of(sig: &git2::Signature) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(email) = sig.email() {
        let local = email.split('@').next().unwrap_or("");
        let local = local.split_once('+').map_or(local, |(_, l)| l);
        if crate::approval::is_valid_login(local) {
            out.push(local.to_ascii_lowercase());
        }
    }
    if let Ok(name) = sig.name()
        && crate::approval::is_valid_login(name)
    {
        out.push(name.to_ascii_lowercase());
    }
    out.dedup();
    out
}

/// The commits a landing brought to main: the commit itself, and for a
/// merge every commit reachable from its other parents but not from its
/// first parent. No cap: an exclusion list that stops early lets the
/// author of commit 1,001 approve their own change.
pub fn landed_commits(repo: &Repository, commit: &git2::Commit) -> Result<Vec<Oid>, git2::Error> {
    let mut out = vec![commit.id()];
    if commit.parent_count() > 1 {
        let mut walk = repo.revwalk()?;
        for p in commit.parent_ids().skip(1) {
            walk.push(p)?;
        }
        walk.hide(commit.parent_id(0)?)?;
        for oid in walk {
            out.push(oid?);
        }
    }
    Ok(out)
}

/// Authors and committers (as logins) of the commits a landing brought in.
/// Neither may approve it.
pub fn landed_authors(repo: &Repository, commit: &git2::Commit) -> Result<BTreeSet<String>, git2::Error> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    for oid in landed_commits(repo, commit)? {
        let c = repo.find_commit(oid)?;
        out.extend(login_of(&c.author()));
        // The merge commit's committer is whoever (or whatever bot) merged it;
        // the brought-in commits' committers wrote or rebased them.
        if oid != commit.id() {
            out.extend(login_of(&c.committer()));
        }
    }
    Ok(out)
}

/// Authors and committers of the commits in `head` but not in `base` (a
/// PR's own commits, read locally: GitHub's list stops at 250).
pub fn authors_between(repo: &Repository, base: Oid, head: Oid) -> Result<BTreeSet<String>, git2::Error> {
    let mut walk = repo.revwalk()?;
    walk.push(head)?;
    walk.hide(base)?;
    let mut out = BTreeSet::new();
    for oid in walk {
        let c = repo.find_commit(oid?)?;
        out.extend(login_of(&c.author()));
        out.extend(login_of(&c.committer()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pr_numbers() {
        assert_eq!(pr_number("Merge pull request #12 from a/b"), Some(12));
        assert_eq!(pr_number("Add access (#7)"), Some(7));
        assert_eq!(pr_number("Add access"), None);
        assert_eq!(pr_number("(#x)"), None);
    }

    #[test]
    fn short_ids() {
        assert_eq!(short("0123456789abcdef"), "0123456789");
        assert_eq!(short("abc"), "abc");
    }
}
