//! The gate's decision and publishing logic against an in-memory GitHub.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::*;
use crate::approval::{Review, ReviewState};
use crate::github::Comment;

/// An in-memory GitHub for one PR.
#[derive(Default)]
struct Fake {
    pr: Option<PullRequest>,
    reviews: Vec<Review>,
    files: Vec<String>,
    committers: Vec<String>,
    teams: BTreeMap<String, Vec<String>>,
    viewer: Option<String>,
    forbid_check_runs: bool,
    fail_first_create: Mutex<bool>,
    check_runs: Mutex<Vec<CheckRun>>,
    statuses: Mutex<Vec<CommitStatus>>,
    comments: Mutex<Vec<Comment>>,
    team_calls: Mutex<Vec<String>>,
    /// `request_reviewers` calls: (users, teams).
    review_requests: Mutex<Vec<(Vec<String>, Vec<String>)>>,
    /// `request_reviewers` fails with this status.
    review_request_error: Option<u16>,
}

fn http(status: u16) -> ApiError {
    ApiError::Http { method: "X".into(), path: "/fake".into(), status, message: "fake".into() }
}

#[async_trait]
impl GitHubApi for Fake {
    async fn pull_request(&self, _: u64) -> Result<PullRequest, ApiError> {
        self.pr.clone().ok_or_else(|| http(404))
    }
    async fn reviews(&self, _: u64) -> Result<Vec<Review>, ApiError> {
        Ok(self.reviews.clone())
    }
    async fn changed_files(&self, _: u64) -> Result<Vec<String>, ApiError> {
        Ok(self.files.clone())
    }
    async fn commit_authors(&self, _: u64) -> Result<Vec<String>, ApiError> {
        Ok(self.committers.clone())
    }
    async fn team_members(&self, org: &str, slug: &str) -> Result<Vec<String>, ApiError> {
        let team = format!("{org}/{slug}");
        self.team_calls.lock().unwrap().push(team.clone());
        self.teams.get(&team).cloned().ok_or_else(|| http(404))
    }
    async fn create_check_run(&self, run: &CheckRun) -> Result<(), ApiError> {
        if self.forbid_check_runs {
            return Err(http(403));
        }
        self.check_runs.lock().unwrap().push(run.clone());
        Ok(())
    }
    async fn create_status(&self, _: &str, status: &CommitStatus) -> Result<(), ApiError> {
        self.statuses.lock().unwrap().push(status.clone());
        Ok(())
    }
    async fn comments(&self, _: u64) -> Result<Vec<Comment>, ApiError> {
        Ok(self.comments.lock().unwrap().clone())
    }
    async fn create_comment(&self, _: u64, body: &str) -> Result<u64, ApiError> {
        let mut comments = self.comments.lock().unwrap();
        let id = 500 + comments.len() as u64;
        comments.push(Comment { id, body: body.into(), author: self.viewer.clone().unwrap_or("github-actions[bot]".into()), author_type: "Bot".into() });
        // A gateway error after the comment was created.
        let mut fail = self.fail_first_create.lock().unwrap();
        if *fail {
            *fail = false;
            return Err(http(502));
        }
        Ok(id)
    }
    async fn update_comment(&self, id: u64, body: &str) -> Result<(), ApiError> {
        let mut comments = self.comments.lock().unwrap();
        let c = comments.iter_mut().find(|c| c.id == id).ok_or_else(|| http(404))?;
        c.body = body.into();
        Ok(())
    }
    async fn viewer_login(&self) -> Option<String> {
        self.viewer.clone()
    }
    async fn request_reviewers(&self, _: u64, users: &[String], teams: &[String]) -> Result<(), ApiError> {
        self.review_requests.lock().unwrap().push((users.to_vec(), teams.to_vec()));
        match self.review_request_error {
            Some(status) => Err(http(status)),
            None => Ok(()),
        }
    }
    async fn create_pull_request(&self, _: &crate::github::NewPullRequest) -> Result<(u64, String), ApiError> {
        Err(http(404))
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_DATE", "1790000000 +0000")
        .env("GIT_COMMITTER_DATE", "1790000000 +0000")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A repo whose main has the example policies, `security` also drawing on
/// the GitHub team `acme/appsec`, and a PR adding a high-tier request.
struct Setup {
    dir: tempfile::TempDir,
    base: String,
    head: String,
}

const REQUEST: &str = "requests/2026-12-01-carol-orders-rw.yaml";

fn setup() -> Setup {
    setup_with("'INC-42: fix rows by hand'")
}

fn setup_with(reason_yaml: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    git(p, &["init", "-q", "-b", "main"]);
    git(p, &["config", "user.name", "tester"]);
    git(p, &["config", "user.email", "tester@example.com"]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&root.join("policies"), &p.join("policies"));
    copy_dir(&root.join("templates"), &p.join("templates"));
    let groups = std::fs::read_to_string(p.join("policies/groups.yaml")).unwrap();
    let groups = groups.replace("    members: [dave, erin]", "    members: [dave]\n    github_team: acme/appsec");
    std::fs::write(p.join("policies/groups.yaml"), groups).unwrap();
    git(p, &["add", "-A"]);
    git(p, &["commit", "-q", "-m", "policies"]);
    let base = git(p, &["rev-parse", "HEAD"]);
    git(p, &["checkout", "-q", "-b", "pr"]);
    std::fs::create_dir_all(p.join("requests")).unwrap();
    std::fs::write(
        p.join(REQUEST),
        format!("requester: carol\nrole: db-write\nresources: [orders-db]\nstart: 2026-12-01T10:00:00Z\nduration: 2h\nticket: INC-42\nreason: {reason_yaml}\n"),
    )
    .unwrap();
    git(p, &["add", "-A"]);
    git(p, &["commit", "-q", "-m", "request"]);
    let head = git(p, &["rev-parse", "HEAD"]);
    git(p, &["checkout", "-q", "main"]);
    Setup { dir, base, head }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z").unwrap().with_timezone(&Utc)
}

fn approve(login: &str, commit: &str, minute: u32) -> Review {
    Review {
        login: login.into(),
        state: ReviewState::Approved,
        commit_id: commit.into(),
        submitted_at: DateTime::parse_from_rfc3339(&format!("2026-11-23T08:{minute:02}:00Z")).unwrap().with_timezone(&Utc),
        id: None,
    }
}

fn fake(s: &Setup, reviews: Vec<Review>) -> Fake {
    Fake {
        pr: Some(PullRequest {
            number: 7,
            author: "carol".into(),
            base_sha: s.base.clone(),
            base_ref: "main".into(),
            head_sha: s.head.clone(),
            state: "open".into(),
            html_url: String::new(),
            merge_commit_sha: None,
            merged: false,
        }),
        reviews,
        files: vec![REQUEST.into()],
        teams: BTreeMap::from([("acme/appsec".to_string(), vec!["mallory".to_string(), "erin".to_string()])]),
        ..Fake::default()
    }
}

fn opts(s: &Setup) -> GateOptions {
    GateOptions { pr: 7, repo_dir: s.dir.path().to_path_buf(), now: now(), status_only: false, comment: true }
}

#[tokio::test]
async fn github_team_members_fill_slots_of_their_group() {
    let s = setup();
    let api = fake(&s, vec![approve("grace", &s.head, 1), approve("mallory", &s.head, 2)]);
    let out = run_gate(&api, &opts(&s)).await.unwrap();
    assert_eq!((out.conclusion, out.exit), (Conclusion::Success, 0), "{:?}", out.notes);
    assert_eq!(api.team_calls.lock().unwrap().as_slice(), ["acme/appsec"], "only the teams of slot groups are read");
    let security = out.decision.slots.iter().find(|s| s.from == ["security"]).unwrap();
    assert_eq!(security.filled_by.as_deref(), Some("mallory"));
}

#[tokio::test]
async fn an_unreadable_team_adds_nobody_and_says_so() {
    let s = setup();
    let mut api = fake(&s, vec![approve("grace", &s.head, 1), approve("mallory", &s.head, 2)]);
    api.teams.clear();
    let out = run_gate(&api, &opts(&s)).await.unwrap();
    assert_eq!((out.conclusion, out.exit), (Conclusion::ActionRequired, 1));
    assert!(out.notes.iter().any(|n| n.contains("GitHub team `acme/appsec` could not be read")), "{:?}", out.notes);
    assert!(out.comment_body.contains("could not be read"), "the comment shows the note");
    let runs = api.check_runs.lock().unwrap();
    assert!(runs[0].output.summary.contains("could not be read"));
}

#[tokio::test]
async fn a_personal_token_finds_its_own_comment_and_ignores_lookalikes() {
    let s = setup();
    let mut api = fake(&s, vec![]);
    api.viewer = Some("gitgrant-bot-user".into());
    api.comments.lock().unwrap().push(Comment { id: 1, body: format!("{COMMENT_MARKER} forged"), author: "mallory".into(), author_type: "User".into() });
    api.comments.lock().unwrap().push(Comment { id: 2, body: format!("{COMMENT_MARKER} old"), author: "other[bot]".into(), author_type: "Bot".into() });
    let first = run_gate(&api, &opts(&s)).await.unwrap();
    assert_eq!(first.published.comment.as_deref(), Some("created"));
    let id = first.published.comment_id.unwrap();
    let second = run_gate(&api, &opts(&s)).await.unwrap();
    assert_eq!((second.published.comment.as_deref(), second.published.comment_id), (Some("unchanged"), Some(id)));
    let comments = api.comments.lock().unwrap();
    assert_eq!(comments.len(), 3);
    assert!(comments[0].body.ends_with("forged") && comments[1].body.ends_with("old"), "others' comments are untouched");
}

/// Issue 13: a token that cannot tell its own login (the Actions token) edits
/// only `github-actions[bot]`'s marker comment, never another bot's.
#[tokio::test]
async fn without_its_own_login_the_gate_never_edits_another_bots_marker_comment() {
    let s = setup();
    let api = fake(&s, vec![]);
    api.comments.lock().unwrap().push(Comment {
        id: 1,
        body: format!("{COMMENT_MARKER} approved (forged)"),
        author: "evil-app[bot]".into(),
        author_type: "Bot".into(),
    });
    let out = run_gate(&api, &opts(&s)).await.unwrap();
    assert_eq!(out.published.comment.as_deref(), Some("created"));
    let comments = api.comments.lock().unwrap();
    assert_eq!(comments.len(), 2);
    assert!(comments[0].body.ends_with("(forged)"), "the other bot's comment is untouched");
}

#[tokio::test]
async fn a_failed_create_that_happened_is_not_duplicated() {
    let s = setup();
    let api = fake(&s, vec![]);
    *api.fail_first_create.lock().unwrap() = true;
    let out = run_gate(&api, &opts(&s)).await.unwrap();
    assert_eq!(out.published.comment.as_deref(), Some("updated"));
    assert_eq!(api.comments.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn forbidden_check_runs_become_a_status_and_stale_approvals_do_not_count() {
    let s = setup();
    let mut api = fake(&s, vec![approve("grace", &s.base, 1), approve("erin", &s.head, 2)]);
    api.forbid_check_runs = true;
    let out = run_gate(&api, &opts(&s)).await.unwrap();
    assert_eq!((out.conclusion, out.exit), (Conclusion::ActionRequired, 1));
    assert!(!out.published.check_run && out.published.status);
    let statuses = api.statuses.lock().unwrap();
    assert_eq!((statuses[0].state.as_str(), statuses[0].context.as_str()), ("pending", CHECK_NAME));
    assert!(statuses[0].description.contains("missing 1 from managers (could approve: frank, grace)"), "{}", statuses[0].description);
}

#[tokio::test]
async fn an_unreadable_head_cannot_be_judged_but_is_published_as_failure() {
    let s = setup();
    let mut api = fake(&s, vec![]);
    if let Some(pr) = api.pr.as_mut() {
        pr.head_sha = "0123456789abcdef0123456789abcdef01234567".into();
    }
    let out = run_gate(&api, &opts(&s)).await.unwrap();
    assert_eq!((out.conclusion, out.exit), (Conclusion::Failure, 2));
    assert!(out.error.as_deref().unwrap().contains("fetch-depth: 0"), "{:?}", out.error);
    assert_eq!(api.check_runs.lock().unwrap()[0].conclusion, Conclusion::Failure);
}

fn bare_view(title: &str, conclusion: &'static str) -> CardView {
    let header = Header { pr: 1, head: "abc".into(), conclusion, satisfied: conclusion == "success", title: title.into(), error: None, notes: vec![] };
    CardView::new(header, None, &unsatisfied())
}

#[test]
fn a_broken_base_template_falls_back_to_the_built_in_one() {
    let view = bare_view("t", "success");
    let mut notes = Vec::new();
    let body = render_comment(&view, Some("{% for x in %}"), None, &mut notes);
    assert!(body.starts_with(COMMENT_MARKER) && body.contains("### gitgrant: approved"), "{body}");
    assert!(notes[0].contains("templates/pr-comment.md.j2 failed to render"), "{notes:?}");
    let custom = render_comment(&view, Some("custom {{ title }} for #{{ pr }}"), None, &mut notes);
    assert_eq!(custom, format!("{COMMENT_MARKER}\ncustom t for #1"));
}

#[test]
fn the_comment_shows_the_policy_diff_with_names_escaped() {
    use crate::simulate::diff::{EligibilityChange, Gain};
    let diff = crate::simulate::PolicyDiff {
        eligibility: vec![EligibilityChange { login: "mallory".into(), role: "db-admin".into(), change: Gain::Gains, resources: vec!["@acme/all <b>".into()] }],
        ..Default::default()
    };
    let mut view = bare_view("t", "failure");
    view.policy_change =
        Some(crate::render::card::PolicyChangeView { files: vec!["policies/groups.yaml".into()], needs: "2 from security".into(), slots: vec![] });
    view.policy_diff_markdown = Some(minijinja::Value::from_safe_string(crate::simulate::diff::markdown(&diff)));
    view.policy_diff = Some(diff);
    let mut notes = Vec::new();
    let body = render_comment(&view, None, None, &mut notes);
    assert!(notes.is_empty(), "{notes:?}");
    // The table is Markdown (not escaped twice); the names in it are escaped.
    assert!(body.contains("#### Effective access change\n\n| who | change | role | resources |\n|---|---|---|---|\n"), "{body}");
    assert!(body.contains("| mallory | **gains** | db-admin | @\u{200d}acme/all &lt;b&gt; |"), "{body}");
}

#[tokio::test]
async fn reviews_are_requested_once_per_head_from_who_can_fill_open_slots() {
    let s = setup();
    // grace fills the managers slot; security is open.
    let api = fake(&s, vec![approve("grace", &s.head, 1)]);
    let first = run_gate(&api, &opts(&s)).await.unwrap();
    assert_eq!(first.conclusion, Conclusion::ActionRequired);
    assert_eq!(api.review_requests.lock().unwrap().as_slice(), [(vec!["dave".to_string()], vec!["appsec".to_string()])]);
    assert_eq!((first.published.requested_users.clone(), first.published.requested_teams.clone()), (vec!["dave".into()], vec!["appsec".into()]));
    assert!(first.comment_body.contains("<!-- gitgrant:asked head="), "{}", first.comment_body);
    // A rerun on the same head asks nobody again, and leaves the comment as it was.
    let second = run_gate(&api, &opts(&s)).await.unwrap();
    assert_eq!(api.review_requests.lock().unwrap().len(), 1);
    assert_eq!(second.published.comment.as_deref(), Some("unchanged"));
}

#[tokio::test]
async fn the_requester_and_author_are_never_asked() {
    let s = setup();
    let mut api = fake(&s, vec![]);
    // The PR author is frank (a manager); carol is the requester.
    api.pr.as_mut().unwrap().author = "frank".into();
    run_gate(&api, &opts(&s)).await.unwrap();
    let calls = api.review_requests.lock().unwrap();
    assert_eq!(calls[0].0, ["dave", "grace"], "{calls:?}");
}

#[tokio::test]
async fn a_refused_review_request_is_a_note_not_a_failure() {
    let s = setup();
    let mut api = fake(&s, vec![]);
    api.review_request_error = Some(422);
    let out = run_gate(&api, &opts(&s)).await.unwrap();
    assert_eq!((out.conclusion, out.exit), (Conclusion::ActionRequired, 1));
    assert!(out.notes.iter().any(|n| n.starts_with("could not request reviews from dave, frank, grace and team(s) appsec")), "{:?}", out.notes);
    assert!(out.comment_body.contains("could not request reviews"), "{}", out.comment_body);
    assert!(out.published.comment.is_some());
}

#[test]
fn the_asked_state_round_trips_and_refuses_hostile_names() {
    let a = ask::Asked {
        head: "abc123".into(),
        users: ["dave".to_string(), "x-->y".to_string()].into(),
        teams: ["appsec".to_string()].into(),
        mentioned: ["team:appsec".to_string()].into(),
    };
    let line = a.line();
    assert_eq!(line, "<!-- gitgrant:asked head=abc123 users=dave teams=appsec mentioned=team:appsec -->");
    let back = ask::Asked::parse(&format!("{COMMENT_MARKER}\n{line}\nbody")).unwrap();
    assert_eq!(back.users, ["dave".to_string()].into());
    assert_eq!(back.mentioned, a.mentioned);
}

/// The card as a reviewer sees it: rendered by a GFM renderer, hostile text
/// stays text, nothing is wider than 5 columns, no escape characters show.
#[tokio::test]
async fn the_card_renders_hostile_text_as_text() {
    let reason = r#""INC-42 </details><img src=x onerror=alert(1)> cc @org/team `rm -rf` a|b\n# heading #12 www.evil.example""#;
    let s = setup_with(reason);
    let api = fake(&s, vec![approve("grace", &s.head, 1)]);
    let out = run_gate(&api, &opts(&s)).await.unwrap();
    let body = &out.comment_body;
    let summary = api.check_runs.lock().unwrap()[0].output.summary.clone();
    for (what, md) in [("comment", body.as_str()), ("check run", summary.as_str())] {
        let html = crate::render::markdown::tests::gfm_html(md);
        assert!(!html.contains("<img") && !html.contains("<h1>") && !html.contains("<a "), "{what}: {html}");
        assert_eq!(html.matches("<details>").count(), html.matches("</details>").count(), "{what}: {html}");
        assert!(!html.contains('\\'), "{what}: no literal backslash: {html}");
        assert!(!html.contains("&amp;#") && !html.contains("&amp;lt;") && !html.contains("&amp;gt;"), "{what}: no double escapes: {html}");
        assert!(html.contains("@\u{200d}org/team") && !html.contains("@org/team"), "{what}");
        assert!(html.contains("INC-42 &lt;/details&gt;&lt;img src=x onerror=alert(1)&gt; cc"), "{what}: the reason is shown as text: {html}");
        for row in html.split("<tr>").skip(1) {
            let cells = row.split("</tr>").next().unwrap().matches("<td").count().max(row.split("</tr>").next().unwrap().matches("<th").count());
            assert!(cells <= 5, "{what}: a table row with {cells} columns: {row}");
        }
        assert!(html.contains(r#"<input type="checkbox" checked="" disabled="" /> managers: approved by grace"#), "{what}: {html}");
        assert!(html.contains(r#"<input type="checkbox" disabled="" /> security: waiting for dave, erin, mallory"#), "{what}: {html}");
    }
    // Commit ids change whenever the example policies or templates do.
    insta::with_settings!({ filters => vec![(r"\b[0-9a-f]{40}\b", "[sha]"), (r"`[0-9a-f]{12}`", "`[head]`")] }, {
        insta::assert_snapshot!("gate-card-hostile", body);
        insta::assert_snapshot!("gate-card-hostile-check-run", summary);
    });
}
