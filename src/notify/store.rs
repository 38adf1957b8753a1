//! Where the outbox lives: the ref `refs/gitgrant/notify` (a commit whose
//! tree holds `outbox.json`), fetched from and pushed to the same remote as
//! the ledger, so a fresh CI clone knows what was delivered.
//!
//! The outbox is a set of `sink/event-id` pairs, so concurrent writers merge
//! by union: a rejected push is fetched, united and pushed again.

use std::path::Path;

use git2::{Oid, Repository, Signature};

use super::Outbox;

/// The ref holding the outbox.
pub const REF: &str = "refs/gitgrant/notify";
const FILE: &str = "outbox.json";

fn git(dir: &Path, args: &[&str]) -> Result<std::process::Output, String> {
    std::process::Command::new("git").arg("-C").arg(dir).args(args).output().map_err(|e| format!("running git: {e}"))
}

fn remote_ref(remote: &str) -> String {
    format!("refs/gitgrant/remotes/{remote}/notify")
}

/// Fetches the remote's outbox (when `remote` is configured) into
/// `refs/gitgrant/remotes/<remote>/notify`. A remote without one is fine.
pub fn fetch(repo_dir: &Path, remote: &str) -> Result<(), String> {
    let repo = Repository::open(repo_dir).map_err(|e| e.to_string())?;
    if repo.find_remote(remote).is_err() {
        return Ok(());
    }
    let refspec = format!("+{REF}:{}", remote_ref(remote));
    let out = git(repo_dir, &["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote, &refspec])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || stderr.contains("couldn't find remote ref") {
        Ok(())
    } else {
        Err(format!("fetching the notification outbox from `{remote}`: {}", stderr.trim()))
    }
}

fn read_ref(repo: &Repository, name: &str) -> Result<(Option<Oid>, Outbox), String> {
    let Ok(oid) = repo.refname_to_id(name) else { return Ok((None, Outbox::default())) };
    let tree = repo.find_commit(oid).and_then(|c| c.tree()).map_err(|e| e.to_string())?;
    let Some(entry) = tree.get_name(FILE) else { return Ok((Some(oid), Outbox::default())) };
    let blob = repo.find_blob(entry.id()).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(blob.content());
    let outbox = Outbox::from_json(&text).map_err(|e| format!("{name}:{FILE} is not a gitgrant outbox: {e}"))?;
    Ok((Some(oid), outbox))
}

/// The outbox: the union of the local ref and the fetched remote one.
pub fn load(repo: &Repository, remote: &str) -> Result<Outbox, String> {
    let (_, mut local) = read_ref(repo, REF)?;
    let (_, theirs) = read_ref(repo, &remote_ref(remote))?;
    local.delivered.extend(theirs.delivered);
    Ok(local)
}

/// Writes `outbox` (united with what is there) as a new commit on the local
/// ref, then pushes it when `push` and the remote exists; a rejected push is
/// fetched, united and retried.
pub fn save(repo_dir: &Path, remote: &str, outbox: &Outbox, push: bool) -> Result<(), String> {
    let repo = Repository::open(repo_dir).map_err(|e| e.to_string())?;
    let mut all = outbox.clone();
    for _ in 0..5 {
        let (local, mine) = read_ref(&repo, REF)?;
        let (theirs_oid, theirs) = read_ref(&repo, &remote_ref(remote))?;
        all.delivered.extend(mine.delivered.iter().cloned());
        all.delivered.extend(theirs.delivered.iter().cloned());
        let changed = all != mine || theirs_oid.is_some_and(|t| Some(t) != local && !local.is_some_and(|l| repo.graph_descendant_of(l, t).unwrap_or(false)));
        if changed {
            let blob = repo.blob(all.to_json().as_bytes()).map_err(|e| e.to_string())?;
            let mut tb = repo.treebuilder(None).map_err(|e| e.to_string())?;
            tb.insert(FILE, blob, 0o100644).map_err(|e| e.to_string())?;
            let tree = tb.write().and_then(|t| repo.find_tree(t)).map_err(|e| e.to_string())?;
            let sig = repo.signature().or_else(|_| Signature::now("gitgrant", "gitgrant@localhost")).map_err(|e| e.to_string())?;
            let parents: Vec<git2::Commit> = [local, theirs_oid]
                .into_iter()
                .flatten()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .filter_map(|o| repo.find_commit(o).ok())
                .collect();
            let refs: Vec<&git2::Commit> = parents.iter().collect();
            let oid = repo.commit(None, &sig, &sig, "gitgrant: notifications delivered", &tree, &refs).map_err(|e| e.to_string())?;
            let moved = match local {
                Some(old) => repo.reference_matching(REF, oid, true, old, "gitgrant notify"),
                None => repo.reference(REF, oid, false, "gitgrant notify"),
            };
            if moved.is_err() {
                continue; // another process moved it: read again and unite
            }
        }
        if !push || repo.find_remote(remote).is_err() {
            return Ok(());
        }
        let out = git(repo_dir, &["push", "--quiet", remote, &format!("{REF}:{REF}")])?;
        if out.status.success() {
            if let Ok(head) = repo.refname_to_id(REF) {
                let _ = repo.reference(&remote_ref(remote), head, true, "gitgrant notify: pushed");
            }
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        if !(stderr.contains("non-fast-forward") || stderr.contains("rejected") || stderr.contains("fetch first")) {
            return Err(format!("pushing the notification outbox to `{remote}`: {}", stderr.trim()));
        }
        fetch(repo_dir, remote)?;
    }
    Err(format!("the notification outbox on `{remote}` kept moving; the next run records it"))
}
