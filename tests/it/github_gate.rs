//! `gitgrant gate` end to end: the real binary, a real git clone with the
//! PR's base and head commits, and a wiremock fake of the GitHub REST API
//! (127.0.0.1 only) replaying GitHub's response shapes.

use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::{NOW, Out, Repo};

pub(crate) const OWNER_REPO: &str = "acme/access";
pub(crate) const PR: u64 = 7;
pub(crate) const REQUEST: &str = "requests/2026-12-01-carol-orders-rw.yaml";

/// A high-tier request (score 64): one manager and one security member.
fn rw_request(reason: &str) -> String {
    format!("requester: carol\nrole: db-write\nresources: [orders-db]\nstart: 2026-12-01T10:00:00Z\nduration: 2h\nticket: INC-42\nreason: '{reason}'\n")
}

/// A clone with main (the policies) and a PR branch of two commits by carol.
pub(crate) struct PrRepo {
    pub(crate) repo: Repo,
    pub(crate) base: String,
    pub(crate) older: String,
    pub(crate) head: String,
}

pub(crate) fn pr_repo(reason: &str) -> PrRepo {
    let repo = Repo::with_policies();
    let base = repo.git(&["rev-parse", "HEAD"]);
    repo.branch("carol/orders-rw");
    repo.write(REQUEST, rw_request("INC-42: first draft of the fix"));
    let older = repo.commit_as("carol", "ask for write access to orders-db");
    repo.write(REQUEST, rw_request(reason));
    let head = repo.commit_as("carol", "explain why");
    repo.checkout("main");
    PrRepo { repo, base, older, head }
}

pub(crate) fn user(login: &str, kind: &str) -> Value {
    let id = login.bytes().map(u64::from).sum::<u64>() * 1000;
    json!({
        "login": login, "id": id, "node_id": format!("MDQ6VXNlcj{id}"),
        "avatar_url": format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        "url": format!("https://api.github.com/users/{login}"), "html_url": format!("https://github.com/{login}"),
        "type": kind, "site_admin": false
    })
}

pub(crate) fn pull(author: &str, base: &str, head: &str) -> Value {
    json!({
        "url": format!("https://api.github.com/repos/{OWNER_REPO}/pulls/{PR}"),
        "id": 1_934_000_007u64, "node_id": "PR_kwDOA1b2c84AAAAB", "number": PR, "state": "open", "locked": false,
        "title": "Write access to orders-db for INC-42",
        "user": user(author, "User"), "body": "Please approve.",
        "html_url": format!("https://github.com/{OWNER_REPO}/pull/{PR}"),
        "created_at": "2026-11-23T08:00:00Z", "updated_at": "2026-11-23T08:30:00Z", "closed_at": null, "merged_at": null,
        "merge_commit_sha": null, "draft": false, "merged": false, "mergeable": true, "author_association": "MEMBER",
        "head": { "label": "acme:carol/orders-rw", "ref": "carol/orders-rw", "sha": head, "user": user("acme", "Organization"),
                  "repo": { "id": 1, "name": "access", "full_name": OWNER_REPO, "private": true } },
        "base": { "label": "acme:main", "ref": "main", "sha": base, "user": user("acme", "Organization"),
                  "repo": { "id": 1, "name": "access", "full_name": OWNER_REPO, "private": true } },
        "commits": 2, "additions": 7, "deletions": 0, "changed_files": 1
    })
}

pub(crate) fn review(id: u64, login: &str, state: &str, commit: &str, at: &str) -> Value {
    json!({
        "id": id, "node_id": format!("PRR_kwDOA1b2c85{id}"), "user": user(login, "User"), "body": "",
        "state": state, "html_url": format!("https://github.com/{OWNER_REPO}/pull/{PR}#pullrequestreview-{id}"),
        "pull_request_url": format!("https://api.github.com/repos/{OWNER_REPO}/pulls/{PR}"),
        "author_association": "MEMBER",
        "_links": { "html": { "href": format!("https://github.com/{OWNER_REPO}/pull/{PR}#pullrequestreview-{id}") },
                    "pull_request": { "href": format!("https://api.github.com/repos/{OWNER_REPO}/pulls/{PR}") } },
        "submitted_at": at, "commit_id": commit
    })
}

pub(crate) fn file(name: &str, status: &str) -> Value {
    json!({
        "sha": "bbcd538c8e72b8c175046e27cc8f907076331401", "filename": name, "status": status,
        "additions": 7, "deletions": 0, "changes": 7,
        "blob_url": format!("https://github.com/{OWNER_REPO}/blob/x/{name}"),
        "raw_url": format!("https://github.com/{OWNER_REPO}/raw/x/{name}"),
        "contents_url": format!("https://api.github.com/repos/{OWNER_REPO}/contents/{name}?ref=x"),
        "patch": "@@ -0,0 +1,7 @@"
    })
}

fn comment(id: u64, login: &str, kind: &str, body: &str) -> Value {
    json!({
        "id": id, "node_id": format!("IC_kwDOA1b2c85{id}"),
        "url": format!("https://api.github.com/repos/{OWNER_REPO}/issues/comments/{id}"),
        "html_url": format!("https://github.com/{OWNER_REPO}/pull/{PR}#issuecomment-{id}"),
        "body": body, "user": user(login, kind), "created_at": "2026-11-23T08:05:00Z", "updated_at": "2026-11-23T08:05:00Z",
        "issue_url": format!("https://api.github.com/repos/{OWNER_REPO}/issues/{PR}"), "author_association": "NONE"
    })
}

pub(crate) fn repo_path(rest: &str) -> String {
    format!("/repos/{OWNER_REPO}{rest}")
}

/// Reviews served over three pages linked as GitHub does (`/repositories/ID/...`).
pub(crate) async fn mount_review_pages(server: &MockServer, pages: [Vec<Value>; 3]) {
    let uri = server.uri();
    let link = |page: u32| {
        let next = format!("<{uri}/repositories/1/pulls/{PR}/reviews?per_page=100&page={}>; rel=\"next\"", page + 1);
        let last = format!("<{uri}/repositories/1/pulls/{PR}/reviews?per_page=100&page=3>; rel=\"last\"");
        format!("{next}, {last}")
    };
    let [p1, p2, p3] = pages;
    Mock::given(method("GET"))
        .and(path(repo_path(&format!("/pulls/{PR}/reviews"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(p1).insert_header("link", link(1).as_str()))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/repositories/1/pulls/{PR}/reviews")))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(p2).insert_header("link", link(2).as_str()))
        .mount(server)
        .await;
    let prev = format!(
        "<{uri}/repositories/1/pulls/{PR}/reviews?per_page=100&page=2>; rel=\"prev\", <{uri}/repositories/1/pulls/{PR}/reviews?per_page=100&page=1>; rel=\"first\""
    );
    Mock::given(method("GET"))
        .and(path(format!("/repositories/1/pulls/{PR}/reviews")))
        .and(query_param("page", "3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(p3).insert_header("link", prev.as_str()))
        .mount(server)
        .await;
}

/// One entry of `GET /pulls/{n}/commits`.
pub(crate) fn pr_commit(sha: &str, author: &str, committer: &str) -> Value {
    let who = |login: &str| json!({"name": login, "email": format!("{login}@example.com"), "date": "2026-11-23T08:00:00Z"});
    json!({
        "sha": sha, "node_id": "C_kwDOA1b2c9oAKDAx",
        "commit": {"author": who(author), "committer": who(committer), "message": "a commit", "comment_count": 0},
        "author": user(author, "User"),
        "committer": if committer == "web-flow" { user("web-flow", "User") } else { user(committer, "User") },
        "parents": []
    })
}

/// The PR's commits; mounted with priority so a test can override the default.
pub(crate) async fn mount_commits(server: &MockServer, commits: Vec<Value>, priority: u8) {
    Mock::given(method("GET"))
        .and(path(repo_path(&format!("/pulls/{PR}/commits"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(commits))
        .with_priority(priority)
        .mount(server)
        .await;
}

/// The PR, its commits, its files, no comments yet, and the write endpoints.
pub(crate) async fn mount_pr(server: &MockServer, pr: &PrRepo, files: Vec<Value>, comments: Vec<Value>) {
    mount_commits(server, vec![pr_commit(&pr.head, "carol", "web-flow")], 5).await;
    Mock::given(method("GET"))
        .and(path(repo_path(&format!("/pulls/{PR}"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(pull("carol", &pr.base, &pr.head)))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(repo_path(&format!("/pulls/{PR}/files"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(files))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(repo_path(&format!("/issues/{PR}/comments"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(comments))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path(repo_path(&format!("/issues/{PR}/comments"))))
        .respond_with(|req: &Request| {
            let body: Value = req.body_json().unwrap_or_default();
            ResponseTemplate::new(201).set_body_json(comment(1001, "github-actions[bot]", "Bot", body["body"].as_str().unwrap_or("")))
        })
        .mount(server)
        .await;
    // octocrab's own update_comment sends POST; accept PATCH and POST.
    for m in ["PATCH", "POST"] {
        Mock::given(method(m))
            .and(path(repo_path("/issues/comments/1001")))
            .respond_with(|req: &Request| {
                let body: Value = req.body_json().unwrap_or_default();
                ResponseTemplate::new(200).set_body_json(comment(1001, "github-actions[bot]", "Bot", body["body"].as_str().unwrap_or("")))
            })
            .mount(server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path(repo_path("/check-runs")))
        .respond_with(|req: &Request| {
            let mut body: Value = req.body_json().unwrap_or_default();
            body["id"] = json!(4);
            body["node_id"] = json!("CR_kwDOA1b2c88AAAAE");
            ResponseTemplate::new(201).set_body_json(body)
        })
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path(repo_path(&format!("/statuses/{}", pr.head))))
        .respond_with(|req: &Request| {
            let mut body: Value = req.body_json().unwrap_or_default();
            body["id"] = json!(1);
            ResponseTemplate::new(201).set_body_json(body)
        })
        .mount(server)
        .await;
    // An Actions token cannot read its own user.
    Mock::given(method("GET"))
        .and(path("/user"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user", "status": "403"}),
        ))
        .mount(server)
        .await;
}

/// Runs `gitgrant gate --pr 7` against the fake API (off the async runtime).
pub(crate) async fn gate(repo: &std::path::Path, api: &str, extra: &[&str]) -> Out {
    let mut args = vec!["gate", "--pr", "7"];
    args.extend_from_slice(extra);
    gitgrant(repo, api, &args, None).await
}

/// Runs gitgrant with the fake API's environment, optionally inside an
/// Actions event (`GITHUB_EVENT_PATH`).
pub(crate) async fn gitgrant(repo: &std::path::Path, api: &str, args: &[&str], event: Option<&std::path::Path>) -> Out {
    let (repo, api) = (repo.to_path_buf(), api.to_string());
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let event = event.map(|e| e.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::cargo_bin("gitgrant").unwrap();
        match &event {
            Some(e) => cmd.env("GITHUB_EVENT_PATH", e),
            None => cmd.env_remove("GITHUB_EVENT_PATH"),
        };
        let out = cmd
            .arg("--repo")
            .arg(&repo)
            .args(["--now", NOW])
            .args(&args)
            .env("GITHUB_API_URL", &api)
            .env("GITHUB_TOKEN", "dummy")
            .env("GITHUB_REPOSITORY", OWNER_REPO)
            .env("GITGRANT_GITHUB_MAX_WAIT", "10")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env("NO_COLOR", "1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        let clean = |b: Vec<u8>| String::from_utf8_lossy(&b).replace(&repo.display().to_string(), "[REPO]").replace(&api, "[API]");
        Out { code: out.status.code().unwrap_or(-1), stdout: clean(out.stdout), stderr: clean(out.stderr) }
    })
    .await
    .unwrap()
}

pub(crate) async fn sent(server: &MockServer, verb: &str, p: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.method.as_str() == verb && r.url.path() == p)
        .map(|r| r.body_json::<Value>().unwrap_or(Value::Null))
        .collect()
}

pub(crate) async fn count(server: &MockServer, verb: &str, p: &str) -> usize {
    server.received_requests().await.unwrap_or_default().iter().filter(|r| r.method.as_str() == verb && r.url.path() == p).count()
}

fn sha_filters() -> Vec<(&'static str, &'static str)> {
    vec![(r"\b[0-9a-f]{40}\b", "[SHA]"), (r"\b[0-9a-f]{12}\b", "[SHORT-SHA]")]
}

/// Every review state across three pages: an outsider's comment, a stale
/// approval, a dismissed objection, an ineligible objection, the requester's
/// own approval and an ineligible approval; only grace fills a slot.
pub(crate) fn mixed_reviews(pr: &PrRepo) -> [Vec<Value>; 3] {
    let h = pr.head.as_str();
    [
        vec![
            review(101, "frank", "COMMENTED", h, "2026-11-23T08:10:00Z"),
            review(102, "dave", "APPROVED", &pr.older, "2026-11-23T08:11:00Z"),
            review(103, "erin", "DISMISSED", h, "2026-11-23T08:12:00Z"),
        ],
        vec![
            review(104, "bob", "CHANGES_REQUESTED", h, "2026-11-23T08:13:00Z"),
            review(105, "carol", "APPROVED", h, "2026-11-23T08:14:00Z"),
            review(106, "grace", "APPROVED", h, "2026-11-23T08:15:00Z"),
        ],
        vec![review(107, "heidi", "APPROVED", h, "2026-11-23T08:16:00Z")],
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_reviews_over_three_pages_leave_the_security_slot_open_then_a_second_run_edits_the_comment() {
    let pr = pr_repo("INC-42: orders stuck in pending, fix rows by hand");
    let server = MockServer::start().await;
    mount_pr(&server, &pr, vec![file(REQUEST, "added")], vec![]).await;
    mount_review_pages(&server, mixed_reviews(&pr)).await;

    let out = gate(pr.repo.path(), &server.uri(), &[]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("action_required"), "{}", out.all());
    assert!(out.stdout.contains("[x] 2026-12-01-carol-orders-rw (tier high, score 64) from managers: grace"), "{}", out.all());
    assert!(out.stdout.contains("[ ] 2026-12-01-carol-orders-rw (tier high, score 64) from security: could approve: dave, erin"), "{}", out.all());

    // All three pages were read, following the Link headers.
    assert_eq!(count(&server, "GET", &format!("/repositories/1/pulls/{PR}/reviews")).await, 2);

    let runs = sent(&server, "POST", &repo_path("/check-runs")).await;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run["name"], "gitgrant/approval");
    assert_eq!(run["head_sha"], pr.head.as_str());
    assert_eq!(run["conclusion"], "action_required");
    assert_eq!(run["status"], "completed");
    let summary = run["output"]["summary"].as_str().unwrap();
    assert!(summary.contains("dave, erin"), "who can fill the open slot is listed: {summary}");
    assert!(summary.contains(&format!("approved an older commit ({})", &pr.older[..12])), "{summary}");
    insta::with_settings!({ filters => sha_filters() }, {
        insta::assert_json_snapshot!("gate-check-run-mixed", run);
    });

    let created = sent(&server, "POST", &repo_path(&format!("/issues/{PR}/comments"))).await;
    assert_eq!(created.len(), 1);
    let body = created[0]["body"].as_str().unwrap();
    assert!(body.starts_with("<!-- gitgrant:pr-comment -->"), "{body}");
    insta::with_settings!({ filters => sha_filters() }, {
        insta::assert_snapshot!("gate-comment-mixed", body);
    });
    assert_eq!(count(&server, "GET", "/user").await, 1, "gitgrant asks who it is once, and copes with a 403");

    // Second run: erin approves the head; the bot's comment is listed now.
    server.reset().await;
    let mut pages = mixed_reviews(&pr);
    pages[2].push(review(108, "erin", "APPROVED", &pr.head, "2026-11-23T09:30:00Z"));
    let comments = vec![
        comment(999, "mallory", "User", "<!-- gitgrant:pr-comment -->\n### gitgrant: approved (forged)"),
        comment(1001, "github-actions[bot]", "Bot", body),
    ];
    mount_pr(&server, &pr, vec![file(REQUEST, "added")], comments).await;
    mount_review_pages(&server, pages).await;
    let out = gate(pr.repo.path(), &server.uri(), &[]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains(": success (check run): 2 of 2 approvals: satisfied"), "{}", out.all());
    assert_eq!(sent(&server, "POST", &repo_path("/check-runs")).await[0]["conclusion"], "success");
    assert_eq!(count(&server, "POST", &repo_path(&format!("/issues/{PR}/comments"))).await, 0, "no second comment");
    let edits = [sent(&server, "PATCH", &repo_path("/issues/comments/1001")).await, sent(&server, "POST", &repo_path("/issues/comments/1001")).await].concat();
    assert_eq!(edits.len(), 1, "the bot's comment is edited in place");
    assert!(edits[0]["body"].as_str().unwrap().contains("### gitgrant: approved"));
    assert_eq!(count(&server, "PATCH", &repo_path("/issues/comments/999")).await, 0, "a person's comment with the marker is not ours");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_and_bad_gateway_are_retried() {
    let pr = pr_repo("INC-42: orders stuck in pending, fix rows by hand");
    let server = MockServer::start().await;
    // A secondary rate limit on the first call, a 502 on the first reviews page.
    Mock::given(method("GET"))
        .and(path(repo_path(&format!("/pulls/{PR}"))))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("retry-after", "1")
                .insert_header("x-ratelimit-remaining", "4990")
                .set_body_json(json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits", "status": "403"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(repo_path(&format!("/pulls/{PR}/reviews"))))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html><body><h1>502 Bad Gateway</h1></body></html>"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_pr(&server, &pr, vec![file(REQUEST, "added")], vec![]).await;
    let h = pr.head.as_str();
    mount_review_pages(
        &server,
        [
            vec![review(201, "grace", "APPROVED", h, "2026-11-23T08:15:00Z")],
            vec![review(202, "erin", "CHANGES_REQUESTED", h, "2026-11-23T08:16:00Z")],
            vec![review(203, "erin", "APPROVED", h, "2026-11-23T08:20:00Z")],
        ],
    )
    .await;

    let started = std::time::Instant::now();
    let out = gate(pr.repo.path(), &server.uri(), &["--no-comment"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "Retry-After was honoured");
    assert!(out.stderr.contains("HTTP 403, retrying in 1s"), "{}", out.all());
    assert!(out.stderr.contains("HTTP 502, retrying"), "{}", out.all());
    assert_eq!(count(&server, "GET", &repo_path(&format!("/pulls/{PR}"))).await, 2);
    assert_eq!(count(&server, "GET", &repo_path(&format!("/pulls/{PR}/reviews"))).await, 2);
    assert_eq!(sent(&server, "POST", &repo_path("/check-runs")).await[0]["conclusion"], "success", "erin's later approval replaces her objection");
    assert_eq!(count(&server, "GET", &repo_path(&format!("/issues/{PR}/comments"))).await, 0, "--no-comment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_check_runs_fall_back_to_a_commit_status() {
    let pr = pr_repo("INC-42: orders stuck in pending, fix rows by hand");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(repo_path("/check-runs")))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"message": "Resource not accessible by personal access token", "status": "403"})))
        .with_priority(1)
        .mount(&server)
        .await;
    mount_pr(&server, &pr, vec![file(REQUEST, "added")], vec![]).await;
    mount_review_pages(&server, mixed_reviews(&pr)).await;

    let out = gate(pr.repo.path(), &server.uri(), &["--no-comment"]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("published a commit status instead"), "{}", out.all());
    let statuses = sent(&server, "POST", &repo_path(&format!("/statuses/{}", pr.head))).await;
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0]["context"], "gitgrant/approval");
    assert_eq!(statuses[0]["state"], "pending");
    let description = statuses[0]["description"].as_str().unwrap();
    assert!(description.starts_with("1 of 2 approvals: missing 1 from security (could approve: dave, erin)"), "{description}");
    assert!(description.chars().count() <= 140);

    // --status publishes only the status.
    let out = gate(pr.repo.path(), &server.uri(), &["--no-comment", "--status"]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(count(&server, "POST", &repo_path("/check-runs")).await, 1, "no check run attempted with --status");
    assert_eq!(sent(&server, "POST", &repo_path(&format!("/statuses/{}", pr.head))).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shrinking_a_merged_request_passes_without_any_approval() {
    let repo = Repo::with_policies();
    repo.write(REQUEST, rw_request("INC-42: orders stuck in pending, fix rows by hand"));
    repo.commit_as("carol", "Merge pull request #6: orders-db write for carol\n\nApproved-by: grace\nApproved-by: erin");
    let base = repo.git(&["rev-parse", "HEAD"]);
    repo.branch("carol/done-early");
    repo.write(REQUEST, rw_request("INC-42: orders stuck in pending, fix rows by hand").replace("duration: 2h", "duration: 1h"));
    let head = repo.commit_as("carol", "done early: end my access");
    repo.checkout("main");
    let pr = PrRepo { repo, base, older: String::new(), head };

    let server = MockServer::start().await;
    mount_pr(&server, &pr, vec![file(REQUEST, "modified")], vec![]).await;
    mount_review_pages(&server, [vec![], vec![], vec![]]).await;
    let out = gate(pr.repo.path(), &server.uri(), &[]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let run = &sent(&server, "POST", &repo_path("/check-runs")).await[0];
    assert_eq!(run["conclusion"], "success");
    assert!(run["output"]["summary"].as_str().unwrap().contains("shrink"), "{run}");
    let body = &sent(&server, "POST", &repo_path(&format!("/issues/{PR}/comments"))).await[0]["body"];
    assert!(body.as_str().unwrap().contains("No approval needed: this change only ends access early."), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_needs_two_security_approvals() {
    let repo = Repo::with_policies();
    let base = repo.git(&["rev-parse", "HEAD"]);
    repo.branch("mallory/loosen");
    let risk = repo.read("policies/risk.yaml").replace("{ from: [security], count: 2 }", "{ from: [sre], count: 1 }");
    repo.write("policies/risk.yaml", risk);
    let head = repo.commit_as("carol", "policy: fewer approvals");
    repo.checkout("main");
    let pr = PrRepo { repo, base, older: String::new(), head: head.clone() };

    let server = MockServer::start().await;
    mount_pr(&server, &pr, vec![file("policies/risk.yaml", "modified")], vec![]).await;
    // Approvals that would satisfy the loosened rule on the head, not the base's.
    mount_review_pages(
        &server,
        [vec![review(301, "alice", "APPROVED", &head, "2026-11-23T08:15:00Z")], vec![], vec![review(302, "dave", "APPROVED", &head, "2026-11-23T08:16:00Z")]],
    )
    .await;
    let out = gate(pr.repo.path(), &server.uri(), &["--no-comment"]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("[ ] policy change from security: could approve: erin"), "{}", out.all());
    assert_eq!(sent(&server, "POST", &repo_path("/check-runs")).await[0]["conclusion"], "action_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_github_lists_but_the_clone_lacks_is_not_judged() {
    let pr = pr_repo("INC-42: orders stuck in pending, fix rows by hand");
    let server = MockServer::start().await;
    let files = vec![file(REQUEST, "added"), file("requests/2026-12-01-carol-sneaky.yaml", "added")];
    mount_pr(&server, &pr, files, vec![]).await;
    mount_review_pages(&server, mixed_reviews(&pr)).await;
    let out = gate(pr.repo.path(), &server.uri(), &["--no-comment"]).await;
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("requests/2026-12-01-carol-sneaky.yaml"), "{}", out.all());
    let run = &sent(&server, "POST", &repo_path("/check-runs")).await[0];
    assert_eq!(run["conclusion"], "failure");
    assert_eq!(run["output"]["title"], "could not judge this PR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_markdown_html_and_mentions_in_a_reason_are_neutralised() {
    let pr = pr_repo("INC-42: ping @org/everyone and @mallory <img src=x onerror=alert(1)> [click](javascript:alert(1)) | broken | table");
    let server = MockServer::start().await;
    mount_pr(&server, &pr, vec![file(REQUEST, "added")], vec![]).await;
    mount_review_pages(&server, mixed_reviews(&pr)).await;
    let out = gate(pr.repo.path(), &server.uri(), &[]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    let created = sent(&server, "POST", &repo_path(&format!("/issues/{PR}/comments"))).await;
    let body = created[0]["body"].as_str().unwrap();
    assert!(body.contains("#### 2026-12-01-carol-orders-rw (new)"), "the request card is there: {body}");
    for bad in ["@org", "@mallory", "<img", "](javascript:", "| broken |", "[click]"] {
        assert!(!body.contains(bad), "`{bad}` reached the comment:\n{body}");
    }
    assert!(body.contains("@\u{200d}org/everyone"), "{body}");
    assert!(body.contains("&lt;img"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_pr_cannot_be_judged() {
    let pr = pr_repo("INC-42: orders stuck in pending, fix rows by hand");
    let server = MockServer::start().await;
    let out = gate(pr.repo.path(), &server.uri(), &[]).await;
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("cannot read PR #7: GitHub GET /repos/acme/access/pulls/7: HTTP 404"), "{}", out.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_actions_the_event_names_the_pr_for_check_and_gate() {
    let pr = pr_repo("INC-42: orders stuck in pending, fix rows by hand");
    let server = MockServer::start().await;
    mount_pr(&server, &pr, vec![file(REQUEST, "added")], vec![]).await;
    mount_review_pages(&server, mixed_reviews(&pr)).await;
    // A pull_request_review event, as GitHub writes it to $GITHUB_EVENT_PATH.
    let event = json!({
        "action": "submitted",
        "review": review(106, "grace", "APPROVED", &pr.head, "2026-11-23T08:15:00Z"),
        "pull_request": pull("carol", &pr.base, &pr.head),
        "repository": { "id": 1, "name": "access", "full_name": OWNER_REPO },
        "sender": user("grace", "User")
    });
    let dir = tempfile::tempdir().unwrap();
    let event_path = dir.path().join("event.json");
    std::fs::write(&event_path, serde_json::to_vec(&event).unwrap()).unwrap();

    // `check` judges the PR's base..head, not the clone's working tree (which is main).
    let out = gitgrant(pr.repo.path(), &server.uri(), &["check", "--format", "json"], Some(&event_path)).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let report = out.json();
    assert_eq!(report["head"], pr.head.as_str());
    assert_eq!(report["requests"][0]["id"], "2026-12-01-carol-orders-rw");

    let out = gitgrant(pr.repo.path(), &server.uri(), &["gate", "--no-comment"], Some(&event_path)).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("gate: PR #7 at"), "{}", out.all());
    assert_eq!(sent(&server, "POST", &repo_path("/check-runs")).await[0]["head_sha"], pr.head.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_app_mints_an_installation_token_for_the_repository() {
    let pr = pr_repo("INC-42: orders stuck in pending, fix rows by hand");
    let server = MockServer::start().await;
    mount_pr(&server, &pr, vec![file(REQUEST, "added")], vec![]).await;
    mount_review_pages(&server, mixed_reviews(&pr)).await;
    Mock::given(method("GET"))
        .and(path(repo_path("/installation")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 42, "account": user("acme", "Organization"), "app_id": 1234, "app_slug": "gitgrant-acme",
            "target_type": "Organization", "repository_selection": "selected",
            "access_tokens_url": format!("{}/app/installations/42/access_tokens", server.uri()),
            "repositories_url": format!("{}/installation/repositories", server.uri()),
            "html_url": "https://github.com/organizations/acme/settings/installations/42",
            "permissions": { "checks": "write", "pull_requests": "write", "statuses": "write", "contents": "read", "members": "read" },
            "events": [], "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/app/installations/42/access_tokens"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "token": "ghs_installation_token_for_tests", "expires_at": "2099-01-01T00:00:00Z",
            "permissions": { "checks": "write" }, "repository_selection": "selected"
        })))
        .mount(&server)
        .await;

    // A throwaway RSA key, made for this test only.
    let key = Command::new("openssl").args(["genrsa", "2048"]).output().expect("openssl is needed to make a test key");
    assert!(key.status.success());
    let pem = String::from_utf8(key.stdout).unwrap();
    let (repo, api) = (pr.repo.path().to_path_buf(), server.uri());
    let out = tokio::task::spawn_blocking(move || {
        Command::cargo_bin("gitgrant")
            .unwrap()
            .arg("--repo")
            .arg(&repo)
            .args(["--now", NOW, "gate", "--pr", "7", "--no-comment"])
            .env("GITHUB_API_URL", &api)
            .env_remove("GITHUB_TOKEN")
            .env("GITHUB_APP_ID", "1234")
            .env("GITHUB_APP_PRIVATE_KEY", &pem)
            .env("GITHUB_REPOSITORY", OWNER_REPO)
            .env_remove("GITHUB_EVENT_PATH")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");

    let requests = server.received_requests().await.unwrap();
    let auth = |p: &str| {
        requests
            .iter()
            .find(|r| r.url.path() == p)
            .and_then(|r| r.headers.get("authorization"))
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no authorized request to {p}"))
    };
    let jwt = auth(&repo_path("/installation"));
    assert!(jwt.starts_with("Bearer ") && jwt.matches('.').count() == 2, "the app authenticates with a JWT: {jwt}");
    assert_eq!(auth(&repo_path(&format!("/pulls/{PR}"))), "Bearer ghs_installation_token_for_tests");
    assert_eq!(auth(&repo_path("/check-runs")), "Bearer ghs_installation_token_for_tests");
}

/// `plan` in GitHub mode: a request on main is granted only if the commit
/// that landed it is the merge commit of a merged PR whose reviews approve
/// its final head. Trailers count for nothing there.
async fn plan_github(reviews: fn(&PrRepo) -> Vec<Value>, forge: bool) -> Value {
    let pr = pr_repo("INC-42: fix the stuck orders");
    let r = &pr.repo;
    let merge = if forge {
        // A direct push that claims to be PR #7's merge, with forged trailers.
        r.write(REQUEST, rw_request("INC-42: fix the stuck orders"));
        r.commit_as("carol", &format!("Merge pull request #{PR} from carol/orders-rw\n\nApproved-by: frank\nApproved-by: dave"))
    } else {
        r.merge("carol/orders-rw", &format!("Merge pull request #{PR} from carol/orders-rw"))
    };
    let server = MockServer::start().await;
    let mut p = pull("carol", &pr.base, &pr.head);
    p["state"] = json!("closed");
    p["merged"] = json!(true);
    p["merge_commit_sha"] = json!(if forge { "0123456789abcdef0123456789abcdef01234567".to_string() } else { merge });
    Mock::given(method("GET")).and(path(repo_path(&format!("/pulls/{PR}")))).respond_with(ResponseTemplate::new(200).set_body_json(p)).mount(&server).await;
    mount_commits(&server, vec![pr_commit(&pr.head, "carol", "carol")], 5).await;
    Mock::given(method("GET"))
        .and(path(repo_path(&format!("/pulls/{PR}/reviews"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(Value::Array(reviews(&pr))))
        .mount(&server)
        .await;
    let out = gitgrant(r.path(), &server.uri(), &["plan", "--at", "2026-12-01T10:30:00Z", "--format", "json"], None).await;
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.all()))
}

fn refusal(plan: &Value) -> Option<String> {
    plan["refused"].as_array().unwrap().iter().find(|r| r["request"] == "2026-12-01-carol-orders-rw").map(|r| r["reason"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn reconcile_in_github_mode_accepts_a_pr_whose_reviews_approve_its_head() {
    let plan = plan_github(
        |pr| vec![review(1, "frank", "APPROVED", &pr.head, "2026-11-23T08:10:00Z"), review(2, "dave", "APPROVED", &pr.head, "2026-11-23T08:11:00Z")],
        false,
    )
    .await;
    assert_eq!(refusal(&plan), None, "{plan:#}");
}

#[tokio::test]
async fn reconcile_in_github_mode_refuses_a_pr_merged_on_a_stale_approval() {
    let plan = plan_github(
        |pr| vec![review(1, "frank", "APPROVED", &pr.head, "2026-11-23T08:10:00Z"), review(2, "dave", "APPROVED", &pr.older, "2026-11-23T08:11:00Z")],
        false,
    )
    .await;
    let why = refusal(&plan).expect("refused");
    assert!(why.contains("PR #7 was merged without the approvals its policy required"), "{why}");
}

#[tokio::test]
async fn reconcile_in_github_mode_refuses_a_direct_push_that_claims_a_pr_and_forges_trailers() {
    let plan = plan_github(
        |pr| vec![review(1, "frank", "APPROVED", &pr.head, "2026-11-23T08:10:00Z"), review(2, "dave", "APPROVED", &pr.head, "2026-11-23T08:11:00Z")],
        true,
    )
    .await;
    let why = refusal(&plan).expect("refused");
    assert!(why.contains("names PR #7, but GitHub says that PR was merged as 0123456789"), "{why}");
}

/// Whoever pushed a commit to the PR wrote part of the change: their approval
/// does not count, even when they are not the PR's author.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_who_pushed_a_commit_to_the_pr_cannot_approve_it() {
    let pr = pr_repo("INC-42: orders stuck in pending, fix rows by hand");
    let approvals = vec![review(401, "grace", "APPROVED", &pr.head, "2026-11-23T08:15:00Z"), review(402, "erin", "APPROVED", &pr.head, "2026-11-23T08:16:00Z")];

    // grace (managers) and erin (security) approve the head: enough.
    let server = MockServer::start().await;
    mount_pr(&server, &pr, vec![file(REQUEST, "added")], vec![]).await;
    mount_review_pages(&server, [approvals.clone(), vec![], vec![]]).await;
    let out = gate(pr.repo.path(), &server.uri(), &["--no-comment"]).await;
    assert_eq!(out.code, 0, "{}", out.all());

    // The same reviews, but erin also pushed the head commit.
    let server = MockServer::start().await;
    mount_pr(&server, &pr, vec![file(REQUEST, "added")], vec![]).await;
    mount_commits(&server, vec![pr_commit(&pr.older, "carol", "web-flow"), pr_commit(&pr.head, "erin", "erin")], 1).await;
    mount_review_pages(&server, [approvals, vec![], vec![]]).await;
    let out = gate(pr.repo.path(), &server.uri(), &["--no-comment"]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("from security: could approve: dave\n"), "{}", out.all());
    let run = &sent(&server, "POST", &repo_path("/check-runs")).await[0];
    assert_eq!(run["conclusion"], "action_required");
    assert!(run["output"]["summary"].as_str().unwrap().contains("- erin: requester, PR author or committer: cannot approve"), "{run}");
}

/// GitHub's answer to `POST /pulls/{n}/requested_reviewers`: the pull request,
/// with its requested reviewers (shape trimmed to the fields that matter).
fn requested_reviewers_response(users: &[&str], teams: &[&str]) -> Value {
    serde_json::json!({
        "number": PR,
        "state": "open",
        "requested_reviewers": users.iter().map(|u| serde_json::json!({ "login": u, "type": "User" })).collect::<Vec<_>>(),
        "requested_teams": teams.iter().map(|t| serde_json::json!({ "slug": t, "name": t })).collect::<Vec<_>>(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_requests_reviews_once_per_head_and_reports_a_422() {
    let pr = pr_repo("INC-42: orders stuck in pending, fix rows by hand");
    let server = MockServer::start().await;
    mount_pr(&server, &pr, vec![file(REQUEST, "added")], vec![]).await;
    mount_review_pages(&server, mixed_reviews(&pr)).await;
    let rr = repo_path(&format!("/pulls/{PR}/requested_reviewers"));
    Mock::given(method("POST"))
        .and(path(rr.clone()))
        .respond_with(ResponseTemplate::new(201).set_body_json(requested_reviewers_response(&["dave", "erin"], &[])))
        .mount(&server)
        .await;
    let out = gate(pr.repo.path(), &server.uri(), &[]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    let asked = sent(&server, "POST", &rr).await;
    assert_eq!(asked, [serde_json::json!({ "reviewers": ["dave", "erin"], "team_reviewers": [] })], "the requester carol is never asked");

    // The second run reads the sticky comment's state and asks nobody again.
    let body = sent(&server, "POST", &repo_path(&format!("/issues/{PR}/comments"))).await[0]["body"].as_str().unwrap().to_string();
    assert!(body.contains("<!-- gitgrant:asked head=") && body.contains("users=dave,erin"), "{body}");
    let again = MockServer::start().await;
    mount_pr(&again, &pr, vec![file(REQUEST, "added")], vec![comment(1001, "github-actions[bot]", "Bot", &body)]).await;
    mount_review_pages(&again, mixed_reviews(&pr)).await;
    let out = gate(pr.repo.path(), &again.uri(), &[]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(count(&again, "POST", &rr).await, 0, "asked once per head");

    // Not a collaborator: GitHub's 422 is a note, the verdict stands.
    let refused = MockServer::start().await;
    mount_pr(&refused, &pr, vec![file(REQUEST, "added")], vec![]).await;
    mount_review_pages(&refused, mixed_reviews(&pr)).await;
    Mock::given(method("POST"))
        .and(path(rr.clone()))
        .respond_with(ResponseTemplate::new(422).set_body_json(serde_json::json!({
            "message": "Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the acme/access repository.",
            "documentation_url": "https://docs.github.com/rest/pulls/review-requests#request-reviewers-for-a-pull-request",
            "status": "422"
        })))
        .mount(&refused)
        .await;
    let out = gate(pr.repo.path(), &refused.uri(), &[]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    let body = sent(&refused, "POST", &repo_path(&format!("/issues/{PR}/comments"))).await[0]["body"].as_str().unwrap().to_string();
    assert!(body.contains("could not request reviews from dave, erin") && body.contains("Reviews may only be requested from collaborators"), "{body}");
}
