//! Faults at the providers: an endpoint that accepts connections and never
//! answers. Regression test for issue 14 ("What broke" 2): one stuck
//! provider must not delay revocations elsewhere, and what completed is
//! recorded.

use std::time::{Duration, Instant};

use crate::provider_postgres::Fixture;
use crate::reconcile::{land, ledger};
use crate::support::{Out, Repo, run_in_env};

const DSN_ENV: &str = "FAULTS_ORDERS_DB_DSN";

/// A TCP listener on 127.0.0.1 that accepts every connection and never
/// answers (held open until the test ends). Returns its `http://` address.
pub(crate) fn black_hole() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    format!("http://{addr}")
}

fn policies(fx: &Fixture) -> String {
    format!(
        r#"
groups:
  sre: {{ members: [alice] }}
  managers: {{ members: [frank] }}
identities:
  alice: {{ postgres: {pg}, aws: "arn:aws:iam::123456789012:user/alice" }}
  frank: {{}}
resources:
  orders-db: {{ provider: postgres, environment: production, sensitivity: high, config: {{ dsn_env: {DSN_ENV}, admin_role: {admin} }} }}
  aws-prod: {{ provider: aws-iam, environment: production, sensitivity: high, config: {{ account_id: "123456789012" }} }}
roles:
  ops-read:
    privilege: read
    max_duration: 8h
    eligible: [sre]
    grants:
      postgres: {{ role: {role} }}
      aws-iam: {{ managed_policy_arn: "arn:aws:iam::aws:policy/ReadOnlyAccess" }}
risk:
  factors:
    sensitivity: {{ low: 0, high: 25 }}
    privilege: {{ read: 0, admin: 30 }}
  tiers:
    - {{ name: auto, max_score: 10, approvals: [] }}
    - {{ name: managed, max_score: 100, approvals: [ {{ from: [managers], count: 1 }} ] }}
policy_changes:
  approvals: [ {{ from: [managers], count: 1 }} ]
"#,
        pg = fx.principal,
        admin = fx.admin,
        role = fx.role,
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL (GITGRANT_TEST_PG)"]
async fn a_hung_aws_endpoint_does_not_stop_a_postgres_revoke_and_the_run_is_bounded() {
    let fx = Fixture::new(true).await;
    let repo = Repo::new();
    repo.at("2026-11-20T10:00:00Z");
    repo.write("policies/all.yaml", policies(&fx));
    repo.commit("bootstrap policies");
    let body =
        "requester: alice\nrole: ops-read\nresources: [orders-db, aws-prod]\nstart: 2026-12-01T10:00:00Z\nduration: 1h\nreason: \"INC-7: read the orders\"\n";
    land(&repo, "alice-ops", "alice", &[("requests/alice-ops.yaml", body.to_string())], &["frank"]);
    let hole = black_hole();
    let dsn = fx.dsn_as(&fx.login);
    let run = |at: &str| -> (Out, Duration) {
        let env = [
            (DSN_ENV, dsn.as_str()),
            ("AWS_ENDPOINT_URL", hole.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("GITGRANT_RETRY_BASE_MS", "10"),
        ];
        let started = Instant::now();
        let out = run_in_env(repo.path(), &["reconcile", "--at", at, "--deadline", "8"], &env);
        (out, started.elapsed())
    };

    // Granting: PostgreSQL is granted and recorded while AWS hangs.
    let (t0, took) = run("2026-12-01T10:05:00Z");
    assert_eq!(t0.code, 1, "{}", t0.all());
    assert!(took < Duration::from_secs(30), "bounded by the run deadline, took {took:?}");
    assert!(t0.all().contains("aws-iam aws-prod") && t0.all().contains("did not finish within"), "the stuck provider is named:\n{}", t0.all());
    assert_eq!(fx.memberships_of(&fx.principal).await.len(), 1, "{}", t0.all());

    // The request has ended: PostgreSQL is revoked and recorded, AWS still reported.
    let (t1, took) = run("2026-12-01T11:10:00Z");
    assert_eq!(t1.code, 1, "{}", t1.all());
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(fx.memberships_of(&fx.principal).await.is_empty(), "the ended PostgreSQL grant is revoked despite the hung AWS endpoint:\n{}", t1.all());
    assert!(t1.all().contains("aws-iam aws-prod"), "{}", t1.all());
    let l = ledger(&repo);
    let of = |action: &str| l.iter().filter(|e| e["action"] == action && e["resource"] == "orders-db").count();
    assert_eq!((of("grant"), of("revoke")), (1, 1), "{l:#?}");
    let revoke = l.iter().find(|e| e["action"] == "revoke").unwrap();
    assert_eq!(revoke["late_by"], "10m", "{revoke}");
}

/// How [`fault_server`] answers every request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fault {
    /// A proxy's HTML error page with status 503.
    Html503,
    /// AWS throttling (400 with a `Throttling` error document).
    Throttle,
    /// Close the connection right after reading the request.
    Drop,
}

/// An HTTP endpoint on 127.0.0.1 that answers every request with `fault`;
/// returns its address and a counter of the requests it saw.
pub(crate) fn fault_server(fault: Fault) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(s.try_clone().unwrap());
                loop {
                    // One request: headers, then a Content-Length body.
                    let mut len = 0usize;
                    let mut line = String::new();
                    let mut any = false;
                    while reader.read_line(&mut line).unwrap_or(0) > 0 {
                        any = true;
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        line.clear();
                    }
                    if !any {
                        return;
                    }
                    let mut body = vec![0; len];
                    let _ = reader.read_exact(&mut body);
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let (status, ctype, body) = match fault {
                        Fault::Drop => return,
                        Fault::Html503 => ("503 Service Unavailable", "text/html", "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.</body></html>".to_string()),
                        Fault::Throttle => (
                            "400 Bad Request",
                            "text/xml",
                            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>".to_string(),
                        ),
                    };
                    let resp = format!("HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                    if s.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn aws_only_repo() -> Repo {
    let repo = Repo::new();
    repo.at("2026-11-20T10:00:00Z");
    let policies = r#"
groups:
  sre: { members: [alice] }
identities:
  alice: { aws: "arn:aws:iam::123456789012:user/alice" }
resources:
  sandbox: { provider: local, environment: staging, sensitivity: low, config: { state: state/grants.json } }
  aws-prod: { provider: aws-iam, environment: staging, sensitivity: low, config: { account_id: "123456789012" } }
roles:
  ops-read:
    privilege: read
    max_duration: 8h
    eligible: [sre]
    grants:
      local: { role: user }
      aws-iam: { managed_policy_arn: "arn:aws:iam::aws:policy/ReadOnlyAccess" }
risk:
  factors:
    sensitivity: { low: 0, high: 25 }
    privilege: { read: 0, admin: 30 }
  tiers:
    - { name: auto, max_score: 100, approvals: [] }
policy_changes:
  approvals: [ { from: [sre], count: 1 } ]
"#;
    repo.write("policies/all.yaml", policies);
    repo.commit("bootstrap policies");
    let body =
        "requester: alice\nrole: ops-read\nresources: [sandbox, aws-prod]\nstart: 2026-12-01T10:00:00Z\nduration: 1h\nreason: \"INC-8: read the logs\"\n";
    land(&repo, "alice-ops", "alice", &[("requests/alice-ops.yaml", body.to_string())], &[]);
    repo
}

fn run_against(repo: &Repo, endpoint: &str) -> Out {
    let env = [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("GITGRANT_RETRY_BASE_MS", "1"),
    ];
    run_in_env(repo.path(), &["reconcile", "--at", "2026-12-01T10:05:00Z", "--attempts", "3", "--deadline", "20"], &env)
}

/// Issue 14, what broke 9: a 503 HTML page is reported with its status and
/// a body excerpt, not as "Unknown: "; it is retried; the other resource is
/// granted and recorded in the same run.
#[test]
fn a_503_html_page_is_reported_with_its_status_retried_and_isolated() {
    let repo = aws_only_repo();
    let (endpoint, seen) = fault_server(Fault::Html503);
    let out = run_against(&repo, &endpoint);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.all().contains("HTTP 503: 503 Service Unavailable No server is available to handle this request. (transient)"), "{}", out.all());
    assert!(!out.all().contains("Unknown: "), "{}", out.all());
    assert!(seen.load(std::sync::atomic::Ordering::SeqCst) >= 3, "retried");
    let l = ledger(&repo);
    assert_eq!(l.iter().filter(|e| e["action"] == "grant" && e["resource"] == "sandbox").count(), 1, "{l:#?}");
}

/// Throttling and dropped connections are transient: retried, then reported
/// by provider and resource, and the other resource still completes.
#[test]
fn throttling_and_dropped_connections_are_retried_and_reported_by_resource() {
    for fault in [Fault::Throttle, Fault::Drop] {
        let repo = aws_only_repo();
        let (endpoint, seen) = fault_server(fault);
        let out = run_against(&repo, &endpoint);
        assert_eq!(out.code, 1, "{fault:?}: {}", out.all());
        assert!(out.all().contains("aws-iam aws-prod") && out.all().contains("(transient)"), "{fault:?}: {}", out.all());
        assert!(seen.load(std::sync::atomic::Ordering::SeqCst) >= 3, "{fault:?}: retried");
        assert_eq!(crate::reconcile::grants(&repo).len(), 1, "{fault:?}: the local grant is made");
    }
}
