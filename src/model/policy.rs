//! Policy files: everything under `policies/*.yaml`, merged. Raw types keep
//! positions; [`Policy`] is the checked, merged result that decisions use.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Duration, Sp};
use crate::diag::Pos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema)]
pub enum ProviderKind {
    #[serde(rename = "local")]
    Local,
    #[serde(rename = "aws-iam")]
    AwsIam,
    #[serde(rename = "aws-sso")]
    AwsSso,
    #[serde(rename = "gcp-iam")]
    GcpIam,
    #[serde(rename = "azure-rbac")]
    AzureRbac,
    #[serde(rename = "kubernetes")]
    Kubernetes,
    #[serde(rename = "postgres")]
    Postgres,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 7] = [
        ProviderKind::Local,
        ProviderKind::AwsIam,
        ProviderKind::AwsSso,
        ProviderKind::GcpIam,
        ProviderKind::AzureRbac,
        ProviderKind::Kubernetes,
        ProviderKind::Postgres,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::AwsIam => "aws-iam",
            ProviderKind::AwsSso => "aws-sso",
            ProviderKind::GcpIam => "gcp-iam",
            ProviderKind::AzureRbac => "azure-rbac",
            ProviderKind::Kubernetes => "kubernetes",
            ProviderKind::Postgres => "postgres",
        }
    }
    /// The `identities` key that holds this provider's principal (`None`: the
    /// login itself, for the local provider).
    pub fn identity_key(self) -> Option<&'static str> {
        match self {
            ProviderKind::Local => None,
            ProviderKind::AwsIam => Some("aws"),
            ProviderKind::AwsSso => Some("aws-sso"),
            ProviderKind::GcpIam => Some("gcp"),
            ProviderKind::AzureRbac => Some("azure"),
            ProviderKind::Kubernetes => Some("kubernetes"),
            ProviderKind::Postgres => Some("postgres"),
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Sensitivity {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Privilege {
    Read,
    Write,
    Admin,
}

macro_rules! lower_name {
    ($t:ty { $($v:ident => $s:literal),* }) => {
        impl $t {
            pub fn as_str(self) -> &'static str { match self { $(Self::$v => $s),* } }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}
lower_name!(Sensitivity { Low => "low", Medium => "medium", High => "high", Critical => "critical" });
lower_name!(Privilege { Read => "read", Write => "write", Admin => "admin" });

/// One policy file as written. Every section is optional per file; the
/// merged whole must have `risk`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "gitgrant policy file")]
pub struct RawPolicyFile {
    #[serde(default)]
    pub groups: BTreeMap<Sp<String>, RawGroup>,
    /// How a GitHub login maps to each provider's principal.
    #[serde(default)]
    pub identities: BTreeMap<Sp<String>, RawIdentity>,
    #[serde(default)]
    pub resources: BTreeMap<Sp<String>, RawResource>,
    #[serde(default)]
    pub roles: BTreeMap<Sp<String>, RawRole>,
    #[serde(default)]
    pub risk: Option<Sp<RawRisk>>,
    /// Approvals for a PR that touches policies/ or templates/.
    #[serde(default)]
    pub policy_changes: Option<Sp<RawApprovalRule>>,
    #[serde(default)]
    pub break_glass: Option<Sp<RawBreakGlass>>,
    /// Rules `gitgrant monitor` applies to provider activity during grants.
    #[serde(default)]
    pub monitor: Option<Sp<RawMonitor>>,
    /// Who `gate` asks for reviews, and how.
    #[serde(default)]
    pub notifications: Option<Sp<RawNotifications>>,
}

/// `notifications:` — how gitgrant tells the people who must act.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNotifications {
    /// `gate` requests reviews (GitHub review requests) from the people and
    /// teams who can fill the open approval slots, once per PR head. Default `true`.
    #[serde(default)]
    pub request_reviews: Option<Sp<bool>>,
    /// `gate` @-mentions them in a PR comment, once per PR head. Default `false`.
    #[serde(default)]
    pub mention: Option<Sp<bool>>,
    /// How long before a grant ends its holder is warned (`expiring_soon`). Default `30m`.
    #[serde(default)]
    pub expiring_soon: Option<Sp<String>>,
    /// By how much the suggested `gitgrant extend` command extends. Default `1h`.
    #[serde(default)]
    pub extend_by: Option<Sp<String>>,
    /// Where `reconcile` and `monitor` send events, by sink name.
    #[serde(default)]
    pub sinks: BTreeMap<Sp<String>, RawSink>,
}

/// One notification sink under `notifications.sinks`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    /// `slack` (Slack-compatible incoming webhook), `json` (generic JSON webhook) or `github` (a comment on the request's PR).
    pub kind: Sp<String>,
    /// The environment variable holding the webhook URL (slack, json). The URL is a secret.
    #[serde(default)]
    pub url_env: Option<Sp<String>>,
    /// Refused: a webhook URL is a secret; use `url_env`.
    #[serde(default)]
    #[schemars(skip)]
    pub url: Option<Sp<String>>,
    /// The event kinds this sink gets (default: all).
    #[serde(default)]
    pub events: Option<Vec<Sp<String>>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    #[serde(default)]
    pub members: Vec<Sp<String>>,
    /// A GitHub team (`org/team-slug`) whose members also belong to this group.
    #[serde(default)]
    pub github_team: Option<Sp<String>>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    /// IAM user or role ARN (aws-iam).
    #[serde(default)]
    pub aws: Option<Sp<String>>,
    /// Identity Store user name (aws-sso).
    #[serde(default, rename = "aws-sso")]
    pub aws_sso: Option<Sp<String>>,
    /// IAM member, e.g. `user:alice@example.com` (gcp-iam).
    #[serde(default)]
    pub gcp: Option<Sp<String>>,
    /// Entra object id (azure-rbac).
    #[serde(default)]
    pub azure: Option<Sp<String>>,
    /// User subject (kubernetes).
    #[serde(default)]
    pub kubernetes: Option<Sp<String>>,
    /// Role name (postgres).
    #[serde(default)]
    pub postgres: Option<Sp<String>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawResource {
    pub provider: Sp<ProviderKind>,
    pub environment: Sp<String>,
    pub sensitivity: Sp<Sensitivity>,
    #[serde(default)]
    pub description: Option<String>,
    /// Provider-specific settings; secrets only by environment variable name.
    #[serde(default)]
    pub config: Option<Sp<BTreeMap<String, serde_json::Value>>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    #[serde(default)]
    pub description: Option<String>,
    pub privilege: Sp<Privilege>,
    pub max_duration: Sp<String>,
    /// Groups whose members may request this role.
    pub eligible: Vec<Sp<String>>,
    #[serde(default)]
    pub require_ticket: Option<Sp<bool>>,
    #[serde(default)]
    pub ticket_pattern: Option<Sp<String>>,
    /// May this role be requested with `break_glass: true`? Default: yes when
    /// the policy has a `break_glass` section.
    #[serde(default)]
    pub break_glass: Option<Sp<bool>>,
    /// What the role becomes on each provider.
    pub grants: Sp<RawGrants>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGrants {
    #[serde(default)]
    pub local: Option<Sp<LocalGrant>>,
    #[serde(default, rename = "aws-iam")]
    pub aws_iam: Option<Sp<AwsIamGrant>>,
    #[serde(default, rename = "aws-sso")]
    pub aws_sso: Option<Sp<AwsSsoGrant>>,
    #[serde(default, rename = "gcp-iam")]
    pub gcp_iam: Option<Sp<GcpIamGrant>>,
    #[serde(default, rename = "azure-rbac")]
    pub azure_rbac: Option<Sp<AzureRbacGrant>>,
    #[serde(default)]
    pub kubernetes: Option<Sp<KubernetesGrant>>,
    #[serde(default)]
    pub postgres: Option<Sp<PostgresGrant>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalGrant {
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsIamGrant {
    /// A minijinja template under templates/ rendering an IAM policy document.
    #[serde(default)]
    pub policy_template: Option<String>,
    /// Or an existing managed policy to attach.
    #[serde(default)]
    pub managed_policy_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsSsoGrant {
    pub permission_set_arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GcpIamGrant {
    /// e.g. `roles/cloudsql.viewer`.
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AzureRbacGrant {
    pub role_definition_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesGrant {
    #[serde(default)]
    pub cluster_role: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresGrant {
    /// The database role granted to the requester's role.
    pub role: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRisk {
    #[serde(default)]
    pub factors: RawFactors,
    pub tiers: Sp<Vec<RawTier>>,
}

/// Risk factor weights. Every factor is optional; an absent one scores 0.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFactors {
    /// Points by the highest sensitivity among the request's resources.
    #[serde(default)]
    pub sensitivity: Option<BTreeMap<Sensitivity, i64>>,
    /// Points by the role's privilege.
    #[serde(default)]
    pub privilege: Option<BTreeMap<Privilege, i64>>,
    /// Points by environment, the highest among the resources.
    #[serde(default)]
    pub environment: Option<BTreeMap<String, i64>>,
    /// Points per started hour of the window.
    #[serde(default)]
    pub per_hour: Option<i64>,
    /// Points when the window starts outside business hours.
    #[serde(default)]
    pub off_hours: Option<Sp<RawOffHours>>,
    /// Points when the requester never held this role before.
    #[serde(default)]
    pub first_time: Option<i64>,
    /// Points per past grant of theirs ended early (at most 3 counted).
    #[serde(default)]
    pub early_revocations: Option<i64>,
    /// Points per grant the requester already holds at the start time.
    #[serde(default)]
    pub active_grants: Option<i64>,
    /// Points when no ticket is given.
    #[serde(default)]
    pub missing_ticket: Option<i64>,
    #[serde(default)]
    pub break_glass: Option<i64>,
    /// Points per monitor finding the ledger recorded against the requester (at most 3 counted).
    #[serde(default)]
    pub monitor_findings: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOffHours {
    pub points: i64,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub timezone: Sp<String>,
    /// Business days: Mon, Tue, Wed, Thu, Fri, Sat, Sun.
    pub days: Vec<Sp<String>>,
    /// Business hours, `HH:MM-HH:MM`.
    pub hours: Sp<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTier {
    pub name: Sp<String>,
    pub max_score: Sp<i64>,
    /// Empty: auto-approved (the PR's required check still has to pass).
    pub approvals: Vec<RawApproval>,
    /// Longest window this tier allows (caps auto-approval).
    #[serde(default)]
    pub max_duration: Option<Sp<String>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApproval {
    pub from: Vec<Sp<String>>,
    pub count: Sp<u32>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApprovalRule {
    pub approvals: Vec<RawApproval>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBreakGlass {
    pub approvals: Vec<RawApproval>,
    pub max_duration: Sp<String>,
    /// The after-the-fact review must land within this.
    pub review_within: Sp<String>,
    /// Groups whose members may ratify a break-glass grant.
    pub reviewers: Vec<Sp<String>>,
}

/// `monitor:` — rules over what grantees do with their access.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMonitor {
    /// Activity this long after a window ends still counts as inside it
    /// (clock skew, log delivery). Default `5m`.
    #[serde(default)]
    pub grace: Option<Sp<String>>,
    /// How far back `monitor` looks at grants that already ended. Default `24h`.
    #[serde(default)]
    pub lookback: Option<Sp<String>>,
    #[serde(default)]
    pub rules: Vec<RawMonitorRule>,
}

/// One monitor rule: exactly one of `deny_actions`, `max_events_per_hour`,
/// `outside_window`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMonitorRule {
    pub name: Sp<String>,
    /// Roles the rule applies to. Absent: every role.
    #[serde(default)]
    pub roles: Option<Vec<Sp<String>>>,
    /// Actions the grantee must never perform, as globs over `service:Action`
    /// (case-insensitive; `*` any run of characters, `?` one), e.g. `iam:*`, `*:Delete*`.
    #[serde(default)]
    pub deny_actions: Option<Vec<Sp<String>>>,
    /// More events than this in any clock hour is unusual volume.
    #[serde(default)]
    pub max_events_per_hour: Option<Sp<u32>>,
    /// Activity by the grantee's principal after the window ended (plus `grace`).
    #[serde(default)]
    pub outside_window: Option<Sp<bool>>,
    /// Revoke the grant at the provider immediately when the rule fires. Default false.
    #[serde(default)]
    pub revoke: Option<Sp<bool>>,
}

// ---- checked, merged policy ----

/// Where a definition was written, for diagnostics that point back at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub file: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub members: BTreeSet<String>,
    pub github_team: Option<String>,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Identity {
    pub principals: BTreeMap<ProviderKind, String>,
}

impl Identity {
    /// The principal this login has at `provider` (local: the login itself).
    pub fn principal(&self, login: &str, provider: ProviderKind) -> Option<String> {
        match provider {
            ProviderKind::Local => Some(login.to_string()),
            p => self.principals.get(&p).cloned(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    pub provider: ProviderKind,
    pub environment: String,
    pub sensitivity: Sensitivity,
    pub description: Option<String>,
    pub config: BTreeMap<String, serde_json::Value>,
    #[serde(skip)]
    pub origin: Origin,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Grants {
    pub local: Option<LocalGrant>,
    pub aws_iam: Option<AwsIamGrant>,
    pub aws_sso: Option<AwsSsoGrant>,
    pub gcp_iam: Option<GcpIamGrant>,
    pub azure_rbac: Option<AzureRbacGrant>,
    pub kubernetes: Option<KubernetesGrant>,
    pub postgres: Option<PostgresGrant>,
}

impl Grants {
    pub fn has(&self, p: ProviderKind) -> bool {
        match p {
            ProviderKind::Local => self.local.is_some(),
            ProviderKind::AwsIam => self.aws_iam.is_some(),
            ProviderKind::AwsSso => self.aws_sso.is_some(),
            ProviderKind::GcpIam => self.gcp_iam.is_some(),
            ProviderKind::AzureRbac => self.azure_rbac.is_some(),
            ProviderKind::Kubernetes => self.kubernetes.is_some(),
            ProviderKind::Postgres => self.postgres.is_some(),
        }
    }
    pub fn providers(&self) -> Vec<ProviderKind> {
        ProviderKind::ALL.into_iter().filter(|p| self.has(*p)).collect()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Role {
    pub description: Option<String>,
    pub privilege: Privilege,
    pub max_duration: Duration,
    pub eligible: Vec<String>,
    pub require_ticket: bool,
    #[serde(skip)]
    pub ticket_pattern: Option<regex::Regex>,
    pub break_glass: bool,
    pub grants: Grants,
    #[serde(skip)]
    pub origin: Origin,
}

/// `count` approvals from members of any of the `from` groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRule {
    pub from: Vec<String>,
    pub count: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct OffHours {
    pub points: i64,
    #[serde(serialize_with = "ser_display")]
    pub timezone: chrono_tz::Tz,
    /// Business days, 0 = Monday.
    pub days: BTreeSet<u32>,
    /// Minutes since midnight, `[from, to)`.
    pub from_minute: u32,
    pub to_minute: u32,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Factors {
    pub sensitivity: BTreeMap<Sensitivity, i64>,
    pub privilege: BTreeMap<Privilege, i64>,
    pub environment: BTreeMap<String, i64>,
    pub per_hour: i64,
    pub off_hours: Option<OffHours>,
    pub first_time: i64,
    pub early_revocations: i64,
    pub active_grants: i64,
    pub missing_ticket: i64,
    pub break_glass: i64,
    pub monitor_findings: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tier {
    pub name: String,
    pub max_score: i64,
    pub approvals: Vec<ApprovalRule>,
    pub max_duration: Option<Duration>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BreakGlass {
    pub approvals: Vec<ApprovalRule>,
    pub max_duration: Duration,
    pub review_within: Duration,
    pub reviewers: Vec<String>,
}

/// What a monitor rule checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitorCheck {
    /// Lowercased globs over `service:action`.
    DenyActions(Vec<String>),
    MaxEventsPerHour(u32),
    OutsideWindow,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonitorRule {
    pub name: String,
    /// Empty: every role.
    pub roles: Vec<String>,
    pub check: MonitorCheck,
    pub revoke: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Monitor {
    pub grace: Duration,
    pub lookback: Duration,
    pub rules: Vec<MonitorRule>,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor { grace: Duration::from_secs(300), lookback: Duration::from_secs(86_400), rules: Vec::new() }
    }
}

/// The merged, checked policies of one revision.
/// The validated `notifications` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notifications {
    pub request_reviews: bool,
    pub mention: bool,
    pub expiring_soon: Duration,
    pub extend_by: Duration,
    pub sinks: Vec<Sink>,
}

impl Default for Notifications {
    fn default() -> Self {
        Notifications {
            request_reviews: true,
            mention: false,
            expiring_soon: Duration::from_secs(1800),
            extend_by: Duration::from_secs(3600),
            sinks: Vec::new(),
        }
    }
}

/// The kind of a notification sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    Slack,
    Json,
    Github,
}

/// A validated sink: its name, kind, URL variable (webhooks) and the events it gets (empty: all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sink {
    pub name: String,
    pub kind: SinkKind,
    pub url_env: Option<String>,
    pub events: Vec<String>,
}

/// The event kinds a sink may subscribe to.
pub const EVENT_KINDS: &[&str] = &["landed", "granted", "revoked", "refused", "break_glass_opened", "break_glass_overdue", "expiring_soon", "monitor_finding"];

#[derive(Debug, Clone, Default, Serialize)]
pub struct Policy {
    pub groups: BTreeMap<String, Group>,
    pub identities: BTreeMap<String, Identity>,
    pub resources: BTreeMap<String, Resource>,
    pub roles: BTreeMap<String, Role>,
    pub factors: Factors,
    pub tiers: Vec<Tier>,
    pub policy_changes: Vec<ApprovalRule>,
    pub break_glass: Option<BreakGlass>,
    /// Monitor rules (defaults when the policies have no `monitor` section).
    pub monitor: Monitor,
    /// How people are told (defaults when the policies have no `notifications` section).
    pub notifications: Notifications,
    /// Template sources by path under templates/ (e.g. `aws/readonly.json.j2`).
    #[serde(skip)]
    pub templates: BTreeMap<String, String>,
}

impl Policy {
    /// The tier for a score: the first whose `max_score` is at or above it.
    pub fn tier_for(&self, score: i64) -> Option<&Tier> {
        self.tiers.iter().find(|t| t.max_score >= score)
    }

    /// Members of a group, lowercased logins (GitHub logins are case-insensitive).
    pub fn members(&self, group: &str) -> BTreeSet<String> {
        self.groups.get(group).map(|g| g.members.clone()).unwrap_or_default()
    }

    /// Is `login` in any of `groups`?
    pub fn in_any(&self, login: &str, groups: &[String]) -> bool {
        let login = login.to_ascii_lowercase();
        groups.iter().any(|g| self.groups.get(g).is_some_and(|g| g.members.contains(&login)))
    }

    /// Group name -> members, for the approval engine.
    pub fn group_members(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.groups.iter().map(|(k, g)| (k.clone(), g.members.clone())).collect()
    }
}

fn ser_display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}
