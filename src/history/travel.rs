//! The index that travels: a copy of the history index on the ref
//! [`INDEX_REF`] (a parentless commit whose tree holds one blob), which the
//! reconciler pushes and CI fetches, so a fresh clone's PR check walks only
//! the commits main gained since, not the whole history.
//!
//! The ref is a cache, never a source of truth: what it holds goes through
//! exactly the checks a local index does ([`super::read_history_cached_with`]):
//! a corrupt or other-format blob, a covered commit that is not on main's
//! first-parent chain (foreign or rewritten), or a root commit that has a
//! parent here (built in a shallow clone) makes the read a cold walk.

use std::path::Path;

use git2::{Oid, Repository};

/// The ref the reconciler pushes the index to (outside `refs/heads/`: no
/// branch to protect, nothing a checkout or a PR lists).
pub const INDEX_REF: &str = "refs/gitgrant/index";
/// The blob's name in the ref's tree.
const BLOB: &str = "history-index.bin";

/// When there is no local index at `path`, copies the one on [`INDEX_REF`]
/// there (best effort: without it the read is cold, as before). The copy is
/// then read and verified like any local index.
pub fn seed(repo: &Repository, path: &Path) {
    if path.exists() {
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

fn read_ref(repo: &Repository) -> Option<Vec<u8>> {
    let commit = repo.find_reference(INDEX_REF).ok()?.peel_to_commit().ok()?;
    let entry = commit.tree().ok()?.get_name(BLOB)?.id();
    Some(repo.find_blob(entry).ok()?.content().to_vec())
}

/// Stores the local index at `path` on [`INDEX_REF`] (a new parentless
/// commit: the ref keeps no history of caches). Returns the commit, or `None`
/// when there is no index or the ref already holds this very blob.
pub fn publish(repo: &Repository, path: &Path, covers: &str) -> Result<Option<Oid>, git2::Error> {
    let Ok(bytes) = std::fs::read(path) else { return Ok(None) };
    let blob = repo.blob(&bytes)?;
    let current =
        repo.find_reference(INDEX_REF).ok().and_then(|r| r.peel_to_commit().ok()).and_then(|c| c.tree().ok()).and_then(|t| t.get_name(BLOB).map(|e| e.id()));
    if current == Some(blob) {
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

/// Pushes [`INDEX_REF`] to `remote` (forced: each index replaces the last).
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
