//! The `kubernetes` provider: one RoleBinding (grant `{ role, namespace }` or
//! `{ cluster_role, namespace }`) or ClusterRoleBinding (grant
//! `{ cluster_role }`) per access, binding the role to one user or group.
//!
//! Design choices:
//! - **One binding per access, named by a hash.** The name is
//!   `gitgrant-<16 hex>` of (resource, principal, access): deterministic, so
//!   a retried or concurrent grant lands on the same object, and far inside
//!   the 63/253-character limits whatever the names. A 409 AlreadyExists on
//!   create becomes a replace, so a grant is idempotent.
//! - **Ownership is a label plus an annotation.** gitgrant lists only
//!   bindings labelled `app.kubernetes.io/managed-by=gitgrant` (a label
//!   selector, one list call per namespace and one for ClusterRoleBindings)
//!   whose `gitgrant.io/resource` annotation names this resource. Other
//!   bindings are never listed, changed or deleted.
//! - **The marker is annotations.** `gitgrant.io/requests` and
//!   `gitgrant.io/end` hold the request ids and the end. Kubernetes has no
//!   expiry of its own: access ends when reconcile runs after the end time.
//! - **Subjects.** The `kubernetes` identities entry is a user name
//!   (`alice@example.com`), or `group:NAME` for a group subject.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Access, GrantSpec, Held, Provider, ProviderContext, ProviderError};
use crate::model::policy::ProviderKind;

const KIND: ProviderKind = ProviderKind::Kubernetes;
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "gitgrant");
pub const ANN_RESOURCE: &str = "gitgrant.io/resource";
pub const ANN_PRINCIPAL: &str = "gitgrant.io/principal";
pub const ANN_REQUESTS: &str = "gitgrant.io/requests";
pub const ANN_END: &str = "gitgrant.io/end";
pub const ANN_ROLE: &str = "gitgrant.io/role";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
const GROUP_PREFIX: &str = "group:";
const RBAC_HINT: &str = "the gitgrant runner needs get, list, create, update and delete on rolebindings and clusterrolebindings (rbac.authorization.k8s.io), \
and `bind` on the roles it grants (README, Provider: kubernetes, has the ClusterRole)";

pub async fn build(ctx: &ProviderContext<'_>) -> Result<Box<dyn Provider>, ProviderError> {
    let config = &ctx.config.config;
    let context = cfg_str(config, "context", ctx.resource)?;
    let kubeconfig = match (cfg_str(config, "kubeconfig", ctx.resource)?, cfg_str(config, "kubeconfig_env", ctx.resource)?) {
        (Some(path), _) => Some(ctx.repo.join(path)),
        (None, Some(var)) => Some(std::path::PathBuf::from(std::env::var_os(var).filter(|v| !v.is_empty()).ok_or_else(|| {
            permanent(ctx.resource, format!("config `kubeconfig_env` names `{var}`, which is not set; set it to the kubeconfig path on the runner"))
        })?)),
        (None, None) => None,
    };
    let client = client(ctx.resource, kubeconfig.as_deref(), context).await?;
    Ok(Box::new(KubernetesProvider::new(client, ctx.resource, config)?))
}

/// A client from the usual places: the `kubeconfig` file of the config, else
/// `KUBECONFIG` or `~/.kube/config` (with `context`), else in-cluster.
async fn client(resource: &str, kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Client, ProviderError> {
    let opts = KubeConfigOptions { context: context.map(str::to_string), ..KubeConfigOptions::default() };
    let loaded = match (kubeconfig, context) {
        (Some(path), _) => match Kubeconfig::read_from(path) {
            Ok(k) => Config::from_custom_kubeconfig(k, &opts).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        (None, Some(_)) => Config::from_kubeconfig(&opts).await.map_err(|e| e.to_string()),
        (None, None) => Config::infer().await.map_err(|e| e.to_string()),
    };
    let mut config = loaded.map_err(|e| {
        permanent(
            resource,
            format!(
                "cannot load the Kubernetes client configuration{}: {e}; set config `kubeconfig`, KUBECONFIG or ~/.kube/config, or run in the cluster",
                context.map(|c| format!(" (context `{c}`)")).unwrap_or_default()
            ),
        )
    })?;
    // gitgrant retries transient errors itself, with its own budget.
    config.default_retry = false;
    config.read_timeout = Some(Duration::from_secs(30));
    config.connect_timeout = Some(Duration::from_secs(10));
    config.write_timeout = Some(Duration::from_secs(30));
    Client::try_from(config).map_err(|e| permanent(resource, format!("cannot build the Kubernetes client: {e}")))
}

/// Resource config keys: `context`, and `kubeconfig` (a path, relative to
/// the repository) or `kubeconfig_env` (the variable holding the path), all
/// optional, see [`client`]; `namespaces` (optional list, or `namespace` for
/// one: where RoleBindings are listed and may be made; default every
/// namespace).
pub struct KubernetesProvider {
    client: Client,
    resource: String,
    namespaces: Option<Vec<String>>,
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

/// What a grant binds, parsed from the role's grant or from an access string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A ClusterRoleBinding of a ClusterRole.
    Cluster { cluster_role: String },
    /// A RoleBinding in `namespace` of a Role (`cluster: false`) or ClusterRole.
    Namespaced { namespace: String, name: String, cluster: bool },
}

impl Target {
    fn from_grant(grant: &Value) -> Result<Target, String> {
        let get = |k: &str| grant.get(k).and_then(Value::as_str).map(str::to_string);
        match (get("role"), get("cluster_role"), get("namespace")) {
            (Some(name), None, Some(namespace)) => Ok(Target::Namespaced { namespace, name, cluster: false }),
            (None, Some(name), Some(namespace)) => Ok(Target::Namespaced { namespace, name, cluster: true }),
            (None, Some(cluster_role), None) => Ok(Target::Cluster { cluster_role }),
            (Some(_), None, None) => Err("the role's kubernetes grant names a `role` but no `namespace`; a Role lives in a namespace".into()),
            _ => {
                Err("the role's kubernetes grant needs `{ cluster_role: NAME }`, `{ role: NAME, namespace: NS }` or `{ cluster_role: NAME, namespace: NS }`"
                    .into())
            }
        }
    }

    /// `clusterrole/NAME`, `NS/role/NAME` or `NS/clusterrole/NAME`.
    fn access(&self) -> String {
        match self {
            Target::Cluster { cluster_role } => format!("clusterrole/{cluster_role}"),
            Target::Namespaced { namespace, name, cluster } => format!("{namespace}/{}/{name}", if *cluster { "clusterrole" } else { "role" }),
        }
    }

    fn parse(access: &str) -> Option<Target> {
        let parts: Vec<&str> = access.split('/').collect();
        match parts.as_slice() {
            ["clusterrole", n] if !n.is_empty() => Some(Target::Cluster { cluster_role: n.to_string() }),
            [ns, kind @ ("role" | "clusterrole"), n] if !ns.is_empty() && !n.is_empty() => {
                Some(Target::Namespaced { namespace: ns.to_string(), name: n.to_string(), cluster: *kind == "clusterrole" })
            }
            _ => None,
        }
    }

    fn role_ref(&self) -> RoleRef {
        let (kind, name) = match self {
            Target::Cluster { cluster_role } => ("ClusterRole", cluster_role),
            Target::Namespaced { name, cluster, .. } => (if *cluster { "ClusterRole" } else { "Role" }, name),
        };
        RoleRef { api_group: Some(RBAC_GROUP.to_string()), kind: kind.to_string(), name: name.clone() }
    }
}

/// The RBAC subject of a principal: `group:NAME` is a group, anything else a user.
fn subject(principal: &str) -> Subject {
    let (kind, name) = match principal.strip_prefix(GROUP_PREFIX) {
        Some(g) => ("Group", g),
        None => ("User", principal),
    };
    Subject { api_group: Some(RBAC_GROUP.to_string()), kind: kind.to_string(), name: name.to_string(), namespace: None }
}

/// The principal key of a binding's subjects (the inverse of [`subject`]).
fn principal_of(subjects: &[Subject]) -> Option<String> {
    match subjects {
        [s] if s.kind == "User" => Some(s.name.clone()),
        [s] if s.kind == "Group" => Some(format!("{GROUP_PREFIX}{}", s.name)),
        _ => None,
    }
}

/// `gitgrant-<16 hex>`: deterministic per (resource, principal, access).
pub fn binding_name(resource: &str, principal: &str, access: &str) -> String {
    let key = format!("{resource}\0{principal}\0{access}");
    format!("gitgrant-{:016x}", super::fnv1a64(key.as_bytes()))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl KubernetesProvider {
    /// Builds the provider on a given client (tests point it at a fake API server).
    pub fn new(client: Client, resource: &str, config: &BTreeMap<String, Value>) -> Result<Self, ProviderError> {
        let list_error = || permanent(resource, "config `namespaces` must be a list of namespace names, e.g. `namespaces: [payments, orders]`");
        let namespaces = match (config.get("namespace"), config.get("namespaces")) {
            (Some(_), Some(_)) => return Err(permanent(resource, "config has both `namespace` and `namespaces`; keep one")),
            (Some(Value::String(ns)), None) if !ns.is_empty() => Some(vec![ns.clone()]),
            (Some(_), None) => return Err(permanent(resource, "config `namespace` must be a namespace name")),
            (None, None | Some(Value::Null)) => None,
            (None, Some(Value::Array(a))) => {
                let names: Option<Vec<String>> = a.iter().map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_string)).collect();
                Some(names.ok_or_else(list_error)?)
            }
            (None, Some(_)) => return Err(list_error()),
        };
        Ok(KubernetesProvider { client, resource: resource.to_string(), namespaces })
    }

    fn perm(&self, message: impl Into<String>) -> ProviderError {
        permanent(&self.resource, message)
    }

    /// Maps a kube error of `op` on `what` to transient or permanent.
    fn classify(&self, op: &str, what: &str, e: kube::Error) -> ProviderError {
        match e {
            kube::Error::Api(s) => {
                let text = format!("{op} {what}: {} {}: {}", s.code, s.reason, s.message);
                match s.code {
                    429 | 500..=599 | 409 => transient(&self.resource, text),
                    401 => self.perm(format!("{text}; the API server rejected the runner's credentials: check the kubeconfig user")),
                    403 => self.perm(format!("{text}; {RBAC_HINT}")),
                    _ => self.perm(text),
                }
            }
            kube::Error::HyperError(_) | kube::Error::Service(_) => {
                transient(&self.resource, format!("{op} {what}: cannot reach the Kubernetes API server: {}", super::error_chain(&e)))
            }
            other => self.perm(format!("{op} {what}: {}", super::error_chain(&other))),
        }
    }

    fn metadata(&self, spec: &GrantSpec, name: &str, namespace: Option<&str>) -> ObjectMeta {
        let requests: Vec<&str> = spec.requests.iter().map(String::as_str).collect();
        let annotations = BTreeMap::from([
            (ANN_RESOURCE.to_string(), self.resource.clone()),
            (ANN_PRINCIPAL.to_string(), spec.access.principal.clone()),
            (ANN_REQUESTS.to_string(), requests.join(" ")),
            (ANN_END.to_string(), rfc3339(spec.end)),
            (ANN_ROLE.to_string(), spec.role.clone()),
        ]);
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: namespace.map(str::to_string),
            labels: Some(BTreeMap::from([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())])),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }
    }

    /// A managed binding as held, if it is this resource's.
    fn held<K: Resource>(&self, obj: &K, target: Target, subjects: &[Subject], handle: String) -> Option<Held> {
        let ann = obj.meta().annotations.as_ref()?;
        if ann.get(ANN_RESOURCE) != Some(&self.resource) {
            return None;
        }
        let principal = principal_of(subjects).or_else(|| ann.get(ANN_PRINCIPAL).cloned()).unwrap_or_default();
        let requests: BTreeSet<String> = ann.get(ANN_REQUESTS).map(|r| r.split_whitespace().map(str::to_string).collect()).unwrap_or_default();
        let end = ann.get(ANN_END).and_then(|e| DateTime::parse_from_rfc3339(e).ok()).map(|t| t.with_timezone(&Utc));
        Some(Held { access: Access { provider: KIND, resource: self.resource.clone(), principal, access: target.access() }, requests, end, handle })
    }

    /// Creates the object, or replaces it when it exists and differs (409 AlreadyExists).
    async fn upsert<K>(&self, api: &Api<K>, mut obj: K, what: &str) -> Result<(), ProviderError>
    where
        K: Resource + Clone + Serialize + DeserializeOwned + Debug + PartialEq,
    {
        let name = obj.name_any();
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.is_already_exists() => {}
            Err(e) => return Err(self.classify("create", what, e)),
        }
        let current = api.get(&name).await.map_err(|e| self.classify("get", what, e))?;
        obj.meta_mut().resource_version = current.meta().resource_version.clone();
        obj.meta_mut().uid = current.meta().uid.clone();
        let mut same = current.clone();
        same.meta_mut().managed_fields = None;
        same.meta_mut().creation_timestamp = None;
        same.meta_mut().generation = None;
        if same == obj {
            return Ok(());
        }
        api.replace(&name, &PostParams::default(), &obj).await.map(drop).map_err(|e| self.classify("replace", what, e))
    }

    async fn delete<K>(&self, api: &Api<K>, name: &str, what: &str) -> Result<(), ProviderError>
    where
        K: Resource + Clone + DeserializeOwned + Debug,
    {
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => Err(self.classify("delete", what, e)),
        }
    }

    fn check_namespace(&self, namespace: &str) -> Result<(), ProviderError> {
        match &self.namespaces {
            Some(list) if !list.iter().any(|n| n == namespace) => Err(self.perm(format!(
                "namespace `{namespace}` is not in the resource's config `namespaces` ({}); gitgrant would not find the binding again: add it there",
                list.join(", ")
            ))),
            _ => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl Provider for KubernetesProvider {
    fn kind(&self) -> ProviderKind {
        KIND
    }
    fn resource(&self) -> &str {
        &self.resource
    }
    fn native_expiry(&self) -> bool {
        false
    }
    fn marker(&self) -> String {
        format!(
            "RoleBinding/ClusterRoleBinding `gitgrant-<hash>` labelled {}={}, annotated {ANN_RESOURCE}={}, {ANN_REQUESTS} and {ANN_END} (Kubernetes has no expiry: access ends when reconcile runs after the end time)",
            MANAGED_BY.0, MANAGED_BY.1, self.resource
        )
    }

    fn access_for(&self, _request: &str, grant: &Value) -> Result<String, ProviderError> {
        let target = Target::from_grant(grant).map_err(|m| self.perm(m))?;
        if let Target::Namespaced { namespace, .. } = &target {
            self.check_namespace(namespace)?;
        }
        Ok(target.access())
    }

    async fn list(&self) -> Result<Vec<Held>, ProviderError> {
        let lp = ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
        let mut out = Vec::new();
        let apis: Vec<(String, Api<RoleBinding>)> = match &self.namespaces {
            Some(list) => list.iter().map(|ns| (format!("rolebindings in namespace {ns}"), Api::namespaced(self.client.clone(), ns))).collect(),
            None => vec![("rolebindings in all namespaces".to_string(), Api::all(self.client.clone()))],
        };
        for (what, api) in apis {
            let list = api.list(&lp).await.map_err(|e| self.classify("list", &what, e))?;
            for rb in list.items {
                let ns = rb.namespace().unwrap_or_default();
                let target = Target::Namespaced { namespace: ns.clone(), name: rb.role_ref.name.clone(), cluster: rb.role_ref.kind == "ClusterRole" };
                let handle = format!("rolebinding/{ns}/{}", rb.name_any());
                out.extend(self.held(&rb, target, rb.subjects.as_deref().unwrap_or_default(), handle));
            }
        }
        let api: Api<ClusterRoleBinding> = Api::all(self.client.clone());
        let list = api.list(&lp).await.map_err(|e| self.classify("list", "clusterrolebindings", e))?;
        for crb in list.items {
            let target = Target::Cluster { cluster_role: crb.role_ref.name.clone() };
            let handle = format!("clusterrolebinding/{}", crb.name_any());
            out.extend(self.held(&crb, target, crb.subjects.as_deref().unwrap_or_default(), handle));
        }
        out.sort_by(|a, b| a.access.cmp(&b.access));
        Ok(out)
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Held, ProviderError> {
        let target = Target::parse(&spec.access.access)
            .ok_or_else(|| self.perm(format!("`{}` is not a gitgrant Kubernetes access (a gitgrant bug)", spec.access.access)))?;
        if spec.access.principal.is_empty() || spec.access.principal == GROUP_PREFIX {
            return Err(self.perm("empty subject; fix the requester's `kubernetes` identities entry"));
        }
        let name = binding_name(&self.resource, &spec.access.principal, &spec.access.access);
        let subjects = Some(vec![subject(&spec.access.principal)]);
        let handle = match &target {
            Target::Cluster { .. } => {
                let obj = ClusterRoleBinding { metadata: self.metadata(spec, &name, None), role_ref: target.role_ref(), subjects };
                let what = format!("clusterrolebinding {name}");
                self.upsert(&Api::<ClusterRoleBinding>::all(self.client.clone()), obj, &what).await?;
                format!("clusterrolebinding/{name}")
            }
            Target::Namespaced { namespace, .. } => {
                self.check_namespace(namespace)?;
                let obj = RoleBinding { metadata: self.metadata(spec, &name, Some(namespace)), role_ref: target.role_ref(), subjects };
                let what = format!("rolebinding {namespace}/{name}");
                self.upsert(&Api::<RoleBinding>::namespaced(self.client.clone(), namespace), obj, &what).await?;
                format!("rolebinding/{namespace}/{name}")
            }
        };
        Ok(Held { access: spec.access.clone(), requests: spec.requests.clone(), end: Some(spec.end), handle })
    }

    async fn revoke(&self, held: &Held) -> Result<(), ProviderError> {
        let fallback = || match Target::parse(&held.access.access)? {
            Target::Cluster { .. } => Some(format!("clusterrolebinding/{}", binding_name(&self.resource, &held.access.principal, &held.access.access))),
            Target::Namespaced { namespace, .. } => {
                Some(format!("rolebinding/{namespace}/{}", binding_name(&self.resource, &held.access.principal, &held.access.access)))
            }
        };
        let handle = if held.handle.is_empty() { fallback() } else { Some(held.handle.clone()) };
        let handle = handle.ok_or_else(|| self.perm(format!("no binding to delete for `{}` (a gitgrant bug)", held.access.access)))?;
        let parts: Vec<&str> = handle.split('/').collect();
        match parts.as_slice() {
            ["clusterrolebinding", name] => {
                self.delete(&Api::<ClusterRoleBinding>::all(self.client.clone()), name, &format!("clusterrolebinding {name}")).await
            }
            ["rolebinding", ns, name] => self.delete(&Api::<RoleBinding>::namespaced(self.client.clone(), ns), name, &format!("rolebinding {ns}/{name}")).await,
            _ => Err(self.perm(format!("`{handle}` is not a binding handle (a gitgrant bug)"))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use serde_json::json;

    #[test]
    fn grants_map_to_access_strings_and_back() {
        let cases = [
            (json!({"cluster_role": "view"}), "clusterrole/view"),
            (json!({"role": "pod-reader", "namespace": "payments"}), "payments/role/pod-reader"),
            (json!({"cluster_role": "edit", "namespace": "payments"}), "payments/clusterrole/edit"),
        ];
        for (grant, access) in cases {
            let t = Target::from_grant(&grant).unwrap();
            assert_eq!(t.access(), access);
            assert_eq!(Target::parse(access), Some(t));
        }
        assert!(Target::from_grant(&json!({"role": "x"})).unwrap_err().contains("no `namespace`"));
        assert!(Target::from_grant(&json!({})).unwrap_err().contains("needs"));
        assert!(Target::from_grant(&json!({"role": "a", "cluster_role": "b"})).is_err());
        assert_eq!(Target::parse("role/x"), None);
    }

    #[test]
    fn binding_names_are_deterministic_distinct_and_valid_dns_labels() {
        let a = binding_name("prod", "alice@example.com", "clusterrole/view");
        assert_eq!(a, binding_name("prod", "alice@example.com", "clusterrole/view"));
        assert_ne!(a, binding_name("prod", "bob@example.com", "clusterrole/view"));
        assert_ne!(a, binding_name("staging", "alice@example.com", "clusterrole/view"));
        assert_eq!(a.len(), "gitgrant-".len() + 16);
        assert!(a.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{a}");
    }

    #[test]
    fn subjects_round_trip() {
        for p in ["alice@example.com", "group:sre", "system:serviceaccount:ci:deployer"] {
            assert_eq!(principal_of(&[subject(p)]).as_deref(), Some(p));
        }
        assert_eq!(subject("group:sre").kind, "Group");
        assert_eq!(principal_of(&[]), None);
    }
}
