//! The `local` provider: grants kept in a JSON file. It is the embedded
//! default for the demo and the tests, and the in-memory-style fake of the
//! [`Provider`] trait. Writes are atomic (temp file + rename) under an
//! exclusive lock on a sibling `.lock` file, so concurrent runs never lose
//! or half-write a grant.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Access, GrantSpec, Held, Provider, ProviderError};
use crate::model::policy::ProviderKind;

pub const DEFAULT_STATE: &str = ".gitgrant/local-grants.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    grants: Vec<Stored>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    held: Held,
    granted_at: DateTime<Utc>,
}

pub struct LocalProvider {
    resource: String,
    path: PathBuf,
    now: DateTime<Utc>,
}

impl LocalProvider {
    /// `state` is relative to the repository unless absolute.
    pub fn new(repo: &Path, resource: &str, state: Option<&str>, now: DateTime<Utc>) -> Self {
        let p = Path::new(state.unwrap_or(DEFAULT_STATE));
        let path = if p.is_absolute() { p.to_path_buf() } else { repo.join(p) };
        LocalProvider { resource: resource.to_string(), path, now }
    }

    fn err(&self, e: impl std::fmt::Display) -> ProviderError {
        ProviderError::Permanent { provider: ProviderKind::Local, resource: self.resource.clone(), message: format!("{}: {e}", self.path.display()) }
    }

    /// Removes `<state>.tmp.<pid>` files left by runs killed mid-write (older versions).
    fn remove_stale_temps(&self) {
        let (Some(dir), Some(stem)) = (self.path.parent(), self.path.file_stem().and_then(|s| s.to_str())) else { return };
        let prefix = format!("{stem}.tmp.");
        let Ok(list) = std::fs::read_dir(dir) else { return };
        for e in list.flatten() {
            if e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix) && n[prefix.len()..].bytes().all(|b| b.is_ascii_digit())) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Runs `f` on the state under the lock; writes it back when `f` changed it.
    fn with_state<T>(&self, write: bool, f: impl FnOnce(&mut State) -> T) -> Result<T, ProviderError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.err(e))?;
        }
        let lock_path = self.path.with_extension("lock");
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(|e| self.err(e))?;
        lock.lock().map_err(|e| self.err(e))?;
        let mut state: State = match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.err(format!("corrupt state file ({e}); fix or remove it")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(self.err(e)),
        };
        let out = f(&mut state);
        if write {
            // One temp name (we hold the lock): a run killed mid-write leaves at most
            // this file, which the next write replaces. Older runs used `tmp.<pid>`.
            self.remove_stale_temps();
            let tmp = self.path.with_extension("tmp");
            let bytes = serde_json::to_vec_pretty(&state).map_err(|e| self.err(e))?;
            std::fs::write(&tmp, bytes).map_err(|e| self.err(e))?;
            std::fs::rename(&tmp, &self.path).map_err(|e| self.err(e))?;
        }
        let _ = lock.unlock();
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Provider for LocalProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Local
    }
    fn resource(&self) -> &str {
        &self.resource
    }
    fn native_expiry(&self) -> bool {
        false
    }
    fn marker(&self) -> String {
        format!("entry in {}", self.path.display())
    }

    fn access_for(&self, _request: &str, grant: &serde_json::Value) -> Result<String, ProviderError> {
        grant.get("role").and_then(|r| r.as_str()).map(str::to_string).ok_or_else(|| self.err("the role's `local` grant has no `role`"))
    }

    async fn list(&self) -> Result<Vec<Held>, ProviderError> {
        let resource = self.resource.clone();
        self.with_state(false, |s| s.grants.iter().filter(|g| g.held.access.resource == resource).map(|g| g.held.clone()).collect())
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Held, ProviderError> {
        let held = Held { access: spec.access.clone(), requests: spec.requests.clone(), end: Some(spec.end), handle: key(&spec.access) };
        let now = self.now;
        self.with_state(true, |s| {
            match s.grants.iter_mut().find(|g| g.held.access == spec.access) {
                Some(g) => g.held = held.clone(),
                None => s.grants.push(Stored { held: held.clone(), granted_at: now }),
            }
            s.grants.sort_by(|a, b| a.held.access.cmp(&b.held.access));
        })?;
        Ok(held)
    }

    async fn revoke(&self, held: &Held) -> Result<(), ProviderError> {
        self.with_state(true, |s| s.grants.retain(|g| g.held.access != held.access))
    }
}

fn key(a: &Access) -> String {
    format!("{}/{}/{}", a.resource, a.principal, a.access)
}
