//! The postgres provider against a real PostgreSQL (GITGRANT_TEST_PG, a
//! superuser DSN). Each test makes its own database and roles with unique
//! names, set up with exactly the SQL the provider tells a DBA to run, and
//! connects the provider as that least-privileged login. Assertions read
//! `pg_auth_members` and `pg_stat_activity` directly, not through the provider.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use gitgrant::model::policy::{Origin, ProviderKind, Resource, Sensitivity};
use gitgrant::provider::postgres::{PostgresProvider, setup_sql};
use gitgrant::provider::{Access, GrantSpec, Held, Provider, ProviderContext, ProviderError};
use tokio_postgres::{Client, NoTls};

const DSN_ENV: &str = "TEST_ORDERS_DB_DSN";

fn base_dsn() -> String {
    std::env::var("GITGRANT_TEST_PG").expect("GITGRANT_TEST_PG must hold a superuser libpq DSN, e.g. `host=127.0.0.1 port=5432 user=postgres dbname=postgres`")
}

async fn connect(dsn: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(dsn, NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

/// The test's own identifier quoting, independent of the provider's.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, serde_json::Value> {
    pairs.iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string()))).collect()
}

/// A fresh database with a role to grant, a principal, a grantor role and a
/// connecting login, dropped again (even when the test panics).
pub(crate) struct Fixture {
    pub(crate) base: String,
    pub(crate) db: String,
    pub(crate) sfx: String,
    pub(crate) admin: String,
    pub(crate) login: String,
    pub(crate) role: String,
    pub(crate) principal: String,
    /// Roles to drop at the end, members before the roles they belong to.
    roles: std::sync::Mutex<Vec<String>>,
    pub(crate) su: Client,
}

impl Fixture {
    /// `precreate_schema`: run the documented setup SQL (which creates the
    /// marker schema); otherwise leave the schema to the provider and give
    /// the login CREATE on the database instead.
    pub(crate) async fn new(precreate_schema: bool) -> Fixture {
        static N: AtomicU32 = AtomicU32::new(0);
        let sfx = format!("{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
        let base = base_dsn();
        let db = format!("gg_test_{sfx}");
        let root = connect(&base).await.unwrap();
        root.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await.unwrap();
        root.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
        let su = connect(&format!("{base} dbname={db}")).await.unwrap();
        let fx = Fixture {
            db,
            admin: format!("gg_admin_{sfx}"),
            login: format!("gg_login_{sfx}"),
            role: format!("gg_ro_{sfx}"),
            principal: format!("gg_alice_{sfx}"),
            roles: std::sync::Mutex::new(Vec::new()),
            su,
            base,
            sfx,
        };
        fx.create_role(&fx.principal, true).await;
        fx.create_role(&fx.login, true).await;
        fx.create_role(&fx.role, false).await;
        fx.remember(&fx.admin);
        let mut sql = setup_sql(&fx.admin, &fx.login, &[&fx.role]);
        if !precreate_schema {
            sql = sql.lines().filter(|l| !l.starts_with("CREATE SCHEMA")).collect::<Vec<_>>().join("\n");
            sql.push_str(&format!("\nGRANT CREATE ON DATABASE {} TO {};", fx.db, quote_ident(&fx.login)));
        }
        fx.su.batch_execute(&sql).await.unwrap();
        // Something only the granted role may read, to show the grant is real.
        fx.su
            .batch_execute(&format!("CREATE TABLE secret (x int); INSERT INTO secret VALUES (42); GRANT SELECT ON secret TO {}", quote_ident(&fx.role)))
            .await
            .unwrap();
        fx
    }

    fn remember(&self, name: &str) {
        self.roles.lock().unwrap().push(name.to_string());
    }

    /// Creates a role (dropped at the end, before the fixture's own roles).
    pub(crate) async fn create_role(&self, name: &str, login: bool) {
        self.su
            .batch_execute(&format!("DROP ROLE IF EXISTS {q}; CREATE ROLE {q} {}", if login { "LOGIN" } else { "NOLOGIN" }, q = quote_ident(name)))
            .await
            .unwrap();
        self.roles.lock().unwrap().insert(0, name.to_string());
    }

    pub(crate) fn dsn_as(&self, user: &str) -> String {
        format!("{} user='{}' dbname={}", self.base, user.replace('\\', "\\\\").replace('\'', "\\'"), self.db)
    }

    fn provider_with(&self, resource: &str, admin: &str) -> PostgresProvider {
        let dsn = self.dsn_as(&self.login);
        PostgresProvider::new(
            resource,
            &config(&[("dsn_env", DSN_ENV), ("admin_role", admin)]),
            |k| (k == DSN_ENV).then(|| dsn.clone()),
            at("2026-09-21T08:00:00Z"),
        )
        .unwrap()
    }

    fn provider(&self) -> PostgresProvider {
        self.provider_with("orders-db", &self.admin)
    }

    fn access(&self, principal: &str, role: &str) -> Access {
        Access { provider: ProviderKind::Postgres, resource: "orders-db".into(), principal: principal.into(), access: role.into() }
    }

    fn spec_for(&self, principal: &str, role: &str, requests: &[&str], end: &str) -> GrantSpec {
        GrantSpec {
            access: self.access(principal, role),
            requests: requests.iter().map(|r| r.to_string()).collect(),
            end: at(end),
            role: "db-readonly".into(),
            grant: serde_json::json!({ "role": role }),
            document: None,
        }
    }

    fn spec(&self, requests: &[&str], end: &str) -> GrantSpec {
        self.spec_for(&self.principal, &self.role, requests, end)
    }

    fn held(&self) -> Held {
        Held { access: self.access(&self.principal, &self.role), requests: BTreeSet::new(), end: None, handle: String::new() }
    }

    /// (role, grantor) of every membership of `member`, read from the catalog.
    pub(crate) async fn memberships_of(&self, member: &str) -> Vec<(String, String)> {
        let rows = self
            .su
            .query(
                "SELECT r.rolname::text, g.rolname::text FROM pg_auth_members am
                 JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member JOIN pg_roles g ON g.oid = am.grantor
                 WHERE m.rolname = $1 ORDER BY 1, 2",
                &[&member],
            )
            .await
            .unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    }

    async fn memberships(&self) -> Vec<(String, String)> {
        self.memberships_of(&self.principal).await
    }

    async fn marker_rows(&self) -> i64 {
        self.su.query_one("SELECT count(*) FROM gitgrant.grants", &[]).await.unwrap().get(0)
    }

    /// A session of the principal that switched to the granted role and read with it.
    async fn set_role_session(&self) -> Client {
        let c = connect(&self.dsn_as(&self.principal)).await.unwrap();
        c.batch_execute(&format!("SET ROLE {}", quote_ident(&self.role))).await.unwrap();
        let x: i32 = c.query_one("SELECT x FROM secret", &[]).await.unwrap().get(0);
        assert_eq!(x, 42);
        c
    }

    async fn server_version(&self) -> i32 {
        let v: String = self.su.query_one("SHOW server_version_num", &[]).await.unwrap().get(0);
        v.parse().unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let (base, db) = (self.base.clone(), self.db.clone());
        let roles = std::mem::take(&mut *self.roles.lock().unwrap_or_else(|e| e.into_inner()));
        // Drop runs inside the test's runtime: clean up on a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let c = connect(&base).await.unwrap();
                c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await.unwrap();
                for r in roles {
                    c.batch_execute(&format!("DROP ROLE IF EXISTS {}", quote_ident(&r))).await.unwrap();
                }
            })
        })
        .join();
    }
}

/// Polls `cond` for up to 5 s.
async fn eventually<F: AsyncFn() -> bool>(cond: F) -> bool {
    for _ in 0..50 {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
#[ignore = "needs PostgreSQL (GITGRANT_TEST_PG)"]
async fn grant_records_the_admin_role_as_grantor_and_list_reads_the_marker() {
    let fx = Fixture::new(false).await; // the provider creates the marker schema itself
    let p = fx.provider();
    assert!(p.list().await.unwrap().is_empty());

    let held = p.grant(&fx.spec(&["req-1"], "2026-09-21T16:00:00Z")).await.unwrap();

    assert_eq!(fx.memberships().await, vec![(fx.role.clone(), fx.admin.clone())]);
    let marker = fx.su.query_one("SELECT resource, principal, role, requests, end_at = '2026-09-21T16:00:00Z' FROM gitgrant.grants", &[]).await.unwrap();
    assert_eq!(marker.get::<_, String>(0), "orders-db");
    assert_eq!(marker.get::<_, String>(1), fx.principal);
    assert_eq!(marker.get::<_, String>(2), fx.role);
    assert_eq!(marker.get::<_, Vec<String>>(3), vec!["req-1".to_string()]);
    assert!(marker.get::<_, bool>(4));

    let listed = p.list().await.unwrap();
    assert_eq!(listed, vec![held.clone()]);
    assert_eq!(listed[0].requests, BTreeSet::from(["req-1".to_string()]));
    assert_eq!(listed[0].end, Some(at("2026-09-21T16:00:00Z")));
    assert_eq!(listed[0].access, fx.access(&fx.principal, &fx.role));

    // The membership is real: the principal can now use the role.
    fx.set_role_session().await;
    // The connecting login acts through a NOINHERIT admin role: it cannot read with the role it grants.
    let login = connect(&fx.dsn_as(&fx.login)).await.unwrap();
    let denied = login.query_one("SELECT x FROM secret", &[]).await.unwrap_err();
    assert_eq!(denied.code().map(|c| c.code()), Some("42501"), "{denied:?}");
    assert!(!p.native_expiry());
    assert!(p.marker().contains(&fx.admin), "{}", p.marker());
}

#[tokio::test]
#[ignore = "needs PostgreSQL (GITGRANT_TEST_PG)"]
async fn grant_is_idempotent_and_overlapping_requests_share_one_membership() {
    let fx = Fixture::new(true).await;
    let p = fx.provider();
    p.grant(&fx.spec(&["req-1"], "2026-09-21T12:00:00Z")).await.unwrap();
    p.grant(&fx.spec(&["req-1"], "2026-09-21T12:00:00Z")).await.unwrap();
    assert_eq!(fx.memberships().await.len(), 1);

    // A second request for the same role shares the membership; the end is the latest.
    assert_eq!(p.access_for("req-2", &serde_json::json!({"role": fx.role})).unwrap(), fx.role);
    p.grant(&fx.spec(&["req-1", "req-2"], "2026-09-21T18:00:00Z")).await.unwrap();
    let listed = p.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].requests, BTreeSet::from(["req-1".to_string(), "req-2".to_string()]));
    assert_eq!(listed[0].end, Some(at("2026-09-21T18:00:00Z")));

    // req-1 ends: the membership stays for req-2.
    p.grant(&fx.spec(&["req-2"], "2026-09-21T18:00:00Z")).await.unwrap();
    assert_eq!(fx.memberships().await, vec![(fx.role.clone(), fx.admin.clone())]);
    let listed = p.list().await.unwrap();
    assert_eq!(listed[0].requests, BTreeSet::from(["req-2".to_string()]));
    assert_eq!(fx.marker_rows().await, 1);
}

#[tokio::test]
#[ignore = "needs PostgreSQL (GITGRANT_TEST_PG)"]
async fn revoke_removes_the_membership_and_ends_set_role_sessions() {
    let fx = Fixture::new(true).await;
    let p = fx.provider();
    let held = p.grant(&fx.spec(&["req-1"], "2026-09-21T16:00:00Z")).await.unwrap();
    let session = fx.set_role_session().await;

    p.revoke(&held).await.unwrap();

    assert!(fx.memberships().await.is_empty());
    assert_eq!(fx.marker_rows().await, 0);
    assert!(p.list().await.unwrap().is_empty());
    // Without the termination this session would still read as the role.
    assert!(eventually(async || session.simple_query("SELECT x FROM secret").await.is_err()).await, "the SET ROLE session survived the revoke");
    assert!(session.is_closed());
    let principal = fx.principal.clone();
    let su = &fx.su;
    assert!(
        eventually(async || {
            let n: i64 = su.query_one("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", &[&principal]).await.unwrap().get(0);
            n == 0
        })
        .await
    );
    // A new session cannot take the role any more.
    let fresh = connect(&fx.dsn_as(&fx.principal)).await.unwrap();
    let err = fresh.batch_execute(&format!("SET ROLE {}", quote_ident(&fx.role))).await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{err:?}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL (GITGRANT_TEST_PG)"]
async fn revoke_of_a_missing_grant_succeeds() {
    let fx = Fixture::new(true).await;
    let p = fx.provider();
    // Never granted, and before the marker table exists.
    p.revoke(&fx.held()).await.unwrap();
    // Granted, revoked twice.
    let held = p.grant(&fx.spec(&["req-1"], "2026-09-21T16:00:00Z")).await.unwrap();
    p.revoke(&held).await.unwrap();
    p.revoke(&held).await.unwrap();
    assert!(fx.memberships().await.is_empty());
    // A principal that no longer exists at all.
    let mut ghost = fx.held();
    ghost.access.principal = format!("gg_ghost_{}", fx.sfx);
    p.revoke(&ghost).await.unwrap();
}

#[tokio::test]
#[ignore = "needs PostgreSQL (GITGRANT_TEST_PG)"]
async fn an_unmanaged_membership_is_neither_listed_nor_touched() {
    let fx = Fixture::new(true).await;
    let p = fx.provider();
    fx.su.batch_execute(&format!("GRANT {} TO {}", quote_ident(&fx.role), quote_ident(&fx.principal))).await.unwrap();
    let su_name: String = fx.su.query_one("SELECT current_user::text", &[]).await.unwrap().get(0);
    let unmanaged = vec![(fx.role.clone(), su_name.clone())];
    let session = fx.set_role_session().await;

    assert!(p.list().await.unwrap().is_empty());
    p.revoke(&fx.held()).await.unwrap();
    assert_eq!(fx.memberships().await, unmanaged);
    assert_eq!(session.query_one("SELECT x FROM secret", &[]).await.unwrap().get::<_, i32>(0), 42, "a session was ended for a grant gitgrant does not own");

    let granted = p.grant(&fx.spec(&["req-1"], "2026-09-21T16:00:00Z")).await;
    if fx.server_version().await >= 160000 {
        // 16+ records a second membership row per grantor: ours is separate, and revoking it leaves theirs.
        let held = granted.unwrap();
        assert_eq!(fx.memberships().await.len(), 2);
        p.revoke(&held).await.unwrap();
        assert_eq!(fx.memberships().await, unmanaged);
    } else {
        // 15 keeps one row per membership: gitgrant refuses to adopt it, and writes no marker.
        let err = granted.unwrap_err();
        assert!(!err.is_transient());
        let msg = err.to_string();
        assert!(msg.contains("does not manage") && msg.contains(&su_name) && msg.contains("REVOKE"), "{msg}");
        assert_eq!(fx.memberships().await, unmanaged);
        assert_eq!(fx.marker_rows().await, 0);
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL (GITGRANT_TEST_PG)"]
async fn a_membership_granted_by_the_admin_role_without_a_marker_is_listed() {
    let fx = Fixture::new(true).await;
    let p = fx.provider();
    fx.su
        .batch_execute(&format!(
            "SET ROLE {a}; GRANT {} TO {} GRANTED BY {a}; RESET ROLE",
            quote_ident(&fx.role),
            quote_ident(&fx.principal),
            a = quote_ident(&fx.admin)
        ))
        .await
        .unwrap();
    assert_eq!(fx.memberships().await, vec![(fx.role.clone(), fx.admin.clone())]);

    let listed = p.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].access, fx.access(&fx.principal, &fx.role));
    assert!(listed[0].requests.is_empty());
    assert_eq!(listed[0].end, None);

    // Reconcile revokes it as unexplained.
    p.revoke(&listed[0]).await.unwrap();
    assert!(fx.memberships().await.is_empty());
}

#[tokio::test]
#[ignore = "needs PostgreSQL (GITGRANT_TEST_PG)"]
async fn a_marker_of_another_resource_keeps_the_membership_out_of_this_resources_list() {
    let fx = Fixture::new(true).await;
    let orders = fx.provider();
    let billing = fx.provider_with("billing-db", &fx.admin);
    orders.grant(&fx.spec(&["req-1"], "2026-09-21T16:00:00Z")).await.unwrap();
    assert_eq!(orders.list().await.unwrap().len(), 1);
    assert!(billing.list().await.unwrap().is_empty());
}

#[tokio::test]
#[ignore = "needs PostgreSQL (GITGRANT_TEST_PG)"]
async fn role_and_principal_names_with_quotes_are_quoted_not_executed() {
    let fx = Fixture::new(true).await;
    let victim = format!("gg_victim_{}", fx.sfx);
    let evil_role = format!("gg_r_{}\"; DROP ROLE {victim}; --", fx.sfx);
    let evil_principal = format!("gg_o'b\"rien_{}", fx.sfx);
    fx.create_role(&victim, false).await;
    fx.create_role(&evil_principal, true).await;
    fx.create_role(&evil_role, false).await;
    fx.su.batch_execute(&format!("GRANT {} TO {} WITH ADMIN OPTION", quote_ident(&evil_role), quote_ident(&fx.admin))).await.unwrap();
    let p = fx.provider();

    let held = p.grant(&fx.spec_for(&evil_principal, &evil_role, &["req-1"], "2026-09-21T16:00:00Z")).await.unwrap();
    assert_eq!(fx.memberships_of(&evil_principal).await, vec![(evil_role.clone(), fx.admin.clone())]);
    let victim_exists: bool = fx.su.query_one("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", &[&victim]).await.unwrap().get(0);
    assert!(victim_exists);
    let listed = p.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].access.principal.as_str(), listed[0].access.access.as_str()), (evil_principal.as_str(), evil_role.as_str()));

    p.revoke(&held).await.unwrap();
    assert!(fx.memberships_of(&evil_principal).await.is_empty());

    // A name PostgreSQL would truncate to 63 bytes is refused, not granted under another name.
    let err = p.grant(&fx.spec_for(&fx.principal, &"r".repeat(70), &["req-1"], "2026-09-21T16:00:00Z")).await.unwrap_err();
    assert!(err.to_string().contains("not a valid PostgreSQL role name"), "{err}");
}

#[tokio::test]
#[ignore = "needs PostgreSQL (GITGRANT_TEST_PG)"]
async fn missing_setup_errors_say_what_sql_the_dba_must_run() {
    let fx = Fixture::new(true).await;
    let missing_admin = format!("gg_noadmin_{}", fx.sfx);
    let err = fx.provider_with("orders-db", &missing_admin).list().await.unwrap_err();
    let msg = err.to_string();
    assert!(!err.is_transient());
    assert!(msg.starts_with("postgres orders-db: "), "{msg}");
    assert!(msg.contains(&format!("CREATE ROLE \"{missing_admin}\" NOLOGIN NOINHERIT;")), "{msg}");
    assert!(msg.contains(&format!("GRANT \"{missing_admin}\" TO \"{}\";", fx.login)), "{msg}");

    // A role the admin role holds no ADMIN OPTION on.
    let other = format!("gg_rw_{}", fx.sfx);
    fx.create_role(&other, false).await;
    let p = fx.provider();
    let err = p.grant(&fx.spec_for(&fx.principal, &other, &["req-1"], "2026-09-21T16:00:00Z")).await.unwrap_err();
    assert!(err.to_string().contains(&format!("GRANT \"{other}\" TO \"{}\" WITH ADMIN OPTION;", fx.admin)), "{err}");
    assert!(fx.memberships().await.is_empty());

    // Roles that do not exist.
    let err = p.grant(&fx.spec_for(&fx.principal, "gg_no_such_role", &["req-1"], "2026-09-21T16:00:00Z")).await.unwrap_err();
    assert!(err.to_string().contains("database role `gg_no_such_role` does not exist"), "{err}");
    let err = p.grant(&fx.spec_for("gg_no_such_login", &fx.role, &["req-1"], "2026-09-21T16:00:00Z")).await.unwrap_err();
    assert!(err.to_string().contains("principal `gg_no_such_login` is not a role"), "{err}");

    // A login that may not end other users' sessions: the revoke still happens, and the error says what to run.
    let held = p.grant(&fx.spec(&["req-1"], "2026-09-21T16:00:00Z")).await.unwrap();
    let session = fx.set_role_session().await;
    fx.su.batch_execute(&format!("REVOKE pg_signal_backend FROM {}", quote_ident(&fx.login))).await.unwrap();
    let err = fx.provider().revoke(&held).await.unwrap_err();
    assert!(err.to_string().contains(&format!("GRANT pg_signal_backend TO \"{}\";", fx.login)), "{err}");
    assert!(fx.memberships().await.is_empty());
    assert_eq!(session.query_one("SELECT 1", &[]).await.unwrap().get::<_, i32>(0), 1);

    // A login that may not act as the admin role.
    fx.su.batch_execute(&format!("REVOKE {} FROM {}", quote_ident(&fx.admin), quote_ident(&fx.login))).await.unwrap();
    let err = fx.provider().list().await.unwrap_err();
    assert!(err.to_string().contains(&format!("GRANT \"{}\" TO \"{}\";", fx.admin, fx.login)), "{err}");
}

// ---- no server needed ----

fn resource(config: BTreeMap<String, serde_json::Value>) -> Resource {
    Resource {
        provider: ProviderKind::Postgres,
        environment: "production".into(),
        sensitivity: Sensitivity::High,
        description: None,
        config,
        origin: Origin { file: "policies/resources.yaml".into(), pos: gitgrant::diag::Pos { line: 1, column: 1 } },
    }
}

#[tokio::test]
async fn a_missing_dsn_variable_names_provider_resource_and_variable() {
    let var = "GITGRANT_TEST_SURELY_UNSET_DSN_4711";
    let res = resource(config(&[("dsn_env", var)]));
    let ctx = ProviderContext { repo: std::path::Path::new("."), resource: "orders-db", config: &res, now: at("2026-09-21T08:00:00Z") };
    let err = gitgrant::provider::build(&ctx).await.err().expect("build must fail without the DSN variable");
    assert!(matches!(err, ProviderError::Permanent { provider: ProviderKind::Postgres, .. }));
    let msg = err.to_string();
    assert!(msg.starts_with("postgres orders-db: "), "{msg}");
    assert!(msg.contains(&format!("`{var}`")) && msg.contains("is not set"), "{msg}");
}

#[test]
fn config_errors_name_the_keys_and_never_echo_the_dsn() {
    let now = at("2026-09-21T08:00:00Z");
    let secret = "hunter2-secret";
    let build = |cfg: &[(&str, &str)], dsn: &str| {
        let dsn = dsn.to_string();
        PostgresProvider::new("orders-db", &config(cfg), move |_| Some(dsn.clone()), now).err().expect("must be refused").to_string()
    };
    let ok_dsn = format!("host=127.0.0.1 user=gitgrant password={secret} dbname=orders");

    let msg = build(&[("dsn_env", "X"), ("dsn", "inline")], &ok_dsn);
    assert!(msg.contains("unknown config key `dsn`") && msg.contains("`dsn_env`") && msg.contains("`admin_role`"), "{msg}");
    let msg = build(&[], &ok_dsn);
    assert!(msg.contains("no `dsn_env`") && msg.contains("`admin_role`"), "{msg}");
    let msg = build(&[("dsn_env", "X"), ("login_role", "true")], &ok_dsn);
    assert!(msg.contains("not implemented"), "{msg}");

    let msg = build(&[("dsn_env", "X")], &format!("host=127.0.0.1 password={secret} sslmode=require"));
    assert!(msg.contains("sslmode=require") && msg.contains("without TLS"), "{msg}");
    assert!(!msg.contains(secret), "{msg}");
    let msg = build(&[("dsn_env", "X")], &format!("host=127.0.0.1 password={secret} port=notaport"));
    assert!(msg.contains("`X` is invalid"), "{msg}");
    assert!(!msg.contains(secret), "{msg}");
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_error() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dsn = format!("host=127.0.0.1 port={port} user=gitgrant password=hunter2-secret dbname=orders connect_timeout=3");
    let p = PostgresProvider::new("orders-db", &config(&[("dsn_env", DSN_ENV)]), |_| Some(dsn.clone()), at("2026-09-21T08:00:00Z")).unwrap();
    let err = p.list().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    let msg = err.to_string();
    assert!(msg.starts_with("postgres orders-db: ") && msg.contains(DSN_ENV), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}
