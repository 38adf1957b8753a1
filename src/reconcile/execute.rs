//! Executing a plan: revokes first, then grants; bounded concurrency per
//! provider; retries with exponential backoff and full jitter on transient
//! errors (throttling, 5xx). Every provider call is idempotent, so a run
//! that dies anywhere is repaired by the next one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::plan::{Action, ActionKind, Plan};
use crate::model::policy::ProviderKind;
use crate::provider::{Provider, ProviderError};

#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Calls in flight per provider kind.
    pub concurrency: usize,
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// First backoff; doubles per attempt, with full jitter, capped at 30 s.
    pub base_delay: Duration,
}

impl ExecOptions {
    /// Defaults, with the backoff base from GITGRANT_RETRY_BASE_MS (tests shorten it).
    pub fn from_env() -> Self {
        let ms = std::env::var("GITGRANT_RETRY_BASE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
        ExecOptions { base_delay: Duration::from_millis(ms), ..ExecOptions::default() }
    }
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions { concurrency: 8, attempts: 5, base_delay: Duration::from_millis(200) }
    }
}

/// What happened to one action.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub action: Action,
    pub ok: bool,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs the plan's grant and revoke actions (and marker updates). `keep`
/// actions without a marker change make no call.
pub async fn execute(plan: &Plan, providers: &BTreeMap<String, Arc<dyn Provider>>, opts: &ExecOptions) -> Vec<Outcome> {
    execute_observed(plan, providers, opts, &|_, _| {}).await
}

/// [`execute`], calling `on_done` with each outcome and how long its calls
/// took, as it finishes (progress bars, `-v` timings).
pub async fn execute_observed(
    plan: &Plan,
    providers: &BTreeMap<String, Arc<dyn Provider>>,
    opts: &ExecOptions,
    on_done: &(dyn Fn(&Outcome, Duration) + Sync),
) -> Vec<Outcome> {
    let mut limits: BTreeMap<ProviderKind, Arc<Semaphore>> = BTreeMap::new();
    for a in &plan.actions {
        limits.entry(a.provider).or_insert_with(|| Arc::new(Semaphore::new(opts.concurrency.max(1))));
    }
    let mut out = Vec::new();
    for phase in [ActionKind::Revoke, ActionKind::Grant] {
        let todo: Vec<&Action> = plan
            .actions
            .iter()
            .filter(|a| match phase {
                ActionKind::Revoke => a.action == ActionKind::Revoke,
                _ => a.action == ActionKind::Grant || (a.action == ActionKind::Keep && a.update_marker),
            })
            .collect();
        let results = futures::stream::iter(todo)
            .map(|a| {
                let provider = providers.get(&a.resource).cloned();
                let limit = limits.get(&a.provider).cloned();
                async move {
                    let _permit = match &limit {
                        Some(l) => l.clone().acquire_owned().await.ok(),
                        None => None,
                    };
                    let started = std::time::Instant::now();
                    let outcome = run_one(a, provider, opts).await;
                    on_done(&outcome, started.elapsed());
                    outcome
                }
            })
            .buffer_unordered(opts.concurrency.max(1) * limits.len().max(1))
            .collect::<Vec<_>>()
            .await;
        out.extend(results);
    }
    out.sort_by(|a, b| {
        (a.action.action, &a.action.resource, &a.action.principal, &a.action.access).cmp(&(
            b.action.action,
            &b.action.resource,
            &b.action.principal,
            &b.action.access,
        ))
    });
    out
}

async fn run_one(a: &Action, provider: Option<Arc<dyn Provider>>, opts: &ExecOptions) -> Outcome {
    let Some(p) = provider else {
        return Outcome { action: a.clone(), ok: false, attempts: 0, error: Some(format!("{} {}: no provider instance", a.provider, a.resource)) };
    };
    let (result, attempts) = with_retry(opts, || async {
        match (a.action, &a.spec, &a.held) {
            (ActionKind::Revoke, _, Some(h)) => p.revoke(h).await,
            (_, Some(spec), _) => p.grant(spec).await.map(|_| ()),
            _ => Ok(()),
        }
    })
    .await;
    Outcome { action: a.clone(), ok: result.is_ok(), attempts, error: result.err().map(|e| e.to_string()) }
}

/// Runs one provider call, retrying transient errors with backoff; returns
/// the last result and the number of attempts made.
pub async fn with_retry<T, F, Fut>(opts: &ExecOptions, mut call: F) -> (Result<T, ProviderError>, u32)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match call().await {
            Err(e) if e.is_transient() && attempt < opts.attempts => tokio::time::sleep(backoff(opts.base_delay, attempt)).await,
            other => return (other, attempt),
        }
    }
}

/// Full jitter: a random delay in [0, base * 2^(attempt-1)], capped at 30 s.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let cap = Duration::from_secs(30);
    let max = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16)).min(cap);
    let millis = max.as_millis() as u64;
    if millis == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(fastrand::u64(0..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..20 {
            let d = backoff(Duration::from_millis(100), attempt);
            let bound = Duration::from_millis(100 * (1u64 << (attempt - 1).min(16))).min(Duration::from_secs(30));
            assert!(d <= bound, "attempt {attempt}: {d:?} > {bound:?}");
        }
        assert_eq!(backoff(Duration::ZERO, 3), Duration::ZERO);
    }

    fn err(transient: bool) -> ProviderError {
        let (provider, resource, message) = (ProviderKind::Postgres, "orders-db".to_string(), "connection reset".to_string());
        if transient { ProviderError::Transient { provider, resource, message } } else { ProviderError::Permanent { provider, resource, message } }
    }

    #[tokio::test]
    async fn with_retry_retries_transient_errors_only() {
        let opts = ExecOptions { concurrency: 1, attempts: 4, base_delay: Duration::from_millis(1) };
        let calls = std::sync::atomic::AtomicU32::new(0);
        let (r, n) = with_retry(&opts, || async { if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 { Err(err(true)) } else { Ok(7) } }).await;
        assert_eq!((r.ok(), n), (Some(7), 3));
        let (r, n) = with_retry(&opts, || async { Err::<(), _>(err(false)) }).await;
        assert!(r.is_err());
        assert_eq!(n, 1, "a permanent error is not retried");
        let (r, n) = with_retry(&opts, || async { Err::<(), _>(err(true)) }).await;
        assert!(r.is_err_and(|e| e.is_transient()));
        assert_eq!(n, 4, "gives up after the configured attempts");
    }
}
