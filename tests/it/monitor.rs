//! `gitgrant monitor`, break-glass ratification and `gitgrant revoke`:
//! real git repositories, the local provider, wiremock fakes of CloudTrail
//! (`LookupEvents`, JSON 1.1, paginated), Slack webhooks and the GitHub
//! API; the aws-iam variant revokes at moto.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header_regex, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::reconcile::{land, ledger};
use crate::support::{Repo, run_in_env};

const POLICIES: &str = r#"
groups:
  sre: { members: [alice, bob] }
  dev: { members: [heidi, ivan] }
  managers: { members: [frank, grace] }
  security: { members: [dave, erin] }
identities: { alice: {}, bob: {}, heidi: {}, ivan: {}, frank: {}, grace: {}, dave: {}, erin: {} }
resources:
  sandbox: { provider: local, environment: staging, sensitivity: low, config: { state: state/grants.json, activity: state/activity.jsonl } }
roles:
  user:
    privilege: read
    max_duration: 8h
    eligible: [sre, dev]
    grants: { local: { role: user } }
risk:
  factors:
    sensitivity: { low: 0, high: 25 }
    monitor_findings: 20
  tiers:
    - { name: auto, max_score: 10, approvals: [] }
    - { name: managed, max_score: 100, approvals: [ { from: [managers], count: 1 } ] }
policy_changes:
  approvals: [ { from: [managers], count: 1 } ]
break_glass:
  approvals: [ { from: [sre], count: 1 } ]
  max_duration: 2h
  review_within: 30m
  reviewers: [security]
monitor:
  rules:
    - { name: no-iam, roles: [user], deny_actions: ["iam:*", "*:Delete*"], revoke: true }
    - { name: busy, max_events_per_hour: 100 }
"#;

fn repo() -> Repo {
    let r = Repo::new();
    r.at("2026-11-20T10:00:00Z");
    r.write("policies/all.yaml", POLICIES);
    r.commit("bootstrap policies");
    r
}

fn req(requester: &str, start: &str, dur: &str, extra: &str) -> String {
    format!("requester: {requester}\nrole: user\nresources: [sandbox]\nstart: {start}\nduration: {dur}\nreason: \"INC-9: look at the sandbox\"\n{extra}")
}

/// The local provider's grants: (request ids, principal).
fn granted(r: &Repo) -> Vec<(Vec<String>, String)> {
    let Ok(text) = std::fs::read_to_string(r.path().join("state/grants.json")) else { return Vec::new() };
    let v: Value = serde_json::from_str(&text).unwrap();
    v["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["requests"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect(),
                g["access"]["principal"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn activity(r: &Repo, lines: &[(&str, &str, &str, &str)]) {
    let text: String =
        lines.iter().map(|(id, time, who, action)| format!("{}\n", json!({"id": id, "time": time, "principal": who, "action": action}))).collect();
    r.write("state/activity.jsonl", text);
}

fn run(r: &Repo, args: &[&str], env: &[(&str, &str)]) -> crate::support::Out {
    run_in_env(r.path(), args, env)
}

/// A forbidden action revokes at once, is recorded with its evidence, is
/// posted (escaped) to the webhook and a GitHub issue, feeds the requester's
/// risk, and reconcile does not grant the request again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_action_revokes_records_alerts_and_stays_revoked() {
    let r = repo();
    land(&r, "heidi", "heidi", &[("requests/heidi_sandbox.yaml", req("heidi", "2026-12-01T10:00:00Z", "2h", ""))], &[]);
    let rec = run(&r, &["reconcile", "--at", "2026-12-01T10:05:00Z"], &[]);
    assert_eq!(rec.code, 0, "{}", rec.all());
    assert_eq!(granted(&r), vec![(vec!["heidi_sandbox".to_string()], "heidi".to_string())]);

    activity(
        &r,
        &[
            ("ev-1", "2026-12-01T10:10:00Z", "heidi", "sandbox:Read"),
            ("ev-2", "2026-12-01T10:20:00Z", "heidi", "iam:CreateUser"),
            ("ev-3", "2026-12-01T10:21:00Z", "ivan", "iam:CreateUser"),
        ],
    );
    let hooks = MockServer::start().await;
    Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(200)).expect(1).mount(&hooks).await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/access/issues"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"number": 12, "html_url": "https://github.example/acme/access/issues/12"})))
        .expect(1)
        .mount(&hooks)
        .await;
    let hook = format!("{}/hook", hooks.uri());
    let uri = hooks.uri();
    let env = [("GITHUB_TOKEN", "t0ken"), ("GITHUB_API_URL", uri.as_str()), ("GITGRANT_GITHUB_MAX_WAIT", "1")];
    let mon = run(
        &r,
        &["monitor", "--at", "2026-12-01T10:30:00Z", "--format", "json", "--webhook", &hook, "--github-issue", "--github-repo", "acme/access", "--plain-git"],
        &env,
    );
    assert_eq!(mon.code, 1, "new findings exit 1: {}", mon.all());
    let doc = mon.json();
    let findings = doc["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{doc:#}");
    assert_eq!(findings[0]["rule"], "no-iam");
    assert_eq!(findings[0]["kind"], "denied_action");
    assert_eq!(findings[0]["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect::<Vec<_>>(), vec!["ev-2"]);
    assert_eq!(doc["revocations"][0]["ok"], true, "{doc:#}");
    assert!(granted(&r).is_empty(), "revoked at the local provider");

    // The ledger: the finding and a sticky revoke naming the evidence.
    let lines = ledger(&r);
    let finding = lines.iter().find(|l| l["action"] == "finding").expect("finding recorded");
    assert_eq!(finding["requester"], "heidi");
    assert!(finding["detail"].as_str().unwrap().contains("ev-2 at 2026-12-01T10:20:00Z: iam:CreateUser"), "{finding}");
    let revoke = lines.iter().find(|l| l["action"] == "revoke" && l["request"] == "heidi_sandbox").expect("revoke recorded");
    assert_eq!(revoke["sticky"], true);
    assert_eq!(revoke["resource"], "sandbox");
    assert!(revoke["detail"].as_str().unwrap().contains("rule `no-iam`") && revoke["detail"].as_str().unwrap().contains("ev-2"), "{revoke}");

    // The webhook got Slack-compatible, escaped text; the issue names the finding.
    let received = hooks.received_requests().await.unwrap();
    let hook_body: Value = serde_json::from_slice(&received.iter().find(|q| q.url.path() == "/hook").unwrap().body).unwrap();
    let text = hook_body["text"].as_str().unwrap();
    // Slack escaping only (`&`, `<`, `>`): Slack shows backslashes literally.
    assert_eq!(
        text,
        "monitor finding (revoke) on heidi_sandbox (heidi -&gt; user on sandbox): [no-iam/heidi_sandbox/sandbox/ev-2] rule `no-iam`: heidi performed forbidden action(s) iam:CreateUser (1 event(s)) under heidi_sandbox. Evidence: ev-2 at 2026-12-01T10:20:00Z: iam:CreateUser"
    );
    let issue: Value = serde_json::from_slice(&received.iter().find(|q| q.url.path().ends_with("/issues")).unwrap().body).unwrap();
    let body = issue["body"].as_str().unwrap();
    assert!(
        body.contains("\n- rule no-iam: heidi performed forbidden action(s) iam:CreateUser")
            && body.contains(" — revoked. Evidence: ev-2 at 2026-12-01T10:20:00Z"),
        "{issue}"
    );

    // Reconcile does not grant it again while the file is on main.
    let rec = run(&r, &["reconcile", "--at", "2026-12-01T10:40:00Z", "--format", "json"], &[]);
    assert!(granted(&r).is_empty(), "re-granted: {}", rec.all());
    let refused = &rec.json()["refused"][0];
    assert_eq!(refused["request"], "heidi_sandbox");
    assert!(refused["reason"].as_str().unwrap().contains("with a hold"), "{refused}");

    // A second monitor run records nothing new.
    let again = run(&r, &["monitor", "--at", "2026-12-01T10:45:00Z", "--format", "json"], &[]);
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(again.json()["ledger"].as_array().unwrap().is_empty());

    // The finding feeds heidi's risk on her next request.
    r.write("requests/heidi-later.yaml", req("heidi", "2026-12-05T10:00:00Z", "1h", ""));
    let ex = run(&r, &["explain", "heidi-later", "--format", "json", "--now", "2026-12-02T00:00:00Z"], &[]);
    assert!(ex.stdout.contains("monitor_findings"), "{}", ex.all());
    assert!(ex.stdout.contains("1 monitor finding(s) recorded against heidi"), "{}", ex.all());
}

/// After the window: granted versus used, with a narrower role and a shorter duration suggested.
#[test]
fn report_compares_granted_with_used() {
    let r = repo();
    land(&r, "heidi", "heidi", &[("requests/heidi-sandbox.yaml", req("heidi", "2026-12-01T10:00:00Z", "4h", ""))], &[]);
    assert_eq!(run(&r, &["reconcile", "--at", "2026-12-01T10:05:00Z"], &[]).code, 0);
    activity(&r, &[("ev-1", "2026-12-01T10:10:00Z", "heidi", "sandbox:Read"), ("ev-2", "2026-12-01T10:40:00Z", "heidi", "sandbox:List")]);
    assert_eq!(run(&r, &["reconcile", "--at", "2026-12-01T14:05:00Z"], &[]).code, 0);
    let out = run(&r, &["monitor", "--report", "--at", "2026-12-01T15:00:00Z"], &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("heidi-sandbox on sandbox (ended, role user"), "{}", out.stdout);
    assert!(out.stdout.contains("used 2 distinct action(s) in 1 service(s): sandbox:List, sandbox:Read"), "{}", out.stdout);
    assert!(out.stdout.contains("a default duration of 45m would have been enough"), "{}", out.stdout);
}

/// A break-glass grant whose review is missing past `review_within` is revoked
/// by reconcile; one reviewed in time by a security member is kept.
#[test]
fn break_glass_review_missing_is_revoked_present_is_kept() {
    for reviewed in [false, true] {
        let r = repo();
        r.at("2026-12-01T10:00:00Z");
        land(&r, "bg", "heidi", &[("requests/heidi-bg.yaml", req("heidi", "2026-12-01T10:00:00Z", "2h", "break_glass: true\n"))], &["alice"]);
        let rec = run(&r, &["reconcile", "--at", "2026-12-01T10:05:00Z"], &[]);
        assert_eq!(rec.code, 0, "{}", rec.all());
        assert_eq!(granted(&r).len(), 1);
        if reviewed {
            r.at("2026-12-01T10:20:00Z");
            r.commit_as("bob", "Review break-glass heidi-bg\n\nBreak-glass-review: heidi-bg\nApproved-by: dave");
        } else {
            // A review by someone outside `security` does not count.
            r.at("2026-12-01T10:20:00Z");
            r.commit_as("bob", "Review break-glass heidi-bg\n\nBreak-glass-review: heidi-bg\nApproved-by: alice");
        }
        let rec = run(&r, &["reconcile", "--at", "2026-12-01T10:45:00Z", "--format", "json"], &[]);
        if reviewed {
            assert_eq!(rec.code, 0, "{}", rec.all());
            assert_eq!(granted(&r).len(), 1, "kept: {}", rec.all());
        } else {
            assert_eq!(rec.code, 1, "a refusal is reported: {}", rec.all());
            assert!(granted(&r).is_empty(), "revoked: {}", rec.all());
            let reason = rec.json()["refused"][0]["reason"].as_str().unwrap().to_string();
            assert!(reason.starts_with("break-glass grant not ratified") && reason.contains("security: dave, erin"), "{reason}");
            let lines = ledger(&r);
            assert!(lines.iter().any(|l| l["action"] == "revoke" && l["request"] == "heidi-bg" && l["result"] == "ok"), "{lines:?}");
            // Monitor reports it as a finding too.
            let mon = run(&r, &["monitor", "--at", "2026-12-01T10:50:00Z", "--format", "json"], &[]);
            assert_eq!(mon.json()["findings"][0]["kind"], "break_glass_unreviewed", "{}", mon.all());
        }
    }
}

/// `revoke --immediately`: revoked at the provider, recorded, not re-granted, and the
/// removal prepared as a branch with the follow-up printed.
#[test]
fn revoke_now_revokes_records_and_prints_the_follow_up() {
    let r = repo();
    land(&r, "heidi", "heidi", &[("requests/heidi-sandbox.yaml", req("heidi", "2026-12-01T10:00:00Z", "2h", ""))], &[]);
    assert_eq!(run(&r, &["reconcile", "--at", "2026-12-01T10:05:00Z"], &[]).code, 0);
    assert_eq!(granted(&r).len(), 1);
    let out = run(&r, &["revoke", "heidi-sandbox", "--immediately", "--reason", "INC-9 closed"], &[]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(granted(&r).is_empty(), "revoked at the provider: {}", out.all());
    assert!(out.stdout.contains("revoked local sandbox heidi user (heidi-sandbox)"), "{}", out.stdout);
    assert!(out.stdout.contains("follow-up: branch `gitgrant/revoke-heidi-sandbox` removes requests/heidi-sandbox.yaml"), "{}", out.stdout);
    let e = ledger(&r).into_iter().find(|l| l["action"] == "revoke").unwrap();
    assert_eq!(e["sticky"], true);
    assert!(e["detail"].as_str().unwrap().contains("INC-9 closed"), "{e}");
    // The branch removes the file; main and the work tree are untouched.
    assert!(r.git(&["ls-tree", "-r", "--name-only", "gitgrant/revoke-heidi-sandbox"]).lines().all(|l| l != "requests/heidi-sandbox.yaml"));
    assert!(r.path().join("requests/heidi-sandbox.yaml").exists());
    // The next reconcile does not grant it again.
    let rec = run(&r, &["reconcile", "--at", "2026-12-01T10:40:00Z", "--format", "json"], &[]);
    assert!(granted(&r).is_empty(), "{}", rec.all());
    assert!(rec.json()["refused"][0]["reason"].as_str().unwrap().contains("with a hold"), "{}", rec.stdout);
    // Once the removal is merged, nothing is refused any more.
    r.git(&["merge", "-q", "gitgrant/revoke-heidi-sandbox"]);
    let rec = run(&r, &["reconcile", "--at", "2026-12-01T10:50:00Z", "--format", "json"], &[]);
    assert_eq!(rec.code, 0, "{}", rec.all());
    assert!(granted(&r).is_empty());
}

/// Without `--now`, with a token: the branch is pushed and the PR opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_opens_the_follow_up_pr() {
    let r = repo();
    land(&r, "heidi", "heidi", &[("requests/heidi-sandbox.yaml", req("heidi", "2026-12-01T10:00:00Z", "2h", ""))], &[]);
    let remote = tempfile::tempdir().unwrap();
    std::process::Command::new("git").args(["init", "-q", "--bare"]).arg(remote.path()).status().unwrap();
    r.git(&["remote", "add", "origin", remote.path().to_str().unwrap()]);
    let gh = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/access/pulls"))
        .and(body_partial_json(json!({"head": "gitgrant/revoke-heidi-sandbox", "base": "main"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"number": 31, "html_url": "https://github.example/acme/access/pull/31"})))
        .expect(1)
        .mount(&gh)
        .await;
    let uri = gh.uri();
    let out = run(&r, &["revoke", "heidi-sandbox", "--github-repo", "acme/access"], &[("GITHUB_TOKEN", "t0ken"), ("GITHUB_API_URL", &uri)]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("follow-up: merge PR #31 https://github.example/acme/access/pull/31"), "{}", out.stdout);
    let pushed = std::process::Command::new("git").arg("-C").arg(remote.path()).args(["branch", "--list", "gitgrant/revoke-heidi-sandbox"]).output().unwrap();
    assert!(String::from_utf8_lossy(&pushed.stdout).contains("gitgrant/revoke-heidi-sandbox"));
    assert!(r.git(&["branch", "--list", "gitgrant-ledger"]).is_empty(), "no --now: nothing recorded");
}

/// Invalid monitor rules are diagnosed with their codes at file:line.
#[test]
fn invalid_monitor_rules_are_diagnosed() {
    let r = Repo::new();
    let bad = POLICIES.replace(
        "    - { name: busy, max_events_per_hour: 100 }",
        "    - { name: busy, max_events_per_hour: 100, outside_window: true }\n    - { name: typo, roles: [usr], deny_actions: [\"iam:*\", \"no spaces\"] }",
    );
    r.write("policies/all.yaml", bad);
    r.commit("policies");
    let out = r.run(&["check", "--all", "--format", "json"]);
    assert_eq!(out.code, 2, "{}", out.all());
    let codes: Vec<(String, u64)> =
        out.json()["diagnostics"].as_array().unwrap().iter().map(|d| (d["code"].as_str().unwrap().to_string(), d["line"].as_u64().unwrap())).collect();
    assert!(codes.contains(&("GG120".into(), 33)), "{codes:?}");
    assert!(codes.contains(&("GG121".into(), 34)), "{codes:?}");
    assert!(codes.contains(&("GG120".into(), 34)), "{codes:?}");
}

// ---- CloudTrail ----

/// CloudTrail's JSON 1.1 target: the service documents the long form
/// (`com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents`);
/// the Rust SDK sends the short `CloudTrail_20131101.LookupEvents`, which the
/// service accepts too. The fake accepts both, nothing else.
const TARGET: &str = r"^(com\.amazonaws\.cloudtrail\.v20131101\.)?CloudTrail_20131101\.LookupEvents$";

/// One event as CloudTrail's LookupEvents returns it: `CloudTrailEvent` is the record as a JSON string.
fn ct_event(id: &str, time: &str, source: &str, name: &str, user: &str, arn: &str) -> Value {
    let t = DateTime::parse_from_rfc3339(time).unwrap().with_timezone(&Utc);
    let record = json!({
        "eventVersion": "1.08",
        "userIdentity": { "type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": arn, "accountId": "123456789012", "userName": user },
        "eventTime": time, "eventSource": source, "eventName": name, "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7", "userAgent": "aws-cli/2.15", "requestParameters": {}, "responseElements": null,
        "requestID": format!("req-{id}"), "eventID": id, "readOnly": false, "eventType": "AwsApiCall",
        "managementEvent": true, "recipientAccountId": "123456789012", "eventCategory": "Management"
    });
    json!({
        "EventId": id, "EventName": name, "ReadOnly": "false", "AccessKeyId": "AKIAEXAMPLE",
        "EventTime": t.timestamp() as f64, "EventSource": source, "Username": user, "Resources": [],
        "CloudTrailEvent": record.to_string()
    })
}

/// A CloudTrail fake: `pages` served in order, linked by NextToken; only
/// calls that look events up by `user` match.
async fn cloudtrail_fake(user: &str, pages: Vec<Vec<Value>>) -> MockServer {
    let server = MockServer::start().await;
    let n = pages.len();
    for (i, events) in pages.into_iter().enumerate() {
        let mut body = json!({ "Events": events });
        if i + 1 < n {
            body["NextToken"] = json!(format!("page-{}", i + 1));
        }
        let mut m = Mock::given(method("POST"))
            .and(header_regex("x-amz-target", TARGET))
            .and(body_partial_json(json!({"LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": user}]})));
        if i > 0 {
            m = m.and(body_partial_json(json!({"NextToken": format!("page-{i}")})));
        }
        // Later pages first: the first page's matcher also matches them.
        m.respond_with(ResponseTemplate::new(200).insert_header("content-type", "application/x-amz-json-1.1").set_body_json(body))
            .with_priority(if i == 0 { 5 } else { 1 })
            .expect(1)
            .mount(&server)
            .await;
    }
    server
}

fn two_pages(user: &str, arn: &str) -> Vec<Vec<Value>> {
    vec![
        vec![ct_event("ct-1", "2026-12-01T10:10:00Z", "s3.amazonaws.com", "GetObject", user, arn)],
        vec![ct_event("ct-2", "2026-12-01T10:20:00Z", "iam.amazonaws.com", "CreateAccessKey", user, arn)],
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudtrail_source_reads_every_page() {
    use gitgrant::monitor::activity::{ActivitySource, CloudTrail};
    let arn = "arn:aws:iam::123456789012:user/people/alice";
    let server = cloudtrail_fake("alice", two_pages("alice", arn)).await;
    let conf = aws_sdk_cloudtrail::Config::builder()
        .http_client(gitgrant::provider::aws_http_client())
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(server.uri())
        .credentials_provider(aws_sdk_cloudtrail::config::Credentials::new("testing", "testing", None, None, "tests"))
        .build();
    let source = CloudTrail::new(aws_sdk_cloudtrail::Client::from_conf(conf), "acct");
    let start = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap().with_timezone(&Utc);
    let events = match source.events(arn, start, start + chrono::TimeDelta::hours(1)).await {
        Ok(e) => e,
        Err(e) => {
            let seen: Vec<String> =
                server.received_requests().await.unwrap().iter().map(|q| format!("{:?} {}", q.headers, String::from_utf8_lossy(&q.body))).collect();
            panic!("{e}\nrequests: {seen:#?}");
        }
    };
    let got: Vec<(&str, &str)> = events.iter().map(|e| (e.id.as_str(), e.action.as_str())).collect();
    assert_eq!(got, vec![("ct-1", "s3:GetObject"), ("ct-2", "iam:CreateAccessKey")]);
    assert_eq!(events[1].time.to_rfc3339(), "2026-12-01T10:20:00+00:00");
    assert_eq!(events[0].principal, arn);
}

/// The aws-iam variant end to end: reconcile grants at moto, monitor reads
/// the CloudTrail fake (two pages: an allowed and a forbidden action),
/// revokes the IAM policy at moto and records it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs moto (GITGRANT_TEST_MOTO)"]
async fn monitor_revokes_aws_iam_grant_at_moto() {
    use crate::provider_aws_iam::{attached_to_user, moto, unique};
    let (iam, _) = moto();
    let id = unique("mon");
    let user = iam.create_user().user_name(format!("{id}-alice")).path("/people/").send().await.unwrap();
    let arn = user.user().unwrap().arn().to_string();
    let account = arn.split(':').nth(4).unwrap().to_string();
    let resource = format!("aws-{id}");
    let r = Repo::new();
    r.at("2026-11-20T10:00:00Z");
    r.write(
        "policies/all.yaml",
        format!(
            r#"
groups:
  sre: {{ members: [alice] }}
  managers: {{ members: [frank] }}
identities:
  alice: {{ aws: "{arn}" }}
  frank: {{}}
resources:
  {resource}: {{ provider: aws-iam, environment: production, sensitivity: low, config: {{ account_id: "{account}" }} }}
roles:
  ops-read:
    privilege: read
    max_duration: 8h
    eligible: [sre]
    grants: {{ aws-iam: {{ policy_template: aws/readonly.json.j2 }} }}
risk:
  tiers:
    - {{ name: auto, max_score: 100, approvals: [] }}
policy_changes:
  approvals: [ {{ from: [managers], count: 1 }} ]
monitor:
  rules:
    - {{ name: no-iam, deny_actions: ["iam:*"], revoke: true }}
"#
        ),
    );
    r.copy_dir("templates");
    r.commit("bootstrap policies");
    let body = format!(
        "requester: alice\nrole: ops-read\nresources: [{resource}]\nstart: 2026-12-01T10:00:00Z\nduration: 2h\nreason: \"INC-7: investigate the backlog\"\n"
    );
    land(&r, "alice", "alice", &[("requests/alice-ops.yaml", body)], &[]);
    let user_name = format!("{id}-alice");
    let ct = cloudtrail_fake(&user_name, two_pages(&user_name, &arn)).await;
    let moto_url = std::env::var("GITGRANT_TEST_MOTO").unwrap();
    let ct_url = ct.uri();
    let env = [
        ("AWS_ENDPOINT_URL", moto_url.as_str()),
        ("AWS_ENDPOINT_URL_CLOUDTRAIL", ct_url.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    let rec = run(&r, &["reconcile", "--at", "2026-12-01T10:05:00Z"], &env);
    assert_eq!(rec.code, 0, "{}", rec.all());
    assert_eq!(attached_to_user(&iam, &arn).await.len(), 1, "granted at moto");
    let mon = run(&r, &["monitor", "--at", "2026-12-01T10:30:00Z", "--format", "json"], &env);
    assert_eq!(mon.code, 1, "{}", mon.all());
    let doc = mon.json();
    assert_eq!(doc["findings"].as_array().unwrap().len(), 1, "{doc:#}");
    assert_eq!(doc["findings"][0]["events"][0]["id"], "ct-2");
    assert_eq!(doc["findings"][0]["events"][0]["action"], "iam:CreateAccessKey");
    assert_eq!(doc["revocations"][0]["ok"], true, "{doc:#}");
    assert!(attached_to_user(&iam, &arn).await.is_empty(), "revoked at moto");
    let lines = ledger(&r);
    let revoke = lines.iter().rev().find(|l| l["action"] == "revoke").unwrap();
    assert_eq!(revoke["sticky"], true);
    assert!(revoke["detail"].as_str().unwrap().contains("ct-2"), "{revoke}");
}

/// Issue 14, what broke 7: a failed webhook delivery marked the finding as
/// sent and the next run sent nothing. Now the finding goes through the
/// notification stream: retried on the next run, then never again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_finding_delivery_is_retried_next_run_once() {
    let r = repo();
    land(&r, "heidi", "heidi", &[("requests/heidi_sandbox.yaml", req("heidi", "2026-12-01T10:00:00Z", "2h", ""))], &[]);
    assert_eq!(run(&r, &["reconcile", "--at", "2026-12-01T10:05:00Z"], &[]).code, 0);
    activity(&r, &[("ev-2", "2026-12-01T10:20:00Z", "heidi", "iam:CreateUser")]);
    let hooks = MockServer::start().await;
    Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(503)).up_to_n_times(1).with_priority(1).mount(&hooks).await;
    Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(200)).with_priority(5).mount(&hooks).await;
    let hook = format!("{}/hook", hooks.uri());
    let m0 = run(&r, &["monitor", "--at", "2026-12-01T10:30:00Z", "--webhook", &hook, "--plain-git"], &[]);
    assert_eq!(m0.code, 1, "a new finding exits 1: {}", m0.all());
    assert!(
        m0.stderr.contains("warning: notification: sink `monitor-webhook`: event monitor_finding:heidi_sandbox:")
            && m0.stderr.contains("HTTP 503; retried on the next run"),
        "{}",
        m0.all()
    );
    assert_eq!(hooks.received_requests().await.unwrap().len(), 1);

    // The next run finds nothing new, but delivers the finding it could not.
    let m1 = run(&r, &["monitor", "--at", "2026-12-01T10:40:00Z", "--webhook", &hook, "--plain-git"], &[]);
    assert!(!m1.stderr.contains("notification"), "{}", m1.all());
    let got = hooks.received_requests().await.unwrap();
    assert_eq!(got.len(), 2, "retried once");
    let body: Value = serde_json::from_slice(&got[1].body).unwrap();
    assert!(body["text"].as_str().unwrap().starts_with("monitor finding (revoke) on heidi_sandbox"), "{body}");

    let m2 = run(&r, &["monitor", "--at", "2026-12-01T10:50:00Z", "--webhook", &hook, "--plain-git"], &[]);
    assert!(!m2.stderr.contains("notification"), "{}", m2.all());
    assert_eq!(hooks.received_requests().await.unwrap().len(), 2, "never sent again after a 2xx");
}
