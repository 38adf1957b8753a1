//! The kubernetes provider against a fake API server (wiremock): no real
//! apiserver can run here. The fake keeps RoleBindings and
//! ClusterRoleBindings in memory and implements what the provider relies on,
//! with the payload shapes of a real apiserver (v1.30): list with
//! `labelSelector` equality filtering (items without kind/apiVersion, as
//! the apiserver sends them), create → 201 or 409 AlreadyExists with a
//! `Status`, GET/PUT with resourceVersion checks (409 Conflict), DELETE →
//! 200 `Status` Success or 404 NotFound. It can also answer the next call
//! with an error status (429, 500, 401, 403).
//!
//! kube reaches it through a kubeconfig written in a temp dir whose
//! current context points at a closed port: every test must select the
//! `fake` context through the resource config to reach it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use gitgrant::model::policy::{Origin, ProviderKind, Resource, Sensitivity};
use gitgrant::provider::kubernetes::binding_name;
use gitgrant::provider::{Access, GrantSpec, Provider, ProviderContext, ProviderError, build};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::reconcile::{land, ledger};
use crate::support::Repo;

const GROUP: &str = "rbac.authorization.k8s.io";

/// (kind plural, namespace or "", name)
type Key = (String, String, String);

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    next_version: u64,
    /// Errors to answer the next calls with: (HTTP method or "*", code).
    fail: Vec<(String, u16)>,
    /// Every call as "METHOD path?query", in order.
    log: Vec<String>,
}

#[derive(Clone, Default)]
struct FakeApi(Arc<Mutex<State>>);

fn status(code: u16, reason: &str, message: String, details: Value) -> ResponseTemplate {
    let failure = code >= 400;
    let mut body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": if failure { "Failure" } else { "Success" }, "details": details});
    if failure {
        body["message"] = json!(message);
        body["reason"] = json!(reason);
        body["code"] = json!(code);
    }
    ResponseTemplate::new(code).set_body_raw(body.to_string(), "application/json")
}

fn object(code: u16, v: &Value) -> ResponseTemplate {
    ResponseTemplate::new(code).set_body_raw(v.to_string(), "application/json")
}

/// Does the object carry every `k=v` (or `k==v`) of the selector?
fn selects(selector: &str, obj: &Value) -> bool {
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        let (k, v) = term.split_once("==").or_else(|| term.split_once('=')).unwrap_or((term, ""));
        obj["metadata"]["labels"][k].as_str() == Some(v)
    })
}

impl Respond for FakeApi {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut st = self.0.lock().unwrap();
        let method = req.method.to_string();
        st.log.push(format!("{method} {}{}", req.url.path(), req.url.query().map(|q| format!("?{q}")).unwrap_or_default()));
        if let Some(i) = st.fail.iter().position(|(m, _)| m == "*" || *m == method) {
            let (_, code) = st.fail.remove(i);
            let (reason, message) = match code {
                401 => ("Unauthorized", "Unauthorized".to_string()),
                403 => (
                    "Forbidden",
                    format!(
                        "rolebindings.{GROUP} is forbidden: User \"gitgrant\" cannot {} resource \"rolebindings\" in API group \"{GROUP}\"",
                        method.to_lowercase()
                    ),
                ),
                429 => ("TooManyRequests", "Too many requests, please try again later.".to_string()),
                _ => ("InternalError", "Internal error occurred: etcdserver: request timed out".to_string()),
            };
            return status(code, reason, message, json!({}));
        }
        let path = req.url.path().trim_start_matches(&format!("/apis/{GROUP}/v1/")).to_string();
        let parts: Vec<&str> = path.split('/').collect();
        let (plural, ns, name) = match parts.as_slice() {
            ["namespaces", ns, plural] => (plural.to_string(), ns.to_string(), None),
            ["namespaces", ns, plural, name] => (plural.to_string(), ns.to_string(), Some(name.to_string())),
            [plural] => (plural.to_string(), String::new(), None),
            [plural, name] => (plural.to_string(), String::new(), Some(name.to_string())),
            _ => return status(404, "NotFound", "the server could not find the requested resource".into(), json!({})),
        };
        let kind = if plural == "rolebindings" { "RoleBinding" } else { "ClusterRoleBinding" };
        let selector: String = req.url.query_pairs().find(|(k, _)| k == "labelSelector").map(|(_, v)| v.to_string()).unwrap_or_default();
        let not_found =
            |name: &str| status(404, "NotFound", format!("{plural}.{GROUP} \"{name}\" not found"), json!({"name": name, "group": GROUP, "kind": plural}));
        match (method.as_str(), name) {
            ("GET", None) => {
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|((p, n, _), o)| *p == plural && (ns.is_empty() || *n == ns) && selects(&selector, o))
                    .map(|(_, o)| {
                        let mut o = o.clone();
                        let m = o.as_object_mut().unwrap();
                        m.remove("kind");
                        m.remove("apiVersion");
                        o
                    })
                    .collect();
                let list = json!({"kind": format!("{kind}List"), "apiVersion": format!("{GROUP}/v1"), "metadata": {"resourceVersion": st.next_version.to_string()}, "items": items});
                object(200, &list)
            }
            ("POST", None) => {
                let mut obj: Value = serde_json::from_slice(&req.body).unwrap();
                let name = obj["metadata"]["name"].as_str().unwrap().to_string();
                let key = (plural.clone(), ns.clone(), name.clone());
                if st.objects.contains_key(&key) {
                    return status(
                        409,
                        "AlreadyExists",
                        format!("{plural}.{GROUP} \"{name}\" already exists"),
                        json!({"name": name, "group": GROUP, "kind": plural}),
                    );
                }
                st.next_version += 1;
                let meta = obj["metadata"].as_object_mut().unwrap();
                meta.insert("uid".into(), json!(format!("uid-{}", st.next_version)));
                meta.insert("resourceVersion".into(), json!(st.next_version.to_string()));
                meta.insert("creationTimestamp".into(), json!("2026-12-01T10:05:00Z"));
                if !ns.is_empty() {
                    meta.insert("namespace".into(), json!(ns));
                }
                st.objects.insert(key, obj.clone());
                object(201, &obj)
            }
            ("GET", Some(name)) => match st.objects.get(&(plural.clone(), ns.clone(), name.clone())) {
                Some(o) => object(200, o),
                None => not_found(&name),
            },
            ("PUT", Some(name)) => {
                let key = (plural.clone(), ns.clone(), name.clone());
                let Some(current) = st.objects.get(&key).cloned() else { return not_found(&name) };
                let mut obj: Value = serde_json::from_slice(&req.body).unwrap();
                if obj["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
                    return status(
                        409,
                        "Conflict",
                        format!(
                            "Operation cannot be fulfilled on {plural}.{GROUP} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                        ),
                        json!({"name": name, "group": GROUP, "kind": plural}),
                    );
                }
                if obj["roleRef"] != current["roleRef"] {
                    return status(422, "Invalid", format!("{kind}.{GROUP} \"{name}\" is invalid: roleRef: Invalid value: cannot change roleRef"), json!({}));
                }
                st.next_version += 1;
                let meta = obj["metadata"].as_object_mut().unwrap();
                meta.insert("resourceVersion".into(), json!(st.next_version.to_string()));
                meta.insert("creationTimestamp".into(), current["metadata"]["creationTimestamp"].clone());
                st.objects.insert(key, obj.clone());
                object(200, &obj)
            }
            ("DELETE", Some(name)) => match st.objects.remove(&(plural.clone(), ns, name.clone())) {
                Some(o) => status(200, "", String::new(), json!({"name": name, "group": GROUP, "kind": plural, "uid": o["metadata"]["uid"]})),
                None => not_found(&name),
            },
            _ => status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource".into(), json!({})),
        }
    }
}

impl FakeApi {
    fn seed(&self, plural: &str, ns: &str, obj: Value) {
        let mut st = self.0.lock().unwrap();
        st.next_version += 1;
        let mut obj = obj;
        obj["metadata"]["resourceVersion"] = json!(st.next_version.to_string());
        obj["metadata"]["uid"] = json!(format!("uid-seed-{}", st.next_version));
        obj["metadata"]["creationTimestamp"] = json!("2026-11-01T00:00:00Z");
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        st.objects.insert((plural.into(), ns.into(), name), obj);
    }
    fn get(&self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.0.lock().unwrap().objects.get(&(plural.into(), ns.into(), name.into())).cloned()
    }
    fn names(&self) -> Vec<String> {
        self.0.lock().unwrap().objects.keys().map(|(p, n, name)| if n.is_empty() { format!("{p}/{name}") } else { format!("{p}/{n}/{name}") }).collect()
    }
    fn fail_next(&self, method: &str, code: u16) {
        self.0.lock().unwrap().fail.push((method.into(), code));
    }
    fn log(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap().log)
    }
}

/// The fake server and a kubeconfig for it (context `fake`; the current
/// context `broken` points at a closed port).
struct Cluster {
    _server: MockServer,
    api: FakeApi,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let server = MockServer::start().await;
        let api = FakeApi::default();
        Mock::given(wiremock::matchers::any()).respond_with(api.clone()).mount(&server).await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: broken\nclusters:\n- name: fake\n  cluster:\n    server: {}\n- name: broken\n  cluster:\n    server: http://127.0.0.1:9\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: gitgrant\n- name: broken\n  context:\n    cluster: broken\n    user: gitgrant\nusers:\n- name: gitgrant\n  user:\n    token: test-token\n",
            server.uri()
        );
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig).unwrap();
        Cluster { _server: server, api, dir }
    }

    fn kubeconfig(&self) -> String {
        self.dir.path().join("kubeconfig").display().to_string()
    }

    fn config(&self, namespaces: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(json!({"kubeconfig": self.kubeconfig(), "context": "fake", "namespaces": namespaces})).unwrap()
    }

    async fn provider(&self, config: BTreeMap<String, Value>) -> Result<Box<dyn Provider>, ProviderError> {
        let res = Resource {
            provider: ProviderKind::Kubernetes,
            environment: "production".into(),
            sensitivity: Sensitivity::High,
            description: None,
            config,
            origin: Origin { file: "policies/resources.yaml".into(), pos: Default::default() },
        };
        let ctx = ProviderContext { repo: self.dir.path(), resource: "k8s-prod", config: &res, now: Utc::now() };
        build(&ctx).await
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn spec(p: &dyn Provider, principal: &str, grant: Value, requests: &[&str], end: &str) -> GrantSpec {
    let access = p.access_for(requests[0], &grant).unwrap();
    GrantSpec {
        access: Access { provider: ProviderKind::Kubernetes, resource: p.resource().into(), principal: principal.into(), access },
        requests: requests.iter().map(|r| r.to_string()).collect(),
        end: at(end),
        role: "k8s-view".into(),
        grant,
        document: None,
    }
}

#[tokio::test]
async fn grant_list_revoke_role_and_cluster_role_bindings() {
    let c = Cluster::start().await;
    let p = c.provider(c.config(json!(["payments"]))).await.unwrap();
    assert!(!p.native_expiry());
    assert!(p.marker().contains("app.kubernetes.io/managed-by=gitgrant"), "{}", p.marker());

    let view = spec(p.as_ref(), "alice@example.com", json!({"cluster_role": "view"}), &["a1"], "2026-12-01T12:00:00Z");
    let pods = spec(p.as_ref(), "group:sre", json!({"role": "pod-reader", "namespace": "payments"}), &["s1", "s2"], "2026-12-01T14:00:00Z");
    assert_eq!(view.access.access, "clusterrole/view");
    assert_eq!(pods.access.access, "payments/role/pod-reader");

    let h1 = p.grant(&view).await.unwrap();
    let h2 = p.grant(&pods).await.unwrap();
    let crb_name = binding_name("k8s-prod", "alice@example.com", "clusterrole/view");
    let rb_name = binding_name("k8s-prod", "group:sre", "payments/role/pod-reader");
    assert_eq!(h1.handle, format!("clusterrolebinding/{crb_name}"));
    assert_eq!(h2.handle, format!("rolebinding/payments/{rb_name}"));

    let crb = c.api.get("clusterrolebindings", "", &crb_name).unwrap();
    assert_eq!(crb["roleRef"], json!({"apiGroup": GROUP, "kind": "ClusterRole", "name": "view"}));
    assert_eq!(crb["subjects"], json!([{"apiGroup": GROUP, "kind": "User", "name": "alice@example.com"}]));
    assert_eq!(crb["metadata"]["labels"], json!({"app.kubernetes.io/managed-by": "gitgrant"}));
    let ann = &crb["metadata"]["annotations"];
    assert_eq!(ann["gitgrant.io/requests"], "a1");
    assert_eq!(ann["gitgrant.io/end"], "2026-12-01T12:00:00Z");
    assert_eq!(ann["gitgrant.io/resource"], "k8s-prod");
    let rb = c.api.get("rolebindings", "payments", &rb_name).unwrap();
    assert_eq!(rb["roleRef"], json!({"apiGroup": GROUP, "kind": "Role", "name": "pod-reader"}));
    assert_eq!(rb["subjects"][0]["kind"], "Group");
    assert_eq!(rb["metadata"]["annotations"]["gitgrant.io/requests"], "s1 s2");

    // Someone else's bindings: unlabelled, or another resource's. Never listed.
    c.api.seed("clusterrolebindings", "", json!({"metadata": {"name": "cluster-admins"}, "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "cluster-admin"}, "subjects": [{"kind": "User", "name": "root"}]}));
    c.api.seed("clusterrolebindings", "", json!({"metadata": {"name": "gitgrant-other", "labels": {"app.kubernetes.io/managed-by": "gitgrant"}, "annotations": {"gitgrant.io/resource": "k8s-staging"}}, "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "edit"}, "subjects": [{"kind": "User", "name": "bob"}]}));

    c.api.log();
    let mut held = p.list().await.unwrap();
    let log = c.api.log();
    assert_eq!(
        log,
        vec![
            format!("GET /apis/{GROUP}/v1/namespaces/payments/rolebindings?&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dgitgrant"),
            format!("GET /apis/{GROUP}/v1/clusterrolebindings?&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dgitgrant"),
        ],
        "one label-selector list per namespace and one for cluster bindings"
    );
    held.sort_by(|a, b| a.access.access.cmp(&b.access.access));
    assert_eq!(held.len(), 2, "{held:#?}");
    assert_eq!(held[0].access, view.access);
    assert_eq!(held[0].requests, BTreeSet::from(["a1".to_string()]));
    assert_eq!(held[0].end, Some(at("2026-12-01T12:00:00Z")));
    assert_eq!(held[1].access, pods.access);
    assert_eq!(held[1].requests, BTreeSet::from(["s1".to_string(), "s2".to_string()]));

    // Granting again writes nothing; a changed marker is a replace (409 on create, GET, PUT).
    p.grant(&view).await.unwrap();
    assert_eq!(c.api.log(), vec![format!("POST /apis/{GROUP}/v1/clusterrolebindings?"), format!("GET /apis/{GROUP}/v1/clusterrolebindings/{crb_name}")]);
    let longer = GrantSpec { requests: BTreeSet::from(["a1".into(), "a2".into()]), end: at("2026-12-01T16:00:00Z"), ..view.clone() };
    p.grant(&longer).await.unwrap();
    assert_eq!(c.api.log().last().unwrap(), &format!("PUT /apis/{GROUP}/v1/clusterrolebindings/{crb_name}?"));
    let crb = c.api.get("clusterrolebindings", "", &crb_name).unwrap();
    assert_eq!(crb["metadata"]["annotations"]["gitgrant.io/requests"], "a1 a2");
    assert_eq!(crb["metadata"]["annotations"]["gitgrant.io/end"], "2026-12-01T16:00:00Z");
    assert_eq!(crb["metadata"]["uid"], "uid-1", "replaced in place, not recreated");

    // Revoke deletes; a second revoke finds it gone (404) and succeeds.
    for h in &held {
        p.revoke(h).await.unwrap();
        p.revoke(h).await.unwrap();
    }
    assert_eq!(c.api.names(), vec!["clusterrolebindings/cluster-admins".to_string(), "clusterrolebindings/gitgrant-other".to_string()]);
    assert!(p.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn errors_are_classified_with_what_to_do() {
    let c = Cluster::start().await;
    let p = c.provider(c.config(json!(["payments"]))).await.unwrap();
    for code in [429, 500, 503] {
        c.api.fail_next("GET", code);
        let e = p.list().await.unwrap_err();
        assert!(e.is_transient(), "{code}: {e}");
        assert!(e.to_string().starts_with("kubernetes k8s-prod: list rolebindings in namespace payments: "), "{e}");
    }
    c.api.fail_next("POST", 403);
    let view = spec(p.as_ref(), "alice@example.com", json!({"cluster_role": "view"}), &["a1"], "2026-12-01T12:00:00Z");
    let e = p.grant(&view).await.unwrap_err();
    assert!(!e.is_transient());
    let text = e.to_string();
    assert!(text.contains("403 Forbidden") && text.contains("cannot post resource"), "{text}");
    assert!(text.contains("get, list, create, update and delete on rolebindings and clusterrolebindings") && text.contains("`bind`"), "{text}");
    c.api.fail_next("GET", 401);
    let e = p.list().await.unwrap_err();
    assert!(!e.is_transient() && e.to_string().contains("rejected the runner's credentials"), "{e}");
    c.api.fail_next("DELETE", 500);
    let held = p.grant(&view).await.unwrap();
    assert!(p.revoke(&held).await.unwrap_err().is_transient());
    p.revoke(&held).await.unwrap();
}

#[tokio::test]
async fn config_and_grant_errors_name_the_resource_and_the_fix() {
    let c = Cluster::start().await;
    let p = c.provider(c.config(json!(["payments"]))).await.unwrap();
    let e = p.access_for("r", &json!({"role": "pod-reader", "namespace": "orders"})).unwrap_err().to_string();
    assert!(e.starts_with("kubernetes k8s-prod: namespace `orders` is not in the resource's config `namespaces` (payments)"), "{e}");
    let e = p.access_for("r", &json!({"role": "pod-reader"})).unwrap_err().to_string();
    assert!(e.contains("no `namespace`"), "{e}");

    let e = c.provider(c.config(json!("payments"))).await.err().unwrap().to_string();
    assert!(e.contains("config `namespaces` must be a list"), "{e}");
    let mut cfg = c.config(json!(null));
    cfg.insert("context".into(), json!("nope"));
    let e = c.provider(cfg).await.err().unwrap().to_string();
    assert!(e.starts_with("kubernetes k8s-prod: cannot load the Kubernetes client configuration (context `nope`)"), "{e}");
    let mut cfg = c.config(json!(null));
    cfg.insert("kubeconfig".into(), json!("missing/kubeconfig"));
    let e = c.provider(cfg).await.err().unwrap().to_string();
    assert!(e.contains("cannot load the Kubernetes client configuration") && e.contains("missing/kubeconfig"), "{e}");

    // Without `context`, the current context (a closed port) is used: unreachable is transient.
    let mut cfg = c.config(json!(null));
    cfg.remove("context");
    let e = c.provider(cfg).await.unwrap().list().await.unwrap_err();
    assert!(e.is_transient() && e.to_string().contains("cannot reach the Kubernetes API server"), "{e}");

    // Without `namespaces`, RoleBindings are listed across the cluster.
    let p = c.provider(c.config(json!(null))).await.unwrap();
    c.api.log();
    p.list().await.unwrap();
    assert_eq!(c.api.log()[0], format!("GET /apis/{GROUP}/v1/rolebindings?&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dgitgrant"));
}

/// Through the binary: two requests, one unexplained binding, overlapping
/// requests sharing one binding, expiry.
#[test]
fn plan_and_reconcile_bind_keep_and_delete() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = rt.block_on(Cluster::start());
    let repo = Repo::new();
    repo.at("2026-11-20T10:00:00Z");
    repo.write(
        "policies/all.yaml",
        format!(
            r#"
groups:
  sre: {{ members: [alice, bob] }}
  managers: {{ members: [frank] }}
identities:
  alice: {{ kubernetes: alice@example.com }}
  bob: {{ kubernetes: "group:payments-oncall" }}
  frank: {{}}
resources:
  k8s-prod:
    provider: kubernetes
    environment: production
    sensitivity: high
    config: {{ kubeconfig: "{kubeconfig}", context: fake, namespaces: [payments] }}
roles:
  k8s-view:
    privilege: read
    max_duration: 8h
    eligible: [sre]
    grants:
      kubernetes: {{ cluster_role: view }}
  k8s-pods:
    privilege: read
    max_duration: 8h
    eligible: [sre]
    grants:
      kubernetes: {{ role: pod-reader, namespace: payments }}
risk:
  factors: {{ sensitivity: {{ high: 25 }} }}
  tiers:
    - {{ name: managed, max_score: 100, approvals: [ {{ from: [managers], count: 1 }} ] }}
policy_changes:
  approvals: [ {{ from: [managers], count: 1 }} ]
"#,
            kubeconfig = c.kubeconfig(),
        ),
    );
    repo.commit("bootstrap policies");
    let request = |who: &str, role: &str, start: &str, dur: &str| {
        format!("requester: {who}\nrole: {role}\nresources: [k8s-prod]\nstart: {start}\nduration: {dur}\nreason: \"INC-3: payments pods crash-looping\"\n")
    };
    land(&repo, "alice-1", "alice", &[("requests/alice-1.yaml", request("alice", "k8s-view", "2026-12-01T10:00:00Z", "2h"))], &["frank"]);
    land(&repo, "alice-2", "alice", &[("requests/alice-2.yaml", request("alice", "k8s-view", "2026-12-01T11:00:00Z", "3h"))], &["frank"]);
    land(&repo, "bob-1", "bob", &[("requests/bob-1.yaml", request("bob", "k8s-pods", "2026-12-01T10:00:00Z", "2h"))], &["frank"]);
    // A binding gitgrant made for a request that is gone, and one it never made.
    let stale = binding_name("k8s-prod", "carol@example.com", "payments/clusterrole/edit");
    c.api.seed("rolebindings", "payments", json!({"metadata": {"name": stale, "namespace": "payments", "labels": {"app.kubernetes.io/managed-by": "gitgrant"}, "annotations": {"gitgrant.io/resource": "k8s-prod", "gitgrant.io/requests": "carol-old", "gitgrant.io/end": "2026-11-30T00:00:00Z"}}, "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "edit"}, "subjects": [{"apiGroup": GROUP, "kind": "User", "name": "carol@example.com"}]}));
    c.api.seed("rolebindings", "payments", json!({"metadata": {"name": "payments-devs", "namespace": "payments"}, "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "edit"}, "subjects": [{"kind": "Group", "name": "devs"}]}));

    let plan = repo.run(&["plan", "--at", "2026-12-01T11:30:00Z", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    let j = plan.json();
    let rows: Vec<(String, String, String, String)> = j["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (a["action"].as_str().unwrap().into(), a["principal"].as_str().unwrap().into(), a["access"].as_str().unwrap().into(), a["requests"].to_string())
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("revoke".into(), "carol@example.com".into(), "payments/clusterrole/edit".into(), r#"["carol-old"]"#.into()),
            ("grant".into(), "alice@example.com".into(), "clusterrole/view".into(), r#"["alice-1","alice-2"]"#.into()),
            ("grant".into(), "group:payments-oncall".into(), "payments/role/pod-reader".into(), r#"["bob-1"]"#.into()),
        ],
        "{j:#}"
    );
    assert_eq!(j["native_expiry"]["k8s-prod"], false);
    assert_eq!(c.api.names().len(), 2, "plan changes nothing");
    let text = repo.run(&["plan", "--at", "2026-12-01T11:30:00Z"]);
    assert!(text.stdout.contains("carol-old is not on main"), "{}", text.all());
    assert!(text.stdout.contains("note: no native expiry at k8s-prod"), "{}", text.all());

    let run = repo.run(&["reconcile", "--at", "2026-12-01T11:30:00Z"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let alice = binding_name("k8s-prod", "alice@example.com", "clusterrole/view");
    let bob = binding_name("k8s-prod", "group:payments-oncall", "payments/role/pod-reader");
    assert_eq!(
        c.api.names(),
        vec![format!("clusterrolebindings/{alice}"), format!("rolebindings/payments/{bob}"), "rolebindings/payments/payments-devs".to_string()]
    );
    let crb = c.api.get("clusterrolebindings", "", &alice).unwrap();
    assert_eq!(crb["metadata"]["annotations"]["gitgrant.io/requests"], "alice-1 alice-2", "one binding serves both requests");
    assert_eq!(crb["metadata"]["annotations"]["gitgrant.io/end"], "2026-12-01T14:00:00Z");
    let l = ledger(&repo);
    assert!(l.iter().any(|e| e["action"] == "grant" && e["request"] == "bob-1" && e["result"] == "ok"), "{l:#?}");
    assert!(l.iter().any(|e| e["action"] == "revoke" && e["request"] == "carol-old" && e["result"] == "ok"), "{l:#?}");

    // Nothing to do: no call changes anything.
    c.api.log();
    let again = repo.run(&["reconcile", "--at", "2026-12-01T11:35:00Z", "--format", "json"]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(c.api.log().iter().all(|l| l.starts_with("GET ")), "a no-change run only lists");

    // 12:30: alice-1 and bob-1 ended. alice keeps the binding for alice-2 (marker rewritten); bob's is deleted.
    let run = repo.run(&["reconcile", "--at", "2026-12-01T12:30:00Z"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("alice-1 ended at 2026-12-01T12:00:00Z; still needed by alice-2"), "{}", run.all());
    let crb = c.api.get("clusterrolebindings", "", &alice).unwrap();
    assert_eq!(crb["metadata"]["annotations"]["gitgrant.io/requests"], "alice-2");
    assert!(c.api.get("rolebindings", "payments", &bob).is_none());

    let run = repo.run(&["reconcile", "--at", "2026-12-01T14:00:00Z"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(c.api.names(), vec!["rolebindings/payments/payments-devs".to_string()], "only the binding gitgrant never made is left");
}
