//! The run lock: one gitgrant run at a time changes the providers and writes
//! the ledger of a repository.
//!
//! An advisory lock file, `.git/gitgrant/run.lock`, created exclusively and
//! holding its owner (user, pid, host, command, start time). A second run
//! waits a bounded time for it, then gives up with a message naming the
//! holder. A lock is *stale* when its holder is a process on this host that
//! no longer exists (a run killed with SIGKILL), or when it is older than a
//! bound (a run on a machine that vanished); a stale lock is reported and
//! taken over.
//!
//! While the run lock is held, no other gitgrant writes the ledger ref, so a
//! `refs/heads/gitgrant-ledger.lock` (or its remote-tracking twin) left by a
//! killed run can only be stale: [`clear_stale_ref_locks`] removes them,
//! saying so, instead of failing every later run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use git2::Repository;
use serde::{Deserialize, Serialize};

/// Who holds the lock (the file's JSON content).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub owner: String,
    pub pid: u32,
    pub host: String,
    pub command: String,
    pub since: DateTime<Utc>,
    /// Random: tells this run's lock from a successor's when releasing.
    pub token: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` by {} (pid {} on {}) since {}", self.command, self.owner, self.pid, self.host, crate::model::stamp(&self.since))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another gitgrant run holds {path}: {holder}; waited {waited}s")]
    Busy { path: String, holder: String, waited: u64 },
    #[error("the run lock {0}: {1}")]
    Io(String, String),
}

/// A held run lock; released (the file removed) when dropped.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    token: String,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Only our own lock: a successor that took over a lock we held too long keeps its.
        if read_holder(&self.path).is_some_and(|h| h.token == self.token) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Bounds for [`acquire`].
#[derive(Debug, Clone, Copy)]
pub struct LockOptions {
    /// How long to wait for a live holder.
    pub wait: Duration,
    /// A lock older than this is stale whoever holds it.
    pub stale_after: Duration,
}

pub fn lock_path(repo: &Repository) -> PathBuf {
    repo.path().join("gitgrant").join("run.lock")
}

/// Takes the run lock of `repo` for `command`, waiting up to `opts.wait`
/// for a live holder and taking over a stale one. `notes` gets a line for
/// every stale lock taken over.
pub fn acquire(repo: &Repository, command: &str, opts: LockOptions, notes: &mut Vec<String>) -> Result<RunLock, LockError> {
    let path = lock_path(repo);
    let io = |e: std::io::Error| LockError::Io(path.display().to_string(), e.to_string());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let me = Holder {
        owner: std::env::var("USER").or_else(|_| std::env::var("GITHUB_ACTOR")).unwrap_or_else(|_| "unknown".into()),
        pid: std::process::id(),
        host: hostname(),
        command: command.to_string(),
        since: Utc::now(),
        token: format!("{:016x}", fastrand::u64(..)),
    };
    let body = serde_json::to_vec(&me).map_err(|e| LockError::Io(path.display().to_string(), e.to_string()))?;
    let started = std::time::Instant::now();
    loop {
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                use std::io::Write;
                f.write_all(&body).and_then(|()| f.sync_all()).map_err(io)?;
                return Ok(RunLock { path, token: me.token });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        let holder = read_holder(&path);
        if let Some(why) = stale(&path, holder.as_ref(), &me.host, opts.stale_after) {
            // Rename first: of two runs taking over at once, only one wins the rename.
            let aside = path.with_extension(format!("stale.{}", me.pid));
            if std::fs::rename(&path, &aside).is_ok() {
                let _ = std::fs::remove_file(&aside);
                let who = holder.map_or_else(|| "an unreadable holder".to_string(), |h| h.to_string());
                notes.push(format!("took over a stale run lock {} held by {who}: {why}", path.display()));
            }
            continue;
        }
        if started.elapsed() >= opts.wait {
            let holder = holder.map_or_else(|| "a run that is still writing its lock".to_string(), |h| h.to_string());
            return Err(LockError::Busy { path: path.display().to_string(), holder, waited: opts.wait.as_secs() });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Why the lock at `path` is stale, or `None` when its holder may be alive.
fn stale(path: &Path, holder: Option<&Holder>, host: &str, stale_after: Duration) -> Option<String> {
    let age = std::fs::metadata(path).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok()).unwrap_or_default();
    match holder {
        // Half-written by a run killed between create and write.
        None if age > Duration::from_secs(2) => Some("its content is unreadable (a run killed while taking it)".into()),
        None => None,
        Some(h) if h.host == host && !pid_alive(h.pid) => Some(format!("process {} no longer runs on this host", h.pid)),
        Some(_) if age > stale_after => Some(format!("older than {} s", stale_after.as_secs())),
        Some(_) => None,
    }
}

fn read_holder(path: &Path) -> Option<Holder> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Is `pid` a live process? Without `/proc` it cannot tell and says yes
/// (the age bound then decides).
fn pid_alive(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    // A zombie (killed, not yet reaped by its parent) holds nothing.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Removes ref lock files of the ledger branch (local and remote-tracking)
/// left by a killed run. Call only while holding the run lock: then no
/// other gitgrant can be writing those refs. Returns what it removed, in words.
pub fn clear_stale_ref_locks(repo: &Repository) -> Vec<String> {
    let mut out = Vec::new();
    let mut candidates = vec![repo.path().join(format!("{}.lock", super::LOCAL_REF))];
    if let Ok(remotes) = repo.remotes() {
        for r in (0..remotes.len()).filter_map(|i| remotes.get(i).ok().flatten()) {
            candidates.push(repo.path().join(format!("refs/remotes/{r}/{}.lock", super::BRANCH)));
        }
    }
    for p in candidates {
        if p.exists() && std::fs::remove_file(&p).is_ok() {
            out.push(format!("removed a stale ref lock {} (left by a run killed while writing the ledger; the ledger itself is intact)", p.display()));
        }
    }
    out
}

/// Fails unless the ledger can be written: the object database and the
/// local ref directory accept new files. Checked before any provider call.
pub fn check_writable(repo: &Repository) -> Result<(), String> {
    for dir in [repo.path().join("objects"), repo.path().join("refs").join("heads")] {
        let probe = dir.join(format!(".gitgrant-probe-{}", std::process::id()));
        match std::fs::write(&probe, b"") {
            Ok(()) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(e) => return Err(format!("{} is not writable ({e}); the ledger could not be recorded, so nothing was changed", dir.display())),
        }
    }
    Ok(())
}
