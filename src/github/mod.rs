//! GitHub: the forge behind `gitgrant gate`.
//!
//! Design choices:
//! - Every call goes through the [`GitHubApi`] trait (as Atlantis does with its
//!   VCS client), so the gate's decision code runs against an in-memory fake
//!   in unit tests and against [`client::Client`] (reqwest) in production.
//! - The client speaks raw REST (`GET`/`POST`/`PATCH` with JSON bodies),
//!   because the gate needs what a typed API hides: status codes (a 403 on
//!   check runs means "fall back to a commit status"), `Retry-After` and
//!   `x-ratelimit-reset` headers (our own retry loop honours them, with a
//!   capped total wait), and `Link` headers (every list is followed to its
//!   last page).
//! - The policies and request files are never taken from the API: they come
//!   from the local clone at the PR's base and head commits (see [`gate`]).
//!   The API supplies only what git cannot: the PR, its reviews, team members,
//!   and the places to publish the verdict.

pub mod client;
pub mod context;
pub mod gate;

use async_trait::async_trait;
use serde::Serialize;

pub use crate::approval::Review;

/// The name of the check run and the context of the commit status that
/// branch protection requires.
pub const CHECK_NAME: &str = "gitgrant/approval";

/// The hidden marker that identifies gitgrant's sticky PR comment.
pub const COMMENT_MARKER: &str = "<!-- gitgrant:pr-comment -->";

/// `owner/name` of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSlug {
    pub owner: String,
    pub name: String,
}

impl RepoSlug {
    /// Parses `owner/name`; both parts non-empty, no further `/`.
    pub fn parse(s: &str) -> Option<RepoSlug> {
        let (owner, name) = s.trim().split_once('/')?;
        let ok = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        (ok(owner) && ok(name)).then(|| RepoSlug { owner: owner.to_string(), name: name.to_string() })
    }
}

impl std::fmt::Display for RepoSlug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// What the gate needs to know about a pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    pub number: u64,
    pub author: String,
    pub base_sha: String,
    pub base_ref: String,
    pub head_sha: String,
    /// `open` or `closed`.
    pub state: String,
    pub html_url: String,
    /// Set once merged: the commit the merge created on the base branch.
    pub merge_commit_sha: Option<String>,
    pub merged: bool,
}

/// An issue comment on the PR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: u64,
    pub body: String,
    pub author: String,
    /// `User` or `Bot`, as GitHub reports `user.type`.
    pub author_type: String,
}

/// The conclusion of the `gitgrant/approval` check run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Conclusion {
    /// Every approval is in: the PR may merge.
    Success,
    /// Approvals are missing: reviewers have to act.
    ActionRequired,
    /// The change is invalid, someone eligible requested changes, or gitgrant
    /// could not judge it.
    Failure,
}

impl Conclusion {
    pub fn as_str(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            Conclusion::ActionRequired => "action_required",
            Conclusion::Failure => "failure",
        }
    }
    /// The commit-status state for the same verdict.
    pub fn status_state(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            Conclusion::ActionRequired => "pending",
            Conclusion::Failure => "failure",
        }
    }
}

/// A completed check run, as sent to `POST /repos/{o}/{r}/check-runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckRun {
    pub name: String,
    pub head_sha: String,
    pub status: String,
    pub conclusion: Conclusion,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details_url: Option<String>,
    pub output: CheckOutput,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckOutput {
    pub title: String,
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A commit status, as sent to `POST /repos/{o}/{r}/statuses/{sha}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitStatus {
    pub state: String,
    pub context: String,
    /// At most 140 characters (GitHub's limit).
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
}

/// A failed GitHub call. Every message names the call and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("GitHub {method} {path}: HTTP {status}: {message}{}", hint(*status))]
    Http { method: String, path: String, status: u16, message: String },
    #[error(
        "GitHub {method} {path}: rate limited; GitHub asks to wait {wait_secs}s more, beyond the {budget_secs}s wait budget (raise GITGRANT_GITHUB_MAX_WAIT or rerun later)"
    )]
    RateLimited { method: String, path: String, wait_secs: u64, budget_secs: u64 },
    #[error("GitHub {method} {path}: {message} (is GITHUB_API_URL right and the network up?)")]
    Transport { method: String, path: String, message: String },
    #[error("GitHub {method} {path}: unexpected response: {message}")]
    Decode { method: String, path: String, message: String },
    #[error("GitHub authentication: {0}")]
    Auth(String),
}

fn hint(status: u16) -> &'static str {
    match status {
        401 => " (check GITHUB_TOKEN, or GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY)",
        403 => " (the token lacks a permission: see README \"Set up in your GitHub org\")",
        404 => " (wrong repository or PR number, or the token cannot see it)",
        _ => "",
    }
}

impl ApiError {
    /// The HTTP status of a failed call, if it got that far.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The GitHub calls gitgrant makes, for one repository.
#[async_trait]
pub trait GitHubApi: Send + Sync {
    async fn pull_request(&self, number: u64) -> Result<PullRequest, ApiError>;
    /// Every review of the PR, all pages, in GitHub's (chronological) order.
    async fn reviews(&self, number: u64) -> Result<Vec<Review>, ApiError>;
    /// Logins of the authors and committers of the PR's commits, all pages
    /// (GitHub's own `web-flow` committer left out). Whoever wrote part of a
    /// change cannot approve it.
    async fn commit_authors(&self, number: u64) -> Result<Vec<String>, ApiError>;
    /// Every path the PR touches (for renames both old and new), all pages.
    async fn changed_files(&self, number: u64) -> Result<Vec<String>, ApiError>;
    /// Logins of the members of `org/team_slug` (including child teams), all pages.
    async fn team_members(&self, org: &str, team_slug: &str) -> Result<Vec<String>, ApiError>;
    async fn create_check_run(&self, run: &CheckRun) -> Result<(), ApiError>;
    async fn create_status(&self, sha: &str, status: &CommitStatus) -> Result<(), ApiError>;
    /// Every issue comment of the PR, all pages.
    async fn comments(&self, number: u64) -> Result<Vec<Comment>, ApiError>;
    /// Creates an issue comment; returns its id.
    async fn create_comment(&self, number: u64, body: &str) -> Result<u64, ApiError>;
    async fn update_comment(&self, id: u64, body: &str) -> Result<(), ApiError>;
    /// The login the client acts as, when GitHub tells (`GET /user`); Actions
    /// and App installation tokens cannot ask, and get `None`.
    async fn viewer_login(&self) -> Option<String>;
    /// The bare token the client sends, for `git fetch` over HTTPS (a merge
    /// group's PR heads); `None` when the client has none to lend.
    async fn git_token(&self) -> Option<String> {
        None
    }
    /// Opens an issue; returns its number and URL (monitor findings).
    async fn create_issue(&self, title: &str, body: &str) -> Result<(u64, String), ApiError> {
        let _ = (title, body);
        Err(unsupported("create_issue"))
    }
    /// Requests reviews (`POST /pulls/{n}/requested_reviewers`) from users and
    /// teams (slugs in the repository's organization).
    async fn request_reviewers(&self, number: u64, users: &[String], teams: &[String]) -> Result<(), ApiError> {
        let _ = (number, users, teams);
        Err(unsupported("request_reviewers"))
    }
    /// Opens a pull request (`gitgrant request --open-pr`); returns its number and URL.
    async fn create_pull_request(&self, pr: &NewPullRequest) -> Result<(u64, String), ApiError>;
}

/// The default of optional [`GitHubApi`] calls a fake does not implement.
fn unsupported(call: &str) -> ApiError {
    ApiError::Http { method: "POST".into(), path: call.into(), status: 501, message: "not supported by this client".into() }
}

/// A pull request to open, as sent to `POST /repos/{o}/{r}/pulls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewPullRequest {
    pub title: String,
    /// The branch with the change.
    pub head: String,
    /// The branch it goes into.
    pub base: String,
    pub body: String,
}
