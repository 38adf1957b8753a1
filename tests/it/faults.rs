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
