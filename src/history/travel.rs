//! The index that travels: a copy of the history index on the branch
//! [`INDEX_BRANCH`] (a parentless commit whose tree holds one blob), which
//! the reconciler pushes. A clone with the whole history (`fetch-depth: 0`)
//! already has every branch as `refs/remotes/<remote>/…`, so a fresh clone's
//! PR check walks only the commits main gained since, with no extra fetch.
//!
//! Why a branch and not a custom ref: the facts in it (first time, early
//! revocations) set risk scores, so only the reconciler may write it. A
//! branch can be protected by the forge (a ruleset: only the reconciler's
//! identity may update it), exactly like the ledger branch, which PR checks
//! already read for the same facts; a ref outside `refs/heads/` cannot.
//!
//! The ref is a cache, never a source of truth: what it holds goes through
//! exactly the checks a local index does ([`super::read_history_cached_with`]):
//! a corrupt or other-format blob, a covered commit that is not on main's
//! first-parent chain (foreign or rewritten), or a root commit that has a
//! parent here (built in a shallow clone) makes the read a cold walk.

use std::path::Path;

use git2::{Oid, Repository};

/// The branch the reconciler pushes the index to.
pub const INDEX_BRANCH: &str = "gitgrant-index";
/// Its local ref.
pub const INDEX_REF: &str = "refs/heads/gitgrant-index";
/// The blob's name in the ref's tree.
const BLOB: &str = "history-index.bin";

/// Whether this process may start from the travelling index. The commands
/// that act on what they read (`reconcile`, `monitor`, `revoke`, `audit
/// verify`) turn it off: they are the last line of defence, so they trust
/// only a walk of their own clone (a fresh CI clone walks cold, seconds even
/// on 100,000 commits), and then publish what they computed.
static SEED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Never seed this process's history reads from [`INDEX_BRANCH`].
pub fn distrust() {
    SEED.store(false, std::sync::atomic::Ordering::Relaxed);
}

/// When there is no local index at `path`, copies the one on [`INDEX_BRANCH`]
/// (the local branch, else a remote-tracking one) there (best effort: without it the read is cold, as before). The copy is
/// then read and verified like any local index.
pub fn seed(repo: &Repository, path: &Path) {
    seed_if(repo, path, SEED.load(std::sync::atomic::Ordering::Relaxed));
}

fn seed_if(repo: &Repository, path: &Path, trusted: bool) {
    if path.exists() || !trusted {
        return;
    }
    let Some(bytes) = read_ref(repo) else { return };
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = path.with_extension(format!("seed.{}", std::process::id()));
    if std::fs::write(&tmp, bytes).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// The index blob of the local branch, else of the first remote's
/// remote-tracking branch that has one.
fn index_blob(repo: &Repository) -> Option<Oid> {
    let mut remotes: Vec<String> = Vec::new();
    if let Ok(names) = repo.remotes() {
        // Names that are not UTF-8 are skipped.
        for name in names.iter().flatten().flatten() {
            remotes.push(format!("refs/remotes/{name}/{INDEX_BRANCH}"));
        }
    }
    std::iter::once(INDEX_REF.to_string()).chain(remotes).find_map(|name| {
        let commit = repo.find_reference(&name).ok()?.peel_to_commit().ok()?;
        Some(commit.tree().ok()?.get_name(BLOB)?.id())
    })
}

fn read_ref(repo: &Repository) -> Option<Vec<u8>> {
    Some(repo.find_blob(index_blob(repo)?).ok()?.content().to_vec())
}

/// Stores the local index at `path` on [`INDEX_BRANCH`] (a new parentless
/// commit: the branch keeps no history of caches). Returns the commit, or
/// `None` when there is no index or the branch (local, else the remote's)
/// already holds this very blob.
pub fn publish(repo: &Repository, path: &Path, covers: &str) -> Result<Option<Oid>, git2::Error> {
    let Ok(bytes) = std::fs::read(path) else { return Ok(None) };
    let blob = repo.blob(&bytes)?;
    if index_blob(repo) == Some(blob) {
        return Ok(None);
    }
    let mut tb = repo.treebuilder(None)?;
    tb.insert(BLOB, blob, 0o100644)?;
    let tree = repo.find_tree(tb.write()?)?;
    let sig = match repo.signature() {
        Ok(s) => s.to_owned(),
        Err(_) => git2::Signature::now("gitgrant", "gitgrant@localhost")?,
    };
    let message = format!("gitgrant history index covering {covers}\n\nA cache: verified on every read, rebuilt when it does not match main.\n");
    let oid = repo.commit(None, &sig, &sig, &message, &tree, &[])?;
    repo.reference(INDEX_REF, oid, true, "gitgrant: history index")?;
    Ok(Some(oid))
}

/// Pushes [`INDEX_BRANCH`] to `remote` (forced: each index replaces the
/// last; the forge's rule for the branch must let the reconciler do so).
/// Nothing to do without the remote or the ref. Uses the `git` command, so
/// it authenticates as the clone does.
pub fn push(repo: &Repository, remote: &str) -> Result<(), String> {
    if repo.find_remote(remote).is_err() || repo.find_reference(INDEX_REF).is_err() {
        return Ok(());
    }
    let dir = repo.workdir().unwrap_or_else(|| repo.path());
    let refspec = format!("+{INDEX_REF}:{INDEX_REF}");
    let out =
        std::process::Command::new("git").arg("-C").arg(dir).args(["push", "--quiet", remote, &refspec]).output().map_err(|e| format!("running git: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).trim().to_string()) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_branch_seeds_a_missing_index_only_when_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let source = dir.path().join("source.bin");
        std::fs::write(&source, b"index bytes").unwrap();
        assert!(publish(&repo, &source, "main").unwrap().is_some());
        assert!(publish(&repo, &source, "main").unwrap().is_none(), "the same blob is not published twice");

        let distrusted = dir.path().join("a/history-index.bin");
        seed_if(&repo, &distrusted, false);
        assert!(!distrusted.exists(), "reconcile and friends never start from the branch");

        let trusted = dir.path().join("b/history-index.bin");
        seed_if(&repo, &trusted, true);
        assert_eq!(std::fs::read(&trusted).unwrap(), b"index bytes");
    }
}
