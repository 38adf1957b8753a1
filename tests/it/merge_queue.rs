//! `gitgrant gate` on a merge queue's `merge_group` event, end to end: the
//! real binary in a fresh clone of a bare remote (as CI has it: the group
//! commit checked out, every branch remote-tracking, no PR heads), and the
//! wiremock fake of the GitHub REST API (127.0.0.1 only).
//!
//! The queue squash-merges, so the PR's head commit is not in the group's
//! history: the gate has to fetch `refs/pull/7/head` from the remote itself.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use wiremock::MockServer;

use crate::github_gate::{
    OWNER_REPO, PR, PrRepo, REQUEST, count, file, gitgrant, mount_pr, mount_review_pages, pr_commit, pr_repo, pull, repo_path, review, sent, user,
};
use crate::support::Out;

const REASON: &str = "INC-42: orders stuck in pending, fix rows by hand";

struct Queue {
    pr: PrRepo,
    _remote: tempfile::TempDir,
    _events: tempfile::TempDir,
    clone: tempfile::TempDir,
    /// The merge group's commit.
    group: String,
    event: PathBuf,
}

impl Queue {
    fn clone_path(&self) -> &Path {
        self.clone.path()
    }
}

fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git").args(args).current_dir(dir).env("GIT_CONFIG_NOSYSTEM", "1").output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The merge_group payload GitHub writes to `$GITHUB_EVENT_PATH`.
fn event(group: &str, base: &str, head_ref: &str, tree: &str) -> Value {
    json!({
        "action": "checks_requested",
        "merge_group": {
            "head_sha": group,
            "head_ref": head_ref,
            "base_sha": base,
            "base_ref": "refs/heads/main",
            "head_commit": {
                "id": group, "tree_id": tree,
                "message": format!("Write access to orders-db for INC-42 (#{PR})"),
                "timestamp": "2026-11-23T09:00:00Z",
                "author": { "name": "carol", "email": "carol@example.com" },
                "committer": { "name": "GitHub", "email": "noreply@github.com" }
            }
        },
        "repository": { "id": 1, "node_id": "R_kgDOA1b2c8", "name": "access", "full_name": OWNER_REPO, "private": true,
                        "owner": user("acme", "Organization"), "default_branch": "main" },
        "organization": { "login": "acme", "id": 97000 },
        "sender": user("github-merge-queue[bot]", "Bot"),
        "installation": { "id": 42, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI=" }
    })
}

/// PR 7 (carol's request) queued alone on main: the queue squash-merges it
/// (plus `extra` files, to play a group that lands more than was judged),
/// pushes the group to `gh-readonly-queue/main/pr-7-<base>` and the PR head to
/// `refs/pull/7/head`; CI clones the remote and checks out the group.
fn queued(extra: &[(&str, &str)], head_ref: Option<&str>) -> Queue {
    let pr = pr_repo(REASON);
    let r = &pr.repo;
    r.git(&["checkout", "-q", "--detach", "main"]);
    r.git(&["merge", "-q", "--squash", "carol/orders-rw"]);
    for (path, text) in extra {
        r.write(path, text);
    }
    let group = r.commit_as("carol", &format!("Write access to orders-db for INC-42 (#{PR})"));
    let tree = r.git(&["rev-parse", "HEAD^{tree}"]);
    r.checkout("main");

    let remote = tempfile::tempdir().unwrap();
    git_in(remote.path(), &["init", "-q", "--bare"]);
    let url = remote.path().to_str().unwrap();
    let queue_ref = format!("refs/heads/gh-readonly-queue/main/pr-{PR}-{}", pr.base);
    r.git(&["push", "-q", url, "main", &format!("{}:refs/pull/{PR}/head", pr.head), &format!("{group}:{queue_ref}")]);

    let clone = tempfile::tempdir().unwrap();
    git_in(clone.path(), &["clone", "-q", "--no-local", url, "."]);
    git_in(clone.path(), &["checkout", "-q", "--detach", &group]);
    let missing = std::process::Command::new("git").args(["cat-file", "-e", &pr.head]).current_dir(clone.path()).output().unwrap();
    assert!(!missing.status.success(), "the fresh clone lacks the PR head: the gate must fetch it");

    let events = tempfile::tempdir().unwrap();
    let event_path = events.path().join("event.json");
    let ev = event(&group, &pr.base, head_ref.unwrap_or(&queue_ref), &tree);
    std::fs::write(&event_path, serde_json::to_vec_pretty(&ev).unwrap()).unwrap();
    Queue { pr, _remote: remote, _events: events, clone, group, event: event_path }
}

/// Approvals from a manager and a security member on the PR's head: the
/// high tier's two slots.
fn approvals(pr: &PrRepo) -> [Vec<Value>; 3] {
    let h = pr.head.as_str();
    [
        vec![review(201, "grace", "APPROVED", h, "2026-11-23T08:15:00Z")],
        vec![review(202, "frank", "COMMENTED", h, "2026-11-23T08:16:00Z")],
        vec![review(203, "erin", "APPROVED", h, "2026-11-23T08:20:00Z")],
    ]
}

async fn serve(q: &Queue, reviews: [Vec<Value>; 3]) -> MockServer {
    let server = MockServer::start().await;
    mount_pr(&server, &q.pr, vec![file(REQUEST, "added")], vec![]).await;
    mount_review_pages(&server, reviews).await;
    server
}

async fn gate_group(q: &Queue, server: &MockServer, args: &[&str]) -> Out {
    let mut all = vec!["gate"];
    all.extend_from_slice(args);
    let mut out = gitgrant(q.clone_path(), &server.uri(), &all, Some(&q.event)).await;
    for (from, to) in check_run_filters(q) {
        for s in [&mut out.stdout, &mut out.stderr] {
            *s = s.replace(&from, &to);
        }
    }
    out
}

fn check_run_filters(q: &Queue) -> Vec<(String, String)> {
    [(&q.group, "GROUP"), (&q.pr.head, "PR-HEAD"), (&q.pr.base, "BASE")]
        .iter()
        .flat_map(|(sha, n)| [(sha.to_string(), format!("[{n}]")), (sha[..12].to_string(), format!("[{n}-SHORT]"))])
        .collect()
}

/// The one check run the gate sent, with the commits named.
async fn the_check_run(q: &Queue, server: &MockServer) -> Value {
    let runs = sent(server, "POST", &repo_path("/check-runs")).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let mut text = serde_json::to_string_pretty(&runs[0]).unwrap();
    for (from, to) in check_run_filters(q) {
        text = text.replace(&from, &to);
    }
    serde_json::from_str(&text).unwrap()
}

/// A merge group never comments, asks for reviews or reads the comments.
async fn assert_quiet_on_the_pr(server: &MockServer) {
    assert_eq!(count(server, "POST", &repo_path(&format!("/issues/{PR}/comments"))).await, 0, "no sticky comment on a merge group");
    assert_eq!(count(server, "GET", &repo_path(&format!("/issues/{PR}/comments"))).await, 0);
    assert_eq!(count(server, "POST", &repo_path(&format!("/pulls/{PR}/requested_reviewers"))).await, 0, "no review requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_pr_makes_the_group_commit_green() {
    let q = queued(&[], None);
    let server = serve(&q, approvals(&q.pr)).await;
    let out = gate_group(&q, &server, &[]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let run = the_check_run(&q, &server).await;
    assert_eq!(run["head_sha"], "[GROUP]", "the verdict is on the merge group's commit, not the PR's head");
    assert_eq!(run["name"], "gitgrant/approval");
    assert_eq!(run["conclusion"], "success");
    // The PR was judged again: its reviews and files were read now.
    assert_eq!(count(&server, "GET", &repo_path(&format!("/pulls/{PR}/reviews"))).await, 1);
    assert_eq!(count(&server, "GET", &repo_path(&format!("/pulls/{PR}/files"))).await, 1);
    assert_quiet_on_the_pr(&server).await;
    // The PR head was fetched into the clone (refs/pull/7/head).
    git_in(q.clone_path(), &["cat-file", "-e", &q.pr.head]);
    insta::assert_snapshot!("merge-group-approved-output", out.all());
    insta::assert_json_snapshot!("merge-group-approved-check-run", run);

    // `--merge-group` says the same thing explicitly; `--status` publishes a commit status on the group.
    let server2 = serve(&q, approvals(&q.pr)).await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path(repo_path(&format!("/statuses/{}", q.group))))
        .respond_with(wiremock::ResponseTemplate::new(201).set_body_json(json!({"id": 2, "state": "success"})))
        .mount(&server2)
        .await;
    let out = gate_group(&q, &server2, &["--merge-group", "--status"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let statuses = sent(&server2, "POST", &repo_path(&format!("/statuses/{}", q.group))).await;
    assert_eq!(statuses.len(), 1, "{}", out.all());
    assert_eq!(statuses[0]["context"], "gitgrant/approval");
    assert_eq!(statuses[0]["state"], "success");
    assert_eq!(count(&server2, "POST", &repo_path("/check-runs")).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_lands_an_extra_request_file_is_refused() {
    let sneaky = "requests/2026-12-01-mallory-orders-admin.yaml";
    let text = "requester: mallory\nrole: db-write\nresources: [orders-db]\nstart: 2026-12-01T10:00:00Z\nduration: 2h\nticket: INC-42\nreason: 'INC-42: riding along in the merge group'\n";
    let q = queued(&[(sneaky, text)], None);
    let server = serve(&q, approvals(&q.pr)).await;
    let out = gate_group(&q, &server, &[]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains(&format!("error: refused: {sneaky}: changed by the merge group, but by none of its pull requests")), "{}", out.all());
    assert!(out.stdout.contains("PR #7 at [PR-HEAD-SHORT]: success"), "the PR itself is approved: {}", out.all());
    let run = the_check_run(&q, &server).await;
    assert_eq!(run["conclusion"], "failure");
    assert_eq!(run["head_sha"], "[GROUP]");
    assert_eq!(run["output"]["title"], "refused: 1 change no judged pull request explains");
    assert_quiet_on_the_pr(&server).await;
    insta::assert_json_snapshot!("merge-group-extra-file-check-run", run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_changes_the_judged_request_is_refused() {
    // The group lands a different version of the PR's own request than the one reviewed.
    let q = queued(
        &[(
            REQUEST,
            "requester: carol\nrole: db-write\nresources: [orders-db]\nstart: 2026-12-01T10:00:00Z\nduration: 8h\nticket: INC-42\nreason: 'INC-42: orders stuck in pending, fix rows by hand'\n",
        )],
        None,
    );
    let server = serve(&q, approvals(&q.pr)).await;
    let out = gate_group(&q, &server, &[]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains(&format!("error: refused: {REQUEST}: differs from PR #7's head")), "{}", out.all());
    assert_eq!(the_check_run(&q, &server).await["conclusion"], "failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unapproved_pr_fails_the_group() {
    let q = queued(&[], None);
    // Only the manager slot is filled; the security member approved an older commit.
    let reviews = [
        vec![review(201, "grace", "APPROVED", &q.pr.head, "2026-11-23T08:15:00Z")],
        vec![review(202, "erin", "APPROVED", &q.pr.older, "2026-11-23T08:10:00Z")],
        vec![],
    ];
    let server = serve(&q, reviews).await;
    let out = gate_group(&q, &server, &[]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.contains("[ ] 2026-12-01-carol-orders-rw (tier high, score 64) from security: could approve: dave, erin"), "{}", out.all());
    let run = the_check_run(&q, &server).await;
    assert_eq!(run["conclusion"], "failure", "a queue cannot wait for reviews: action_required becomes failure");
    assert_eq!(run["output"]["title"], "not approved: PR #7");
    assert_quiet_on_the_pr(&server).await;
    insta::assert_snapshot!("merge-group-unapproved-output", out.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparseable_queue_ref_cannot_be_judged() {
    let q = queued(&[], Some("refs/heads/gh-readonly-queue/main/pr-seven"));
    let server = serve(&q, approvals(&q.pr)).await;
    let out = gate_group(&q, &server, &[]).await;
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stderr.contains(
            "error: merge group ref `refs/heads/gh-readonly-queue/main/pr-seven` is not `refs/heads/gh-readonly-queue/<base>/pr-<number>-<commit sha>`"
        ),
        "{}",
        out.all()
    );
    let run = the_check_run(&q, &server).await;
    assert_eq!(run["conclusion"], "failure", "the queue drops the group instead of waiting");
    assert_eq!(run["output"]["title"], "could not judge this merge group");
    assert_eq!(count(&server, "GET", &repo_path(&format!("/pulls/{PR}"))).await, 0, "no PR is guessed");
    insta::assert_snapshot!("merge-group-bad-ref-output", out.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_group_flag_outside_a_merge_group_event_is_an_error() {
    let pr = pr_repo(REASON);
    let server = MockServer::start().await;
    let out = gitgrant(pr.repo.path(), &server.uri(), &["gate", "--merge-group"], None).await;
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("--merge-group: GITHUB_EVENT_PATH names no merge_group event"), "{}", out.all());
    assert!(server.received_requests().await.unwrap_or_default().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_two_queued_prs_judges_both_and_lands_exactly_both() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, ResponseTemplate};
    // PR 8 (a second request by carol) is queued behind PR 7: its entry builds on PR 7's group.
    let pr = pr_repo(REASON);
    let r = &pr.repo;
    let second = "requests/2026-12-01-carol-orders-rw-again.yaml";
    r.branch("carol/again");
    r.write(
        second,
        "requester: carol\nrole: db-write\nresources: [orders-db]\nstart: 2026-12-01T10:00:00Z\nduration: 2h\nticket: INC-42\nreason: 'INC-42: a second pair of hands'\n",
    );
    let head8 = r.commit_as("carol", "ask again");
    r.git(&["checkout", "-q", "--detach", "main"]);
    r.git(&["merge", "-q", "--squash", "carol/orders-rw"]);
    let g7 = r.commit_as("carol", "Write access to orders-db for INC-42 (#7)");
    r.git(&["merge", "-q", "--squash", "carol/again"]);
    let g8 = r.commit_as("carol", "A second pair of hands (#8)");
    r.checkout("main");
    assert!(r.git(&["show", "--stat", "--format=", &g8]).contains("orders-rw-again"), "PR 8's request is in the group");

    let remote = tempfile::tempdir().unwrap();
    git_in(remote.path(), &["init", "-q", "--bare"]);
    let url = remote.path().to_str().unwrap();
    let (q7, q8) = (format!("refs/heads/gh-readonly-queue/main/pr-7-{}", pr.base), format!("refs/heads/gh-readonly-queue/main/pr-8-{g7}"));
    r.git(&[
        "push",
        "-q",
        url,
        "main",
        &format!("{}:refs/pull/7/head", pr.head),
        &format!("{head8}:refs/pull/8/head"),
        &format!("{g7}:{q7}"),
        &format!("{g8}:{q8}"),
    ]);
    let clone = tempfile::tempdir().unwrap();
    git_in(clone.path(), &["clone", "-q", "--no-local", url, "."]);
    git_in(clone.path(), &["checkout", "-q", "--detach", &g8]);
    let events = tempfile::tempdir().unwrap();
    let event_path = events.path().join("event.json");
    let tree = git_in(clone.path(), &["rev-parse", "HEAD^{tree}"]);
    std::fs::write(&event_path, serde_json::to_vec(&event(&g8, &pr.base, &q8, &tree)).unwrap()).unwrap();

    let server = serve_pr7(&pr).await;
    let mut pull8 = pull("carol", &pr.base, &head8);
    pull8["number"] = json!(8);
    pull8["head"]["ref"] = json!("carol/again");
    let reviews8 = vec![review(301, "grace", "APPROVED", &head8, "2026-11-23T08:30:00Z"), review(302, "dave", "APPROVED", &head8, "2026-11-23T08:31:00Z")];
    for (p, body) in [
        ("/pulls/8", pull8),
        ("/pulls/8/reviews", json!(reviews8)),
        ("/pulls/8/files", json!([file(second, "added")])),
        ("/pulls/8/commits", json!([pr_commit(&head8, "carol", "web-flow")])),
    ] {
        Mock::given(method("GET")).and(path(repo_path(p))).respond_with(ResponseTemplate::new(200).set_body_json(body)).mount(&server).await;
    }
    let out = gitgrant(clone.path(), &server.uri(), &["gate"], Some(&event_path)).await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stderr.contains("(PR #7, #8): success (check run): merge group approved: 2 pull requests"), "{}", out.all());
    let runs = sent(&server, "POST", &repo_path("/check-runs")).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["head_sha"], g8.as_str());
    let summary = runs[0]["output"]["summary"].as_str().unwrap();
    assert!(summary.contains("- PR #7 at") && summary.contains("- PR #8 at"), "{summary}");
    assert_eq!(count(&server, "GET", &repo_path("/pulls/8/reviews")).await, 1, "PR 8 judged with its own reviews");

    // Without PR 7's queue branch, nothing says which PR brought g7 in: not judged.
    git_in(clone.path(), &["update-ref", "-d", &q7.replace("refs/heads/", "refs/remotes/origin/")]);
    let server = serve_pr7(&pr).await;
    let out = gitgrant(clone.path(), &server.uri(), &["gate"], Some(&event_path)).await;
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("which is neither the group's base"), "{}", out.all());
    assert_eq!(sent(&server, "POST", &repo_path("/check-runs")).await[0]["conclusion"], "failure");
}

async fn serve_pr7(pr: &PrRepo) -> MockServer {
    let server = MockServer::start().await;
    mount_pr(&server, pr, vec![file(REQUEST, "added")], vec![]).await;
    mount_review_pages(&server, approvals(pr)).await;
    server
}
