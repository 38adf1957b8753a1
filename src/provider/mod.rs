//! Providers: where access is actually granted and revoked.
//!
//! The unit a provider manages is an [`Access`]: a (resource, principal,
//! access) triple, e.g. PostgreSQL role `readonly` for login `alice` on
//! `orders-db`. Several requests may need the same access at once (two
//! overlapping requests for the same database role). The plan therefore
//! works on accesses, not on requests: an access is revoked only when no
//! active request needs it any more. A provider whose grants can carry a
//! per-request object (an AWS managed policy per request) simply puts the
//! request id into `access`, so each request is its own access.
//!
//! Every grant gitgrant makes is marked as managed (a path, tag, label or
//! grantor role), so `list` finds them with no state but the provider.

pub mod aws_iam;
pub mod aws_sso;
pub mod azure_rbac;
pub mod gcp_iam;
pub mod kubernetes;
pub mod local;
pub mod postgres;
pub mod rest;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::policy::ProviderKind;

/// One unit of access at a provider.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Access {
    pub provider: ProviderKind,
    pub resource: String,
    /// The provider's principal (IAM ARN, database role, login for local).
    pub principal: String,
    /// What is granted, provider-specific: a database role, a policy name.
    pub access: String,
}

/// What a grant must carry: the requests it serves and when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantSpec {
    pub access: Access,
    /// Ids of the active requests that need this access (sorted, non-empty).
    pub requests: BTreeSet<String>,
    /// The latest end among those requests: where the provider can, the grant
    /// expires by itself at this time (fail-closed expiry).
    pub end: DateTime<Utc>,
    /// The role this access comes from (for tags and names).
    pub role: String,
    /// The role's grant for this provider, as written in `policies/` (e.g.
    /// `{"role": "readonly"}` or `{"managed_policy_arn": "..."}`).
    pub grant: serde_json::Value,
    /// Provider-specific payload, e.g. the rendered IAM policy document.
    pub document: Option<String>,
}

/// A managed grant found at the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub access: Access,
    /// Request ids from the grant's marker, where the provider can store them.
    pub requests: BTreeSet<String>,
    /// End time from the marker, where the provider can store it.
    pub end: Option<DateTime<Utc>>,
    /// Provider-specific handle needed to revoke (policy ARN, ...).
    pub handle: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Worth retrying with backoff: throttling, 5xx, timeouts, connection resets.
    #[error("{provider} {resource}: {message} (transient)")]
    Transient { provider: ProviderKind, resource: String, message: String },
    /// Not worth retrying: permissions, bad config, unknown principal.
    #[error("{provider} {resource}: {message}")]
    Permanent { provider: ProviderKind, resource: String, message: String },
}

impl ProviderError {
    pub fn permanent(provider: ProviderKind, resource: &str, message: impl Into<String>) -> Self {
        ProviderError::Permanent { provider, resource: resource.to_string(), message: message.into() }
    }
    pub fn transient(provider: ProviderKind, resource: &str, message: impl Into<String>) -> Self {
        ProviderError::Transient { provider, resource: resource.to_string(), message: message.into() }
    }
    pub fn is_transient(&self) -> bool {
        matches!(self, ProviderError::Transient { .. })
    }

    /// A transient error of a server that restarts (a database in crash
    /// recovery refuses connections for seconds): worth retrying for longer
    /// than the attempt count, within the retry budget.
    pub fn outlasts_restarts(&self) -> bool {
        matches!(self, ProviderError::Transient { provider: crate::model::policy::ProviderKind::Postgres, .. })
    }

    /// The message without the `provider resource:` prefix, for output that
    /// already names them (plan failures, refusals).
    pub fn detail(&self) -> String {
        match self {
            ProviderError::Transient { message, .. } => format!("{message} (transient)"),
            ProviderError::Permanent { message, .. } => message.clone(),
        }
    }
}

/// A place where access is granted. Implementations are in this module, one
/// file each, and an in-memory fake lives in `local` (a JSON file).
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;
    /// The resource this provider instance serves (one instance per resource).
    fn resource(&self) -> &str;
    /// Does the provider end access at `end` by itself, even if gitgrant never runs again?
    fn native_expiry(&self) -> bool;
    /// How the grant is marked as managed, for plan output and docs.
    fn marker(&self) -> String;
    /// Can the provider store request ids and the end with a grant? When it
    /// cannot (IAM Identity Center assignments), `list` returns them empty and
    /// reconcile reads them from the ledger instead.
    fn stores_marker(&self) -> bool {
        true
    }
    /// The `access` a request needs here, from the role's grant for this
    /// provider. Shared accesses (a database role) return the same value for
    /// every request; per-request objects (an IAM policy) include the id.
    fn access_for(&self, request: &str, grant: &serde_json::Value) -> Result<String, ProviderError>;
    /// Every managed grant this provider holds for this resource.
    async fn list(&self) -> Result<Vec<Held>, ProviderError>;
    /// Creates the grant, or updates it in place when it exists (idempotent).
    async fn grant(&self, spec: &GrantSpec) -> Result<Held, ProviderError>;
    /// Why `spec` cannot fit the provider's limits, found by reading only
    /// (plan time, before anything changes): `Ok(Some(reason))` refuses the
    /// grant; `Ok(None)` when it fits or the provider knows no such limit.
    async fn exceeds_limits(&self, _spec: &GrantSpec) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }
    /// Removes the grant; succeeds if it is already gone (idempotent).
    async fn revoke(&self, held: &Held) -> Result<(), ProviderError>;
}

/// A string key of a resource config (`None` when absent), trimmed; any
/// other type is a config error naming the key.
pub fn config_str<'a>(
    provider: ProviderKind,
    config: &'a std::collections::BTreeMap<String, serde_json::Value>,
    key: &str,
    resource: &str,
) -> Result<Option<&'a str>, ProviderError> {
    match config.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.trim())),
        Some(_) => Err(ProviderError::permanent(provider, resource, format!("config `{key}` must be a string; quote it in policies/"))),
    }
}

/// The AWS SDK's time bounds for every provider and monitor client: connect
/// 5 s, one attempt 20 s, one operation (all retries) 60 s. Without them an
/// endpoint that accepts connections and never answers hangs the run.
/// `GITGRANT_AWS_ATTEMPT_TIMEOUT_MS` shortens the attempt bound (tests).
pub fn aws_timeouts() -> aws_config::timeout::TimeoutConfig {
    let attempt = std::env::var("GITGRANT_AWS_ATTEMPT_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(std::time::Duration::from_secs(20), std::time::Duration::from_millis);
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(5))
        .read_timeout(attempt)
        .operation_attempt_timeout(attempt)
        .operation_timeout(attempt.saturating_mul(3))
        .build()
}

/// Everything a provider instance needs to be built for one resource.
pub struct ProviderContext<'a> {
    /// The access repository (relative paths in resource configs resolve here).
    pub repo: &'a std::path::Path,
    pub resource: &'a str,
    pub config: &'a crate::model::policy::Resource,
    /// The run's clock (`--at`/`--now`), for timestamps the provider records.
    pub now: DateTime<Utc>,
}

/// Builds the provider instance serving one resource. Each provider reads
/// its credentials from the environment the way its SDK normally does.
pub async fn build(ctx: &ProviderContext<'_>) -> Result<Box<dyn Provider>, ProviderError> {
    let kind = ctx.config.provider;
    match kind {
        ProviderKind::Local => {
            let state = ctx.config.config.get("state").and_then(|v| v.as_str());
            Ok(Box::new(local::LocalProvider::new(ctx.repo, ctx.resource, state, ctx.now)))
        }
        ProviderKind::Postgres => Ok(Box::new(postgres::PostgresProvider::new(ctx.resource, &ctx.config.config, |k| std::env::var(k).ok(), ctx.now)?)),
        ProviderKind::AwsIam => Ok(Box::new(aws_iam::AwsIamProvider::from_env(ctx.resource, &ctx.config.config).await?)),
        ProviderKind::AwsSso => aws_sso::build(ctx).await,
        ProviderKind::GcpIam => gcp_iam::build(ctx).await,
        ProviderKind::AzureRbac => azure_rbac::build(ctx).await,
        ProviderKind::Kubernetes => kubernetes::build(ctx).await,
    }
}
