#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::model::Duration;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn grant(end: &str) -> Grant {
    Grant { request: "2026-12-01-alice-db".into(), requester: "alice".into(), role: "db-readonly".into(), resources: vec!["orders-db".into()], end: t(end) }
}

fn warning() -> Event {
    expiring_soon(&grant("2026-12-01T12:00:00Z"), t("2026-12-01T11:45:00Z"), Duration::from_secs(1800), Duration::from_secs(3600)).unwrap()
}

fn sink(server: &MockServer, name: &str, format: Format) -> Webhook {
    Webhook { name: name.into(), url: format!("{}/hook", server.uri()), format, timeout: std::time::Duration::from_millis(500) }
}

#[test]
fn expiring_soon_names_the_exact_extend_command_and_has_a_stable_id() {
    let e = warning();
    assert_eq!(e.kind, Kind::ExpiringSoon { extend_command: "gitgrant extend 2026-12-01-alice-db --by 1h".into() });
    assert_eq!(e.id, "expiring_soon:2026-12-01-alice-db:20261201T120000Z");
    assert_eq!(warning().id, e.id, "the same on every run");
    let early = expiring_soon(&grant("2026-12-01T12:00:00Z"), t("2026-12-01T10:00:00Z"), Duration::from_secs(1800), Duration::from_secs(3600));
    assert!(early.is_none(), "outside the lead time");
}

#[test]
fn slack_text_cannot_ping_or_link() {
    assert_eq!(slack_escape("<!channel> <@U123> <http://x|click> a&b\nnext"), "&lt;!channel&gt; &lt;@U123&gt; &lt;http://x|click&gt; a&amp;b next");
    assert!(!slack_escape("a_b*c").contains('\\'), "no backslash escapes");
}

#[test]
fn the_json_payload_is_versioned() {
    let v = json_payload(&warning());
    assert_eq!(v["schema"], SCHEMA);
    assert_eq!(v["event"]["kind"], "expiring_soon");
    assert_eq!(v["event"]["extend_command"], "gitgrant extend 2026-12-01-alice-db --by 1h");
    assert_eq!(v["event"]["id"], "expiring_soon:2026-12-01-alice-db:20261201T120000Z");
}

#[tokio::test]
async fn delivered_once_after_a_2xx_and_retried_after_a_500() {
    let ok = MockServer::start().await;
    Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(200)).mount(&ok).await;
    let bad = MockServer::start().await;
    Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(500)).up_to_n_times(1).mount(&bad).await;
    Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(204)).mount(&bad).await;
    let sinks = [sink(&ok, "slack", Format::Slack), sink(&bad, "json", Format::Json)];
    let client = crate::http_client().unwrap();
    let mut outbox = Outbox::default();

    let first = deliver(&[warning()], &sinks, &mut outbox, &client).await;
    assert_eq!(first.sent, ["slack/expiring_soon:2026-12-01-alice-db:20261201T120000Z"]);
    assert_eq!(first.failed, ["json/expiring_soon:2026-12-01-alice-db:20261201T120000Z: HTTP 500"]);

    // The outbox survives the run (serialised), and the next run retries only the failure.
    let mut outbox = Outbox::from_json(&outbox.to_json()).unwrap();
    let second = deliver(&[warning()], &sinks, &mut outbox, &client).await;
    assert_eq!((second.sent.len(), second.skipped, second.failed.len()), (1, 1, 0), "{second:?}");
    assert_eq!(ok.received_requests().await.unwrap().len(), 1, "never sent twice to a sink that took it");
    let body: serde_json::Value = ok.received_requests().await.unwrap()[0].body_json().unwrap();
    assert!(body["text"].as_str().unwrap().contains("to extend: gitgrant extend 2026-12-01-alice-db --by 1h"), "{body}");
}

#[tokio::test]
async fn a_timeout_is_a_failure_to_retry() {
    let slow = MockServer::start().await;
    Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(3))).mount(&slow).await;
    let mut outbox = Outbox::default();
    let d = deliver(&[warning()], &[sink(&slow, "json", Format::Json)], &mut outbox, &crate::http_client().unwrap()).await;
    assert_eq!(d.failed.len(), 1, "{d:?}");
    assert!(d.failed[0].contains("no answer within"), "{d:?}");
    assert!(outbox.delivered.is_empty());
}

mod derivation {
    use super::t;
    use crate::ledger::{Approver, Entry};
    use crate::model::Duration;
    use crate::model::policy::{BreakGlass, Group, Origin, Policy};
    use crate::notify::stream::{self, HORIZON_HOURS, github_body};
    use crate::notify::{Kind, headline, json_payload, slack_payload};
    use crate::reconcile::desired::{Evidence, Landing};

    fn policy() -> Policy {
        let mut p = Policy::default();
        let members = ["dave", "erin"].iter().map(|s| s.to_string()).collect();
        p.groups.insert("security".into(), Group { members, github_team: None, origin: Origin { file: String::new(), pos: crate::diag::Pos::FILE } });
        p.break_glass = Some(BreakGlass {
            approvals: vec![],
            max_duration: Duration::from_secs(7200),
            review_within: Duration::from_secs(1800),
            reviewers: vec!["security".into()],
        });
        p
    }

    fn landing(id: &str, time: &str) -> Landing {
        Landing {
            request: id.into(),
            requester: "heidi".into(),
            role: "user".into(),
            resources: vec!["sandbox".into()],
            time: t(time),
            end: t("2026-12-01T12:00:00Z"),
            evidence: Evidence {
                landing_commit: "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c".into(),
                approvers: vec![Approver { login: "Alice".into(), commit: "c".into() }, Approver { login: "alice".into(), commit: "d".into() }],
                pr: Some(7),
                ..Evidence::default()
            },
        }
    }

    fn grant_line() -> Entry {
        Entry {
            time: t("2026-12-01T10:05:00Z"),
            action: "grant".into(),
            request: "heidi-bg".into(),
            requester: "heidi".into(),
            role: "user".into(),
            resources: vec!["sandbox".into()],
            resource: Some("sandbox".into()),
            pr: Some(7),
            break_glass: true,
            end: Some(t("2026-12-01T12:00:00Z")),
            result: "ok".into(),
            ..Entry::default()
        }
    }

    fn overdue_refusal(time: &str) -> Entry {
        let reason = crate::monitor::breakglass::overdue_reason("heidi-bg", t("2026-12-01T10:30:00Z"), &policy());
        Entry {
            time: t(time),
            action: "verify-failed".into(),
            request: "heidi-bg".into(),
            requester: "heidi".into(),
            role: "user".into(),
            resources: vec!["sandbox".into()],
            result: "refused".into(),
            detail: reason,
            ..Entry::default()
        }
    }

    #[test]
    fn landed_is_one_event_per_request_and_landing_within_the_horizon() {
        let at = t("2026-12-01T10:05:00Z");
        let since = at - chrono::Duration::hours(HORIZON_HOURS);
        let old = landing("old", "2026-11-20T10:00:00Z");
        let future = landing("future", "2026-12-01T11:00:00Z");
        let recent = landing("heidi-bg", "2026-12-01T10:00:00Z");
        let events = stream::landed(&[old, recent.clone(), recent.clone(), future], since, at);
        assert_eq!(events.len(), 1, "old landings do not flood, a duplicate is one event: {events:?}");
        let e = &events[0];
        assert_eq!(e.id, "landed:heidi-bg:20261201T100000Z");
        assert_eq!(e.kind, Kind::Landed { commit: "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c".into(), approvers: vec!["alice".into()] });
        assert_eq!((e.pr, e.at, e.end), (Some(7), t("2026-12-01T10:00:00Z"), Some(t("2026-12-01T12:00:00Z"))));
        // A later run derives the same id (the outbox then skips it); a new landing is a new event.
        assert_eq!(stream::landed(std::slice::from_ref(&recent), since, t("2026-12-01T11:00:00Z"))[0].id, e.id);
        let changed = landing("heidi-bg", "2026-12-01T10:40:00Z");
        assert_eq!(stream::landed(&[changed], since, t("2026-12-01T11:00:00Z"))[0].id, "landed:heidi-bg:20261201T104000Z");
    }

    #[test]
    fn an_unratified_break_glass_refusal_is_break_glass_overdue_naming_the_reviewers() {
        let entries = [grant_line(), overdue_refusal("2026-12-01T10:45:00Z")];
        let events = stream::from_ledger(&entries, t("2026-12-01T00:00:00Z"), &policy());
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
        assert_eq!(kinds, ["break_glass_opened", "granted", "break_glass_overdue"], "no generic `refused` beside it");
        let e = &events[2];
        assert_eq!(
            e.kind,
            Kind::BreakGlassOverdue {
                review_by: t("2026-12-01T10:30:00Z"),
                reviewer_groups: vec!["security".into()],
                reviewers: vec!["dave".into(), "erin".into()]
            }
        );
        assert_eq!(e.id, "break_glass_overdue:heidi-bg:20261201T103000Z", "keyed by when the review was due");
        assert_eq!(e.pr, Some(7), "the PR of the grant, for the GitHub sink");
        assert_eq!(e.at, t("2026-12-01T10:45:00Z"));
    }

    #[test]
    fn monitors_finding_for_it_is_the_same_event_and_other_findings_stay_findings() {
        let refusal = overdue_refusal("2026-12-01T10:45:00Z");
        let finding = Entry {
            time: t("2026-12-01T10:50:00Z"),
            action: "finding".into(),
            result: "revoke".into(),
            detail: format!("[break_glass.review_within/heidi-bg/sandbox/-] rule `break_glass.review_within`: {}. Evidence: ", refusal.detail),
            ..refusal.clone()
        };
        let forged = Entry { detail: format!("[busy/heidi-bg/sandbox/e1] rule `busy`: 120 events. Evidence: e1 at x: {}", refusal.detail), ..finding.clone() };
        let from_monitor = stream::from_ledger(&[grant_line(), finding.clone(), forged], t("2026-12-01T00:00:00Z"), &policy());
        let from_reconcile = stream::from_ledger(&[grant_line(), refusal], t("2026-12-01T00:00:00Z"), &policy());
        assert_eq!(from_monitor[2].id, from_reconcile[2].id, "one id, so a sink gets it once whichever command noticed first");
        assert_eq!(from_monitor[3].kind.name(), "monitor_finding", "text quoted from activity evidence is never taken for a ratification refusal");
        assert_eq!(from_monitor.len(), 4);
        // Without break_glass in the policies any more: still overdue, addressed to the policy owners.
        let bare = stream::from_ledger(&[finding], t("2026-12-01T00:00:00Z"), &Policy::default());
        assert!(headline(&bare[0]).contains("Reviewers who must act: the policy owners"), "{}", headline(&bare[0]));
    }

    /// What a person reads for the two kinds, in each sink, with hostile
    /// text in the fields a request controls.
    #[test]
    fn rendered_messages() {
        let at = t("2026-12-01T10:05:00Z");
        let mut l = landing("heidi-bg", "2026-12-01T10:00:00Z");
        l.role = "<!channel> *user* @ops".into();
        let landed = stream::landed(&[l], at - chrono::Duration::hours(HORIZON_HOURS), at).remove(0);
        let mut refusal = overdue_refusal("2026-12-01T10:45:00Z");
        refusal.requester = "heidi <@U1>".into();
        let overdue = stream::from_ledger(&[grant_line(), refusal], t("2026-12-01T00:00:00Z"), &policy()).remove(2);
        for (name, e) in [("landed", &landed), ("break_glass_overdue", &overdue)] {
            let slack = slack_payload(e)["text"].as_str().unwrap_or_default().to_string();
            assert!(!slack.contains('<') && !slack.contains('>'), "{slack}");
            let github = github_body(e);
            assert!(!github.contains('\n') && !github.contains("@ops") && !github.contains("*user*"), "{github}");
            insta::assert_snapshot!(format!("{name}-slack"), slack);
            insta::assert_snapshot!(format!("{name}-github"), github);
            insta::assert_json_snapshot!(format!("{name}-json"), json_payload(e));
        }
    }
}
