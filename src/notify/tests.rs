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
