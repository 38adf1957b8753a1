//! The `aws-sso` provider: IAM Identity Center account assignments (a
//! permission set on one AWS account for an Identity Store user).
//!
//! Design choices:
//! - **Ownership is the permission set's tag.** An account assignment cannot
//!   be tagged, so gitgrant owns *permission sets*: it only assigns a
//!   permission set tagged `gitgrant:managed=true`, and every assignment of
//!   such a permission set on the configured account is gitgrant's. An
//!   assignment of a managed permission set that no active request explains
//!   is revoked; assignments of untagged permission sets are never listed,
//!   made or removed. Give people standing access only through untagged
//!   permission sets.
//! - **Shared access.** The access is the permission set ARN, so two requests
//!   of one user for the same permission set share one assignment; it is
//!   removed when the last of them ends.
//! - **No marker, no native expiry.** Identity Center has no place for the
//!   request ids or the end time of an assignment ([`Provider::stores_marker`]
//!   is false: reconcile reads them from the ledger), and no expiry of its
//!   own: access ends when reconcile runs after the end time. The plan says so.
//! - **Asynchronous calls.** Create/DeleteAccountAssignment return a request
//!   whose status is polled until it SUCCEEDED or FAILED (failures carry
//!   AWS's reason), within a timeout; a timeout is transient, the next run
//!   finds the assignment in place or makes it again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_identitystore::types::{AlternateIdentifier, UniqueAttribute};
use aws_sdk_ssoadmin::config::BehaviorVersion;
use aws_sdk_ssoadmin::config::http::HttpResponse;
use aws_sdk_ssoadmin::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssoadmin::types::{AccountAssignmentOperationStatus, PrincipalType, StatusValues, TargetType};
use serde_json::Value;

use super::{Access, GrantSpec, Held, Provider, ProviderContext, ProviderError};
use crate::model::policy::ProviderKind;

const KIND: ProviderKind = ProviderKind::AwsSso;
/// The tag that makes a permission set gitgrant's (see the module docs).
pub const MANAGED_TAG: &str = "gitgrant:managed";
/// Principal keys of group assignments found on managed permission sets.
const GROUP_PREFIX: &str = "group:";
/// Principal keys of assignments whose user no longer exists in the Identity Store.
const USER_ID_PREFIX: &str = "user-id:";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_POLL: Duration = Duration::from_secs(2);

pub async fn build(ctx: &ProviderContext<'_>) -> Result<Box<dyn super::Provider>, ProviderError> {
    Ok(Box::new(AwsSsoProvider::from_env(ctx.resource, &ctx.config.config).await?))
}

/// Resource config keys: `instance_arn` and `identity_store_id` (required:
/// the Identity Center instance), `account_id` (required, 12 digits: the
/// account the permission sets are assigned on), `region` (optional: the
/// Identity Center region, default from the environment),
/// `status_timeout` (optional, default `2m`: how long to wait for an
/// assignment to be created or deleted).
pub struct AwsSsoProvider {
    admin: aws_sdk_ssoadmin::Client,
    store: aws_sdk_identitystore::Client,
    resource: String,
    instance_arn: String,
    identity_store_id: String,
    account_id: String,
    timeout: Duration,
    poll: Duration,
    /// user name -> user id, and back, looked up once per run.
    users: Mutex<BTreeMap<String, String>>,
    names: Mutex<BTreeMap<String, Option<String>>>,
    /// permission set ARN -> tagged `gitgrant:managed=true`?
    managed: Mutex<BTreeMap<String, bool>>,
}

fn permanent(resource: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::permanent(KIND, resource, message)
}

fn transient(resource: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::transient(KIND, resource, message)
}

fn cfg_str<'a>(config: &'a BTreeMap<String, Value>, key: &str, resource: &str) -> Result<Option<&'a str>, ProviderError> {
    super::config_str(KIND, config, key, resource)
}

fn required<'a>(config: &'a BTreeMap<String, Value>, key: &str, example: &str, resource: &str) -> Result<&'a str, ProviderError> {
    cfg_str(config, key, resource)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| permanent(resource, format!("config `{key}` is required (e.g. `{key}: \"{example}\"`); add it to the resource in policies/")))
}

impl AwsSsoProvider {
    /// Builds the provider with the SDK's normal environment configuration
    /// (credentials chain, `AWS_REGION`, `AWS_ENDPOINT_URL`).
    pub async fn from_env(resource: &str, config: &BTreeMap<String, Value>) -> Result<Self, ProviderError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(super::aws_http_client());
        if let Some(region) = cfg_str(config, "region", resource)? {
            loader = loader.region(aws_config::Region::new(region.to_string()));
        }
        let sdk = loader.timeout_config(crate::provider::aws_timeouts()).load().await;
        if sdk.region().is_none() {
            return Err(permanent(resource, "no AWS region: set `region` in the resource's config (the Identity Center region) or AWS_REGION"));
        }
        Self::new(aws_sdk_ssoadmin::Client::new(&sdk), aws_sdk_identitystore::Client::new(&sdk), resource, config)
    }

    /// Builds the provider on given clients (tests point them at moto or a fake).
    pub fn new(
        admin: aws_sdk_ssoadmin::Client,
        store: aws_sdk_identitystore::Client,
        resource: &str,
        config: &BTreeMap<String, Value>,
    ) -> Result<Self, ProviderError> {
        let instance_arn = required(config, "instance_arn", "arn:aws:sso:::instance/ssoins-1234567890abcdef", resource)?;
        if !(instance_arn.starts_with("arn:") && instance_arn.contains(":sso:::instance/")) {
            return Err(permanent(
                resource,
                format!("config `instance_arn` `{instance_arn}` is not an Identity Center instance ARN (arn:aws:sso:::instance/ssoins-...)"),
            ));
        }
        let identity_store_id = required(config, "identity_store_id", "d-1234567890", resource)?;
        let account_id = required(config, "account_id", "111111111111", resource)?;
        if !(account_id.len() == 12 && account_id.bytes().all(|b| b.is_ascii_digit())) {
            return Err(permanent(resource, format!("config `account_id` `{account_id}` is not a 12-digit AWS account id")));
        }
        let timeout = match cfg_str(config, "status_timeout", resource)? {
            None => DEFAULT_TIMEOUT,
            Some(t) => t
                .parse::<crate::model::Duration>()
                .ok()
                .and_then(|d| u64::try_from(d.secs()).ok())
                .filter(|s| *s > 0)
                .map(Duration::from_secs)
                .ok_or_else(|| permanent(resource, format!("config `status_timeout` `{t}` is not a duration such as `2m` or `90s`")))?,
        };
        Ok(AwsSsoProvider {
            admin,
            store,
            resource: resource.to_string(),
            instance_arn: instance_arn.to_string(),
            identity_store_id: identity_store_id.to_string(),
            account_id: account_id.to_string(),
            timeout,
            poll: DEFAULT_POLL.min(timeout),
            users: Mutex::default(),
            names: Mutex::default(),
            managed: Mutex::default(),
        })
    }

    /// Overrides how long and how often assignment statuses are polled.
    pub fn with_wait(mut self, timeout: Duration, poll: Duration) -> Self {
        self.timeout = timeout;
        self.poll = poll;
        self
    }

    fn perm(&self, message: impl Into<String>) -> ProviderError {
        permanent(&self.resource, message)
    }

    fn sdk<E>(&self, op: &str, what: &str, e: SdkError<E, HttpResponse>) -> ProviderError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        classify(&self.resource, op, what, &e)
    }

    /// Is the permission set tagged `gitgrant:managed=true`? (Cached per run.)
    async fn is_managed(&self, ps: &str) -> Result<bool, ProviderError> {
        if let Some(m) = self.managed.lock().ok().and_then(|m| m.get(ps).copied()) {
            return Ok(m);
        }
        let pages = self.admin.list_tags_for_resource().instance_arn(&self.instance_arn).resource_arn(ps).into_paginator().items().send().try_collect().await;
        let tags = match pages {
            Ok(t) => t,
            Err(e) if e.code() == Some("ResourceNotFoundException") => {
                return Err(self.perm(format!(
                    "permission set `{ps}` does not exist in instance `{}`; fix `permission_set_arn` in the role's aws-sso grant",
                    self.instance_arn
                )));
            }
            Err(e) => return Err(self.sdk("ListTagsForResource", ps, e)),
        };
        let managed = tags.iter().any(|t| t.key() == MANAGED_TAG && t.value().eq_ignore_ascii_case("true"));
        if let Ok(mut m) = self.managed.lock() {
            m.insert(ps.to_string(), managed);
        }
        Ok(managed)
    }

    async fn require_managed(&self, ps: &str, doing: &str) -> Result<(), ProviderError> {
        if self.is_managed(ps).await? {
            return Ok(());
        }
        Err(self.perm(format!(
            "refusing to {doing} permission set `{ps}`: it is not tagged `{MANAGED_TAG}=true`, and gitgrant only assigns permission sets it owns \
             (every assignment of an owned set is gitgrant's). Tag it in IAM Identity Center, or grant a permission set made for gitgrant"
        )))
    }

    /// The Identity Store user id of a user name (GetUserId on `userName`).
    async fn user_id(&self, name: &str) -> Result<String, ProviderError> {
        if let Some(id) = self.users.lock().ok().and_then(|u| u.get(name).cloned()) {
            return Ok(id);
        }
        if let Some(id) = name.strip_prefix(USER_ID_PREFIX) {
            return Ok(id.to_string());
        }
        let attr = UniqueAttribute::builder()
            .attribute_path("userName")
            .attribute_value(name.into())
            .build()
            .map_err(|e| self.perm(format!("cannot look up user `{name}`: {e}")))?;
        let out =
            self.store.get_user_id().identity_store_id(&self.identity_store_id).alternate_identifier(AlternateIdentifier::UniqueAttribute(attr)).send().await;
        let id = match out {
            Ok(o) => o.user_id().to_string(),
            Err(e) if e.code() == Some("ResourceNotFoundException") => {
                return Err(self.perm(format!(
                    "no user named `{name}` in Identity Store `{}`; fix the requester's `aws-sso` identities entry (the Identity Center user name)",
                    self.identity_store_id
                )));
            }
            Err(e) => return Err(classify(&self.resource, "GetUserId", name, &e)),
        };
        if let Ok(mut u) = self.users.lock() {
            u.insert(name.to_string(), id.clone());
        }
        Ok(id)
    }

    /// The user name of an Identity Store user id; `None` when the user is gone.
    async fn user_name(&self, id: &str) -> Result<Option<String>, ProviderError> {
        if let Some(n) = self.names.lock().ok().and_then(|n| n.get(id).cloned()) {
            return Ok(n);
        }
        let name = match self.store.describe_user().identity_store_id(&self.identity_store_id).user_id(id).send().await {
            Ok(u) => u.user_name().map(str::to_string),
            Err(e) if e.code() == Some("ResourceNotFoundException") => None,
            Err(e) => return Err(classify(&self.resource, "DescribeUser", id, &e)),
        };
        if let Ok(mut n) = self.names.lock() {
            n.insert(id.to_string(), name.clone());
        }
        Ok(name)
    }

    /// Every assignment of `ps` on the account: (principal type, principal id).
    async fn assignments(&self, ps: &str) -> Result<Vec<(PrincipalType, String)>, ProviderError> {
        let items = self
            .admin
            .list_account_assignments()
            .instance_arn(&self.instance_arn)
            .account_id(&self.account_id)
            .permission_set_arn(ps)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.sdk("ListAccountAssignments", ps, e))?;
        let mut out: Vec<(PrincipalType, String)> = items.iter().filter_map(|a| Some((a.principal_type()?.clone(), a.principal_id()?.to_string()))).collect();
        out.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
        out.dedup();
        Ok(out)
    }

    /// Polls an assignment operation until it SUCCEEDED (Ok), FAILED
    /// (permanent, with AWS's reason) or the timeout passed (transient).
    async fn wait(&self, op: Op, first: Option<&AccountAssignmentOperationStatus>, what: &str) -> Result<(), ProviderError> {
        let started = tokio::time::Instant::now();
        let mut status = first.cloned();
        loop {
            let state = status.as_ref().and_then(|s| s.status().cloned());
            match state {
                Some(StatusValues::Succeeded) => return Ok(()),
                Some(StatusValues::Failed) => {
                    let reason = status.as_ref().and_then(|s| s.failure_reason()).unwrap_or("no reason given");
                    return Err(self.perm(format!("{} {what} FAILED: {reason}", op.name())));
                }
                _ => {}
            }
            let Some(request_id) = status.as_ref().and_then(|s| s.request_id()).map(str::to_string) else {
                return Err(self.perm(format!("{} {what}: AWS returned no request id to follow", op.name())));
            };
            if started.elapsed() >= self.timeout {
                return Err(transient(
                    &self.resource,
                    format!(
                        "{} {what} is still {} after {:?} (request {request_id}); the next run checks it again",
                        op.name(),
                        state.as_ref().map(|s| s.as_str()).unwrap_or("pending"),
                        self.timeout
                    ),
                ));
            }
            tokio::time::sleep(self.poll.min(self.timeout.saturating_sub(started.elapsed()))).await;
            status = match op {
                Op::Create => {
                    self.admin
                        .describe_account_assignment_creation_status()
                        .instance_arn(&self.instance_arn)
                        .account_assignment_creation_request_id(&request_id)
                        .send()
                        .await
                        .map_err(|e| self.sdk("DescribeAccountAssignmentCreationStatus", &request_id, e))?
                        .account_assignment_creation_status
                }
                Op::Delete => {
                    self.admin
                        .describe_account_assignment_deletion_status()
                        .instance_arn(&self.instance_arn)
                        .account_assignment_deletion_request_id(&request_id)
                        .send()
                        .await
                        .map_err(|e| self.sdk("DescribeAccountAssignmentDeletionStatus", &request_id, e))?
                        .account_assignment_deletion_status
                }
            };
        }
    }

    fn what(&self, ps: &str, principal: &str) -> String {
        format!("{ps} for {principal} on account {}", self.account_id)
    }
}

#[derive(Clone, Copy)]
enum Op {
    Create,
    Delete,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Create => "CreateAccountAssignment",
            Op::Delete => "DeleteAccountAssignment",
        }
    }
}

/// The handle of a held assignment: `USER:<id>` or `GROUP:<id>`.
fn handle(kind: &PrincipalType, id: &str) -> String {
    format!("{}:{id}", kind.as_str())
}

fn parse_handle(handle: &str) -> Option<(PrincipalType, &str)> {
    let (kind, id) = handle.split_once(':')?;
    let kind = match kind {
        "USER" => PrincipalType::User,
        "GROUP" => PrincipalType::Group,
        _ => return None,
    };
    (!id.is_empty()).then_some((kind, id))
}

#[async_trait::async_trait]
impl Provider for AwsSsoProvider {
    fn kind(&self) -> ProviderKind {
        KIND
    }
    fn resource(&self) -> &str {
        &self.resource
    }
    fn native_expiry(&self) -> bool {
        false
    }
    fn stores_marker(&self) -> bool {
        false
    }
    fn marker(&self) -> String {
        format!(
            "every assignment, on account {}, of a permission set tagged {MANAGED_TAG}=true (an assignment cannot be tagged, and IAM Identity Center has no expiry: access ends when reconcile runs after the end time)",
            self.account_id
        )
    }

    fn access_for(&self, _request: &str, grant: &Value) -> Result<String, ProviderError> {
        let arn = grant.get("permission_set_arn").and_then(Value::as_str).ok_or_else(|| self.perm("the role's aws-sso grant needs `permission_set_arn`"))?;
        if !(arn.starts_with("arn:") && arn.contains(":sso:::") && arn.contains("/ps-")) {
            return Err(self.perm(format!("`{arn}` is not a permission set ARN (arn:aws:sso:::permissionSet/ssoins-.../ps-...); fix the role's aws-sso grant")));
        }
        Ok(arn.to_string())
    }

    async fn list(&self) -> Result<Vec<Held>, ProviderError> {
        let sets = self
            .admin
            .list_permission_sets()
            .instance_arn(&self.instance_arn)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| self.sdk("ListPermissionSets", &self.instance_arn, e))?;
        let mut out = Vec::new();
        for ps in sets {
            if !self.is_managed(&ps).await? {
                continue;
            }
            for (kind, id) in self.assignments(&ps).await? {
                let principal = match kind {
                    PrincipalType::User => self.user_name(&id).await?.unwrap_or_else(|| format!("{USER_ID_PREFIX}{id}")),
                    _ => format!("{GROUP_PREFIX}{id}"),
                };
                if let (PrincipalType::User, Ok(mut u)) = (&kind, self.users.lock()) {
                    u.insert(principal.clone(), id.clone());
                }
                out.push(Held {
                    access: Access { provider: KIND, resource: self.resource.clone(), principal, access: ps.clone() },
                    requests: BTreeSet::new(),
                    end: None,
                    handle: handle(&kind, &id),
                });
            }
        }
        out.sort_by(|a, b| a.access.cmp(&b.access));
        Ok(out)
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Held, ProviderError> {
        let ps = spec.access.access.as_str();
        let name = spec.access.principal.as_str();
        self.require_managed(ps, "assign").await?;
        let id = self.user_id(name).await?;
        let held = Held { access: spec.access.clone(), requests: spec.requests.clone(), end: None, handle: handle(&PrincipalType::User, &id) };
        // Real AWS accepts a second identical assignment, moto duplicates it: look first.
        if self.assignments(ps).await?.iter().any(|(k, i)| *k == PrincipalType::User && *i == id) {
            return Ok(held);
        }
        let what = self.what(ps, name);
        let out = self
            .admin
            .create_account_assignment()
            .instance_arn(&self.instance_arn)
            .target_id(&self.account_id)
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(ps)
            .principal_type(PrincipalType::User)
            .principal_id(&id)
            .send()
            .await
            .map_err(|e| self.sdk("CreateAccountAssignment", &what, e))?;
        self.wait(Op::Create, out.account_assignment_creation_status(), &what).await?;
        Ok(held)
    }

    async fn revoke(&self, held: &Held) -> Result<(), ProviderError> {
        let ps = held.access.access.as_str();
        self.require_managed(ps, "remove an assignment of").await?;
        let (kind, id) = match parse_handle(&held.handle) {
            Some((k, i)) => (k, i.to_string()),
            None => (PrincipalType::User, self.user_id(&held.access.principal).await?),
        };
        let what = self.what(ps, &held.access.principal);
        let out = self
            .admin
            .delete_account_assignment()
            .instance_arn(&self.instance_arn)
            .target_id(&self.account_id)
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(ps)
            .principal_type(kind)
            .principal_id(&id)
            .send()
            .await;
        match out {
            Ok(o) => self.wait(Op::Delete, o.account_assignment_deletion_status(), &what).await,
            // Already gone: nothing to do.
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(self.sdk("DeleteAccountAssignment", &what, e)),
        }
    }
}

/// Maps an SDK error to transient (retry) or permanent (fix something), with the AWS code and what to do.
fn classify<E>(resource: &str, op: &str, what: &str, e: &SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let chain = super::aws_iam::error_chain(e);
    match e {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => transient(resource, format!("{op} {what}: {chain}")),
        // `other`: the connection dropped mid-request (closed before the response), among others.
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() || d.is_other() => transient(resource, format!("{op} {what}: cannot reach AWS: {chain}")),
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => {
            permanent(resource, format!("{op} {what}: {chain}; check the AWS configuration of the gitgrant runner (credentials, region, AWS_ENDPOINT_URL)"))
        }
        _ => {
            let code = e.code().unwrap_or("Unknown");
            let message = e.message().unwrap_or_default();
            let server_side = e.raw_response().is_some_and(|r| r.status().is_server_error());
            let text = match (e.code(), e.raw_response()) {
                (None, Some(raw)) => format!("{op} {what}: {}", super::aws_iam::http_excerpt(raw)),
                _ => format!("{op} {what}: {code}: {message}"),
            };
            match code {
                "ThrottlingException" | "InternalServerException" | "ConflictException" | "ServiceUnavailableException" => transient(resource, text),
                _ if server_side => transient(resource, text),
                "AccessDeniedException" => {
                    let service = if matches!(op, "GetUserId" | "DescribeUser") { "identitystore" } else { "sso" };
                    permanent(
                        resource,
                        format!("{text}; allow {service}:{op} to the gitgrant runner (README, Provider: aws-sso, lists the least-privilege policy)"),
                    )
                }
                "UnrecognizedClientException" | "InvalidSignatureException" | "ExpiredTokenException" | "InvalidClientTokenId" => {
                    permanent(resource, format!("{text}; the runner's AWS credentials are invalid or expired, refresh them"))
                }
                "ServiceQuotaExceededException" => {
                    permanent(resource, format!("{text}; an IAM Identity Center quota is reached: end other grants or raise the quota"))
                }
                _ => permanent(resource, text),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use serde_json::json;

    fn config(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    fn clients() -> (aws_sdk_ssoadmin::Client, aws_sdk_identitystore::Client) {
        let creds = aws_sdk_ssoadmin::config::Credentials::new("t", "t", None, None, "test");
        let a = aws_sdk_ssoadmin::Config::builder()
            .http_client(crate::provider::aws_http_client())
            .behavior_version(BehaviorVersion::latest())
            .region(aws_sdk_ssoadmin::config::Region::new("us-east-1"))
            .credentials_provider(creds.clone())
            .build();
        let s = aws_sdk_identitystore::Config::builder()
            .http_client(crate::provider::aws_http_client())
            .behavior_version(aws_sdk_identitystore::config::BehaviorVersion::latest())
            .region(aws_sdk_identitystore::config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .build();
        (aws_sdk_ssoadmin::Client::from_conf(a), aws_sdk_identitystore::Client::from_conf(s))
    }

    fn build(v: Value) -> Result<AwsSsoProvider, ProviderError> {
        let (a, s) = clients();
        AwsSsoProvider::new(a, s, "sso-prod", &config(v))
    }

    const OK: &str = "arn:aws:sso:::instance/ssoins-1";

    #[test]
    fn config_errors_name_the_key_and_the_fix() {
        let cases = [
            (json!({}), "config `instance_arn` is required"),
            (json!({"instance_arn": "ssoins-1"}), "not an Identity Center instance ARN"),
            (json!({"instance_arn": OK}), "config `identity_store_id` is required"),
            (json!({"instance_arn": OK, "identity_store_id": "d-1"}), "config `account_id` is required"),
            (json!({"instance_arn": OK, "identity_store_id": "d-1", "account_id": 111111111111u64}), "must be a string"),
            (json!({"instance_arn": OK, "identity_store_id": "d-1", "account_id": "1111"}), "not a 12-digit"),
            (json!({"instance_arn": OK, "identity_store_id": "d-1", "account_id": "111111111111", "status_timeout": "soon"}), "not a duration such as `2m`"),
        ];
        for (cfg, want) in cases {
            let e = build(cfg.clone()).err().unwrap_or_else(|| panic!("{cfg} accepted"));
            assert!(!e.is_transient());
            let text = e.to_string();
            assert!(text.starts_with("aws-sso sso-prod: ") && text.contains(want), "{cfg}: {text}");
        }
        let p = build(json!({"instance_arn": OK, "identity_store_id": "d-1", "account_id": "111111111111", "status_timeout": "5m"})).unwrap();
        assert_eq!(p.timeout, Duration::from_secs(300));
        assert!(!p.native_expiry());
        assert!(p.marker().contains("gitgrant:managed=true") && p.marker().contains("no expiry"), "{}", p.marker());
    }

    #[test]
    fn access_is_the_permission_set_arn() {
        let p = build(json!({"instance_arn": OK, "identity_store_id": "d-1", "account_id": "111111111111"})).unwrap();
        let ps = "arn:aws:sso:::permissionSet/ssoins-1/ps-abc";
        assert_eq!(p.access_for("r1", &json!({"permission_set_arn": ps})).unwrap(), ps);
        assert_eq!(p.access_for("r2", &json!({"permission_set_arn": ps})).unwrap(), ps, "shared by every request");
        assert!(p.access_for("r1", &json!({})).unwrap_err().to_string().contains("needs `permission_set_arn`"));
        assert!(p.access_for("r1", &json!({"permission_set_arn": "ReadOnly"})).unwrap_err().to_string().contains("not a permission set ARN"));
    }

    #[test]
    fn handles_round_trip() {
        assert_eq!(parse_handle(&handle(&PrincipalType::User, "u-1")), Some((PrincipalType::User, "u-1")));
        assert_eq!(parse_handle(&handle(&PrincipalType::Group, "g-1")), Some((PrincipalType::Group, "g-1")));
        assert_eq!(parse_handle("USER:"), None);
        assert_eq!(parse_handle("alice"), None);
    }
}
