//! Notifications end to end: `reconcile` and `monitor` through the real CLI
//! on real git repositories (local provider, a bare remote, fresh clones as
//! CI makes them), with wiremock Slack and JSON webhook sinks.

use std::path::Path;

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::reconcile::{POLICIES, RemoteWorld, git_ok as git, land, req};
use crate::support::{Out, Repo, run_in_env};

const SINKS: &str = "
notifications:
  expiring_soon: 30m
  extend_by: 1h
  sinks:
    chat: { kind: slack, url_env: TEST_SLACK_URL }
    siem: { kind: json, url_env: TEST_JSON_URL, events: [granted, revoked, expiring_soon] }
";

/// heidi's auto-tier request (sandbox, 10:00-12:00) with the sinks above.
fn world() -> RemoteWorld {
    RemoteWorld::new(|shared| format!("{}{SINKS}", RemoteWorld::policies_in(shared)))
}

fn reconcile(dir: &Path, at: &str, hooks: &MockServer) -> Out {
    let slack = format!("{}/slack", hooks.uri());
    let json = format!("{}/json", hooks.uri());
    run_in_env(dir, &["reconcile", "--at", at], &[("TEST_SLACK_URL", slack.as_str()), ("TEST_JSON_URL", json.as_str())])
}

/// The bodies each sink received, in order.
async fn bodies(hooks: &MockServer, sink: &str) -> Vec<Value> {
    let all = hooks.received_requests().await.unwrap();
    all.iter().filter(|q| q.url.path() == format!("/{sink}")).map(|q| serde_json::from_slice(&q.body).unwrap()).collect()
}

async fn ok_sinks() -> MockServer {
    let hooks = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).mount(&hooks).await;
    hooks
}

/// A grant reaches both sinks once, escaped for Slack, in the versioned
/// schema for JSON; a later run from a fresh clone sends nothing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_is_delivered_once_to_slack_and_json_even_from_fresh_clones() {
    let w = world();
    let hooks = ok_sinks().await;
    let t0 = reconcile(&w.clone("a"), "2026-12-01T10:05:00Z", &hooks);
    assert_eq!(t0.code, 0, "{}", t0.all());
    assert!(!t0.stderr.contains("notification"), "no delivery warning expected: {}", t0.all());

    let slack = bodies(&hooks, "slack").await;
    assert_eq!(slack, vec![serde_json::json!({"text": "granted heidi -&gt; user on sandbox (heidi-sandbox)"})], "Slack escapes `>` as an entity");
    let json = bodies(&hooks, "json").await;
    assert_eq!(json.len(), 1, "{json:?}");
    assert_eq!(json[0]["schema"], "gitgrant.event/v1");
    let e = &json[0]["event"];
    assert_eq!(e["id"], "granted:heidi-sandbox:20261201T120000Z");
    assert_eq!(e["kind"], "granted");
    assert_eq!(e["request"], "heidi-sandbox");
    assert_eq!(e["requester"], "heidi");
    assert_eq!(e["role"], "user");
    assert_eq!(e["resources"], serde_json::json!(["sandbox"]));
    assert_eq!(e["end"], "2026-12-01T12:00:00Z");
    assert_eq!(e["pr"], 1, "the PR number from the landing evidence");

    // CI's next run is a fresh clone: the outbox came with the remote.
    let t1 = reconcile(&w.clone("b"), "2026-12-01T10:20:00Z", &hooks);
    assert_eq!(t1.code, 0, "{}", t1.all());
    assert_eq!(bodies(&hooks, "slack").await.len(), 1, "a fresh clone must not resend: {}", t1.all());
    assert_eq!(bodies(&hooks, "json").await.len(), 1);

    // The window ends: `revoked` (expired) to both; `siem` does not get what it did not subscribe to.
    let t2 = reconcile(&w.clone("c"), "2026-12-01T12:01:00Z", &hooks);
    assert_eq!(t2.code, 0, "{}", t2.all());
    let slack = bodies(&hooks, "slack").await;
    assert_eq!(slack.len(), 2, "{slack:?}");
    assert_eq!(slack[1]["text"], "revoked (expired) heidi -&gt; user on sandbox (heidi-sandbox)");
    let json = bodies(&hooks, "json").await;
    assert_eq!(json.len(), 2);
    assert_eq!(json[1]["event"]["kind"], "revoked");
    assert_eq!(json[1]["event"]["why"], "expired");
}

/// A sink answering 500: the run warns (exit 0), the next run (a fresh
/// clone) delivers, and a run after that sends nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_retried_next_run_and_never_duplicated() {
    let w = world();
    let hooks = MockServer::start().await;
    Mock::given(method("POST")).and(path("/slack")).respond_with(ResponseTemplate::new(500)).up_to_n_times(1).with_priority(1).mount(&hooks).await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).with_priority(5).mount(&hooks).await;

    let t0 = reconcile(&w.clone("a"), "2026-12-01T10:05:00Z", &hooks);
    assert_eq!(t0.code, 0, "a failed notification is not a failed run: {}", t0.all());
    assert!(
        t0.stderr.contains("warning: notification: sink `chat`: event granted:heidi-sandbox:20261201T120000Z: HTTP 500; retried on the next run"),
        "{}",
        t0.all()
    );
    assert_eq!(bodies(&hooks, "slack").await.len(), 1, "one attempt");
    assert_eq!(bodies(&hooks, "json").await.len(), 1, "the other sink got it");

    let t1 = reconcile(&w.clone("b"), "2026-12-01T10:20:00Z", &hooks);
    assert_eq!(t1.code, 0, "{}", t1.all());
    assert!(!t1.stderr.contains("notification"), "{}", t1.all());
    let slack = bodies(&hooks, "slack").await;
    assert_eq!(slack.len(), 2, "retried once: {slack:?}");
    assert_eq!(slack[1]["text"], "granted heidi -&gt; user on sandbox (heidi-sandbox)");
    assert_eq!(bodies(&hooks, "json").await.len(), 1, "the JSON sink already had it");

    let t2 = reconcile(&w.clone("c"), "2026-12-01T10:30:00Z", &hooks);
    assert_eq!(t2.code, 0, "{}", t2.all());
    assert_eq!(bodies(&hooks, "slack").await.len(), 2, "no duplicate after success");
    assert_eq!(bodies(&hooks, "json").await.len(), 1);
}

/// Within `expiring_soon` of the end, the holder is warned once, with the
/// exact command to extend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_soon_is_sent_once_with_the_extend_command() {
    let w = world();
    let hooks = ok_sinks().await;
    assert_eq!(reconcile(&w.clone("a"), "2026-12-01T10:05:00Z", &hooks).code, 0);
    let before = bodies(&hooks, "slack").await.len();
    let t1 = reconcile(&w.clone("b"), "2026-12-01T11:40:00Z", &hooks);
    assert_eq!(t1.code, 0, "{}", t1.all());
    let slack = bodies(&hooks, "slack").await;
    assert_eq!(slack.len(), before + 1, "{slack:?}");
    assert_eq!(slack[before]["text"], "heidi -&gt; user on sandbox ends at 12:00 UTC; to extend: gitgrant extend heidi-sandbox --by 1h");
    let json = bodies(&hooks, "json").await;
    let last = &json.last().unwrap()["event"];
    assert_eq!(last["kind"], "expiring_soon");
    assert_eq!(last["extend_command"], "gitgrant extend heidi-sandbox --by 1h");
    assert_eq!(last["id"], "expiring_soon:heidi-sandbox:20261201T120000Z");

    let t2 = reconcile(&w.clone("c"), "2026-12-01T11:50:00Z", &hooks);
    assert_eq!(t2.code, 0, "{}", t2.all());
    assert_eq!(bodies(&hooks, "slack").await.len(), before + 1, "sent once");
}

/// A sink whose URL variable is unset is a warning, and what it missed is
/// sent once it is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_without_its_url_variable_is_a_warning_and_catches_up() {
    let w = world();
    let hooks = ok_sinks().await;
    let json = format!("{}/json", hooks.uri());
    let t0 = run_in_env(&w.clone("a"), &["reconcile", "--at", "2026-12-01T10:05:00Z"], &[("TEST_JSON_URL", json.as_str())]);
    assert_eq!(t0.code, 0, "{}", t0.all());
    assert!(
        t0.stderr.contains("warning: notification: sink `chat`: the environment variable `TEST_SLACK_URL` is not set; 1 event(s) kept for the next run"),
        "{}",
        t0.all()
    );
    assert!(bodies(&hooks, "slack").await.is_empty());
    let t1 = reconcile(&w.clone("b"), "2026-12-01T10:20:00Z", &hooks);
    assert_eq!(t1.code, 0, "{}", t1.all());
    assert_eq!(bodies(&hooks, "slack").await.len(), 1);
    assert_eq!(bodies(&hooks, "json").await.len(), 1, "no duplicate to the sink that had it");
}

/// Policies with an inline URL, a missing `url_env`, an unknown kind or event: each named at file:line:col.
#[test]
fn sink_configuration_errors_name_the_place() {
    let r = Repo::new();
    r.write(
        "policies/all.yaml",
        format!(
            "{POLICIES}\nnotifications:\n  expiring_soon: soon\n  sinks:\n    a: {{ kind: slack, url: \"https://hooks.slack.com/services/T/B/x\" }}\n    b: {{ kind: json }}\n    c: {{ kind: email, url_env: X }}\n    d: {{ kind: slack, url_env: \"not a var\", events: [granted, exploded] }}\n"
        ),
    );
    r.commit("policies");
    let out = r.run(&["check", "--all"]);
    assert_eq!(out.code, 2, "bad policies: could not judge: {}", out.all());
    let all = out.all();
    let lines: Vec<&str> = all.lines().collect();
    for (code, needle, place) in [
        ("GG106", "", "policies/all.yaml:38:18"),
        ("GG116", "sink `a`: a webhook URL is a secret", "policies/all.yaml:40:28"),
        ("GG117", "sink `b`: no `url_env`", "policies/all.yaml:41:5"),
        ("GG115", "sink `c`: unknown kind `email`", "policies/all.yaml:42:16"),
        ("GG117", "sink `d`: `not a var` is not an environment variable name", "policies/all.yaml:43:32"),
        ("GG118", "sink `d`: unknown event `exploded`", "policies/all.yaml:43:63"),
    ] {
        let at = lines.iter().position(|l| l.starts_with(&format!("error[{code}]: {needle}"))).unwrap_or_else(|| panic!("{code} {needle}:\n{all}"));
        assert!(lines[at + 1].ends_with(place), "{code} at {place}:\n{all}");
    }
}

/// The GitHub sink: one comment on the request's PR (number from the
/// landing evidence), the headline as escaped Markdown, sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_github_sink_comments_once_on_the_requests_pr() {
    let shared = tempfile::tempdir().unwrap();
    let r = Repo::new();
    r.at("2026-11-20T10:00:00Z");
    let state = shared.path().join("grants.json").display().to_string();
    r.write(
        "policies/all.yaml",
        format!("{}\nnotifications:\n  sinks:\n    pr: {{ kind: github, events: [granted] }}\n", POLICIES.replace("state/grants.json", &state)),
    );
    r.commit("bootstrap policies");
    land(&r, "heidi", "heidi", &[("requests/heidi-sandbox.yaml", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "2h"))], &[]);
    let gh = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/access/issues/1/comments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 77})))
        .mount(&gh)
        .await;
    let uri = gh.uri();
    let env = [("GITHUB_TOKEN", "t0ken"), ("GITHUB_API_URL", uri.as_str()), ("GITGRANT_GITHUB_MAX_WAIT", "1")];
    for at in ["2026-12-01T10:05:00Z", "2026-12-01T10:20:00Z"] {
        let out = run_in_env(r.path(), &["reconcile", "--at", at, "--plain-git", "--github-repo", "acme/access"], &env);
        assert_eq!(out.code, 0, "{}", out.all());
        assert!(!out.stderr.contains("notification"), "{}", out.all());
    }
    let got: Vec<Value> = gh
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|q| q.url.path().ends_with("/comments"))
        .map(|q| serde_json::from_slice(&q.body).unwrap())
        .collect();
    assert_eq!(got.len(), 1, "one comment, not one per run: {got:?}");
    let body = got[0]["body"].as_str().unwrap();
    assert!(body.starts_with("**gitgrant**: granted heidi -"), "{body}");
    assert!(body.contains("heidi-sandbox") && !body.contains('\n'), "{body}");
}

/// `landed` and `break_glass_overdue` end to end, from fresh clones of a bare
/// remote: a break-glass request (approved, granted, never reviewed), one
/// approved for tomorrow (announced now), and one pushed directly to main
/// (refused, never `landed`). Slack gets every event, the JSON webhook and
/// the GitHub PR only the two kinds; each exactly once over three runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn landed_and_break_glass_overdue_reach_every_sink_once() {
    let shared = tempfile::tempdir().unwrap();
    let main = Repo::new();
    main.at("2026-11-20T10:00:00Z");
    let state = shared.path().join("grants.json").display().to_string();
    let policies = POLICIES
        .replace("state/grants.json", &state)
        .replace("  managers: { members: [frank, grace] }\n", "  managers: { members: [frank, grace] }\n  security: { members: [dave, erin] }\n")
        .replace("  grace: {}\n", "  grace: {}\n  dave: {}\n  erin: {}\n");
    let extra = "
break_glass:
  approvals: [ { from: [sre], count: 1 } ]
  max_duration: 2h
  review_within: 30m
  reviewers: [security]
notifications:
  sinks:
    chat: { kind: slack, url_env: TEST_SLACK_URL }
    siem: { kind: json, url_env: TEST_JSON_URL, events: [landed, break_glass_overdue] }
    pr: { kind: github, events: [landed, break_glass_overdue] }
";
    main.write("policies/all.yaml", format!("{policies}{extra}"));
    main.commit("bootstrap policies");
    main.at("2026-12-01T10:00:00Z");
    let bg = format!("{}break_glass: true\n", req("heidi", "user", "sandbox", "2026-12-01T10:00:00Z", "2h"));
    let landing = land(&main, "heidi-bg", "heidi", &[("requests/heidi-bg.yaml", bg)], &["alice"]);
    land(&main, "ivan-later", "ivan", &[("requests/ivan-later.yaml", req("ivan", "user", "sandbox", "2026-12-02T10:00:00Z", "1h"))], &[]);
    main.write("requests/ivan-push.yaml", req("ivan", "user", "sandbox", "2026-12-01T10:00:00Z", "1h"));
    main.commit_as("ivan", "push straight to main");
    git(shared.path(), &["init", "-q", "--bare", "remote.git"]);
    main.git(&["remote", "add", "origin", shared.path().join("remote.git").to_str().unwrap()]);
    main.git(&["push", "-q", "origin", "main"]);
    let world = RemoteWorld { main, shared };

    let hooks = ok_sinks().await;
    let gh = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/access/issues/1/comments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 77})))
        .mount(&gh)
        .await;
    let (slack, json, api) = (format!("{}/slack", hooks.uri()), format!("{}/json", hooks.uri()), gh.uri());
    let env = [
        ("TEST_SLACK_URL", slack.as_str()),
        ("TEST_JSON_URL", json.as_str()),
        ("GITHUB_TOKEN", "t0ken"),
        ("GITHUB_API_URL", api.as_str()),
        ("GITGRANT_GITHUB_MAX_WAIT", "1"),
    ];
    // Granted at 10:05; overdue (due 30 min after access began at the 10:01 landing) at 10:45; nothing new at 10:50.
    for (clone, at) in [("a", "2026-12-01T10:05:00Z"), ("b", "2026-12-01T10:45:00Z"), ("c", "2026-12-01T10:50:00Z")] {
        let out = run_in_env(&world.clone(clone), &["reconcile", "--at", at, "--plain-git", "--github-repo", "acme/access"], &env);
        assert_eq!(out.code, 1, "refusals are reported (exit 1), the run completes: {}", out.all());
        assert!(!out.stderr.contains("notification"), "every sink took every event: {}", out.all());
    }

    let texts: Vec<String> = bodies(&hooks, "slack").await.iter().map(|b| b["text"].as_str().unwrap().to_string()).collect();
    // The policies name a temporary directory, so commit ids differ per run.
    insta::with_settings!({ filters => vec![(r"commit [0-9a-f]{10}", "commit [id]")] }, {
        insta::assert_json_snapshot!("landed-and-overdue-slack", texts);
    });
    assert!(!texts.iter().any(|t| t.starts_with("request ivan-push landed")), "a refused landing is not `landed`: {texts:?}");
    assert_eq!(texts.iter().filter(|t| t.starts_with("BREAK-GLASS not reviewed")).count(), 1, "{texts:?}");
    assert!(!texts.iter().any(|t| t.starts_with("refused heidi-bg")), "not also as a generic refusal: {texts:?}");

    let json = bodies(&hooks, "json").await;
    let ids: Vec<&str> = json.iter().map(|b| b["event"]["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["landed:heidi-bg:20261201T100100Z", "landed:ivan-later:20261201T100300Z", "break_glass_overdue:heidi-bg:20261201T103100Z"],
        "each once, across three runs from fresh clones"
    );
    let landed = &json[0]["event"];
    assert_eq!(landed["kind"], "landed");
    assert_eq!(landed["commit"], landing.as_str(), "the landing commit");
    assert_eq!(landed["approvers"], serde_json::json!(["alice"]));
    assert_eq!(landed["pr"], 1);
    assert_eq!(landed["at"], "2026-12-01T10:01:00Z");
    assert_eq!(json[1]["event"]["approvers"], serde_json::json!([]), "the auto tier needs none");
    let overdue = &json[2]["event"];
    assert_eq!(overdue["review_by"], "2026-12-01T10:31:00Z");
    assert_eq!(overdue["reviewers"], serde_json::json!(["dave", "erin"]));
    assert_eq!(overdue["reviewer_groups"], serde_json::json!(["security"]));
    assert_eq!(overdue["pr"], 1, "from the grant's landing evidence");

    let comments: Vec<String> = gh
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|q| q.url.path().ends_with("/comments"))
        .map(|q| serde_json::from_slice::<Value>(&q.body).unwrap()["body"].as_str().unwrap().to_string())
        .collect();
    insta::assert_json_snapshot!("landed-and-overdue-github", comments);
    assert_eq!(comments.len(), 3, "{comments:?}");
}
