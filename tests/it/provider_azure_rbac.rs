//! The azure-rbac provider against a stateful wiremock fake of the ARM
//! PIM API (`roleAssignmentScheduleRequests`, `roleAssignmentSchedules`,
//! api-version 2020-10-01), directly and through `plan` / `reconcile`.
//!
//! The fake follows the documented payloads (the REST API specification's
//! examples) and rejects what ARM rejects: a PUT creates the request and,
//! for `AdminAssign`, a schedule visible in the list; `AdminUpdate` and
//! `AdminExtend` need an existing assignment (and a later end, for extend);
//! `AdminRemove` deletes it, or answers `ActiveDurationTooShort` while it is
//! younger than the minimum; a second assignment of the same role to the
//! same principal at the scope is 409 `RoleAssignmentExists`; an unknown
//! api-version, a request name that is not a GUID, a bad role definition
//! id or a missing end are 400; throttling is 429 with `Retry-After`;
//! writes can be denied with 403 `AuthorizationFailed`; a wrong bearer
//! token is 401. Error bodies have ARM's `{"error": {"code", "message"}}` shape.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gitgrant::model::policy::ProviderKind;
use gitgrant::provider::azure_rbac::AzureRbacProvider;
use gitgrant::provider::rest::{StaticToken, TokenSource};
use gitgrant::provider::{Access, GrantSpec, Held, Provider};
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::reconcile::{land, ledger};
use crate::support::{Repo, run_in_env};

pub(crate) const TOKEN: &str = "eyJ0eXAi.azure-test-token";
pub(crate) const SCOPE: &str = "/subscriptions/38ab2ccc-3747-4567-b36b-9478f5602f0d/resourceGroups/rg-prod";
const SUB: &str = "/subscriptions/38ab2ccc-3747-4567-b36b-9478f5602f0d";
/// Built-in Reader.
pub(crate) const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
const ALICE: &str = "a3bb8764-cb92-4276-9d2a-ca1e895e55ea";
const BOB: &str = "5a4bdd72-ab3e-4d8e-ab0f-8dd8917481a2";
const PIM: &str = "/providers/Microsoft.Authorization/";

#[derive(Debug, Default)]
pub(crate) struct AzureState {
    /// Schedules by name (a GUID), ARM's RoleAssignmentSchedule shape.
    pub schedules: BTreeMap<String, Value>,
    /// Schedule requests by lowercased id.
    pub requests: BTreeMap<String, Value>,
    /// When each schedule was created (wall clock), for ActiveDurationTooShort.
    created: BTreeMap<String, Instant>,
    pub min_active: Duration,
    /// Answer the next N calls with 429 and `Retry-After: 1`.
    pub throttle: u32,
    pub deny_writes: bool,
    /// PIM's answer to the next `AdminAssign`: `PendingProvisioning` (the
    /// schedule appears after `pending_gets` status reads), or a state that
    /// creates nothing (`PendingApproval`, `Failed`). `None`: `Provisioned`.
    pub next_status: Option<&'static str>,
    pub pending_gets: u32,
    pub puts: Vec<Value>,
    pub calls: usize,
}

impl AzureState {
    /// An assignment made outside this resource's gitgrant, with this justification (or permanent: no end).
    pub fn seed(&mut self, principal: &str, role: &str, justification: &str, end: Option<&str>) {
        let req_name = guid(self.requests.len() as u64 + 1000);
        let req_id = format!("{SCOPE}{PIM}RoleAssignmentScheduleRequests/{req_name}");
        self.requests.insert(
            req_id.to_ascii_lowercase(),
            json!({"id": req_id, "name": req_name, "properties": {"justification": justification, "status": "Provisioned", "requestType": "AdminAssign"}}),
        );
        let name = guid(self.schedules.len() as u64 + 5000);
        self.schedules.insert(name.clone(), schedule(&name, principal, &role_id(role), &req_id, "2026-11-01T00:00:00Z", end));
        self.created.insert(name, Instant::now() - Duration::from_secs(3600));
    }

    pub fn gitgrant_schedules(&self) -> Vec<(String, String, String)> {
        self.schedules
            .values()
            .filter_map(|s| {
                let p = &s["properties"];
                let req = &self.requests[&p["roleAssignmentScheduleRequestId"].as_str().unwrap().to_ascii_lowercase()];
                let j = req["properties"]["justification"].as_str().unwrap_or_default();
                j.starts_with("gitgrant:")
                    .then(|| (p["principalId"].as_str().unwrap().to_string(), j.to_string(), p["endDateTime"].as_str().unwrap_or_default().to_string()))
            })
            .collect()
    }
}

fn guid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn role_id(role: &str) -> String {
    format!("{SUB}{PIM}roleDefinitions/{role}")
}

fn schedule(name: &str, principal: &str, role_def: &str, request_id: &str, start: &str, end: Option<&str>) -> Value {
    json!({
        "properties": {
            "linkedRoleEligibilityScheduleId": null,
            "assignmentType": "Assigned",
            "scope": SCOPE,
            "roleDefinitionId": role_def,
            "principalId": principal,
            "principalType": "User",
            "status": "Provisioned",
            "roleAssignmentScheduleRequestId": request_id,
            "startDateTime": start,
            "endDateTime": end,
            "memberType": "Direct",
            "createdOn": start,
            "updatedOn": start,
        },
        "name": name,
        "id": format!("{SCOPE}{PIM}RoleAssignmentSchedules/{name}"),
        "type": "Microsoft.Authorization/RoleAssignmentSchedules",
    })
}

#[derive(Clone)]
pub(crate) struct AzureFake {
    pub server: Arc<MockServer>,
    pub state: Arc<Mutex<AzureState>>,
}

impl AzureFake {
    pub async fn start() -> AzureFake {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(AzureState::default()));
        Mock::given(any()).respond_with(ArmApi(state.clone())).mount(&server).await;
        AzureFake { server: Arc::new(server), state }
    }
    pub fn uri(&self) -> String {
        self.server.uri()
    }
    pub fn lock(&self) -> std::sync::MutexGuard<'_, AzureState> {
        self.state.lock().unwrap()
    }
}

struct ArmApi(Arc<Mutex<AzureState>>);

fn arm_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error": {"code": code, "message": message}}))
}

fn is_guid(s: &str) -> bool {
    let g: Vec<&str> = s.split('-').collect();
    g.iter().map(|x| x.len()).eq([8, 4, 4, 4, 12]) && g.iter().all(|x| x.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?).ok().map(|t| t.with_timezone(&Utc))
}

impl Respond for ArmApi {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.0.lock().unwrap();
        st.calls += 1;
        if st.throttle > 0 {
            st.throttle -= 1;
            return arm_error(429, "TooManyRequests", "The request is being throttled.").insert_header("Retry-After", "1");
        }
        let auth = req.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if auth != format!("Bearer {TOKEN}") {
            return arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.");
        }
        let query: BTreeMap<String, String> = req.url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        if query.get("api-version").map(String::as_str) != Some("2020-10-01") {
            return arm_error(400, "InvalidApiVersionParameter", "The api-version is invalid. The supported versions are '2020-10-01'.");
        }
        let path = req.url.path().to_string();
        let lower = path.to_ascii_lowercase();
        let Some((scope, rest)) = lower.split_once("/providers/microsoft.authorization/") else {
            return arm_error(404, "ResourceNotFound", "The resource was not found.");
        };
        let scope_written = &path[..scope.len()];
        match (req.method.as_str(), rest.split('/').collect::<Vec<_>>().as_slice()) {
            ("GET", ["roleassignmentschedules"]) => {
                if query.get("$filter").map(String::as_str) != Some("atScope()") {
                    return arm_error(400, "BadRequest", "The filter is not supported.");
                }
                // atScope(): at or above the scope.
                let value: Vec<Value> =
                    st.schedules.values().filter(|s| scope.starts_with(&s["properties"]["scope"].as_str().unwrap().to_ascii_lowercase())).cloned().collect();
                ResponseTemplate::new(200).set_body_json(json!({"value": value}))
            }
            ("GET", ["roleassignmentschedulerequests", _]) => {
                let Some(r) = st.requests.get(&lower).cloned() else {
                    return arm_error(404, "RoleAssignmentScheduleRequestNotFound", "The role assignment schedule request was not found.");
                };
                if r["properties"]["status"] == "PendingProvisioning" {
                    if st.pending_gets > 0 {
                        st.pending_gets -= 1;
                    } else {
                        let p = &r["properties"];
                        let name = format!("{:08x}-0000-4000-8000-{:012x}", st.schedules.len() + 1, st.requests.len() + 1);
                        let (principal, role_def) = (p["principalId"].as_str().unwrap(), p["roleDefinitionId"].as_str().unwrap());
                        let (start, end) = (p["scheduleInfo"]["startDateTime"].as_str().unwrap(), p["scheduleInfo"]["expiration"]["endDateTime"].as_str());
                        let sched = schedule(&name, principal, role_def, r["id"].as_str().unwrap(), start, end);
                        st.schedules.insert(name.clone(), sched);
                        st.created.insert(name, Instant::now());
                        st.requests.get_mut(&lower).unwrap()["properties"]["status"] = json!("Provisioned");
                    }
                }
                ResponseTemplate::new(200).set_body_json(&st.requests[&lower])
            }
            ("PUT", ["roleassignmentschedulerequests", name]) => {
                let name = path.rsplit('/').next().unwrap_or(name).to_string();
                if st.deny_writes {
                    return arm_error(
                        403,
                        "AuthorizationFailed",
                        &format!(
                            "The client 'gitgrant' with object id '{BOB}' does not have authorization to perform action 'Microsoft.Authorization/roleAssignmentScheduleRequests/write' over scope '{scope_written}' or the scope is invalid."
                        ),
                    );
                }
                let body: Value = match req.body_json() {
                    Ok(b) => b,
                    Err(_) => return arm_error(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."),
                };
                st.puts.push(body.clone());
                let id = format!("{scope_written}{PIM}RoleAssignmentScheduleRequests/{name}");
                put_request(&mut st, &name, &id, scope_written, &body)
            }
            _ => arm_error(404, "ResourceNotFound", &format!("No route for {} {path}", req.method)),
        }
    }
}

fn put_request(st: &mut AzureState, name: &str, id: &str, scope: &str, body: &Value) -> ResponseTemplate {
    if !is_guid(name) {
        return arm_error(400, "InvalidRoleAssignmentScheduleRequestName", "The role assignment schedule request name must be a GUID.");
    }
    if st.requests.contains_key(&id.to_ascii_lowercase()) {
        return arm_error(409, "RoleAssignmentScheduleRequestExists", "A role assignment schedule request with this name already exists.");
    }
    let p = &body["properties"];
    let principal = p["principalId"].as_str().unwrap_or_default().to_string();
    let role_def = p["roleDefinitionId"].as_str().unwrap_or_default().to_string();
    let request_type = p["requestType"].as_str().unwrap_or_default().to_string();
    if !is_guid(&principal) {
        return arm_error(400, "InvalidPrincipalId", "The principal id is not a valid GUID.");
    }
    let role_guid = role_def.rsplit('/').next().unwrap_or_default();
    if !role_def.to_ascii_lowercase().contains("/providers/microsoft.authorization/roledefinitions/") || !is_guid(role_guid) {
        return arm_error(400, "InvalidRoleDefinitionId", &format!("The role definition ID '{role_def}' is not valid."));
    }
    let same = |s: &Value| {
        let sp = &s["properties"];
        sp["principalId"] == principal.as_str()
            && sp["roleDefinitionId"].as_str().unwrap_or_default().rsplit('/').next() == Some(role_guid)
            && sp["scope"].as_str().unwrap_or_default().eq_ignore_ascii_case(scope)
    };
    let existing = st.schedules.iter().find(|(_, s)| same(s)).map(|(k, _)| k.clone());
    let start = p["scheduleInfo"]["startDateTime"].clone();
    let expiration = &p["scheduleInfo"]["expiration"];
    let end = expiration["endDateTime"].as_str().map(str::to_string);
    let needs_schedule = matches!(request_type.as_str(), "AdminAssign" | "AdminUpdate" | "AdminExtend");
    if needs_schedule {
        match expiration["type"].as_str() {
            Some("AfterDateTime") => match (time(&start), end.as_ref().and_then(|e| time(&json!(e)))) {
                (Some(s), Some(e)) if e > s => {}
                _ => return arm_error(400, "InvalidScheduleInfo", "AfterDateTime needs a startDateTime and a later endDateTime."),
            },
            Some("NoExpiration" | "AfterDuration") => {}
            _ => return arm_error(400, "InvalidScheduleInfo", "The expiration type is invalid."),
        }
    }
    let status = match (request_type.as_str(), &existing) {
        ("AdminAssign", Some(_)) => return arm_error(409, "RoleAssignmentExists", "The Role assignment already exists."),
        ("AdminAssign", None) if st.next_status.is_some() => st.next_status.take().unwrap(),
        ("AdminAssign", None) => {
            let sname = format!("{:08x}-0000-4000-8000-{:012x}", st.schedules.len() + 1, st.requests.len() + 1);
            st.schedules.insert(sname.clone(), schedule(&sname, &principal, &role_def, id, start.as_str().unwrap_or_default(), end.as_deref()));
            st.created.insert(sname, Instant::now());
            "Provisioned"
        }
        ("AdminUpdate" | "AdminExtend" | "AdminRemove", None) => return arm_error(400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist."),
        ("AdminUpdate" | "AdminExtend", Some(k)) => {
            let s = st.schedules.get_mut(k).unwrap();
            if request_type == "AdminExtend" && time(&s["properties"]["endDateTime"]) >= end.as_ref().and_then(|e| time(&json!(e))) {
                return arm_error(400, "InvalidScheduleInfo", "An extension must end later than the current assignment.");
            }
            s["properties"]["endDateTime"] = json!(end);
            s["properties"]["roleAssignmentScheduleRequestId"] = json!(id);
            "Provisioned"
        }
        ("AdminRemove", Some(k)) => {
            if st.created[k].elapsed() < st.min_active {
                return arm_error(
                    400,
                    "ActiveDurationTooShort",
                    "The role assignment cannot be removed because it has been active for less than the minimum required duration.",
                );
            }
            st.schedules.remove(k);
            "Revoked"
        }
        (other, _) => return arm_error(400, "InvalidRequestType", &format!("The request type '{other}' is not supported for an administrator.")),
    };
    let request = json!({
        "properties": {
            "targetRoleAssignmentScheduleId": existing,
            "scope": scope,
            "roleDefinitionId": role_def,
            "principalId": principal,
            "principalType": "User",
            "requestType": request_type,
            "status": status,
            "scheduleInfo": p["scheduleInfo"],
            "justification": p["justification"],
            "requestorId": BOB,
            "createdOn": "2026-11-23T09:00:00Z",
        },
        "name": name,
        "id": id,
        "type": "Microsoft.Authorization/RoleAssignmentScheduleRequests",
    });
    st.requests.insert(id.to_ascii_lowercase(), request.clone());
    ResponseTemplate::new(201).set_body_json(request)
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn provider(fake: &AzureFake, resource: &str) -> AzureRbacProvider {
    let config = BTreeMap::from([("scope".to_string(), json!(SCOPE)), ("endpoint".to_string(), json!(fake.uri()))]);
    let token: Arc<dyn TokenSource> = Arc::new(StaticToken(TOKEN.into()));
    AzureRbacProvider::new(resource, &config, token, at("2026-12-01T10:00:00Z")).unwrap().with_polling(2, Duration::from_millis(10))
}

fn spec(p: &AzureRbacProvider, principal: &str, requests: &[&str], end: &str) -> GrantSpec {
    let grant = json!({"role_definition_id": READER});
    GrantSpec {
        access: Access {
            provider: ProviderKind::AzureRbac,
            resource: p.resource().to_string(),
            principal: principal.to_string(),
            access: p.access_for(requests[0], &grant).unwrap(),
        },
        requests: requests.iter().map(|s| s.to_string()).collect(),
        end: at(end),
        role: "az-reader".into(),
        grant,
        document: None,
    }
}

#[tokio::test]
async fn schedule_requests_grant_update_list_and_remove_only_gitgrant_assignments() {
    let fake = AzureFake::start().await;
    // Not ours: a permanent assignment, a time-bound one by hand, another gitgrant resource's.
    fake.lock().seed(BOB, READER, "", None);
    fake.lock().seed(BOB, "b24988ac-6180-42a0-ab88-20f7382dd24c", "break-glass by bob", Some("2026-12-02T00:00:00Z"));
    fake.lock().seed(BOB, "43d0d8ad-25c7-4714-9337-8ba259a9fe05", "gitgrant:x-1@other-az", Some("2026-12-02T00:00:00Z"));
    let p = provider(&fake, "prod-az");
    assert!(p.native_expiry());
    assert!(p.list().await.unwrap().is_empty());

    let held = p.grant(&spec(&p, &ALICE.to_uppercase(), &["req-1"], "2026-12-01T12:00:00Z")).await.unwrap();
    assert_eq!((held.access.principal.as_str(), held.access.access.as_str()), (ALICE, READER));
    let put = fake.lock().puts.last().unwrap().clone();
    assert_eq!(
        put,
        json!({"properties": {"principalId": ALICE, "roleDefinitionId": role_id(READER), "requestType": "AdminAssign",
            "justification": "gitgrant:req-1@prod-az",
            "scheduleInfo": {"startDateTime": "2026-12-01T10:00:00Z", "expiration": {"type": "AfterDateTime", "endDateTime": "2026-12-01T12:00:00Z"}}}})
    );
    assert_eq!(p.list().await.unwrap(), vec![held.clone()]);

    // Idempotent: no new request.
    let puts = fake.lock().puts.len();
    assert_eq!(p.grant(&spec(&p, ALICE, &["req-1"], "2026-12-01T12:00:00Z")).await.unwrap(), held);
    assert_eq!(fake.lock().puts.len(), puts);

    // A second request: AdminUpdate of the same assignment, both ids, the later end.
    let both = p.grant(&spec(&p, ALICE, &["req-1", "req-2"], "2026-12-01T15:00:00Z")).await.unwrap();
    assert_eq!(fake.lock().puts.last().unwrap()["properties"]["requestType"], "AdminUpdate");
    let listed = p.list().await.unwrap();
    assert_eq!(listed, vec![both.clone()]);
    assert_eq!(listed[0].requests, BTreeSet::from(["req-1".to_string(), "req-2".to_string()]));
    assert_eq!(listed[0].end, Some(at("2026-12-01T15:00:00Z")));

    p.revoke(&both).await.unwrap();
    assert_eq!(fake.lock().puts.last().unwrap()["properties"]["requestType"], "AdminRemove");
    assert!(p.list().await.unwrap().is_empty());
    assert_eq!(fake.lock().schedules.len(), 3, "the three foreign assignments remain");
    // Gone already: no request at all.
    let puts = fake.lock().puts.len();
    p.revoke(&both).await.unwrap();
    // Asked to revoke a foreign assignment (bob's permanent Reader): refused by the ownership check.
    let foreign = Held {
        access: Access { provider: ProviderKind::AzureRbac, resource: "prod-az".into(), principal: BOB.into(), access: READER.into() },
        requests: BTreeSet::from(["req-9".to_string()]),
        end: None,
        handle: role_id(READER),
    };
    p.revoke(&foreign).await.unwrap();
    assert_eq!(fake.lock().puts.len(), puts, "nothing was sent for assignments gitgrant does not own");
    assert_eq!(fake.lock().schedules.len(), 3);
}

#[tokio::test]
async fn an_assignment_made_outside_gitgrant_blocks_the_grant_with_a_clear_error() {
    let fake = AzureFake::start().await;
    fake.lock().seed(BOB, READER, "", None);
    let p = provider(&fake, "prod-az");
    let err = p.grant(&spec(&p, BOB, &["req-1"], "2026-12-01T12:00:00Z")).await.unwrap_err();
    assert!(!err.is_transient());
    let msg = err.to_string();
    assert!(msg.starts_with("azure-rbac prod-az: AdminAssign") && msg.contains("RoleAssignmentExists") && msg.contains("gitgrant did not make"), "{msg}");
    assert_eq!(fake.lock().schedules.len(), 1);
}

#[tokio::test]
async fn throttling_waits_out_retry_after_and_young_assignments_are_a_transient_revoke_error() {
    let fake = AzureFake::start().await;
    let p = provider(&fake, "prod-az");
    fake.lock().throttle = 1;
    let started = Instant::now();
    let held = p.grant(&spec(&p, ALICE, &["req-1"], "2026-12-01T12:00:00Z")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was honoured");
    assert_eq!(p.list().await.unwrap(), vec![held.clone()]);

    // Throttled for longer than the provider waits in place: a transient error.
    fake.lock().throttle = 10;
    let err = p.list().await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("HTTP 429 TooManyRequests"), "{err}");
    fake.lock().throttle = 0;

    fake.lock().min_active = Duration::from_secs(300);
    let err = p.revoke(&held).await.unwrap_err();
    assert!(err.is_transient() && err.to_string().contains("ActiveDurationTooShort"), "{err}");
    fake.lock().min_active = Duration::ZERO;
    p.revoke(&held).await.unwrap();
    assert!(p.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_request_lifecycle_pending_approval_and_failure() {
    let fake = AzureFake::start().await;
    let p = provider(&fake, "prod-az");
    // Pending, then provisioned while gitgrant polls.
    fake.lock().next_status = Some("PendingProvisioning");
    fake.lock().pending_gets = 1;
    let held = p.grant(&spec(&p, ALICE, &["req-1"], "2026-12-01T12:00:00Z")).await.unwrap();
    assert_eq!(p.list().await.unwrap(), vec![held]);
    // Approval required by the role's PIM settings: permanent, nothing assigned.
    fake.lock().next_status = Some("PendingApproval");
    let msg = p.grant(&spec(&p, BOB, &["req-2"], "2026-12-01T12:00:00Z")).await.unwrap_err().to_string();
    assert!(msg.contains("status PendingApproval") && msg.contains("require approval"), "{msg}");
    fake.lock().next_status = Some("Failed");
    let err = p.grant(&spec(&p, BOB, &["req-2"], "2026-12-01T12:00:00Z")).await.unwrap_err();
    assert!(!err.is_transient() && err.to_string().contains("status Failed"), "{err}");
    assert_eq!(fake.lock().schedules.len(), 1);
}

#[tokio::test]
async fn the_fake_rejects_what_arm_rejects() {
    let fake = AzureFake::start().await;
    gitgrant::install_crypto_provider();
    let http = reqwest::Client::new();
    let put = |name: &str, body: Value, version: &str| {
        let url = format!("{}{SCOPE}{PIM}roleAssignmentScheduleRequests/{name}?api-version={version}", fake.uri());
        let req = http.put(url).bearer_auth(TOKEN).json(&body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let assign = |end: Value| {
        json!({"properties": {"principalId": ALICE, "roleDefinitionId": role_id(READER), "requestType": "AdminAssign",
            "scheduleInfo": {"startDateTime": "2026-12-01T10:00:00Z", "expiration": {"type": "AfterDateTime", "endDateTime": end}}}})
    };
    let code = |r: &(u16, Value)| (r.0, r.1["error"]["code"].as_str().unwrap_or_default().to_string());
    assert_eq!(code(&put(&guid(1), assign(json!("2026-12-01T12:00:00Z")), "2019-01-01").await), (400, "InvalidApiVersionParameter".into()));
    assert_eq!(code(&put("not-a-guid", assign(json!("2026-12-01T12:00:00Z")), "2020-10-01").await), (400, "InvalidRoleAssignmentScheduleRequestName".into()));
    assert_eq!(code(&put(&guid(2), assign(Value::Null), "2020-10-01").await), (400, "InvalidScheduleInfo".into()));
    let ok = put(&guid(3), assign(json!("2026-12-01T12:00:00Z")), "2020-10-01").await;
    assert_eq!((ok.0, ok.1["properties"]["status"].as_str()), (201, Some("Provisioned")));
    assert_eq!(code(&put(&guid(4), assign(json!("2026-12-01T13:00:00Z")), "2020-10-01").await), (409, "RoleAssignmentExists".into()));
    assert_eq!(code(&put(&guid(3), assign(json!("2026-12-01T13:00:00Z")), "2020-10-01").await), (409, "RoleAssignmentScheduleRequestExists".into()));
    let mut extend = assign(json!("2026-12-01T11:00:00Z"));
    extend["properties"]["requestType"] = json!("AdminExtend");
    assert_eq!(code(&put(&guid(5), extend, "2020-10-01").await), (400, "InvalidScheduleInfo".into()), "an extension must end later");
    let mut remove = assign(json!("2026-12-01T12:00:00Z"));
    remove["properties"]["principalId"] = json!(BOB);
    remove["properties"]["requestType"] = json!("AdminRemove");
    assert_eq!(code(&put(&guid(6), remove, "2020-10-01").await), (400, "RoleAssignmentDoesNotExist".into()));
    let mut bad_role = assign(json!("2026-12-01T12:00:00Z"));
    bad_role["properties"]["roleDefinitionId"] = json!("Reader");
    assert_eq!(code(&put(&guid(7), bad_role, "2020-10-01").await), (400, "InvalidRoleDefinitionId".into()));
}

#[tokio::test]
async fn denied_writes_and_bad_input_are_permanent_errors_naming_provider_and_resource() {
    let fake = AzureFake::start().await;
    fake.lock().deny_writes = true;
    let p = provider(&fake, "prod-az");
    let msg = p.grant(&spec(&p, ALICE, &["req-1"], "2026-12-01T12:00:00Z")).await.unwrap_err().to_string();
    assert!(
        msg.starts_with("azure-rbac prod-az: AdminAssign")
            && msg.contains("HTTP 403 AuthorizationFailed")
            && msg.contains("roleAssignmentScheduleRequests/write"),
        "{msg}"
    );
    let msg = p.grant(&spec(&p, "alice@example.com", &["req-1"], "2026-12-01T12:00:00Z")).await.unwrap_err().to_string();
    assert!(msg.contains("is not an Entra object id"), "{msg}");
    let msg = p.access_for("r", &json!({"role_definition_id": "Reader"})).unwrap_err().to_string();
    assert!(msg.contains("`Reader` is not a role definition id"), "{msg}");
    let config = BTreeMap::from([("scope".to_string(), json!(SCOPE)), ("endpoint".to_string(), json!(fake.uri()))]);
    let bad = AzureRbacProvider::new("prod-az", &config, Arc::new(StaticToken("expired".into())), at("2026-12-01T10:00:00Z")).unwrap();
    let msg = bad.list().await.unwrap_err().to_string();
    assert!(msg.contains("HTTP 401 InvalidAuthenticationToken") && msg.contains("AZURE_ACCESS_TOKEN"), "{msg}");
    let msg = AzureRbacProvider::new("prod-az", &BTreeMap::new(), Arc::new(StaticToken(TOKEN.into())), Utc::now()).err().unwrap().to_string();
    assert!(msg.starts_with("azure-rbac prod-az: config needs `scope`"), "{msg}");
}

// ---- through the CLI ----

fn policies(endpoint: &str) -> String {
    format!(
        r#"
groups:
  sre: {{ members: [alice, bob] }}
  managers: {{ members: [frank] }}
identities:
  alice: {{ azure: "{alice}" }}
  bob: {{ azure: "{bob}" }}
  frank: {{}}
resources:
  prod-az: {{ provider: azure-rbac, environment: production, sensitivity: low, config: {{ scope: "{SCOPE}", endpoint: "{endpoint}" }} }}
  sandbox: {{ provider: local, environment: staging, sensitivity: low, config: {{ state: state/grants.json }} }}
roles:
  az-reader:
    privilege: read
    max_duration: 8h
    eligible: [sre]
    grants:
      azure-rbac: {{ role_definition_id: {READER} }}
      local: {{ role: user }}
risk:
  factors:
    sensitivity: {{ low: 0, high: 25 }}
  tiers:
    - {{ name: auto, max_score: 10, approvals: [] }}
    - {{ name: managed, max_score: 100, approvals: [ {{ from: [managers], count: 1 }} ] }}
policy_changes:
  approvals: [ {{ from: [managers], count: 1 }} ]
"#,
        alice = ALICE.to_uppercase(),
        bob = BOB,
    )
}

fn request(who: &str, resources: &str, start: &str, duration: &str) -> String {
    format!(
        "requester: {who}\nrole: az-reader\nresources: [{resources}]\nstart: {start}\nduration: {duration}\nreason: \"INC-8: check the failing deployment\"\n"
    )
}

fn cli_repo(fake: &AzureFake) -> Repo {
    let r = Repo::new();
    r.at("2026-11-20T10:00:00Z");
    r.write("policies/all.yaml", policies(&fake.uri()));
    r.commit("bootstrap policies");
    r
}

fn run(r: &Repo, args: &[&str]) -> crate::support::Out {
    run_in_env(r.path(), args, &[("AZURE_ACCESS_TOKEN", TOKEN), ("GITGRANT_RETRY_BASE_MS", "1")])
}

#[tokio::test]
async fn plan_and_reconcile_assign_share_and_remove_through_pim() {
    let fake = AzureFake::start().await;
    fake.lock().seed(BOB, "b24988ac-6180-42a0-ab88-20f7382dd24c", "", None);
    let r = cli_repo(&fake);
    land(&r, "a1", "alice", &[("requests/alice-1.yaml", request("alice", "prod-az", "2026-12-01T10:00:00Z", "2h"))], &[]);
    land(&r, "a2", "alice", &[("requests/alice-2.yaml", request("alice", "prod-az", "2026-12-01T11:00:00Z", "3h"))], &[]);

    let plan = run(&r, &["plan", "--at", "2026-12-01T10:05:00Z", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let p = plan.json();
    assert_eq!(
        (p["actions"][0]["action"].as_str(), p["actions"][0]["principal"].as_str(), p["actions"][0]["access"].as_str()),
        (Some("grant"), Some(ALICE), Some(READER))
    );
    assert_eq!(p["native_expiry"]["prod-az"], true);
    assert!(fake.lock().puts.is_empty(), "plan changes nothing");

    let t0 = run(&r, &["reconcile", "--at", "2026-12-01T10:05:00Z"]);
    assert_eq!(t0.code, 0, "{}", t0.all());
    assert_eq!(fake.lock().gitgrant_schedules(), vec![(ALICE.to_string(), "gitgrant:alice-1@prod-az".to_string(), "2026-12-01T12:00:00Z".to_string())]);
    assert!(ledger(&r).iter().any(|e| e["action"] == "grant" && e["request"] == "alice-1" && e["provider"] == "azure-rbac"));

    let puts = fake.lock().puts.len();
    let again = run(&r, &["reconcile", "--at", "2026-12-01T10:30:00Z", "--format", "json"]);
    assert!(again.json()["outcomes"].as_array().unwrap().is_empty(), "{}", again.all());
    assert_eq!(fake.lock().puts.len(), puts, "idempotent");

    let t1 = run(&r, &["reconcile", "--at", "2026-12-01T11:05:00Z"]);
    assert_eq!(t1.code, 0, "{}", t1.all());
    assert_eq!(fake.lock().gitgrant_schedules(), vec![(ALICE.to_string(), "gitgrant:alice-1,alice-2@prod-az".to_string(), "2026-12-01T14:00:00Z".to_string())]);
    let t3 = run(&r, &["reconcile", "--at", "2026-12-01T14:05:00Z"]);
    assert_eq!(t3.code, 0, "{}", t3.all());
    assert!(fake.lock().gitgrant_schedules().is_empty());
    assert_eq!(fake.lock().schedules.len(), 1, "bob's assignment is untouched");
    assert!(ledger(&r).iter().any(|e| e["action"] == "revoke" && e["request"] == "alice-2" && e["result"] == "ok"));
}

#[tokio::test]
async fn a_denied_write_fails_only_that_resource_and_exits_1() {
    let fake = AzureFake::start().await;
    fake.lock().deny_writes = true;
    let r = cli_repo(&fake);
    land(&r, "b1", "bob", &[("requests/bob-1.yaml", request("bob", "prod-az, sandbox", "2026-12-01T10:00:00Z", "2h"))], &[]);
    let out = run(&r, &["reconcile", "--at", "2026-12-01T10:05:00Z"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains(&format!("grant  azure-rbac prod-az {BOB} {READER}: FAILED after 1 attempt(s)")), "{}", out.all());
    assert!(out.stderr.contains("azure-rbac prod-az: AdminAssign") && out.stderr.contains("AuthorizationFailed"), "{}", out.all());
    assert!(out.stdout.contains("grant  local sandbox bob user: done"), "{}", out.all());
}

#[tokio::test]
async fn reconcile_rides_out_throttling() {
    let fake = AzureFake::start().await;
    let r = cli_repo(&fake);
    land(&r, "b1", "bob", &[("requests/bob-1.yaml", request("bob", "prod-az", "2026-12-01T10:00:00Z", "2h"))], &[]);
    fake.lock().throttle = 2;
    let out = run(&r, &["reconcile", "--at", "2026-12-01T10:05:00Z"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(fake.lock().gitgrant_schedules().len(), 1);
}

#[tokio::test]
async fn missing_credentials_are_a_provider_error_for_that_resource() {
    let fake = AzureFake::start().await;
    let r = cli_repo(&fake);
    let out = run_in_env(
        r.path(),
        &["plan", "--at", "2026-12-01T10:05:00Z"],
        &[("AZURE_ACCESS_TOKEN", ""), ("AZURE_FEDERATED_TOKEN_FILE", ""), ("AZURE_CLIENT_SECRET", "")],
    );
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("error   azure-rbac prod-az: no Azure credentials: set AZURE_TENANT_ID"), "{}", out.all());
    assert_eq!(fake.lock().calls, 0);
}

#[test]
fn check_refuses_an_azure_identity_that_is_not_an_object_id() {
    let r = Repo::new();
    r.write("policies/all.yaml", policies("https://management.azure.com").replace(BOB, "bob@example.com"));
    r.commit("policies");
    let out = r.run(&["check", "--all"]);
    assert_eq!(out.code, 2, "invalid policies: {}", out.all());
    assert!(
        out.all().contains("GG113") && out.all().contains("`bob@example.com` is not a valid azure-rbac principal") && out.all().contains("Entra object id"),
        "{}",
        out.all()
    );
    r.write("policies/all.yaml", policies("https://management.azure.com"));
    r.commit("fixed");
    let out = r.run(&["check", "--all"]);
    assert_eq!(out.code, 0, "{}", out.all());
}
