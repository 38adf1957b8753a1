//! The `aws-iam` provider: one customer-managed IAM policy per (request,
//! resource), attached to the requester's IAM user or role.
//!
//! Design choices:
//! - **One policy per request.** [`Provider::access_for`] returns the policy
//!   name, which contains the request id, so overlapping requests of one
//!   principal get separate policies and ending one never touches the other.
//! - **Ownership is the path plus the name.** A policy is gitgrant's (and this
//!   resource's) only if it sits at the configured path (default `/gitgrant/`)
//!   *and* its name is exactly [`policy_name`] of some request id and this
//!   resource. Everything else in the account is never listed, changed or
//!   deleted, even under `/gitgrant/`.
//! - **Fail-closed expiry.** Every statement of the document carries
//!   `DateLessThan aws:CurrentTime <end>`, so AWS itself stops honouring the
//!   policy at the end even if gitgrant never runs again ([`expiring_document`]).
//! - **`list` is a handful of calls.** One paginated
//!   `GetAccountAuthorizationDetails` (users, roles, groups, local managed
//!   policies; up to 1,000 items a page) returns the policies with their
//!   documents and every attachment, whatever the number of grants. That call
//!   returns no policy tags, so the request id is recovered from the policy
//!   name and the end from the `aws:CurrentTime` condition of the default
//!   version; the `gitgrant:*` tags are for people, audits and IAM conditions.
//! - **One version.** A changed grant becomes a new default version and the
//!   older versions are deleted, so nobody can roll a shortened grant back to
//!   a longer one with `SetDefaultPolicyVersion`.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_iam::Client;
use aws_sdk_iam::config::BehaviorVersion;
use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::{EntityType, Tag};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::{Access, GrantSpec, Held, Provider, ProviderError};
use crate::model::policy::ProviderKind;

/// The default policy path: the ownership marker (see README, Provider: aws-iam).
pub const DEFAULT_PATH: &str = "/gitgrant/";
const NAME_PREFIX: &str = "gitgrant.";
/// IAM's limit on policy names.
const MAX_NAME: usize = 128;
/// Room kept for a resource that must be hashed: `=` and 16 hex digits.
const HASH_SUFFIX: usize = 17;
const KIND: ProviderKind = ProviderKind::AwsIam;

/// Resource config keys: `account_id` (optional, 12 digits: principals and
/// listed policies must belong to it), `region` (optional; IAM is global, it
/// only picks the signing region, default from the environment or
/// `us-east-1`), `path` (optional, default `/gitgrant/`).
pub struct AwsIamProvider {
    client: Client,
    resource: String,
    path: String,
    account_id: Option<String>,
    /// Managed policy ARN -> its decoded default document, read once per run
    /// (by the plan's limit check, then reused by the grant).
    copies: std::sync::Mutex<BTreeMap<String, String>>,
}

fn cfg_str<'a>(config: &'a BTreeMap<String, Value>, key: &str, resource: &str) -> Result<Option<&'a str>, ProviderError> {
    super::config_str(KIND, config, key, resource)
}

fn permanent(resource: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::permanent(KIND, resource, message)
}

fn transient(resource: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::transient(KIND, resource, message)
}

impl AwsIamProvider {
    /// Builds the provider with the SDK's normal environment configuration
    /// (credentials chain, `AWS_REGION`, `AWS_ENDPOINT_URL`/`AWS_ENDPOINT_URL_IAM`).
    pub async fn from_env(resource: &str, config: &BTreeMap<String, Value>) -> Result<Self, ProviderError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(super::aws_http_client());
        if let Some(region) = cfg_str(config, "region", resource)? {
            loader = loader.region(aws_config::Region::new(region.to_string()));
        }
        let sdk = loader.timeout_config(super::aws_timeouts()).load().await;
        let mut iam = aws_sdk_iam::config::Builder::from(&sdk);
        if sdk.region().is_none() {
            // IAM is a global service; any region signs for it.
            iam = iam.region(aws_config::Region::from_static("us-east-1"));
        }
        Self::new(Client::from_conf(iam.build()), resource, config)
    }

    /// Builds the provider on a given client (tests point it at moto).
    pub fn new(client: Client, resource: &str, config: &BTreeMap<String, Value>) -> Result<Self, ProviderError> {
        let account_id = cfg_str(config, "account_id", resource)?.map(str::to_string);
        if let Some(a) = &account_id
            && !(a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(permanent(resource, format!("config `account_id` `{a}` is not a 12-digit AWS account id")));
        }
        let path = cfg_str(config, "path", resource)?.unwrap_or(DEFAULT_PATH).to_string();
        let path_ok = path.len() >= 3 && path.len() <= 512 && path.starts_with('/') && path.ends_with('/') && path.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if !path_ok {
            return Err(permanent(resource, format!("config `path` `{path}` must look like `/gitgrant/`: start and end with `/`, not be `/` alone")));
        }
        Ok(AwsIamProvider { client, resource: resource.to_string(), path, account_id, copies: std::sync::Mutex::default() })
    }

    fn perm(&self, message: impl Into<String>) -> ProviderError {
        permanent(&self.resource, message)
    }

    /// Maps an SDK error of `op` (acting on `what`) to a transient or permanent error.
    fn sdk<E>(&self, op: &str, what: &str, e: SdkError<E, HttpResponse>) -> ProviderError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        classify(&self.resource, op, what, &e)
    }

    fn check_account(&self, arn: &str, account: &str) -> Result<(), ProviderError> {
        match &self.account_id {
            Some(want) if want != account => Err(self.perm(format!(
                "`{arn}` is in account {account}, but the resource's config says `account_id: {want}`; fix the identities entry, the config, or the AWS credentials"
            ))),
            _ => Ok(()),
        }
    }

    /// Is this ARN a policy this provider owns? Returns its request id.
    fn owned(&self, arn: &str) -> Option<String> {
        let rest = arn.split(':').nth(5)?.strip_prefix("policy")?;
        let name = rest.strip_prefix(self.path.as_str())?;
        if name.contains('/') {
            return None;
        }
        request_of(name, &self.resource)
    }

    /// The policy document to attach: the rendered template or a copy of the
    /// managed policy, with the expiry condition on every statement.
    async fn document(&self, spec: &GrantSpec) -> Result<String, ProviderError> {
        let template = spec.grant.get("policy_template").and_then(Value::as_str);
        let managed = spec.grant.get("managed_policy_arn").and_then(Value::as_str);
        let (source, raw) = match (template, managed, &spec.document) {
            (Some(t), _, Some(doc)) => (format!("template `templates/{t}`"), doc.clone()),
            (Some(t), _, None) => {
                return Err(self.perm(format!("template `templates/{t}` of role `{}` was not rendered (a gitgrant bug; please report it)", spec.role)));
            }
            (None, Some(arn), _) => (format!("managed policy `{arn}`"), self.fetch_policy_document(arn).await?),
            (None, None, _) => return Err(self.perm(format!("role `{}`: the aws-iam grant needs `policy_template` or `managed_policy_arn`", spec.role))),
        };
        expiring_document(&raw, spec.end).map_err(|m| self.perm(format!("{source} of role `{}`: {m}", spec.role)))
    }

    /// The default version's document of an existing managed policy, cached
    /// per ARN for the life of this provider (one run).
    async fn fetch_policy_document(&self, arn: &str) -> Result<String, ProviderError> {
        if let Some(doc) = self.copies.lock().ok().and_then(|c| c.get(arn).cloned()) {
            return Ok(doc);
        }
        let doc = self.read_policy_document(arn).await?;
        if let Ok(mut c) = self.copies.lock() {
            c.insert(arn.to_string(), doc.clone());
        }
        Ok(doc)
    }

    /// GetPolicy, then GetPolicyVersion of its default version, URL-decoded.
    async fn read_policy_document(&self, arn: &str) -> Result<String, ProviderError> {
        let missing = |e: &dyn ProvideErrorMetadata| e.code() == Some("NoSuchEntity");
        let policy = match self.client.get_policy().policy_arn(arn).send().await {
            Ok(p) => p,
            Err(e) if missing(&e) => return Err(self.perm(format!("managed policy `{arn}` does not exist; fix `managed_policy_arn` in the role's grant"))),
            Err(e) => return Err(self.sdk("GetPolicy", arn, e)),
        };
        let version =
            policy.policy().and_then(|p| p.default_version_id()).ok_or_else(|| self.perm(format!("managed policy `{arn}` has no default version")))?;
        let out = self.client.get_policy_version().policy_arn(arn).version_id(version).send().await.map_err(|e| self.sdk("GetPolicyVersion", arn, e))?;
        let doc =
            out.policy_version().and_then(|v| v.document()).ok_or_else(|| self.perm(format!("managed policy `{arn}` version {version} has no document")))?;
        decode_document(doc).map(|v| v.to_string()).map_err(|m| self.perm(format!("managed policy `{arn}`: {m}")))
    }

    /// Brings an existing policy to `doc` and `tags` (a new default version,
    /// older versions deleted) unless it already has them.
    async fn update_policy(&self, arn: &str, doc: &str, tags: &[Tag]) -> Result<(), ProviderError> {
        let policy = match self.client.get_policy().policy_arn(arn).send().await {
            Ok(p) => p.policy,
            Err(e) if e.code() == Some("NoSuchEntity") => {
                return Err(
                    self.perm(format!("a policy with the name of `{arn}` exists outside `{}`; delete or rename it, gitgrant does not touch it", self.path))
                );
            }
            Err(e) => return Err(self.sdk("GetPolicy", arn, e)),
        };
        let default = policy.as_ref().and_then(|p| p.default_version_id()).unwrap_or_default().to_string();
        let current = self.client.get_policy_version().policy_arn(arn).version_id(&default).send().await.map_err(|e| self.sdk("GetPolicyVersion", arn, e))?;
        let current = current.policy_version().and_then(|v| v.document()).and_then(|d| decode_document(d).ok());
        let wanted: Option<Value> = serde_json::from_str(doc).ok();
        if current.is_none() || current != wanted {
            // Room for the new version: only the default may remain (max 5 versions).
            self.delete_old_versions(arn).await?;
            self.client
                .create_policy_version()
                .policy_arn(arn)
                .policy_document(doc)
                .set_as_default(true)
                .send()
                .await
                .map_err(|e| self.sdk("CreatePolicyVersion", arn, e))?;
            self.delete_old_versions(arn).await?;
        } else {
            // An older, longer version left by a run killed before DeletePolicyVersion
            // could be made default again by anyone with SetDefaultPolicyVersion.
            self.delete_old_versions(arn).await?;
        }
        let have: BTreeSet<(&str, &str)> = policy.as_ref().map(|p| p.tags().iter().map(|t| (t.key(), t.value())).collect()).unwrap_or_default();
        let want: BTreeSet<(&str, &str)> = tags.iter().map(|t| (t.key(), t.value())).collect();
        if !want.is_subset(&have) {
            self.client.tag_policy().policy_arn(arn).set_tags(Some(tags.to_vec())).send().await.map_err(|e| self.sdk("TagPolicy", arn, e))?;
        }
        Ok(())
    }

    /// Deletes every non-default version of the policy (gone = done).
    async fn delete_old_versions(&self, arn: &str) -> Result<(), ProviderError> {
        let versions = match self.client.list_policy_versions().policy_arn(arn).into_paginator().items().send().try_collect().await {
            Ok(v) => v,
            Err(e) if e.code() == Some("NoSuchEntity") => return Ok(()),
            Err(e) => return Err(self.sdk("ListPolicyVersions", arn, e)),
        };
        for v in versions.iter().filter(|v| !v.is_default_version()) {
            let Some(id) = v.version_id() else { continue };
            match self.client.delete_policy_version().policy_arn(arn).version_id(id).send().await {
                Ok(_) => {}
                Err(e) if e.code() == Some("NoSuchEntity") => {}
                Err(e) => return Err(self.sdk("DeletePolicyVersion", arn, e)),
            }
        }
        Ok(())
    }

    async fn attach(&self, p: &Principal, arn: &str) -> Result<(), ProviderError> {
        let result = match p.kind {
            PrincipalKind::User => self
                .client
                .attach_user_policy()
                .user_name(&p.name)
                .policy_arn(arn)
                .send()
                .await
                .map(drop)
                .map_err(|e| (e.code() == Some("NoSuchEntity"), self.sdk("AttachUserPolicy", arn, e))),
            PrincipalKind::Role => self
                .client
                .attach_role_policy()
                .role_name(&p.name)
                .policy_arn(arn)
                .send()
                .await
                .map(drop)
                .map_err(|e| (e.code() == Some("NoSuchEntity"), self.sdk("AttachRolePolicy", arn, e))),
            PrincipalKind::Group => return Err(self.perm(format!("`{}` is a group; {IDENTITY_HELP}", p.arn))),
        };
        result.map_err(|(missing, e)| {
            if missing {
                self.perm(format!(
                    "IAM {} `{}` does not exist in account {} ({}); fix the `aws` identities entry or create the {}",
                    p.kind, p.name, p.account, p.arn, p.kind
                ))
            } else {
                e
            }
        })
    }

    /// Deletes a policy that gitgrant just created for a failed grant, so a
    /// half-made grant does not linger. Best effort: `list` finds leftovers.
    async fn discard(&self, arn: &str) {
        let _ = self.client.delete_policy().policy_arn(arn).send().await;
    }
}

const IDENTITY_HELP: &str =
    "the `aws` identities entry must be an IAM user or role ARN such as `arn:aws:iam::111111111111:user/alice` or `arn:aws:iam::111111111111:role/path/name`";

#[async_trait::async_trait]
impl Provider for AwsIamProvider {
    fn kind(&self) -> ProviderKind {
        KIND
    }
    fn resource(&self) -> &str {
        &self.resource
    }
    fn native_expiry(&self) -> bool {
        true
    }
    fn marker(&self) -> String {
        format!(
            "customer-managed IAM policy `{NAME_PREFIX}<request>@{}` at path `{}`, tagged gitgrant:managed=true, gitgrant:request, gitgrant:end, gitgrant:role, gitgrant:resource",
            self.resource, self.path
        )
    }

    fn access_for(&self, request: &str, grant: &Value) -> Result<String, ProviderError> {
        if grant.get("policy_template").and_then(Value::as_str).is_none() && grant.get("managed_policy_arn").and_then(Value::as_str).is_none() {
            return Err(self.perm("the role's aws-iam grant needs `policy_template` or `managed_policy_arn`"));
        }
        policy_name(request, &self.resource)
            .ok_or_else(|| self.perm(format!("request id `{request}` cannot name an IAM policy (expected [a-z0-9._-], at most 80 characters)")))
    }

    async fn list(&self) -> Result<Vec<Held>, ProviderError> {
        let filter = [EntityType::User, EntityType::Role, EntityType::Group, EntityType::LocalManagedPolicy];
        let mut pages = self.client.get_account_authorization_details().set_filter(Some(filter.to_vec())).into_paginator().page_size(1000).send();
        // policy ARN -> (request id, end); policy ARN -> attached principals
        let mut policies: BTreeMap<String, (String, Option<DateTime<Utc>>)> = BTreeMap::new();
        let mut attached: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.sdk("GetAccountAuthorizationDetails", "the account", e))?;
            let mut entities: Vec<(&str, &[aws_sdk_iam::types::AttachedPolicy])> = Vec::new();
            entities.extend(page.user_detail_list().iter().map(|u| (u.arn().unwrap_or_default(), u.attached_managed_policies())));
            entities.extend(page.role_detail_list().iter().map(|r| (r.arn().unwrap_or_default(), r.attached_managed_policies())));
            entities.extend(page.group_detail_list().iter().map(|g| (g.arn().unwrap_or_default(), g.attached_managed_policies())));
            for (principal, list) in entities {
                for arn in list.iter().filter_map(|a| a.policy_arn()) {
                    attached.entry(arn.to_string()).or_default().insert(principal.to_string());
                }
            }
            for p in page.policies() {
                let Some(arn) = p.arn() else { continue };
                let Some(request) = self.owned(arn) else { continue };
                self.check_account(arn, arn.split(':').nth(4).unwrap_or_default())?;
                let default = p.policy_version_list().iter().find(|v| v.is_default_version());
                let mut end = default.and_then(|v| v.document()).and_then(|d| decode_document(d).ok()).and_then(|d| document_end(&d));
                // Non-default versions can be made default again: the access lasts as
                // long as the latest of them. Reported so, the plan rewrites the
                // policy, which deletes them.
                for v in p.policy_version_list().iter().filter(|v| !v.is_default_version()) {
                    let other = v.document().and_then(|d| decode_document(d).ok()).and_then(|d| document_end(&d));
                    end = match (end, other) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    };
                }
                policies.insert(arn.to_string(), (request, end));
            }
        }
        let mut out = Vec::new();
        for (arn, (request, end)) in policies {
            let name = arn.rsplit('/').next().unwrap_or_default().to_string();
            let principals = attached.remove(&arn).unwrap_or_default();
            // A policy attached to nobody is still held, so reconcile removes it.
            let principals = if principals.is_empty() { BTreeSet::from([String::new()]) } else { principals };
            for principal in principals {
                out.push(Held {
                    access: Access { provider: KIND, resource: self.resource.clone(), principal: principal_key(&principal), access: name.clone() },
                    requests: BTreeSet::from([request.clone()]),
                    end,
                    handle: arn.clone(),
                });
            }
        }
        out.sort_by(|a, b| a.access.cmp(&b.access));
        Ok(out)
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Held, ProviderError> {
        let name = &spec.access.access;
        if request_of(name, &self.resource).is_none() {
            return Err(self.perm(format!("`{name}` is not a gitgrant policy name for this resource (a gitgrant bug; please report it)")));
        }
        let principal = Principal::parse(&spec.access.principal).map_err(|m| self.perm(m))?;
        if principal.kind == PrincipalKind::Group {
            return Err(self.perm(format!("`{}` is a group; {IDENTITY_HELP}", principal.arn)));
        }
        self.check_account(&principal.arn, &principal.account)?;
        let doc = self.document(spec).await?;
        // Never try CreatePolicy with a document IAM refuses (the plan refuses it first).
        if let Some(size) = policy_size_over_limit(&doc) {
            return Err(self.perm(too_large(spec, size)));
        }
        let tags = tags(spec).map_err(|m| self.perm(m))?;
        let arn = format!("arn:{}:iam::{}:policy{}{}", principal.partition, principal.account, self.path, name);
        let request = spec.requests.iter().cloned().collect::<Vec<_>>().join(" ");
        let created = self
            .client
            .create_policy()
            .policy_name(name)
            .path(&self.path)
            .policy_document(&doc)
            .description(format!(
                "Managed by gitgrant: request {request} on resource {}. Do not edit; gitgrant deletes it when the request ends.",
                self.resource
            ))
            .set_tags(Some(tags.clone()))
            .send()
            .await;
        let created = match created {
            Ok(_) => true,
            Err(e) if e.code() == Some("EntityAlreadyExists") => {
                self.update_policy(&arn, &doc, &tags).await?;
                false
            }
            Err(e) => return Err(self.sdk("CreatePolicy", &arn, e)),
        };
        if let Err(e) = self.attach(&principal, &arn).await {
            if created && !e.is_transient() {
                self.discard(&arn).await;
            }
            return Err(e);
        }
        let end = serde_json::from_str(&doc).ok().and_then(|d: Value| document_end(&d));
        let access = Access { principal: principal_key(&principal.arn), ..spec.access.clone() };
        Ok(Held { access, requests: spec.requests.clone(), end, handle: arn })
    }

    /// A `managed_policy_arn` grant is copied into a customer-managed policy:
    /// reads the source (GetPolicy + GetPolicyVersion, cached per ARN) and
    /// refuses when the copy, with the expiry condition on every statement,
    /// is above IAM's 6,144 characters. Templates are checked by `check`.
    async fn exceeds_limits(&self, spec: &GrantSpec) -> Result<Option<String>, ProviderError> {
        copy_over_limit(self, spec).await
    }

    async fn revoke(&self, held: &Held) -> Result<(), ProviderError> {
        let arn = if held.handle.is_empty() {
            let p = Principal::parse(&held.access.principal).map_err(|m| self.perm(format!("no policy ARN to revoke: {m}")))?;
            format!("arn:{}:iam::{}:policy{}{}", p.partition, p.account, self.path, held.access.access)
        } else {
            held.handle.clone()
        };
        if self.owned(&arn).is_none() {
            return Err(self.perm(format!("refusing to delete `{arn}`: it is not a gitgrant policy of this resource (path `{}`)", self.path)));
        }
        let entities = self.client.list_entities_for_policy().policy_arn(&arn).into_paginator().send().try_collect().await;
        let pages = match entities {
            Ok(p) => p,
            Err(e) if e.code() == Some("NoSuchEntity") => return Ok(()),
            Err(e) => return Err(self.sdk("ListEntitiesForPolicy", &arn, e)),
        };
        let gone = |e: &dyn ProvideErrorMetadata| e.code() == Some("NoSuchEntity");
        // Detach only the principal this held grant is about: an attachment to
        // someone else is its own access, kept or revoked by its own plan action.
        // A held grant with no principal (a policy attached to nobody) clears all.
        let target = Principal::parse(&held.access.principal).ok();
        let mut attachments: Vec<(PrincipalKind, &str)> = Vec::new();
        for page in &pages {
            attachments.extend(page.policy_users().iter().filter_map(|u| u.user_name()).map(|n| (PrincipalKind::User, n)));
            attachments.extend(page.policy_roles().iter().filter_map(|r| r.role_name()).map(|n| (PrincipalKind::Role, n)));
            attachments.extend(page.policy_groups().iter().filter_map(|g| g.group_name()).map(|n| (PrincipalKind::Group, n)));
        }
        let mut others = 0;
        for (kind, name) in attachments {
            if target.as_ref().is_some_and(|t| t.kind != kind || t.name != name) {
                others += 1;
                continue;
            }
            let failed = match kind {
                PrincipalKind::User => match self.client.detach_user_policy().user_name(name).policy_arn(&arn).send().await {
                    Err(e) if !gone(&e) => Some(self.sdk("DetachUserPolicy", &arn, e)),
                    _ => None,
                },
                PrincipalKind::Role => match self.client.detach_role_policy().role_name(name).policy_arn(&arn).send().await {
                    Err(e) if !gone(&e) => Some(self.sdk("DetachRolePolicy", &arn, e)),
                    _ => None,
                },
                PrincipalKind::Group => match self.client.detach_group_policy().group_name(name).policy_arn(&arn).send().await {
                    Err(e) if !gone(&e) => Some(self.sdk("DetachGroupPolicy", &arn, e)),
                    _ => None,
                },
            };
            if let Some(e) = failed {
                return Err(e);
            }
        }
        if others > 0 {
            return Ok(());
        }
        self.delete_old_versions(&arn).await?;
        match self.client.delete_policy().policy_arn(&arn).send().await {
            Ok(_) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) if e.code() == Some("DeleteConflict") => {
                Err(transient(&self.resource, format!("DeletePolicy {arn}: DeleteConflict: it was attached again or got a new version meanwhile; retry")))
            }
            Err(e) => Err(self.sdk("DeletePolicy", &arn, e)),
        }
    }
}

/// The gitgrant tags of a policy. Values outside IAM's tag alphabet become `_`.
/// Why a `managed_policy_arn` grant cannot be copied within IAM's managed
/// policy size limit (`None`: it fits, or the grant is a template). Reads the
/// source policy before anything is created; the size is that of the
/// document the grant would write (compact JSON, expiry condition injected).
pub async fn copy_over_limit(p: &AwsIamProvider, spec: &GrantSpec) -> Result<Option<String>, ProviderError> {
    if spec.grant.get("policy_template").and_then(Value::as_str).is_some() {
        return Ok(None);
    }
    let Some(arn) = spec.grant.get("managed_policy_arn").and_then(Value::as_str) else { return Ok(None) };
    let raw = p.fetch_policy_document(arn).await?;
    let doc = expiring_document(&raw, spec.end).map_err(|m| p.perm(format!("managed policy `{arn}` of role `{}`: {m}", spec.role)))?;
    Ok(policy_size_over_limit(&doc).map(|size| too_large(spec, size)))
}

/// The refusal of a copy above IAM's limit, with the fix.
fn too_large(spec: &GrantSpec, size: usize) -> String {
    let source = match spec.grant.get("managed_policy_arn").and_then(Value::as_str) {
        Some(arn) => format!("the copy of managed policy `{arn}`"),
        None => "the rendered `policy_template`".to_string(),
    };
    format!(
        "{}: role `{}`: {source} (with the expiry condition on every statement) is {size} characters, above IAM's limit of {MANAGED_POLICY_MAX_CHARS} for a customer-managed policy; nothing was created. The aws-iam provider copies managed policies (so AWS itself ends the access) and cannot attach one directly: in the role's `grants: {{ aws-iam: ... }}`, replace `managed_policy_arn` with a `policy_template` listing only the actions and resources the role needs, or grant the managed policy through an `aws-sso` permission set (`grants: {{ aws-sso: {{ permission_set_arn: ... }} }}`)",
        crate::diag::Code::PolicyTooLarge.as_str(),
        spec.role
    )
}

fn tags(spec: &GrantSpec) -> Result<Vec<Tag>, String> {
    let requests = spec.requests.iter().cloned().collect::<Vec<_>>().join(" ");
    let pairs = [
        ("gitgrant:managed", "true".to_string()),
        ("gitgrant:request", requests),
        ("gitgrant:end", rfc3339(spec.end)),
        ("gitgrant:role", spec.role.clone()),
        ("gitgrant:resource", spec.access.resource.clone()),
    ];
    pairs
        .into_iter()
        .map(|(k, v)| {
            let v: String = v.chars().map(|c| if c.is_alphanumeric() || " _.:/=+-@".contains(c) { c } else { '_' }).take(256).collect();
            Tag::builder().key(k).value(v).build().map_err(|e| format!("tag {k}: {e}"))
        })
        .collect()
}

/// Maps an SDK error to transient (retry) or permanent (fix something), with the AWS code and what to do.
fn classify<E>(resource: &str, op: &str, what: &str, e: &SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let chain = error_chain(e);
    match e {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => transient(resource, format!("{op} {what}: {chain}")),
        // `other`: the connection dropped mid-request (closed before the response), among others.
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() || d.is_other() => {
            transient(resource, format!("{op} {what}: cannot reach AWS IAM: {chain}"))
        }
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) => {
            permanent(resource, format!("{op} {what}: {chain}; check the AWS configuration of the gitgrant runner (credentials, region, AWS_ENDPOINT_URL)"))
        }
        _ => {
            let code = e.code().unwrap_or("Unknown");
            let message = e.message().unwrap_or_default();
            let server_side = e.raw_response().is_some_and(|r| r.status().is_server_error());
            let text = match (e.code(), e.raw_response()) {
                // Not an AWS error document (a proxy's 503 HTML page): say what came back.
                (None, Some(raw)) => format!("{op} {what}: {}", http_excerpt(raw)),
                _ => format!("{op} {what}: {code}: {message}"),
            };
            match code {
                "Throttling"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "ServiceUnavailable"
                | "ServiceFailure"
                | "InternalFailure"
                | "ConcurrentModification" => transient(resource, text),
                _ if server_side => transient(resource, text),
                "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => {
                    permanent(resource, format!("{text}; allow iam:{op} to the gitgrant runner (README, Provider: aws-iam, lists the least-privilege policy)"))
                }
                "InvalidClientTokenId" | "SignatureDoesNotMatch" | "ExpiredToken" | "UnrecognizedClientException" => {
                    permanent(resource, format!("{text}; the runner's AWS credentials are invalid or expired, refresh them"))
                }
                "MalformedPolicyDocument" => {
                    permanent(resource, format!("{text}; AWS rejected the policy document: fix the role's template or managed policy"))
                }
                "LimitExceeded" => permanent(
                    resource,
                    format!(
                        "{text}; an IAM quota is reached (10 managed policies per user or role by default, 6,144 characters per policy, 5 versions): end other grants, shrink the policy or raise the quota"
                    ),
                ),
                _ => permanent(resource, text),
            }
        }
    }
}

/// An HTTP response that is not an AWS error document, in words: its status
/// and the start of its body on one line (tags and control characters
/// dropped), e.g. `HTTP 503: Service Unavailable upstream connect error`.
pub(crate) fn http_excerpt(raw: &HttpResponse) -> String {
    let status = raw.status().as_u16();
    let body = raw.body().bytes().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
    let mut text = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if in_tag => {}
            c if c.is_control() || c.is_whitespace() => text.push(' '),
            c => text.push(c),
        }
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut excerpt = words.join(" ");
    if excerpt.chars().count() > 160 {
        excerpt = excerpt.chars().take(160).collect::<String>() + "...";
    }
    let head = format!("HTTP {status}");
    if excerpt.is_empty() { format!("{head} (empty body)") } else { format!("{head}: {excerpt}") }
}

// `error_chain` and `fnv1a64` live in `provider` (kubernetes and GitHub use them without the aws feature).
pub(crate) use super::{error_chain, fnv1a64};

/// The policy name for a request on a resource: `gitgrant.<request>@<resource>`.
///
/// Request ids cannot contain `@`, so the request id is always the part
/// before the first `@` ([`request_of`]). A resource outside `[A-Za-z0-9_.-]`
/// or too long for IAM's 128 characters is written as a sanitised prefix,
/// `=` and a 64-bit FNV-1a hash of the full name; `=` never appears in the
/// verbatim form, so distinct (request, resource) pairs get distinct names.
/// `None` when the request id is not a valid gitgrant id.
pub fn policy_name(request: &str, resource: &str) -> Option<String> {
    let valid = (1..=80).contains(&request.len()) && request.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if !valid {
        return None;
    }
    let head = format!("{NAME_PREFIX}{request}@");
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    if !resource.is_empty() && resource.bytes().all(plain) && head.len() + resource.len() <= MAX_NAME {
        return Some(format!("{head}{resource}"));
    }
    let room = MAX_NAME.saturating_sub(head.len() + HASH_SUFFIX);
    let prefix: String = resource.chars().map(|c| if c.is_ascii() && plain(c as u8) { c } else { '_' }).take(room).collect();
    Some(format!("{head}{prefix}={:016x}", fnv1a64(resource.as_bytes())))
}

/// The request id of a policy name, if the name is exactly [`policy_name`] of
/// that request on `resource` (the ownership test).
pub fn request_of(name: &str, resource: &str) -> Option<String> {
    let (request, _) = name.strip_prefix(NAME_PREFIX)?.split_once('@')?;
    (policy_name(request, resource)?.as_str() == name).then(|| request.to_string())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// How the plan compares principals: the ARN without its IAM path
/// (`arn:aws:iam::111111111111:user/alice` for `.../user/team/alice`).
///
/// IAM reports ARNs with the path, while `identities` entries often leave it
/// out; compared as written, every run would revoke and re-grant the same
/// policy. User and role names are unique in an account whatever the path,
/// and attaching uses the name alone, so the path-less ARN names the same
/// principal. Anything that is not a user or role ARN is returned unchanged.
pub fn principal_key(arn: &str) -> String {
    match Principal::parse(arn) {
        Ok(p) if p.kind != PrincipalKind::Group => format!("arn:{}:iam::{}:{}/{}", p.partition, p.account, p.kind, p.name),
        _ => arn.to_string(),
    }
}

/// What a principal ARN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PrincipalKind {
    User,
    Role,
    Group,
}

impl std::fmt::Display for PrincipalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PrincipalKind::User => "user",
            PrincipalKind::Role => "role",
            PrincipalKind::Group => "group",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Principal {
    arn: String,
    partition: String,
    account: String,
    kind: PrincipalKind,
    /// The name without the path (what Attach*Policy takes).
    name: String,
}

impl Principal {
    /// Parses `arn:PARTITION:iam::ACCOUNT:user|role|group/[PATH/]NAME`.
    fn parse(arn: &str) -> Result<Principal, String> {
        let bad = || format!("`{arn}` is not an IAM user or role ARN; {IDENTITY_HELP}");
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [prefix, partition, service, region, account, resource] = parts.as_slice() else { return Err(bad()) };
        if *prefix != "arn" || !partition.starts_with("aws") || *service != "iam" || !region.is_empty() {
            return Err(bad());
        }
        if !(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())) {
            return Err(bad());
        }
        let (kind, rest) = resource.split_once('/').ok_or_else(bad)?;
        let kind = match kind {
            "user" => PrincipalKind::User,
            "role" => PrincipalKind::Role,
            "group" => PrincipalKind::Group,
            _ => return Err(bad()),
        };
        let name = rest.rsplit('/').next().unwrap_or_default();
        if name.is_empty() {
            return Err(bad());
        }
        Ok(Principal { arn: arn.to_string(), partition: partition.to_string(), account: account.to_string(), kind, name: name.to_string() })
    }
}

/// Parses a policy document as IAM returns it: URL-encoded (RFC 3986) JSON,
/// or plain JSON (some emulators).
pub fn decode_document(text: &str) -> Result<Value, String> {
    if let Ok(v) = serde_json::from_str(text) {
        return Ok(v);
    }
    let decoded = percent_decode(text).ok_or("the policy document is neither JSON nor URL-encoded JSON")?;
    serde_json::from_str(&decoded).map_err(|e| format!("the policy document is not valid JSON ({e})"))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The statements of a policy document (`Statement` may be one object or an array).
fn statements(doc: &Value) -> Vec<&Value> {
    match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(s @ Value::Object(_)) => vec![s],
        _ => Vec::new(),
    }
}

/// Adds `"DateLessThan": {"aws:CurrentTime": END}` to every statement (Allow
/// and Deny alike), merged with existing conditions; an existing earlier
/// `aws:CurrentTime` bound is kept. Returns compact JSON, or what is wrong
/// with the document.
pub fn expiring_document(doc: &str, end: DateTime<Utc>) -> Result<String, String> {
    let mut value: Value = serde_json::from_str(doc).map_err(|e| format!("not valid JSON ({e})"))?;
    let not_policy = |why: &str| format!("not an IAM policy document: {why}");
    let obj = value.as_object_mut().ok_or_else(|| not_policy("the top level must be a JSON object"))?;
    let statements: Vec<&mut Value> = match obj.get_mut("Statement") {
        Some(Value::Array(a)) if !a.is_empty() => a.iter_mut().collect(),
        Some(s @ Value::Object(_)) => vec![s],
        Some(_) => return Err(not_policy("`Statement` must be an object or a non-empty array")),
        None => return Err(not_policy("no `Statement`")),
    };
    for (i, s) in statements.into_iter().enumerate() {
        let s = s.as_object_mut().ok_or_else(|| not_policy(&format!("statement {} is not an object", i + 1)))?;
        if !matches!(s.get("Effect").and_then(Value::as_str), Some("Allow" | "Deny")) {
            return Err(not_policy(&format!("statement {} needs `Effect`: `Allow` or `Deny`", i + 1)));
        }
        let condition = s.entry("Condition").or_insert_with(|| json!({}));
        let condition = condition.as_object_mut().ok_or_else(|| not_policy(&format!("statement {}: `Condition` must be an object", i + 1)))?;
        let before = condition.entry("DateLessThan").or_insert_with(|| json!({}));
        let before = before.as_object_mut().ok_or_else(|| not_policy(&format!("statement {}: `DateLessThan` must be an object", i + 1)))?;
        let bound = match take_current_time(before) {
            Some(old) => latest(&old).ok_or_else(|| {
                format!(
                    "statement {}: cannot compare the existing DateLessThan aws:CurrentTime `{old}` with the grant's end; write it as RFC 3339 (2026-01-31T18:00:00Z)",
                    i + 1
                )
            })?,
            None => end,
        };
        before.insert("aws:CurrentTime".to_string(), Value::String(rfc3339(bound.min(end))));
    }
    serde_json::to_string(&value).map_err(|e| e.to_string())
}

/// Removes the `aws:CurrentTime` entry (condition keys are case-insensitive).
fn take_current_time(block: &mut Map<String, Value>) -> Option<Value> {
    let key = block.keys().find(|k| k.eq_ignore_ascii_case("aws:CurrentTime"))?.clone();
    block.remove(&key)
}

/// The time a DateLessThan value allows until: several values are ORed, so the latest wins.
fn latest(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::Array(a) if !a.is_empty() => a.iter().map(parse_time).collect::<Option<Vec<_>>>()?.into_iter().max(),
        other => parse_time(other),
    }
}

/// IAM date values: ISO 8601 date-times, dates, or epoch seconds.
fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::Number(n) => DateTime::from_timestamp(n.as_i64()?, 0),
        Value::String(s) => {
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Some(t.with_timezone(&Utc));
            }
            if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                return Some(d.and_hms_opt(0, 0, 0)?.and_utc());
            }
            DateTime::from_timestamp(s.parse().ok()?, 0)
        }
        _ => None,
    }
}

/// When a document stops granting anything: the latest `aws:CurrentTime`
/// bound over its statements, `None` if any statement is unbounded (then the
/// policy has no native expiry and reconcile rewrites it).
pub fn document_end(doc: &Value) -> Option<DateTime<Utc>> {
    let all = statements(doc);
    if all.is_empty() {
        return None;
    }
    let mut end: Option<DateTime<Utc>> = None;
    for s in all {
        let block = s.get("Condition")?.get("DateLessThan")?.as_object()?;
        let (_, v) = block.iter().find(|(k, _)| k.eq_ignore_ascii_case("aws:CurrentTime"))?;
        let t = latest(v)?;
        end = Some(end.map_or(t, |e| e.max(t)));
    }
    end
}

pub use super::aws_limits::{MANAGED_POLICY_MAX_CHARS, policy_size_over_limit};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn expire(doc: Value, end: &str) -> Value {
        serde_json::from_str(&expiring_document(&doc.to_string(), t(end)).unwrap()).unwrap()
    }

    #[test]
    fn a_single_statement_object_gets_the_condition() {
        let out = expire(json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}}), "2026-03-01T18:00:00Z");
        assert_eq!(
            out,
            json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
                "Condition": {"DateLessThan": {"aws:CurrentTime": "2026-03-01T18:00:00Z"}}}})
        );
        assert_eq!(document_end(&out), Some(t("2026-03-01T18:00:00Z")));
    }

    #[test]
    fn every_statement_of_an_array_gets_it_deny_included_and_existing_conditions_are_kept() {
        let out = expire(
            json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "rds:Describe*", "Resource": "*"},
                {"Effect": "Deny", "Action": "rds:Delete*", "Resource": "*"},
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {
                    "Bool": {"aws:SecureTransport": "true"},
                    "DateLessThan": {"aws:EpochTime": "1900000000"}}}
            ]}),
            "2026-03-01T18:00:00Z",
        );
        let st = out["Statement"].as_array().unwrap();
        assert_eq!(st.len(), 3);
        for s in st {
            assert_eq!(s["Condition"]["DateLessThan"]["aws:CurrentTime"], "2026-03-01T18:00:00Z", "{s}");
        }
        assert_eq!(st[1]["Effect"], "Deny");
        assert_eq!(st[2]["Condition"]["Bool"], json!({"aws:SecureTransport": "true"}));
        assert_eq!(st[2]["Condition"]["DateLessThan"]["aws:EpochTime"], "1900000000");
    }

    #[test]
    fn an_earlier_existing_bound_wins_and_a_later_one_is_cut_to_the_end() {
        let out = expire(
            json!({"Statement": [
                {"Effect": "Allow", "Action": "a:B", "Resource": "*", "Condition": {"DateLessThan": {"aws:CurrentTime": "2026-02-01T00:00:00Z"}}},
                {"Effect": "Allow", "Action": "a:B", "Resource": "*", "Condition": {"DateLessThan": {"AWS:currenttime": "2030-01-01"}}},
                {"Effect": "Allow", "Action": "a:B", "Resource": "*", "Condition": {"DateLessThan": {"aws:CurrentTime": ["2026-01-01T00:00:00Z", "2026-02-15T00:00:00+01:00"]}}},
                {"Effect": "Allow", "Action": "a:B", "Resource": "*", "Condition": {"DateLessThan": {"aws:CurrentTime": 1767225600}}}
            ]}),
            "2026-03-01T18:00:00Z",
        );
        let bounds: Vec<&Value> = out["Statement"].as_array().unwrap().iter().map(|s| &s["Condition"]["DateLessThan"]).collect();
        assert_eq!(bounds[0], &json!({"aws:CurrentTime": "2026-02-01T00:00:00Z"}));
        // The differently-cased key is replaced, not duplicated.
        assert_eq!(bounds[1], &json!({"aws:CurrentTime": "2026-03-01T18:00:00Z"}));
        assert_eq!(bounds[2], &json!({"aws:CurrentTime": "2026-02-14T23:00:00Z"}));
        assert_eq!(bounds[3], &json!({"aws:CurrentTime": "2026-01-01T00:00:00Z"}));
        assert_eq!(document_end(&out), Some(t("2026-03-01T18:00:00Z")));
    }

    #[test]
    fn applying_twice_is_stable() {
        let doc = json!({"Statement": [{"Effect": "Allow", "Action": "a:B", "Resource": "*"}]}).to_string();
        let once = expiring_document(&doc, t("2026-03-01T18:00:00Z")).unwrap();
        assert_eq!(expiring_document(&once, t("2026-03-01T18:00:00Z")).unwrap(), once);
    }

    #[test]
    fn documents_that_are_not_policies_are_refused_with_the_reason() {
        let end = t("2026-03-01T18:00:00Z");
        let cases = [
            ("{", "not valid JSON"),
            ("[]", "the top level must be a JSON object"),
            (r#"{"Version": "2012-10-17"}"#, "no `Statement`"),
            (r#"{"Statement": []}"#, "non-empty array"),
            (r#"{"Statement": ["x"]}"#, "statement 1 is not an object"),
            (r#"{"Statement": [{"Action": "a:B"}]}"#, "statement 1 needs `Effect`"),
            (r#"{"Statement": {"Effect": "Allow", "Condition": []}}"#, "`Condition` must be an object"),
            (r#"{"Statement": {"Effect": "Allow", "Condition": {"DateLessThan": {"aws:CurrentTime": "soon"}}}}"#, "cannot compare"),
        ];
        for (doc, want) in cases {
            let err = expiring_document(doc, end).unwrap_err();
            assert!(err.contains(want), "{doc}: {err}");
        }
    }

    #[test]
    fn document_end_is_none_when_a_statement_is_unbounded() {
        let doc = json!({"Statement": [
            {"Effect": "Allow", "Condition": {"DateLessThan": {"aws:CurrentTime": "2026-03-01T18:00:00Z"}}},
            {"Effect": "Allow"}
        ]});
        assert_eq!(document_end(&doc), None);
        assert_eq!(document_end(&json!({})), None);
    }

    #[test]
    fn names_are_deterministic_reversible_and_within_iam_limits() {
        assert_eq!(policy_name("2026-01-alice-db", "orders-db").as_deref(), Some("gitgrant.2026-01-alice-db@orders-db"));
        assert_eq!(request_of("gitgrant.2026-01-alice-db@orders-db", "orders-db").as_deref(), Some("2026-01-alice-db"));
        // Request ids may contain dots: the `@` separator keeps them apart.
        assert_eq!(request_of(&policy_name("a.b", "c").unwrap(), "c").as_deref(), Some("a.b"));
        assert_eq!(request_of(&policy_name("a", "b.c").unwrap(), "b.c").as_deref(), Some("a"));
        assert_eq!(request_of("gitgrant.a@b.c", "c"), None);
        // Another resource's policy is not ours.
        assert_eq!(request_of("gitgrant.req@other", "orders-db"), None);
        assert_eq!(request_of("ReadOnlyAccess", "orders-db"), None);

        let long_id = "r".repeat(80);
        let long_res = format!("{}/prod eu", "x".repeat(200));
        for (req, res) in [(long_id.as_str(), long_res.as_str()), ("abc", "Orders DB (prod)"), (long_id.as_str(), "orders-db-with-a-long-name-in-eu-west-1")] {
            let name = policy_name(req, res).unwrap();
            assert!(name.len() <= MAX_NAME, "{name}");
            assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b)), "{name}");
            assert_eq!(request_of(&name, res).as_deref(), Some(req));
            assert_eq!(policy_name(req, res).unwrap(), name, "deterministic");
        }
        // Sanitising never makes two resources share a name.
        let a = policy_name("abc", "db one").unwrap();
        let b = policy_name("abc", "db_one").unwrap();
        assert_ne!(a, b);
        assert_eq!(b, "gitgrant.abc@db_one");
        assert_eq!(request_of(&a, "db_one"), None);
        assert_eq!(policy_name("Bad@Id", "x"), None);
        assert_eq!(policy_name("", "x"), None);
    }

    #[test]
    fn principals_are_iam_user_or_role_arns() {
        let p = Principal::parse("arn:aws:iam::111111111111:user/team/alice").unwrap();
        assert_eq!((p.kind, p.name.as_str(), p.account.as_str(), p.partition.as_str()), (PrincipalKind::User, "alice", "111111111111", "aws"));
        let p = Principal::parse("arn:aws-us-gov:iam::222222222222:role/ops").unwrap();
        assert_eq!((p.kind, p.name.as_str()), (PrincipalKind::Role, "ops"));
        for bad in [
            "alice",
            "arn:aws:sts::111111111111:assumed-role/ops/alice",
            "arn:aws:iam::1111:user/alice",
            "arn:aws:iam::111111111111:user/",
            "arn:aws:s3:::bucket",
        ] {
            let err = Principal::parse(bad).unwrap_err();
            assert!(err.contains("arn:aws:iam::111111111111:user/alice"), "{err}");
        }
    }

    #[test]
    fn principal_keys_drop_the_iam_path_only() {
        assert_eq!(principal_key("arn:aws:iam::111111111111:user/team/eu/alice"), "arn:aws:iam::111111111111:user/alice");
        assert_eq!(principal_key("arn:aws:iam::111111111111:user/alice"), "arn:aws:iam::111111111111:user/alice");
        assert_eq!(principal_key("arn:aws-us-gov:iam::222222222222:role/ops/oncall"), "arn:aws-us-gov:iam::222222222222:role/oncall");
        for other in ["", "alice", "arn:aws:iam::111111111111:group/ops/admins"] {
            assert_eq!(principal_key(other), other);
        }
    }

    #[test]
    fn url_encoded_documents_decode() {
        let v = decode_document("%7B%22Statement%22%3A%20%5B%5D%7D").unwrap();
        assert_eq!(v, json!({"Statement": []}));
        assert_eq!(decode_document(r#"{"a": "100%"}"#).unwrap(), json!({"a": "100%"}));
        assert!(decode_document("%ZZ").is_err());
    }

    fn service_error(code: &str, status: u16) -> SdkError<aws_sdk_iam::operation::get_policy::GetPolicyError, HttpResponse> {
        let err =
            aws_sdk_iam::operation::get_policy::GetPolicyError::generic(aws_sdk_iam::error::ErrorMetadata::builder().code(code).message("details").build());
        SdkError::service_error(err, HttpResponse::new(status.try_into().unwrap(), "".into()))
    }

    #[test]
    fn a_503_html_page_is_reported_with_its_status_and_an_excerpt() {
        let html = "<html><head><title>503 Service Unavailable</title></head>\n<body><h1>Service Unavailable</h1>\nupstream connect error</body></html>";
        let raw = HttpResponse::new(503u16.try_into().unwrap(), html.into());
        let err = aws_sdk_iam::operation::get_policy::GetPolicyError::generic(aws_sdk_iam::error::ErrorMetadata::builder().build());
        let e = SdkError::service_error(err, raw);
        let err = classify("aws-prod", "GetPolicy", "arn:x", &e);
        assert!(err.is_transient(), "{err}");
        assert_eq!(err.detail(), "GetPolicy arn:x: HTTP 503: 503 Service Unavailable Service Unavailable upstream connect error (transient)");
    }

    #[test]
    fn throttling_and_server_errors_are_transient_the_rest_permanent() {
        for (code, status) in [("Throttling", 400), ("RequestLimitExceeded", 400), ("ServiceFailure", 500), ("Whatever", 503)] {
            let e = classify("orders", "GetPolicy", "arn", &service_error(code, status));
            assert!(e.is_transient(), "{code}: {e}");
        }
        for (code, hint) in [
            ("AccessDenied", "allow iam:GetPolicy"),
            ("MalformedPolicyDocument", "fix the role's template"),
            ("LimitExceeded", "quota"),
            ("NoSuchEntity", "NoSuchEntity"),
        ] {
            let e = classify("orders", "GetPolicy", "arn", &service_error(code, 400));
            assert!(!e.is_transient(), "{code}");
            let text = e.to_string();
            assert!(text.starts_with("aws-iam orders: GetPolicy arn: "), "{text}");
            assert!(text.contains(code) && text.contains(hint), "{text}");
        }
    }
}
