//! The aws-iam provider against moto (`GITGRANT_TEST_MOTO`), checked with
//! the SDK directly; plus the errors that need no AWS at all.
//!
//! moto's state is shared by tests running in parallel (and by earlier runs
//! of a long-lived moto_server): every test uses its own resource, users,
//! roles and request ids, and asserts only on those.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_iam::Client;
use aws_sdk_iam::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_iam::config::retry::RetryConfig;
use aws_sdk_iam::config::{BehaviorVersion, ConfigBag, Credentials, Intercept, Region};
use aws_sdk_iam::error::{BoxError, ProvideErrorMetadata};
use chrono::{DateTime, Utc};
use gitgrant::model::policy::ProviderKind;
use gitgrant::provider::aws_iam::{AwsIamProvider, decode_document, principal_key};
use gitgrant::provider::{Access, GrantSpec, Held, Provider, ProviderError};
use serde_json::{Value, json};

/// Counts SDK operations (not retries), to bound the calls `list` makes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn take(&self) -> usize {
        self.0.swap(0, Ordering::SeqCst)
    }
}

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "count-calls"
    }
    fn read_before_execution(&self, _: &BeforeSerializationInterceptorContextRef<'_>, _: &mut ConfigBag) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn client_at(endpoint: &str, calls: &Calls, retry: RetryConfig) -> Client {
    let conf = aws_sdk_iam::Config::builder()
        .http_client(gitgrant::provider::aws_http_client())
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "gitgrant-tests"))
        .retry_config(retry)
        .interceptor(calls.clone())
        .build();
    Client::from_conf(conf)
}

fn moto_url() -> String {
    std::env::var("GITGRANT_TEST_MOTO").expect("set GITGRANT_TEST_MOTO=http://127.0.0.1:PORT of a running moto_server")
}

/// A client on moto and its call counter. With the SDK's standard retries,
/// as the binary has: moto answers 500 when a request races a write by a
/// test running in parallel ("dictionary changed size during iteration").
pub(crate) fn moto() -> (Client, Calls) {
    let calls = Calls::default();
    (client_at(&moto_url(), &calls, RetryConfig::standard()), calls)
}

/// A name no other test (or earlier run against the same moto) uses.
pub(crate) fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{tag}-{:x}{:x}{}", nanos & 0xffff_ffff_ffff, std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn provider(client: &Client, resource: &str) -> AwsIamProvider {
    AwsIamProvider::new(client.clone(), resource, &BTreeMap::new()).unwrap()
}

async fn user(client: &Client) -> String {
    let out = client.create_user().user_name(unique("user")).path("/team/").send().await.unwrap();
    out.user().unwrap().arn().to_string()
}

async fn role(client: &Client) -> String {
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let out = client.create_role().role_name(unique("role")).path("/ops/").assume_role_policy_document(trust.to_string()).send().await.unwrap();
    out.role().unwrap().arn().to_string()
}

pub(crate) fn name_of(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

const TEMPLATE: &str = "aws/readonly.json.j2";

/// What the core renders from a role's template: an Allow and a Deny.
fn rendered() -> String {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["rds:Describe*", "rds:List*"], "Resource": "*"},
        {"Effect": "Deny", "Action": "rds:Delete*", "Resource": "*"}
    ]})
    .to_string()
}

fn spec(p: &AwsIamProvider, principal: &str, request: &str, end: &str, grant: Value, document: Option<String>) -> GrantSpec {
    let access = p.access_for(request, &grant).unwrap();
    GrantSpec {
        access: Access { provider: ProviderKind::AwsIam, resource: p.resource().to_string(), principal: principal.to_string(), access },
        requests: BTreeSet::from([request.to_string()]),
        end: at(end),
        role: "db-readonly".to_string(),
        grant,
        document,
    }
}

fn template_spec(p: &AwsIamProvider, principal: &str, request: &str, end: &str) -> GrantSpec {
    spec(p, principal, request, end, json!({"policy_template": TEMPLATE}), Some(rendered()))
}

pub(crate) async fn default_document(client: &Client, arn: &str) -> Value {
    let policy = client.get_policy().policy_arn(arn).send().await.unwrap();
    let version = policy.policy().unwrap().default_version_id().unwrap().to_string();
    let v = client.get_policy_version().policy_arn(arn).version_id(version).send().await.unwrap();
    decode_document(v.policy_version().unwrap().document().unwrap()).unwrap()
}

fn statements(doc: &Value) -> Vec<Value> {
    match &doc["Statement"] {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

pub(crate) fn assert_expires(doc: &Value, end: &str) {
    let st = statements(doc);
    assert!(!st.is_empty());
    for s in st {
        assert_eq!(s["Condition"]["DateLessThan"]["aws:CurrentTime"], end, "statement without the expiry condition: {s}");
    }
}

pub(crate) async fn attached_to_user(client: &Client, user_arn: &str) -> Vec<String> {
    let out = client.list_attached_user_policies().user_name(name_of(user_arn)).send().await.unwrap();
    out.attached_policies().iter().map(|a| a.policy_arn().unwrap().to_string()).collect()
}

async fn attached_to_role(client: &Client, role_arn: &str) -> Vec<String> {
    let out = client.list_attached_role_policies().role_name(name_of(role_arn)).send().await.unwrap();
    out.attached_policies().iter().map(|a| a.policy_arn().unwrap().to_string()).collect()
}

pub(crate) async fn policy_exists(client: &Client, arn: &str) -> bool {
    match client.get_policy().policy_arn(arn).send().await {
        Ok(_) => true,
        Err(e) if e.code() == Some("NoSuchEntity") => false,
        Err(e) => panic!("GetPolicy {arn}: {e:?}"),
    }
}

fn permanent_message(e: ProviderError) -> String {
    assert!(!e.is_transient(), "expected a permanent error, got {e}");
    e.to_string()
}

#[tokio::test]
#[ignore = "needs moto (GITGRANT_TEST_MOTO)"]
async fn grant_creates_an_expiring_tagged_policy_for_a_user_and_a_role() {
    let (client, _) = moto();
    let resource = unique("res");
    let p = provider(&client, &resource);
    let (alice, ops) = (user(&client).await, role(&client).await);
    let (req_u, req_r) = (unique("req"), unique("req"));

    let held_u = p.grant(&template_spec(&p, &alice, &req_u, "2026-03-01T18:00:00Z")).await.unwrap();
    let held_r = p.grant(&template_spec(&p, &ops, &req_r, "2026-03-02T09:30:00Z")).await.unwrap();

    let account = alice.split(':').nth(4).unwrap();
    let name_u = format!("gitgrant.{req_u}@{resource}");
    assert_eq!(held_u.handle, format!("arn:aws:iam::{account}:policy/gitgrant/{name_u}"));
    assert_eq!(held_u.access.access, name_u);
    assert_eq!(held_u.end, Some(at("2026-03-01T18:00:00Z")));
    assert_eq!(attached_to_user(&client, &alice).await, vec![held_u.handle.clone()]);
    assert_eq!(attached_to_role(&client, &ops).await, vec![held_r.handle.clone()]);

    let policy = client.get_policy().policy_arn(&held_u.handle).send().await.unwrap();
    let policy = policy.policy().unwrap();
    assert_eq!(policy.path(), Some("/gitgrant/"));
    let tags: BTreeMap<&str, &str> = policy.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(tags.get("gitgrant:managed"), Some(&"true"));
    assert_eq!(tags.get("gitgrant:request"), Some(&req_u.as_str()));
    assert_eq!(tags.get("gitgrant:end"), Some(&"2026-03-01T18:00:00Z"));
    assert_eq!(tags.get("gitgrant:role"), Some(&"db-readonly"));
    assert_eq!(tags.get("gitgrant:resource"), Some(&resource.as_str()));

    let doc = default_document(&client, &held_u.handle).await;
    assert_expires(&doc, "2026-03-01T18:00:00Z");
    assert_eq!(statements(&doc)[1]["Effect"], "Deny");
    assert_expires(&default_document(&client, &held_r.handle).await, "2026-03-02T09:30:00Z");

    let listed = p.list().await.unwrap();
    let mut expected = vec![held_u.clone(), held_r.clone()];
    expected.sort_by(|a, b| a.access.cmp(&b.access));
    assert_eq!(listed, expected);
    // Principals are compared without their IAM path (alice is at /team/, ops at /ops/).
    let by_principal: BTreeMap<&str, &Held> = listed.iter().map(|h| (h.access.principal.as_str(), h)).collect();
    let (alice_key, ops_key) = (principal_key(&alice), principal_key(&ops));
    assert_eq!(alice_key, format!("arn:aws:iam::{account}:user/{}", name_of(&alice)));
    assert_eq!(by_principal[alice_key.as_str()].requests, BTreeSet::from([req_u.clone()]));
    assert_eq!(by_principal[alice_key.as_str()].end, Some(at("2026-03-01T18:00:00Z")));
    assert_eq!(by_principal[ops_key.as_str()].requests, BTreeSet::from([req_r.clone()]));
    assert_eq!(by_principal[ops_key.as_str()].end, Some(at("2026-03-02T09:30:00Z")));
}

#[tokio::test]
#[ignore = "needs moto (GITGRANT_TEST_MOTO)"]
async fn grant_is_idempotent_and_updates_the_policy_in_place() {
    let (client, _) = moto();
    let p = provider(&client, &unique("res"));
    let alice = user(&client).await;
    let req = unique("req");

    let first = p.grant(&template_spec(&p, &alice, &req, "2026-03-01T18:00:00Z")).await.unwrap();
    let again = p.grant(&template_spec(&p, &alice, &req, "2026-03-01T18:00:00Z")).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(attached_to_user(&client, &alice).await, vec![first.handle.clone()], "no duplicate attachment");
    let versions = client.list_policy_versions().policy_arn(&first.handle).send().await.unwrap();
    assert_eq!(versions.versions().len(), 1, "an unchanged grant makes no new version");

    // The request was edited to end later: same policy, new document, one version.
    let later = p.grant(&template_spec(&p, &alice, &req, "2026-03-03T12:00:00Z")).await.unwrap();
    assert_eq!(later.handle, first.handle);
    assert_eq!(later.end, Some(at("2026-03-03T12:00:00Z")));
    assert_eq!(attached_to_user(&client, &alice).await, vec![first.handle.clone()]);
    let versions = client.list_policy_versions().policy_arn(&first.handle).send().await.unwrap();
    assert_eq!(versions.versions().len(), 1, "older versions are deleted: {:?}", versions.versions());
    assert_expires(&default_document(&client, &first.handle).await, "2026-03-03T12:00:00Z");
    let policy = client.get_policy().policy_arn(&first.handle).send().await.unwrap();
    let end_tag = policy.policy().unwrap().tags().iter().find(|t| t.key() == "gitgrant:end").map(|t| t.value().to_string());
    assert_eq!(end_tag.as_deref(), Some("2026-03-03T12:00:00Z"));

    let listed = p.list().await.unwrap();
    assert_eq!(listed, vec![later]);
}

#[tokio::test]
#[ignore = "needs moto (GITGRANT_TEST_MOTO)"]
async fn a_managed_policy_is_copied_with_the_expiry_and_left_unchanged() {
    let (client, _) = moto();
    let p = provider(&client, &unique("res"));
    let alice = user(&client).await;
    // The source: a customer policy with one statement object and its own condition.
    let source_doc = json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/*",
        "Condition": {"Bool": {"aws:SecureTransport": "true"}}}});
    let source = client.create_policy().policy_name(unique("reports-read")).path("/shared/").policy_document(source_doc.to_string()).send().await.unwrap();
    let source_arn = source.policy().unwrap().arn().unwrap().to_string();

    let grant = json!({"managed_policy_arn": source_arn});
    let held = p.grant(&spec(&p, &alice, &unique("req"), "2026-03-01T18:00:00Z", grant, None)).await.unwrap();

    let copy = default_document(&client, &held.handle).await;
    let mut expected = source_doc.clone();
    expected["Statement"]["Condition"]["DateLessThan"] = json!({"aws:CurrentTime": "2026-03-01T18:00:00Z"});
    assert_eq!(copy, expected);
    assert_eq!(default_document(&client, &source_arn).await, source_doc, "the source policy is not modified");
    assert_eq!(attached_to_user(&client, &alice).await, vec![held.handle.clone()], "the copy is attached, not the source");

    let missing = json!({"managed_policy_arn": "arn:aws:iam::aws:policy/DoesNotExist"});
    let err = p.grant(&spec(&p, &alice, &unique("req"), "2026-03-01T18:00:00Z", missing, None)).await.unwrap_err();
    let msg = permanent_message(err);
    assert!(msg.contains("arn:aws:iam::aws:policy/DoesNotExist") && msg.contains("does not exist") && msg.contains("managed_policy_arn"), "{msg}");
}

#[tokio::test]
#[ignore = "needs moto (GITGRANT_TEST_MOTO)"]
async fn overlapping_requests_get_separate_policies_and_end_separately() {
    let (client, _) = moto();
    let p = provider(&client, &unique("res"));
    let alice = user(&client).await;
    let first = p.grant(&template_spec(&p, &alice, &unique("req"), "2026-03-01T12:00:00Z")).await.unwrap();
    let second = p.grant(&template_spec(&p, &alice, &unique("req"), "2026-03-01T18:00:00Z")).await.unwrap();
    assert_ne!(first.handle, second.handle);
    let attached: BTreeSet<String> = attached_to_user(&client, &alice).await.into_iter().collect();
    assert_eq!(attached, BTreeSet::from([first.handle.clone(), second.handle.clone()]));
    assert_eq!(p.list().await.unwrap().len(), 2);

    p.revoke(&first).await.unwrap();
    assert_eq!(attached_to_user(&client, &alice).await, vec![second.handle.clone()]);
    assert!(!policy_exists(&client, &first.handle).await);
    assert_eq!(p.list().await.unwrap(), vec![second]);
}

#[tokio::test]
#[ignore = "needs moto (GITGRANT_TEST_MOTO)"]
async fn revoke_detaches_its_principal_and_deletes_the_policy_with_its_last_attachment_idempotently() {
    let (client, _) = moto();
    let p = provider(&client, &unique("res"));
    let alice = user(&client).await;
    let req = unique("req");
    let held = p.grant(&template_spec(&p, &alice, &req, "2026-03-01T18:00:00Z")).await.unwrap();
    // Drift: someone adds a version and attaches the policy to a group.
    client.create_policy_version().policy_arn(&held.handle).policy_document(rendered()).set_as_default(false).send().await.unwrap();
    let group = unique("group");
    client.create_group().group_name(&group).send().await.unwrap();
    client.attach_group_policy().group_name(&group).policy_arn(&held.handle).send().await.unwrap();
    let listed = p.list().await.unwrap();
    let principals: BTreeSet<&str> = listed.iter().map(|h| h.access.principal.as_str()).collect();
    assert_eq!(principals.len(), 2, "the group attachment is listed too: {listed:?}");
    assert!(principals.contains(principal_key(&alice).as_str()));

    // Revoking alice's access detaches alice only: the group attachment is its
    // own (unexplained) access and keeps the policy alive until it is revoked.
    p.revoke(&held).await.unwrap();
    assert!(attached_to_user(&client, &alice).await.is_empty());
    assert!(policy_exists(&client, &held.handle).await);
    let rest = p.list().await.unwrap();
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_ne!(rest[0].access.principal, principal_key(&alice));
    p.revoke(&rest[0]).await.unwrap();
    assert!(!policy_exists(&client, &held.handle).await);
    let group_policies = client.list_attached_group_policies().group_name(&group).send().await.unwrap();
    assert!(group_policies.attached_policies().is_empty());
    assert!(p.list().await.unwrap().is_empty());

    // Already gone, never existed, or known only by principal: all succeed.
    p.revoke(&held).await.unwrap();
    let never = Held { handle: String::new(), ..held.clone() };
    p.revoke(&never).await.unwrap();
    let mut other = held.clone();
    other.access.access = p.access_for(&unique("req"), &json!({"policy_template": TEMPLATE})).unwrap();
    other.handle = held.handle.replace(&held.access.access, &other.access.access);
    p.revoke(&other).await.unwrap();
}

#[tokio::test]
#[ignore = "needs moto (GITGRANT_TEST_MOTO)"]
async fn a_policy_attached_to_nobody_is_listed_so_reconcile_can_delete_it() {
    let (client, _) = moto();
    let p = provider(&client, &unique("res"));
    let alice = user(&client).await;
    let held = p.grant(&template_spec(&p, &alice, &unique("req"), "2026-03-01T18:00:00Z")).await.unwrap();
    client.detach_user_policy().user_name(name_of(&alice)).policy_arn(&held.handle).send().await.unwrap();

    let listed = p.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].access.principal, "");
    assert_eq!((&listed[0].handle, &listed[0].requests, listed[0].end), (&held.handle, &held.requests, held.end));
    p.revoke(&listed[0]).await.unwrap();
    assert!(!policy_exists(&client, &held.handle).await);
}

#[tokio::test]
#[ignore = "needs moto (GITGRANT_TEST_MOTO)"]
async fn policies_gitgrant_does_not_own_are_never_listed_or_touched() {
    let (client, _) = moto();
    let resource = unique("res");
    let p = provider(&client, &resource);
    let alice = user(&client).await;
    let doc = rendered();
    // A gitgrant-looking name outside the path, a hand-made policy inside it,
    // and another resource's policy inside it: none is this resource's.
    let look_alike = p.access_for(&unique("req"), &json!({"policy_template": TEMPLATE})).unwrap();
    let other_resource = provider(&client, &unique("res")).access_for(&unique("req"), &json!({"policy_template": TEMPLATE})).unwrap();
    let handmade = unique("handmade");
    let mut foreign = Vec::new();
    for (name, path) in [(look_alike.as_str(), "/other/"), (handmade.as_str(), "/gitgrant/"), (other_resource.as_str(), "/gitgrant/")] {
        let out = client.create_policy().policy_name(name).path(path).policy_document(&doc).send().await.unwrap();
        let arn = out.policy().unwrap().arn().unwrap().to_string();
        client.attach_user_policy().user_name(name_of(&alice)).policy_arn(&arn).send().await.unwrap();
        foreign.push(arn);
    }
    assert!(p.list().await.unwrap().is_empty(), "only this resource's gitgrant policies are listed");

    let mine = p.grant(&template_spec(&p, &alice, &unique("req"), "2026-03-01T18:00:00Z")).await.unwrap();
    assert_eq!(p.list().await.unwrap(), vec![mine.clone()]);
    p.revoke(&mine).await.unwrap();

    for arn in &foreign {
        let held = Held { handle: arn.clone(), ..mine.clone() };
        let msg = permanent_message(p.revoke(&held).await.unwrap_err());
        assert!(msg.contains("refusing to delete") && msg.contains(arn.as_str()), "{msg}");
        assert!(policy_exists(&client, arn).await, "{arn} was deleted");
    }
    let attached: BTreeSet<String> = attached_to_user(&client, &alice).await.into_iter().collect();
    assert_eq!(attached, foreign.iter().cloned().collect::<BTreeSet<_>>());
}

#[tokio::test]
#[ignore = "needs moto (GITGRANT_TEST_MOTO)"]
async fn an_unknown_principal_is_a_clear_permanent_error_and_leaves_no_policy() {
    let (client, _) = moto();
    let p = provider(&client, &unique("res"));
    let account = user(&client).await.split(':').nth(4).unwrap().to_string();
    let nobody = format!("arn:aws:iam::{account}:user/{}", unique("nobody"));
    let msg = permanent_message(p.grant(&template_spec(&p, &nobody, &unique("req"), "2026-03-01T18:00:00Z")).await.unwrap_err());
    assert!(msg.starts_with(&format!("aws-iam {}: ", p.resource())), "{msg}");
    assert!(msg.contains("does not exist") && msg.contains(&nobody) && msg.contains("identities"), "{msg}");
    let ghost_role = format!("arn:aws:iam::{account}:role/{}", unique("ghost"));
    let msg = permanent_message(p.grant(&template_spec(&p, &ghost_role, &unique("req"), "2026-03-01T18:00:00Z")).await.unwrap_err());
    assert!(msg.contains("IAM role") && msg.contains("does not exist"), "{msg}");
    assert!(p.list().await.unwrap().is_empty(), "the half-made policy was deleted");

    // account_id in the resource config guards against the wrong account.
    let config = BTreeMap::from([("account_id".to_string(), json!("999999999999"))]);
    let guarded = AwsIamProvider::new(client.clone(), p.resource(), &config).unwrap();
    let alice = user(&client).await;
    let msg = permanent_message(guarded.grant(&template_spec(&guarded, &alice, &unique("req"), "2026-03-01T18:00:00Z")).await.unwrap_err());
    assert!(msg.contains("account_id: 999999999999") && msg.contains(&account), "{msg}");
}

#[tokio::test]
#[ignore = "needs moto (GITGRANT_TEST_MOTO)"]
async fn list_is_one_call_whatever_the_number_of_grants() {
    let (client, calls) = moto();
    let p = provider(&client, &unique("res"));
    // IAM allows 10 managed policies per principal: spread 15 grants over 3.
    let principals = [user(&client).await, user(&client).await, role(&client).await];
    for i in 0..15 {
        p.grant(&template_spec(&p, &principals[i % 3], &unique("req"), "2026-03-01T18:00:00Z")).await.unwrap();
    }
    calls.take();
    let held = p.list().await.unwrap();
    assert_eq!(held.len(), 15);
    // One GetAccountAuthorizationDetails page (moto never paginates; AWS
    // returns up to 1,000 users, roles, groups and policies a page).
    assert_eq!(calls.take(), 1);
}

/// `build` configures the SDK from the environment as the CLI does: here
/// `AWS_ENDPOINT_URL` points it at moto. The environment is given to a child
/// run of this test, never set in this process (tests run in parallel).
#[tokio::test]
#[ignore = "needs moto (GITGRANT_TEST_MOTO)"]
async fn build_configures_the_sdk_from_the_environment() {
    if std::env::var_os("GITGRANT_TEST_AWS_CHILD").is_some() {
        let resource_name = unique("res");
        let resource = gitgrant::model::policy::Resource {
            provider: ProviderKind::AwsIam,
            environment: "production".to_string(),
            sensitivity: gitgrant::model::policy::Sensitivity::High,
            description: None,
            config: BTreeMap::new(),
            origin: gitgrant::model::policy::Origin { file: "policies/aws.yaml".to_string(), pos: Default::default() },
        };
        let ctx = gitgrant::provider::ProviderContext { repo: std::path::Path::new("."), resource: &resource_name, config: &resource, now: Utc::now() };
        let p = gitgrant::provider::build(&ctx).await.unwrap();
        assert!(p.native_expiry());
        let alice = user(&moto().0).await;
        let grant = json!({"policy_template": TEMPLATE});
        let access = p.access_for("env-req", &grant).unwrap();
        let spec = GrantSpec {
            access: Access { provider: ProviderKind::AwsIam, resource: resource_name.clone(), principal: alice, access },
            requests: BTreeSet::from(["env-req".to_string()]),
            end: at("2026-03-01T18:00:00Z"),
            role: "db-readonly".to_string(),
            grant,
            document: Some(rendered()),
        };
        let held = p.grant(&spec).await.unwrap();
        assert_eq!(p.list().await.unwrap(), vec![held.clone()]);
        p.revoke(&held).await.unwrap();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "provider_aws_iam::build_configures_the_sdk_from_the_environment", "--include-ignored", "--nocapture"])
        .env("GITGRANT_TEST_AWS_CHILD", "1")
        .env("AWS_ENDPOINT_URL", moto_url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        // No region (IAM falls back to us-east-1), no files, no instance metadata.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/gitgrant-test")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/gitgrant-test")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL_IAM")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("1 passed"), "child run failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn unreachable_iam_is_a_transient_error_naming_provider_and_resource() {
    let calls = Calls::default();
    let client = client_at(&format!("http://127.0.0.1:{}", closed_port()), &calls, RetryConfig::disabled());
    let err = provider(&client, "orders-aws").list().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with("aws-iam orders-aws: GetAccountAuthorizationDetails"), "{msg}");
}

#[tokio::test]
async fn bad_documents_and_principals_are_refused_before_any_aws_call() {
    let calls = Calls::default();
    let client = client_at(&format!("http://127.0.0.1:{}", closed_port()), &calls, RetryConfig::disabled());
    let p = provider(&client, "orders-aws");
    let alice = "arn:aws:iam::111111111111:user/alice";

    let mut bad_json = template_spec(&p, alice, "req-1", "2026-03-01T18:00:00Z");
    bad_json.document = Some("{\"Statement\": ".to_string());
    let msg = permanent_message(p.grant(&bad_json).await.unwrap_err());
    assert!(msg.starts_with("aws-iam orders-aws: ") && msg.contains("templates/aws/readonly.json.j2") && msg.contains("not valid JSON"), "{msg}");

    let mut not_policy = template_spec(&p, alice, "req-1", "2026-03-01T18:00:00Z");
    not_policy.document = Some(json!({"Statement": [{"Action": "s3:*"}]}).to_string());
    let msg = permanent_message(p.grant(&not_policy).await.unwrap_err());
    assert!(msg.contains("not an IAM policy document") && msg.contains("Effect"), "{msg}");

    for principal in ["alice", "arn:aws:sts::111111111111:assumed-role/ops/alice", "arn:aws:iam::111111111111:group/admins"] {
        let msg = permanent_message(p.grant(&template_spec(&p, principal, "req-1", "2026-03-01T18:00:00Z")).await.unwrap_err());
        assert!(msg.contains("identities entry must be an IAM user or role ARN") && msg.contains("arn:aws:iam::111111111111:user/alice"), "{principal}: {msg}");
    }

    let msg = permanent_message(p.access_for("req-1", &json!({"role": "readonly"})).unwrap_err());
    assert!(msg.contains("policy_template") && msg.contains("managed_policy_arn"), "{msg}");
    let msg = permanent_message(AwsIamProvider::new(client.clone(), "orders-aws", &BTreeMap::from([("path".to_string(), json!("gitgrant"))])).err().unwrap());
    assert!(msg.contains("config `path`"), "{msg}");
    assert_eq!(calls.take(), 0, "nothing reached AWS");
}

/// A gitgrant policy attached by hand to someone else: revoking that
/// attachment leaves the rightful holder's access untouched.
#[tokio::test]
#[ignore = "needs moto (GITGRANT_TEST_MOTO)"]
async fn revoking_a_hand_attachment_keeps_the_rightful_grant() {
    let (client, _) = moto();
    let p = provider(&client, &unique("res"));
    let alice = user(&client).await;
    let mallory = user(&client).await;
    let held = p.grant(&template_spec(&p, &alice, &unique("req"), "2026-03-01T18:00:00Z")).await.unwrap();
    client.attach_user_policy().user_name(name_of(&mallory)).policy_arn(&held.handle).send().await.unwrap();
    let extra = p.list().await.unwrap().into_iter().find(|h| h.access.principal == principal_key(&mallory)).expect("the hand attachment is listed");
    p.revoke(&extra).await.unwrap();
    assert!(attached_to_user(&client, &mallory).await.is_empty());
    assert_eq!(attached_to_user(&client, &alice).await, vec![held.handle.clone()]);
    assert_eq!(p.list().await.unwrap(), vec![held]);
}

/// The names of gitgrant's policies in moto's account (path `/gitgrant/`).
async fn gitgrant_policy_names(client: &Client) -> Vec<String> {
    let out = client.list_policies().scope(aws_sdk_iam::types::PolicyScopeType::Local).path_prefix("/gitgrant/").max_items(1000).send().await.unwrap();
    out.policies().iter().filter_map(|p| p.policy_name()).map(str::to_string).collect()
}

/// Issue 16 item 5: IAM's managed policy `ReadOnlyAccess` (~95,000
/// characters in moto's copy of AWS's list) cannot be copied into a
/// customer-managed policy. The limit check reads it once (GetPolicy +
/// GetPolicyVersion, cached per ARN) and refuses with the fix; the grant
/// refuses the same without calling CreatePolicy. Needs moto started with
/// `MOTO_IAM_LOAD_MANAGED_POLICIES=true` (AWS managed policies loaded).
#[tokio::test]
#[ignore = "needs moto (GITGRANT_TEST_MOTO) started with MOTO_IAM_LOAD_MANAGED_POLICIES=true"]
async fn readonlyaccess_copied_is_refused_by_the_limit_check_and_never_created() {
    let (client, calls) = moto();
    let arn = "arn:aws:iam::aws:policy/ReadOnlyAccess";
    if let Err(e) = client.get_policy().policy_arn(arn).send().await {
        panic!("{arn} is not in moto ({e:?}): start moto_server with MOTO_IAM_LOAD_MANAGED_POLICIES=true");
    }
    let p = provider(&client, &unique("res"));
    let alice = user(&client).await;
    let s = spec(&p, &alice, &unique("req"), "2026-03-01T18:00:00Z", json!({"managed_policy_arn": arn}), None);
    calls.take();

    let reason = p.exceeds_limits(&s).await.unwrap().expect("ReadOnlyAccess cannot fit 6,144 characters");
    assert_eq!(calls.take(), 2, "GetPolicy and GetPolicyVersion, nothing else");
    assert!(reason.starts_with("GG114: role `db-readonly`: the copy of managed policy `arn:aws:iam::aws:policy/ReadOnlyAccess`"), "{reason}");
    let size: usize = reason.split(" is ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).expect("a size in the reason");
    assert!(size > 50_000, "ReadOnlyAccess with the condition is far above the limit: {size}");
    assert!(
        reason.contains("limit of 6144") && reason.contains("replace `managed_policy_arn` with a `policy_template`") && reason.contains("aws-sso"),
        "{reason}"
    );

    // Cached per ARN: a second request for the same role reads nothing.
    let again = spec(&p, &alice, &unique("req"), "2026-03-02T18:00:00Z", json!({"managed_policy_arn": arn}), None);
    assert!(p.exceeds_limits(&again).await.unwrap().is_some());
    let err = permanent_message(p.grant(&s).await.unwrap_err());
    assert!(err.contains("GG114") && err.contains("nothing was created"), "{err}");
    assert_eq!(calls.take(), 0, "no further IAM call: the document is cached and CreatePolicy is never tried");
    assert!(!gitgrant_policy_names(&client).await.contains(&s.access.access), "no policy was created");
    assert!(attached_to_user(&client, &alice).await.is_empty());
}

/// A small managed policy fits and is planned normally; one that fits as
/// written but not once every statement carries the expiry condition is
/// refused (the size is that of the document the grant would write).
#[tokio::test]
#[ignore = "needs moto (GITGRANT_TEST_MOTO)"]
async fn the_limit_counts_the_copy_with_the_expiry_condition() {
    let (client, _) = moto();
    let p = provider(&client, &unique("res"));
    let alice = user(&client).await;
    let small = json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/*"}});
    let small = client.create_policy().policy_name(unique("small")).path("/shared/").policy_document(small.to_string()).send().await.unwrap();
    let small_arn = small.policy().unwrap().arn().unwrap().to_string();
    let s = spec(&p, &alice, &unique("req"), "2026-03-01T18:00:00Z", json!({"managed_policy_arn": small_arn}), None);
    assert_eq!(p.exceeds_limits(&s).await.unwrap(), None);
    p.grant(&s).await.unwrap();

    let statements: Vec<Value> =
        (0..65).map(|i| json!({"Effect": "Allow", "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::reports-bucket-{i:03}/*")})).collect();
    let doc = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
    assert!((5_000..6_144).contains(&doc.len()), "the source itself fits IAM's limit: {}", doc.len());
    let near = client.create_policy().policy_name(unique("near")).path("/shared/").policy_document(doc).send().await.unwrap();
    let near_arn = near.policy().unwrap().arn().unwrap().to_string();
    let s = spec(&p, &alice, &unique("req"), "2026-03-01T18:00:00Z", json!({"managed_policy_arn": near_arn}), None);
    let reason = p.exceeds_limits(&s).await.unwrap().expect("above the limit once the condition is added");
    assert!(reason.contains(&format!("the copy of managed policy `{near_arn}` (with the expiry condition on every statement) is ")), "{reason}");
    assert!(!gitgrant_policy_names(&client).await.contains(&s.access.access));
}
