//! Executing a plan: every resource independently and at once (a provider
//! that hangs cannot hold up revocations elsewhere); within a resource,
//! revokes first, then grants; bounded concurrency per provider kind;
//! retries with exponential backoff and full jitter on transient errors
//! (throttling, 5xx); every call bounded by the run deadline. Each
//! resource's outcomes are handed back as soon as it finishes, so they are
//! recorded before the slower ones end. Every provider call is idempotent,
//! so a run that dies anywhere is repaired by the next one.

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
    /// Bound on listing one resource (all attempts).
    pub list_timeout: Duration,
    /// Transient errors of a database ([`ProviderError::outlasts_restarts`])
    /// are retried past `attempts` until this much time has passed since the
    /// first attempt: enough to ride out a crash-recovery restart (~30 s),
    /// still bounded.
    pub retry_budget: Duration,
    /// When every provider call must have finished; a call still running
    /// then is abandoned and reported as failed (`None`: no deadline).
    pub deadline: Option<tokio::time::Instant>,
}

impl ExecOptions {
    /// Defaults, with the backoff base from GITGRANT_RETRY_BASE_MS (tests shorten it).
    pub fn from_env() -> Self {
        let ms = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        let base_delay = Duration::from_millis(ms("GITGRANT_RETRY_BASE_MS").unwrap_or(200));
        let list_timeout = ms("GITGRANT_LIST_TIMEOUT_MS").map_or(DEFAULT_LIST_TIMEOUT, Duration::from_millis);
        let retry_budget = ms("GITGRANT_RETRY_BUDGET_MS").map_or(DEFAULT_RETRY_BUDGET, Duration::from_millis);
        ExecOptions { base_delay, list_timeout, retry_budget, ..ExecOptions::default() }
    }
}

/// Listing one resource may take this long before it counts as stuck.
pub const DEFAULT_LIST_TIMEOUT: Duration = Duration::from_secs(120);

/// See [`ExecOptions::retry_budget`].
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(30);

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            concurrency: 8,
            attempts: 5,
            base_delay: Duration::from_millis(200),
            list_timeout: DEFAULT_LIST_TIMEOUT,
            retry_budget: DEFAULT_RETRY_BUDGET,
            deadline: None,
        }
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
    /// Failed with a transient error after every retry (the resource is down).
    #[serde(skip)]
    pub transient_failure: bool,
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
    let mut out: Vec<Outcome> = execute_by_resource(plan, providers, opts, on_done).flat_map(|(_, o)| futures::stream::iter(o)).collect().await;
    sort_outcomes(&mut out);
    out
}

/// The resources a plan is about: those listed, and those with actions.
pub fn plan_resources(plan: &Plan) -> Vec<String> {
    let mut names: Vec<String> = plan.native_expiry.keys().cloned().collect();
    names.extend(plan.actions.iter().map(|a| a.resource.clone()));
    names.sort();
    names.dedup();
    names
}

/// Runs every resource's actions at once, each resource revokes first, and
/// yields `(resource, outcomes)` as each resource finishes (every resource
/// of [`plan_resources`], those without calls too, so the caller records
/// what it found there).
pub fn execute_by_resource<'a>(
    plan: &'a Plan,
    providers: &'a BTreeMap<String, Arc<dyn Provider>>,
    opts: &'a ExecOptions,
    on_done: &'a (dyn Fn(&Outcome, Duration) + Sync),
) -> impl futures::Stream<Item = (String, Vec<Outcome>)> + 'a {
    let mut limits: BTreeMap<ProviderKind, Arc<Semaphore>> = BTreeMap::new();
    for a in &plan.actions {
        limits.entry(a.provider).or_insert_with(|| Arc::new(Semaphore::new(opts.concurrency.max(1))));
    }
    let limits = Arc::new(limits);
    let tasks = futures::stream::FuturesUnordered::new();
    for name in plan_resources(plan) {
        let limits = limits.clone();
        tasks.push(async move {
            // Set by the first call that failed transiently after all retries
            // (the resource is down): the rest are not attempted, so a database
            // that is down gives one failure, not one per membership.
            let down: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
            let down = &down;
            let mut out = Vec::new();
            for phase in [ActionKind::Revoke, ActionKind::Grant] {
                let todo: Vec<&Action> = plan
                    .actions
                    .iter()
                    .filter(|a| a.resource == name)
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
                            let started = std::time::Instant::now();
                            let call = async {
                                let _permit = match &limit {
                                    Some(l) => l.clone().acquire_owned().await.ok(),
                                    None => None,
                                };
                                let first = down.lock().ok().and_then(|d| d.clone());
                                if let Some(first) = first {
                                    return not_attempted(a, &first);
                                }
                                let outcome = run_one(a, provider, opts).await;
                                if outcome.transient_failure
                                    && let Ok(mut d) = down.lock()
                                {
                                    d.get_or_insert_with(|| outcome.error.clone().unwrap_or_default());
                                }
                                outcome
                            };
                            let outcome = match opts.deadline {
                                Some(d) => tokio::time::timeout_at(d, call).await.unwrap_or_else(|_| past_deadline(a, started.elapsed())),
                                None => call.await,
                            };
                            on_done(&outcome, started.elapsed());
                            outcome
                        }
                    })
                    .buffer_unordered(opts.concurrency.max(1))
                    .collect::<Vec<_>>()
                    .await;
                out.extend(results);
            }
            sort_outcomes(&mut out);
            (name, out)
        });
    }
    tasks
}

/// The outcome of a call skipped because its resource is down.
fn not_attempted(a: &Action, first: &str) -> Outcome {
    let error = format!("not attempted: {} {} is unreachable ({first})", a.provider, a.resource);
    Outcome { action: a.clone(), ok: false, attempts: 0, error: Some(error), transient_failure: false }
}

/// The outcome of a call abandoned at the run deadline.
fn past_deadline(a: &Action, waited: Duration) -> Outcome {
    let error = format!(
        "{} {}: {} {} {} did not finish before the run deadline (waited {} s; the provider accepts connections but does not answer?); abandoned, rerun reconcile",
        a.provider,
        a.resource,
        a.action.as_str(),
        a.principal,
        a.access,
        waited.as_secs()
    );
    Outcome { action: a.clone(), ok: false, attempts: 0, error: Some(error), transient_failure: false }
}

fn sort_outcomes(out: &mut [Outcome]) {
    out.sort_by(|a, b| {
        (a.action.action, &a.action.resource, &a.action.principal, &a.action.access).cmp(&(
            b.action.action,
            &b.action.resource,
            &b.action.principal,
            &b.action.access,
        ))
    });
}

async fn run_one(a: &Action, provider: Option<Arc<dyn Provider>>, opts: &ExecOptions) -> Outcome {
    let Some(p) = provider else {
        return Outcome {
            action: a.clone(),
            ok: false,
            attempts: 0,
            error: Some(format!("{} {}: no provider instance", a.provider, a.resource)),
            transient_failure: false,
        };
    };
    let (result, attempts) = with_retry(opts, || async {
        match (a.action, &a.spec, &a.held) {
            (ActionKind::Revoke, _, Some(h)) => p.revoke(h).await,
            (_, Some(spec), _) => p.grant(spec).await.map(|_| ()),
            _ => Ok(()),
        }
    })
    .await;
    let transient_failure = result.as_ref().is_err_and(ProviderError::is_transient);
    Outcome { action: a.clone(), ok: result.is_ok(), attempts, error: result.err().map(|e| e.to_string()), transient_failure }
}

/// Runs one provider call, retrying transient errors with backoff; returns
/// the last result and the number of attempts made.
pub async fn with_retry<T, F, Fut>(opts: &ExecOptions, mut call: F) -> (Result<T, ProviderError>, u32)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    let mut attempt = 0;
    let started = tokio::time::Instant::now();
    loop {
        attempt += 1;
        match call().await {
            Err(e) if e.is_transient() && attempt < opts.attempts => tokio::time::sleep(backoff(opts.base_delay, attempt)).await,
            // Past the attempts, within the budget: a server restarting comes back.
            Err(e) if e.is_transient() && e.outlasts_restarts() && started.elapsed() < opts.retry_budget => {
                let left = opts.retry_budget.saturating_sub(started.elapsed());
                tokio::time::sleep(backoff(opts.base_delay, attempt).max(opts.base_delay).min(left)).await;
            }
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
        // (PostgreSQL: its transient errors are retried within the budget too.)
        if transient { ProviderError::Transient { provider, resource, message } } else { ProviderError::Permanent { provider, resource, message } }
    }

    #[tokio::test]
    async fn with_retry_retries_transient_errors_only() {
        let opts = ExecOptions { concurrency: 1, attempts: 4, base_delay: Duration::from_millis(1), retry_budget: Duration::ZERO, ..ExecOptions::default() };
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

    #[tokio::test]
    async fn with_retry_rides_out_an_outage_within_the_budget_and_no_longer() {
        let opts = ExecOptions { attempts: 2, base_delay: Duration::from_millis(5), retry_budget: Duration::from_millis(300), ..ExecOptions::default() };
        let started = std::time::Instant::now();
        let calls = std::sync::atomic::AtomicU32::new(0);
        // Down for ~100 ms (a restart), then up: more calls than `attempts`, and success.
        let (r, n) = with_retry(&opts, || async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if started.elapsed() < Duration::from_millis(100) { Err(err(true)) } else { Ok(1) }
        })
        .await;
        assert_eq!(r.ok(), Some(1));
        assert!(n > 2, "{n}");
        // Down for good: gives up once the budget is spent.
        let started = std::time::Instant::now();
        let (r, _) = with_retry(&opts, || async { Err::<(), _>(err(true)) }).await;
        assert!(r.is_err());
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(290) && took < Duration::from_secs(2), "{took:?}");
    }
}
