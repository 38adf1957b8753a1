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

#[cfg(feature = "aws")]
pub mod aws_iam;
pub mod aws_limits;
#[cfg(feature = "aws")]
pub mod aws_sso;
#[cfg(feature = "azure")]
pub mod azure_rbac;
#[cfg(feature = "gcp")]
pub mod gcp_iam;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod local;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "gcp", feature = "azure"))]
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

/// `Display` of an error and its sources, e.g. "dispatch failure: io error:
/// connection refused"; a source already said by the part before is left out.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.last().is_some_and(|l| l.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// FNV-1a, 64 bits: stable across Rust releases, unlike `DefaultHasher`.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
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
#[cfg(feature = "aws")]
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

/// The cargo feature a provider needs, and whether this binary has it.
pub fn feature_of(kind: ProviderKind) -> (Option<&'static str>, bool) {
    match kind {
        ProviderKind::Local => (None, true),
        ProviderKind::AwsIam | ProviderKind::AwsSso => (Some("aws"), cfg!(feature = "aws")),
        ProviderKind::GcpIam => (Some("gcp"), cfg!(feature = "gcp")),
        ProviderKind::AzureRbac => (Some("azure"), cfg!(feature = "azure")),
        ProviderKind::Kubernetes => (Some("kubernetes"), cfg!(feature = "kubernetes")),
        ProviderKind::Postgres => (Some("postgres"), cfg!(feature = "postgres")),
    }
}

/// The error for a resource whose provider this binary was built without.
pub fn compiled_out(kind: ProviderKind, resource: &str) -> Option<ProviderError> {
    match feature_of(kind) {
        (Some(feature), false) => Some(missing_feature(kind, resource, feature)),
        _ => None,
    }
}

fn missing_feature(kind: ProviderKind, resource: &str, feature: &str) -> ProviderError {
    ProviderError::permanent(
        kind,
        resource,
        format!(
            "this gitgrant was built without the {kind} provider (cargo feature `{feature}`); use the release binary (every provider), or build with the feature: `cargo install --locked --path . --features {feature}` from a checkout"
        ),
    )
}

/// The first resource of `resources` whose provider is compiled out of this binary.
pub fn first_compiled_out<'a>(resources: impl IntoIterator<Item = (&'a String, &'a crate::model::policy::Resource)>) -> Option<ProviderError> {
    resources.into_iter().find_map(|(name, res)| compiled_out(res.provider, name))
}

/// Builds the provider instance serving one resource. Each provider reads
/// its credentials from the environment the way its SDK normally does. A
/// provider compiled out of this binary (cargo features) is a permanent error
/// naming the provider, the resource and the feature to enable.
pub async fn build(ctx: &ProviderContext<'_>) -> Result<Box<dyn Provider>, ProviderError> {
    crate::install_crypto_provider();
    let kind = ctx.config.provider;
    if let Some(e) = compiled_out(kind, ctx.resource) {
        return Err(e);
    }
    match kind {
        ProviderKind::Local => {
            let state = ctx.config.config.get("state").and_then(|v| v.as_str());
            Ok(Box::new(local::LocalProvider::new(ctx.repo, ctx.resource, state, ctx.now)))
        }
        #[cfg(feature = "postgres")]
        ProviderKind::Postgres => Ok(Box::new(postgres::PostgresProvider::new(ctx.resource, &ctx.config.config, |k| std::env::var(k).ok(), ctx.now)?)),
        #[cfg(feature = "aws")]
        ProviderKind::AwsIam => Ok(Box::new(aws_iam::AwsIamProvider::from_env(ctx.resource, &ctx.config.config).await?)),
        #[cfg(feature = "aws")]
        ProviderKind::AwsSso => aws_sso::build(ctx).await,
        #[cfg(feature = "gcp")]
        ProviderKind::GcpIam => gcp_iam::build(ctx).await,
        #[cfg(feature = "azure")]
        ProviderKind::AzureRbac => azure_rbac::build(ctx).await,
        #[cfg(feature = "kubernetes")]
        ProviderKind::Kubernetes => kubernetes::build(ctx).await,
        #[allow(unreachable_patterns)]
        other => {
            Err(compiled_out(other, ctx.resource).unwrap_or_else(|| ProviderError::permanent(other, ctx.resource, "provider not available in this build")))
        }
    }
}

/// The HTTP client every AWS SDK client uses: rustls with ring, the one
/// crypto stack of gitgrant (the SDK's default client would compile aws-lc-rs).
#[cfg(feature = "aws")]
pub fn aws_http_client() -> aws_sdk_iam::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring)).build_https()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_compiled_out_provider_names_itself_the_resource_and_the_feature() {
        let e = missing_feature(ProviderKind::AwsIam, "prod-aws", "aws");
        assert!(!e.is_transient());
        assert_eq!(
            e.to_string(),
            "aws-iam prod-aws: this gitgrant was built without the aws-iam provider (cargo feature `aws`); use the release binary (every provider), or build with the feature: `cargo install --locked --path . --features aws` from a checkout"
        );
    }

    #[test]
    fn compiled_out_follows_the_cargo_features_of_this_build() {
        assert!(compiled_out(ProviderKind::Local, "demo").is_none(), "local is always there");
        let cases = [
            (ProviderKind::AwsIam, cfg!(feature = "aws")),
            (ProviderKind::AwsSso, cfg!(feature = "aws")),
            (ProviderKind::GcpIam, cfg!(feature = "gcp")),
            (ProviderKind::AzureRbac, cfg!(feature = "azure")),
            (ProviderKind::Kubernetes, cfg!(feature = "kubernetes")),
            (ProviderKind::Postgres, cfg!(feature = "postgres")),
        ];
        for (kind, built_in) in cases {
            assert_eq!(compiled_out(kind, "r").is_none(), built_in, "{kind}");
            assert_eq!(feature_of(kind).1, built_in, "{kind}");
        }
    }
}
