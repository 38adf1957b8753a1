//! Where activity comes from: one [`ActivitySource`] per resource. CloudTrail
//! for `aws-iam`, a JSON-lines file for `local` (so the demo and tests can
//! exercise monitor without a cloud), an in-memory list for unit tests.
//! Other providers have no source yet; monitor says so instead of guessing.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::policy::{ProviderKind, Resource};

/// One action a principal performed, as the provider's log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityEvent {
    /// The log's event id (CloudTrail `EventId`): evidence in findings.
    pub id: String,
    pub time: DateTime<Utc>,
    pub principal: String,
    /// `service:Action`, e.g. `iam:CreateUser`, `s3:GetObject`.
    pub action: String,
    /// The resource the event is about, where the log names one (the local
    /// log's resource name; unused for CloudTrail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("activity source {source_name} for resource `{resource}`: {message}")]
pub struct ActivityError {
    pub source_name: String,
    pub resource: String,
    pub message: String,
}

/// A provider's activity log.
#[async_trait::async_trait]
pub trait ActivitySource: Send + Sync {
    /// For output: `cloudtrail`, `local-activity (PATH)`.
    fn name(&self) -> String;
    /// Events by `principal` with `start <= time < end`, oldest first, all pages.
    async fn events(&self, principal: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Vec<ActivityEvent>, ActivityError>;
}

/// The in-memory fake.
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    pub events: Vec<ActivityEvent>,
}

#[async_trait::async_trait]
impl ActivitySource for MemorySource {
    fn name(&self) -> String {
        "memory".into()
    }
    async fn events(&self, principal: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Vec<ActivityEvent>, ActivityError> {
        Ok(select(self.events.iter().cloned(), principal, None, start, end))
    }
}

fn select(
    events: impl Iterator<Item = ActivityEvent>,
    principal: &str,
    resource: Option<&str>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<ActivityEvent> {
    let mut out: Vec<ActivityEvent> = events
        .filter(|e| e.principal == principal && e.time >= start && e.time < end)
        .filter(|e| resource.is_none_or(|r| e.resource.as_deref().is_none_or(|x| x == r)))
        .collect();
    out.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
    out
}

pub const DEFAULT_LOCAL_ACTIVITY: &str = ".gitgrant/local-activity.jsonl";

/// The local provider's activity log: one JSON object per line,
/// `{"id", "time", "principal", "action", "resource"}`; `resource` optional
/// (absent: any resource). Written by whatever the local role fronts (the
/// demo writes it directly). A missing file is an empty log.
pub struct LocalActivity {
    pub path: PathBuf,
    pub resource: String,
}

impl LocalActivity {
    /// `path` (resource config `activity`) is relative to the repository unless absolute.
    pub fn new(repo: &Path, resource: &str, path: Option<&str>) -> Self {
        let p = Path::new(path.unwrap_or(DEFAULT_LOCAL_ACTIVITY));
        LocalActivity { path: if p.is_absolute() { p.to_path_buf() } else { repo.join(p) }, resource: resource.to_string() }
    }
}

#[async_trait::async_trait]
impl ActivitySource for LocalActivity {
    fn name(&self) -> String {
        format!("local-activity ({})", self.path.display())
    }
    async fn events(&self, principal: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Vec<ActivityEvent>, ActivityError> {
        let err = |message: String| ActivityError { source_name: self.name(), resource: self.resource.clone(), message };
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(err(e.to_string())),
        };
        let mut all = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let e: ActivityEvent = serde_json::from_str(line).map_err(|e| err(format!("line {}: {e}; fix or remove the line", i + 1)))?;
            all.push(e);
        }
        Ok(select(all.into_iter(), principal, Some(&self.resource), start, end))
    }
}

/// CloudTrail `LookupEvents` by user name, all pages (NextToken).
#[cfg(feature = "aws")]
pub struct CloudTrail {
    client: aws_sdk_cloudtrail::Client,
    resource: String,
}

#[cfg(feature = "aws")]
impl CloudTrail {
    pub fn new(client: aws_sdk_cloudtrail::Client, resource: &str) -> Self {
        CloudTrail { client, resource: resource.to_string() }
    }

    /// The SDK's usual environment (credentials, `AWS_ENDPOINT_URL_CLOUDTRAIL`
    /// or `AWS_ENDPOINT_URL`), in the resource's `region` when it names one.
    pub async fn from_env(resource: &str, config: &Resource) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(crate::provider::aws_http_client());
        if let Some(region) = config.config.get("region").and_then(|v| v.as_str()) {
            loader = loader.region(aws_config::Region::new(region.to_string()));
        }
        let sdk = loader.timeout_config(crate::provider::aws_timeouts()).load().await;
        let mut b = aws_sdk_cloudtrail::config::Builder::from(&sdk);
        if sdk.region().is_none() {
            b = b.region(aws_config::Region::from_static("us-east-1"));
        }
        CloudTrail::new(aws_sdk_cloudtrail::Client::from_conf(b.build()), resource)
    }
}

/// CloudTrail's user name for an IAM principal ARN: the last path segment
/// (`arn:aws:iam::1:user/team/alice` → `alice`). For a role this is the role
/// name; CloudTrail records assumed-role sessions under the session name,
/// so sessions should be named after the role (see README).
pub fn cloudtrail_username(principal: &str) -> &str {
    principal.rsplit('/').next().unwrap_or(principal)
}

/// `iam.amazonaws.com` + `CreateUser` → `iam:CreateUser`.
pub fn cloudtrail_action(source: &str, name: &str) -> String {
    format!("{}:{name}", source.strip_suffix(".amazonaws.com").unwrap_or(source))
}

#[cfg(feature = "aws")]
#[async_trait::async_trait]
impl ActivitySource for CloudTrail {
    fn name(&self) -> String {
        "cloudtrail".into()
    }
    async fn events(&self, principal: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Vec<ActivityEvent>, ActivityError> {
        use aws_sdk_cloudtrail::primitives::DateTime as AwsTime;
        use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
        let err = |message: String| ActivityError { source_name: self.name(), resource: self.resource.clone(), message };
        let user = cloudtrail_username(principal);
        let attr = LookupAttribute::builder().attribute_key(LookupAttributeKey::Username).attribute_value(user).build().map_err(|e| err(e.to_string()))?;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        // CloudTrail pages at most 50 events; a busy principal over a long
        // window has many pages. The cap stops a token that never ends.
        for _ in 0..10_000 {
            let mut call = self
                .client
                .lookup_events()
                .lookup_attributes(attr.clone())
                .start_time(AwsTime::from_secs(start.timestamp()))
                .end_time(AwsTime::from_secs(end.timestamp()))
                .max_results(50);
            if let Some(t) = &token {
                call = call.next_token(t);
            }
            let page = call.send().await.map_err(|e| {
                let detail = aws_sdk_cloudtrail::error::DisplayErrorContext(&e).to_string();
                err(format!("LookupEvents for `{user}`: {detail} (needs cloudtrail:LookupEvents)"))
            })?;
            for e in page.events() {
                let detail: serde_json::Value = e.cloud_trail_event().and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
                let s = |k: &str| detail.get(k).and_then(|v| v.as_str()).map(str::to_string);
                let source = e.event_source().map(str::to_string).or_else(|| s("eventSource")).unwrap_or_default();
                let name = e.event_name().map(str::to_string).or_else(|| s("eventName")).unwrap_or_default();
                let time = e
                    .event_time()
                    .and_then(|t| DateTime::from_timestamp(t.secs(), 0))
                    .or_else(|| s("eventTime").and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc)));
                let Some(time) = time else { continue };
                out.push(ActivityEvent {
                    id: e.event_id().map(str::to_string).or_else(|| s("eventID")).unwrap_or_default(),
                    time,
                    principal: principal.to_string(),
                    action: cloudtrail_action(&source, &name),
                    resource: None,
                });
            }
            token = page.next_token().map(str::to_string).filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
        Ok(out)
    }
}

/// The activity source for one resource, or `None` when its provider has none yet.
pub async fn source_for(repo: &Path, name: &str, res: &Resource) -> Option<Box<dyn ActivitySource>> {
    match res.provider {
        ProviderKind::Local => Some(Box::new(LocalActivity::new(repo, name, res.config.get("activity").and_then(|v| v.as_str())))),
        #[cfg(feature = "aws")]
        ProviderKind::AwsIam => Some(Box::new(CloudTrail::from_env(name, res).await)),
        _ => None,
    }
}
