//! The `azure-rbac` provider: a time-bound Azure RBAC role assignment made
//! with Privileged Identity Management schedule requests (ARM REST,
//! `Microsoft.Authorization/roleAssignmentScheduleRequests`, api-version 2020-10-01).
//!
//! Design choices:
//! - **Azure ends it.** The grant is an `AdminAssign` request whose schedule
//!   expires `AfterDateTime` at the end, so the assignment disappears on time
//!   even if gitgrant never runs again. A changed end or set of requests is an
//!   `AdminUpdate` of the same assignment (`AdminExtend` only applies to
//!   assignments about to expire, so it is not used); revoking is `AdminRemove`.
//! - **One assignment per access.** The access is the role definition's GUID;
//!   Azure allows one assignment of a role to a principal at a scope, so
//!   several requests that need it share it, with the latest end.
//! - **The marker is the justification** of the request behind the schedule:
//!   exactly [`rest::marker`] `gitgrant:<id>[,<id>...]@<resource>`. Schedules
//!   carry no justification, so `list` reads the schedules at the scope and
//!   then the request each time-bound, direct one links to
//!   (`roleAssignmentScheduleRequestId`): a few calls per assignment with an
//!   end date at the scope, none for permanent assignments. Anything without
//!   this resource's marker is never changed: `revoke` re-checks ownership
//!   before it removes, and an assignment made outside gitgrant that blocks a
//!   grant (`RoleAssignmentExists`) is reported, not taken over.
//! - **Lifecycle.** A request answers with a status: `Provisioned` (done),
//!   pending states (polled briefly, then left to Azure), approval states (a
//!   permanent error: gitgrant's approvals happen in Git, so the role's PIM
//!   settings must not require approval for assignments) or failure states.
//!   `ActiveDurationTooShort` (Azure refuses to remove an assignment in its
//!   first minutes) and a pending request for the same assignment are transient.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use super::rest::{self, RestClient, RestError, StaticToken, TokenSource};
use super::{Access, GrantSpec, Held, Provider, ProviderContext, ProviderError};
use crate::model::policy::ProviderKind;

const KIND: ProviderKind = ProviderKind::AzureRbac;
pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com";
/// Overrides the Resource Manager endpoint when the resource config has no `endpoint`.
pub const ENDPOINT_ENV: &str = "GITGRANT_AZURE_ENDPOINT";
/// A ready ARM access token (e.g. `az account get-access-token --query accessToken -o tsv`).
pub const TOKEN_ENV: &str = "AZURE_ACCESS_TOKEN";
pub const API_VERSION: &str = "2020-10-01";
const PRINCIPAL_HELP: &str = "the `azure` identities entry must be the Entra object id (a GUID) of the user, group or service principal";

pub struct AzureRbacProvider {
    rest: RestClient,
    resource: String,
    /// `/subscriptions/...` or `/providers/Microsoft.Management/managementGroups/...`, no trailing `/`.
    scope: String,
    endpoint: String,
    now: DateTime<Utc>,
    /// Status polls of a request still pending, and the pause between them.
    polls: u32,
    poll_delay: Duration,
}

fn permanent(resource: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::permanent(KIND, resource, message)
}

pub async fn build(ctx: &ProviderContext<'_>) -> Result<Box<dyn Provider>, ProviderError> {
    let endpoint = rest::endpoint(&ctx.config.config, ENDPOINT_ENV, DEFAULT_ENDPOINT).map_err(|m| permanent(ctx.resource, m))?;
    let token = token_from_env(ctx.resource, &endpoint)?;
    Ok(Box::new(AzureRbacProvider::new(ctx.resource, &ctx.config.config, token, ctx.now)?))
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// `AZURE_ACCESS_TOKEN`, else workload identity (`AZURE_FEDERATED_TOKEN_FILE`
/// with `AZURE_TENANT_ID`/`AZURE_CLIENT_ID`: AKS, or a GitHub OIDC token
/// written to a file), else a client secret (`AZURE_TENANT_ID`,
/// `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`).
fn token_from_env(resource: &str, endpoint: &str) -> Result<Arc<dyn TokenSource>, ProviderError> {
    if let Some(t) = env(TOKEN_ENV) {
        return Ok(Arc::new(StaticToken(t)));
    }
    let audience = if endpoint.starts_with("https://") { endpoint.to_string() } else { DEFAULT_ENDPOINT.to_string() };
    let scope = format!("{audience}/.default");
    let cred: Arc<dyn azure_core::credentials::TokenCredential> = if env("AZURE_FEDERATED_TOKEN_FILE").is_some() {
        azure_identity::WorkloadIdentityCredential::new(None)
            .map_err(|e| permanent(resource, format!("Azure workload identity: {e}; set AZURE_TENANT_ID and AZURE_CLIENT_ID")))?
    } else if let Some(secret) = env("AZURE_CLIENT_SECRET") {
        let (Some(tenant), Some(client)) = (env("AZURE_TENANT_ID"), env("AZURE_CLIENT_ID")) else {
            return Err(permanent(resource, "AZURE_CLIENT_SECRET is set but AZURE_TENANT_ID or AZURE_CLIENT_ID is not"));
        };
        azure_identity::ClientSecretCredential::new(&tenant, client, azure_core::credentials::Secret::from(secret), None)
            .map_err(|e| permanent(resource, format!("Azure client secret credential: {e}")))?
    } else {
        return Err(permanent(
            resource,
            format!(
                "no Azure credentials: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_FEDERATED_TOKEN_FILE (workload identity, GitHub OIDC) or AZURE_CLIENT_SECRET, or {TOKEN_ENV}"
            ),
        ));
    };
    Ok(Arc::new(AzureToken { cred, scope }))
}

struct AzureToken {
    cred: Arc<dyn azure_core::credentials::TokenCredential>,
    scope: String,
}

#[async_trait::async_trait]
impl TokenSource for AzureToken {
    async fn token(&self) -> Result<String, (bool, String)> {
        match self.cred.get_token(&[self.scope.as_str()], None).await {
            Ok(t) => Ok(t.token.secret().to_string()),
            Err(e) => {
                let transient = matches!(e.kind(), azure_core::error::ErrorKind::Io | azure_core::error::ErrorKind::Connection);
                Err((transient, format!("cannot get an Azure access token: {e}")))
            }
        }
    }
}

/// A GUID, lowercased (Azure compares them case-insensitively and answers lowercase).
fn guid(text: &str) -> Option<String> {
    let t = text.trim().to_ascii_lowercase();
    let groups: Vec<&str> = t.split('-').collect();
    let ok = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]) && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then_some(t)
}

/// A fresh random GUID (version 4) for a schedule request's name.
fn new_guid() -> String {
    let mut b: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The GUID of a role definition id (`.../roleDefinitions/<guid>` or the GUID alone).
pub fn role_guid(id: &str) -> Option<String> {
    guid(id.trim_end_matches('/').rsplit('/').next().unwrap_or_default())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v?.as_str()?).ok().map(|t| t.with_timezone(&Utc))
}

/// What a schedule request's status means for gitgrant.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    Pending,
    NeedsApproval,
    Failed,
}

fn outcome(status: &str) -> Outcome {
    match status {
        "Provisioned" | "ScheduleCreated" | "Revoked" => Outcome::Done,
        "Accepted"
        | "PendingEvaluation"
        | "Granted"
        | "PendingProvisioning"
        | "ProvisioningStarted"
        | "PendingScheduleCreation"
        | "AdminApproved"
        | "PendingExternalProvisioning"
        | "PendingRevocation" => Outcome::Pending,
        "PendingApproval" | "PendingApprovalProvisioning" | "PendingAdminDecision" => Outcome::NeedsApproval,
        _ => Outcome::Failed,
    }
}

impl AzureRbacProvider {
    /// Resource config keys: `scope` (required: `/subscriptions/ID[/resourceGroups/NAME[/...]]`
    /// or `/providers/Microsoft.Management/managementGroups/ID`), `endpoint` (optional).
    pub fn new(resource: &str, config: &BTreeMap<String, Value>, token: Arc<dyn TokenSource>, now: DateTime<Utc>) -> Result<Self, ProviderError> {
        let scope = match config.get("scope") {
            Some(Value::String(s)) => s.trim().trim_end_matches('/').to_string(),
            Some(_) => return Err(permanent(resource, "config `scope` must be a string; quote it in policies/")),
            None => return Err(permanent(resource, "config needs `scope`, e.g. `/subscriptions/<subscription-id>`")),
        };
        let lower = scope.to_ascii_lowercase();
        let sub_ok = lower.strip_prefix("/subscriptions/").and_then(|r| guid(r.split('/').next().unwrap_or_default())).is_some();
        let mg_ok = lower.strip_prefix("/providers/microsoft.management/managementgroups/").is_some_and(|r| !r.is_empty());
        if !(sub_ok || mg_ok) || scope.contains(['?', '#', ' ']) {
            return Err(permanent(
                resource,
                format!(
                    "config `scope` `{scope}` is not an Azure scope: use `/subscriptions/<guid>[/resourceGroups/<name>]` or `/providers/Microsoft.Management/managementGroups/<id>`"
                ),
            ));
        }
        let endpoint = rest::endpoint(config, ENDPOINT_ENV, DEFAULT_ENDPOINT).map_err(|m| permanent(resource, m))?;
        let forbidden = format!(
            "allow Microsoft.Authorization/roleAssignmentScheduleRequests/write and /read and Microsoft.Authorization/roleAssignmentSchedules/read at {scope} to the gitgrant runner (README, Provider: azure-rbac)"
        );
        let auth = format!("refresh {TOKEN_ENV}, or check AZURE_TENANT_ID, AZURE_CLIENT_ID and the federated token or client secret");
        let rest = RestClient::new(KIND, resource, token, &forbidden, &auth)?;
        Ok(AzureRbacProvider { rest, resource: resource.to_string(), scope, endpoint, now, polls: 5, poll_delay: Duration::from_secs(2) })
    }

    /// How often and how fast a pending request is polled (tests shorten it).
    pub fn with_polling(mut self, polls: u32, delay: Duration) -> Self {
        self.polls = polls;
        self.poll_delay = delay;
        self
    }

    fn perm(&self, message: impl Into<String>) -> ProviderError {
        self.rest.permanent(message)
    }

    fn url(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}api-version={API_VERSION}", self.endpoint)
    }

    /// The full role definition id to send: as written in the grant, or built
    /// from its GUID under the scope's subscription (tenant level otherwise).
    fn role_definition_id(&self, written: Option<&str>, guid: &str) -> String {
        if let Some(w) = written.filter(|w| w.contains("/roleDefinitions/")) {
            return w.to_string();
        }
        let sub = self.scope.split('/').take(3).collect::<Vec<_>>().join("/");
        let prefix = if sub.to_ascii_lowercase().starts_with("/subscriptions/") { sub } else { String::new() };
        format!("{prefix}/providers/Microsoft.Authorization/roleDefinitions/{guid}")
    }

    /// Every page of a list call; `nextLink` is followed only on the same endpoint.
    async fn pages(&self, first: String, op: &str) -> Result<Vec<Value>, ProviderError> {
        let mut out = Vec::new();
        let mut next = Some(first);
        while let Some(url) = next.take() {
            let page = self.rest.call(Method::GET, &url, None).await.map_err(|e| self.rest.error(op, &e))?;
            out.extend(page.get("value").and_then(Value::as_array).cloned().unwrap_or_default());
            if let Some(link) = page.get("nextLink").and_then(Value::as_str).filter(|l| !l.is_empty()) {
                if !link.starts_with(&format!("{}/", self.endpoint)) {
                    return Err(self.perm(format!("{op}: the answer points to another host for its next page ({link}); refusing to send the token there")));
                }
                next = Some(link.to_string());
            }
        }
        Ok(out)
    }

    async fn put_request(&self, body: &Value) -> Result<Value, RestError> {
        let path = format!("{}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/{}", self.scope, new_guid());
        self.rest.call(Method::PUT, &self.url(&path), Some(body)).await
    }

    /// Waits for a pending request to settle (briefly); returns the last status.
    async fn settle(&self, op: &str, response: &Value) -> Result<String, ProviderError> {
        let mut status = response.pointer("/properties/status").and_then(Value::as_str).unwrap_or("Provisioned").to_string();
        let id = response.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        for _ in 0..self.polls {
            if outcome(&status) != Outcome::Pending || id.is_empty() {
                break;
            }
            tokio::time::sleep(self.poll_delay).await;
            let now = self.rest.call(Method::GET, &self.url(&id), None).await.map_err(|e| self.rest.error(op, &e))?;
            status = now.pointer("/properties/status").and_then(Value::as_str).unwrap_or(&status).to_string();
        }
        match outcome(&status) {
            Outcome::Done | Outcome::Pending => Ok(status),
            Outcome::NeedsApproval => Err(self.perm(format!(
                "{op}: the request waits for approval in PIM (status {status}); gitgrant's approvals happen in Git: turn off \"require approval\" for assignments of this role in its PIM settings at {}",
                self.scope
            ))),
            Outcome::Failed => Err(self.perm(format!("{op}: Azure answered status {status} for the schedule request {id}"))),
        }
    }

    /// Maps the errors a schedule request can meet to what to do.
    fn request_error(&self, op: &str, e: &RestError) -> ProviderError {
        let text = format!("{op}: {e}");
        match e.code.as_str() {
            "ActiveDurationTooShort" => self.rest.transient(format!("{text}; Azure removes an assignment only after its first minutes")),
            "RoleAssignmentRequestExists" | "PendingRoleAssignmentRequest" => {
                self.rest.transient(format!("{text}; a request for this assignment is still being processed"))
            }
            "RoleDefinitionDoesNotExist" | "InvalidRoleDefinitionId" => self.perm(format!("{text}; fix `role_definition_id` in the role's azure-rbac grant")),
            "PrincipalNotFound" | "InvalidPrincipalId" => self.perm(format!("{text}; {PRINCIPAL_HELP}")),
            "ExpirationRule" | "RoleAssignmentScheduleRequestValidationFailed" => {
                self.perm(format!("{text}; the role's PIM settings at {} do not allow this end: allow longer active assignments there", self.scope))
            }
            _ => self.rest.error(op, e),
        }
    }
}

#[async_trait::async_trait]
impl Provider for AzureRbacProvider {
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
        format!("PIM role assignment schedule at {} whose request's justification is `gitgrant:<requests>@{}`", self.scope, self.resource)
    }

    fn access_for(&self, _request: &str, grant: &Value) -> Result<String, ProviderError> {
        let id = grant
            .get("role_definition_id")
            .and_then(Value::as_str)
            .ok_or_else(|| self.perm("the role's azure-rbac grant needs `role_definition_id`, e.g. `acdd72a7-3385-48ef-bd42-f606fba81ae7` (Reader)"))?;
        role_guid(id)
            .ok_or_else(|| self.perm(format!("`{id}` is not a role definition id (a GUID, or `.../providers/Microsoft.Authorization/roleDefinitions/<guid>`)")))
    }

    async fn list(&self) -> Result<Vec<Held>, ProviderError> {
        let path = format!("{}/providers/Microsoft.Authorization/roleAssignmentSchedules?$filter=atScope()", self.scope);
        let schedules = self.pages(self.url(&path), "list roleAssignmentSchedules").await?;
        let mut out = Vec::new();
        for s in &schedules {
            let Some(p) = s.get("properties") else { continue };
            let field = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or_default();
            // Only direct, time-bound assignments at exactly this scope can be gitgrant's.
            let here = field("scope").trim_end_matches('/').eq_ignore_ascii_case(&self.scope);
            let direct = matches!(field("memberType"), "" | "Direct") && matches!(field("assignmentType"), "" | "Assigned");
            let end = parse_time(p.get("endDateTime"));
            let request_id = field("roleAssignmentScheduleRequestId");
            if !here || !direct || end.is_none() || request_id.is_empty() {
                continue;
            }
            let request = match self.rest.call(Method::GET, &self.url(request_id), None).await {
                Ok(r) => r,
                Err(e) if e.status == Some(404) => continue,
                Err(e) => return Err(self.rest.error("get roleAssignmentScheduleRequest", &e)),
            };
            let justification = request.pointer("/properties/justification").and_then(Value::as_str).unwrap_or_default();
            let Some(requests) = rest::parse_marker(justification, &self.resource) else { continue };
            let (Some(principal), Some(role)) = (guid(field("principalId")), role_guid(field("roleDefinitionId"))) else { continue };
            out.push(Held {
                access: Access { provider: KIND, resource: self.resource.clone(), principal, access: role },
                requests,
                end,
                handle: field("roleDefinitionId").to_string(),
            });
        }
        out.sort_by(|a, b| a.access.cmp(&b.access));
        Ok(out)
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Held, ProviderError> {
        let principal =
            guid(&spec.access.principal).ok_or_else(|| self.perm(format!("`{}` is not an Entra object id; {PRINCIPAL_HELP}", spec.access.principal)))?;
        let role = role_guid(&spec.access.access).ok_or_else(|| self.perm(format!("`{}` is not a role definition GUID", spec.access.access)))?;
        let access = Access { principal: principal.clone(), access: role.clone(), ..spec.access.clone() };
        let existing = self.list().await?.into_iter().find(|h| h.access == access);
        if let Some(h) = &existing
            && h.requests == spec.requests
            && h.end == Some(spec.end)
        {
            return Ok(h.clone());
        }
        let written = spec.grant.get("role_definition_id").and_then(Value::as_str);
        let role_definition_id = existing.as_ref().map(|h| h.handle.clone()).unwrap_or_else(|| self.role_definition_id(written, &role));
        let request_type = if existing.is_some() { "AdminUpdate" } else { "AdminAssign" };
        let body = json!({"properties": {
            "principalId": principal,
            "roleDefinitionId": role_definition_id,
            "requestType": request_type,
            "justification": rest::marker(&spec.requests, &self.resource),
            "scheduleInfo": {
                "startDateTime": rfc3339(self.now),
                "expiration": {"type": "AfterDateTime", "endDateTime": rfc3339(spec.end)},
            },
        }});
        let op = format!("{request_type} {role_definition_id} to {principal}");
        let response = match self.put_request(&body).await {
            Ok(r) => r,
            Err(e) if e.code == "RoleAssignmentExists" => {
                return Err(self.perm(format!(
                    "{op}: {e}; {principal} already holds this role at {} through an assignment gitgrant did not make, and gitgrant never changes those: remove it, or withdraw the request",
                    self.scope
                )));
            }
            Err(e) => return Err(self.request_error(&op, &e)),
        };
        self.settle(&op, &response).await?;
        Ok(Held { access, requests: spec.requests.clone(), end: Some(spec.end), handle: role_definition_id })
    }

    async fn revoke(&self, held: &Held) -> Result<(), ProviderError> {
        let Some(principal) = guid(&held.access.principal) else { return Ok(()) };
        let Some(role) = role_guid(&held.access.access) else { return Ok(()) };
        // Ownership is checked at the source: an assignment without this
        // resource's marker is never removed, even if asked to.
        let Some(mine) = self.list().await?.into_iter().find(|h| h.access.principal == principal && h.access.access == role) else {
            return Ok(());
        };
        let ids: BTreeSet<String> = if mine.requests.is_empty() { held.requests.clone() } else { mine.requests.clone() };
        let body = json!({"properties": {
            "principalId": principal,
            "roleDefinitionId": mine.handle,
            "requestType": "AdminRemove",
            "justification": rest::marker(&ids, &self.resource),
        }});
        let op = format!("AdminRemove {} from {principal}", mine.handle);
        match self.put_request(&body).await {
            Ok(r) => self.settle(&op, &r).await.map(drop),
            Err(e) if e.code == "RoleAssignmentDoesNotExist" => Ok(()),
            Err(e) => Err(self.request_error(&op, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn guids_and_role_ids() {
        assert_eq!(guid("ACDD72A7-3385-48EF-BD42-F606FBA81AE7").as_deref(), Some("acdd72a7-3385-48ef-bd42-f606fba81ae7"));
        assert_eq!(guid("acdd72a7338548efbd42f606fba81ae7"), None);
        assert_eq!(
            role_guid(
                "/subscriptions/38ab2ccc-3747-4567-b36b-9478f5602f0d/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
            )
            .as_deref(),
            Some("acdd72a7-3385-48ef-bd42-f606fba81ae7")
        );
        let g = new_guid();
        assert!(guid(&g).is_some() && g.as_bytes()[14] == b'4', "{g}");
        assert_ne!(new_guid(), new_guid());
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(outcome("Provisioned"), Outcome::Done);
        assert_eq!(outcome("PendingProvisioning"), Outcome::Pending);
        assert_eq!(outcome("PendingApproval"), Outcome::NeedsApproval);
        for s in ["Failed", "Denied", "Canceled", "FailedAsResourceIsLocked", "TimedOut", "Invalid", "AdminDenied"] {
            assert_eq!(outcome(s), Outcome::Failed, "{s}");
        }
    }

    #[test]
    fn scopes_are_checked_and_role_ids_built_under_the_subscription() {
        let token: Arc<dyn TokenSource> = Arc::new(StaticToken("t".into()));
        let cfg = |s: &str| BTreeMap::from([("scope".to_string(), json!(s))]);
        let now = Utc::now();
        let p = AzureRbacProvider::new("az", &cfg("/subscriptions/38ab2ccc-3747-4567-b36b-9478f5602f0d/resourceGroups/rg/"), token.clone(), now).unwrap();
        assert_eq!(p.scope, "/subscriptions/38ab2ccc-3747-4567-b36b-9478f5602f0d/resourceGroups/rg");
        assert_eq!(
            p.role_definition_id(None, "acdd72a7-3385-48ef-bd42-f606fba81ae7"),
            "/subscriptions/38ab2ccc-3747-4567-b36b-9478f5602f0d/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"
        );
        let mg = AzureRbacProvider::new("az", &cfg("/providers/Microsoft.Management/managementGroups/prod"), token.clone(), now).unwrap();
        assert_eq!(mg.role_definition_id(None, "x"), "/providers/Microsoft.Authorization/roleDefinitions/x");
        for bad in ["subscriptions/abc", "/subscriptions/not-a-guid", "/resourceGroups/rg"] {
            let e = AzureRbacProvider::new("az", &cfg(bad), token.clone(), now).err().unwrap().to_string();
            assert!(e.starts_with("azure-rbac az: config `scope`"), "{e}");
        }
    }
}
