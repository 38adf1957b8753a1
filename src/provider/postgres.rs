//! The `postgres` provider: membership in a database role.
//!
//! Access here is "login role `alice` is a member of role `readonly`". The
//! truth is `pg_auth_members`: a membership is managed by gitgrant exactly
//! when its grantor is the admin role (`admin_role`, default
//! `gitgrant_admin`). That row cannot carry request ids or an end time, so
//! those live in a small marker table, `gitgrant.grants`, keyed by
//! (resource, principal, role). `list` starts from `pg_auth_members` and
//! joins the markers, so a managed membership whose marker was lost is still
//! listed (with no requests) and reconcile revokes it as unexplained; a stale
//! marker with no membership is ignored.
//!
//! Why `SET LOCAL ROLE <admin>` before every GRANT/REVOKE: PostgreSQL 15 lets
//! only a superuser name a grantor other than the current role
//! (`GRANTED BY`), and it records the current role as grantor. Acting as
//! the admin role gives the same `pg_auth_members` row on 15 and 16+, from a
//! connecting user that is no superuser. The admin role is meant to be
//! `NOINHERIT`, so it can hand out `readonly` without using its privileges.
//!
//! PostgreSQL 15 keeps one membership row per (role, member) whatever the
//! grantor, and `REVOKE` there ignores `GRANTED BY`: so `revoke` first
//! checks that the row is ours, and `grant` refuses to adopt a membership
//! someone else granted (on 16+ that becomes a second, managed row).
//!
//! A session that ran `SET ROLE readonly` keeps its privileges after the
//! REVOKE, so revoking also terminates the open sessions of the principal
//! (and of the login roles that are members of it): once inside the revoking
//! transaction, so a crash cannot leave them behind, and once after commit,
//! to catch a reconnect in between.
//!
//! Roles and memberships are cluster-wide, the marker table is per
//! database: resources that share a cluster must use different admin roles.
//!
//! Not implemented: the `login_role` mode (a per-request login role with
//! `VALID UNTIL`). Memberships have no native expiry; reconcile revokes them.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};
use tokio_postgres::{Client, NoTls};

use super::{GrantSpec, Held, Provider, ProviderError};
use crate::model::policy::ProviderKind;

/// The grantor role when the resource config names none.
pub const DEFAULT_ADMIN_ROLE: &str = "gitgrant_admin";

/// The marker table (schema-qualified) that holds request ids and end times.
pub const MARKER_TABLE: &str = "gitgrant.grants";
const MARKER_SCHEMA: &str = "gitgrant";

/// The keys a `postgres` resource config takes, for error messages.
const CONFIG_KEYS: &str = "`dsn_env` (required: the environment variable holding the libpq connection string) \
     and `admin_role` (optional, default `gitgrant_admin`: the grantor role of every managed membership)";

/// Longer names are silently truncated by PostgreSQL, which could make a
/// GRANT hit a different role than the policy names: refuse them instead.
const MAX_NAME_BYTES: usize = 63;

/// Used when the DSN sets no `connect_timeout`, so an unreachable server is
/// a transient error and not a hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Upper bound for one list/grant/revoke, including waits for locks held by
/// other sessions. The session also sets `lock_timeout` and `statement_timeout`.
const OP_TIMEOUT: Duration = Duration::from_secs(120);
const SESSION_SETTINGS: &str = "SET lock_timeout = '10s'; SET statement_timeout = '60s'";

/// An empty stand-in for the marker table before it exists, so `list` never creates anything.
const NO_MARKERS: &str =
    "(SELECT NULL::text AS resource, NULL::text AS principal, NULL::text AS role, NULL::text[] AS requests, NULL::timestamptz AS end_at WHERE false)";

/// `"name"` with embedded quotes doubled: the only safe way to put a role
/// name from policy files into GRANT/REVOKE, which take no parameters.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SQL a DBA runs once so that `user` (the login in the DSN) can manage
/// memberships in `roles` as grantor `admin`, with nothing more.
pub fn setup_sql(admin: &str, user: &str, roles: &[&str]) -> String {
    let (a, u) = (quote_ident(admin), quote_ident(user));
    let mut sql = format!(
        "CREATE ROLE {a} NOLOGIN NOINHERIT;\n\
         GRANT {a} TO {u};\n\
         GRANT pg_signal_backend TO {u};\n\
         CREATE SCHEMA IF NOT EXISTS {MARKER_SCHEMA} AUTHORIZATION {u};\n"
    );
    for role in roles {
        sql.push_str(&format!("GRANT {} TO {a} WITH ADMIN OPTION;\n", quote_ident(role)));
    }
    sql
}

/// One connection and what was learned about it.
struct Session {
    client: Client,
    /// `current_user` of the connection, for the SQL in error messages.
    user: String,
    /// May this login terminate other users' backends (`pg_signal_backend`)?
    can_signal: bool,
    /// The marker table is known to exist.
    marker_ready: bool,
}

pub struct PostgresProvider {
    resource: String,
    dsn_env: String,
    admin: String,
    pg: tokio_postgres::Config,
    now: DateTime<Utc>,
    session: Mutex<Option<Session>>,
}

impl PostgresProvider {
    /// Validates the resource config and reads the DSN through `env` (the
    /// process environment in `build`). Does not connect: the first
    /// operation does, so an unreachable server is a retryable error there.
    pub fn new(
        resource: &str,
        config: &BTreeMap<String, serde_json::Value>,
        env: impl Fn(&str) -> Option<String>,
        now: DateTime<Utc>,
    ) -> Result<PostgresProvider, ProviderError> {
        let perm = |message: String| ProviderError::Permanent { provider: ProviderKind::Postgres, resource: resource.to_string(), message };
        if let Some(key) = config.keys().find(|k| !matches!(k.as_str(), "dsn_env" | "admin_role")) {
            let extra = if key == "login_role" { " (the `login_role` mode is not implemented in this build)" } else { "" };
            return Err(perm(format!("unknown config key `{key}`{extra}; the postgres provider takes {CONFIG_KEYS}")));
        }
        let string_key = |key: &str| match config.get(key) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(perm(format!("config key `{key}` must be a non-empty string; the postgres provider takes {CONFIG_KEYS}"))),
        };
        let dsn_env = string_key("dsn_env")?.ok_or_else(|| perm(format!("config has no `dsn_env`; the postgres provider takes {CONFIG_KEYS}")))?;
        let admin = string_key("admin_role")?.unwrap_or_else(|| DEFAULT_ADMIN_ROLE.to_string());
        check_name("admin_role", &admin).map_err(&perm)?;
        // INVARIANT: the DSN may hold a password; it never enters a message.
        let dsn = env(&dsn_env).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            perm(format!(
                "environment variable `{dsn_env}` (named by the resource's `dsn_env`) is not set; \
                 set it to the libpq connection string of the database, e.g. `host=db.internal user=gitgrant dbname=orders`"
            ))
        })?;
        let mut pg: tokio_postgres::Config = dsn.parse().map_err(|e: tokio_postgres::Error| {
            perm(format!(
                "the connection string in `{dsn_env}` is invalid: {}; fix it (libpq key=value or postgresql:// URL; sslmode may be disable or prefer)",
                chain(&e)
            ))
        })?;
        if pg.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(perm(format!(
                "the connection string in `{dsn_env}` sets sslmode=require, but this build connects without TLS; \
                 connect over loopback or a Unix socket with sslmode=disable, or through a local TLS-terminating proxy"
            )));
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(CONNECT_TIMEOUT);
        }
        Ok(PostgresProvider { resource: resource.to_string(), dsn_env, admin, pg, now, session: Mutex::new(None) })
    }

    fn perm(&self, message: impl Into<String>) -> ProviderError {
        ProviderError::Permanent { provider: ProviderKind::Postgres, resource: self.resource.clone(), message: message.into() }
    }

    /// Classifies a driver error: connection trouble, serialization
    /// failures, deadlocks, lock and resource exhaustion, shutdowns are
    /// transient; everything else is permanent, with SQLSTATE and purpose.
    fn sql_err(&self, purpose: &str, e: &tokio_postgres::Error) -> ProviderError {
        let (transient, detail) = match e.as_db_error() {
            Some(db) => {
                let code = db.code().code();
                let mut detail = format!("SQLSTATE {code}: {}", db.message());
                for extra in [db.detail(), db.hint()].into_iter().flatten() {
                    detail.push_str(&format!(" ({extra})"));
                }
                if code.starts_with("28") {
                    detail.push_str(&format!("; check the credentials in `{}`", self.dsn_env));
                }
                (transient_sqlstate(code), detail)
            }
            None => (e.is_closed() || has_io_source(e), chain(e)),
        };
        let message = format!("{purpose}: {detail}");
        if transient { ProviderError::Transient { provider: ProviderKind::Postgres, resource: self.resource.clone(), message } } else { self.perm(message) }
    }

    fn check(&self, what: &str, name: &str) -> Result<(), ProviderError> {
        check_name(what, name).map_err(|m| self.perm(m))
    }

    /// The open session, connecting (and checking the grantor setup) when
    /// there is none or the last one was closed.
    async fn session(&self) -> Result<MappedMutexGuard<'_, Session>, ProviderError> {
        let mut guard = self.session.lock().await;
        if guard.as_ref().is_none_or(|s| s.client.is_closed()) {
            *guard = None;
            *guard = Some(self.connect().await?);
        }
        MutexGuard::try_map(guard, Option::as_mut).map_err(|_| self.perm("no database session (internal error); rerun"))
    }

    async fn connect(&self) -> Result<Session, ProviderError> {
        let purpose = format!("connecting with the connection string in `{}`", self.dsn_env);
        let (client, connection) = self.pg.connect(NoTls).await.map_err(|e| self.sql_err(&purpose, &e))?;
        // The connection's own errors surface on the next call through `client`.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client.batch_execute(SESSION_SETTINGS).await.map_err(|e| self.sql_err("setting session timeouts", &e))?;
        let row = client
            .query_one(
                "SELECT current_user::text, a.oid IS NOT NULL, coalesce(pg_has_role(current_user, a.oid, 'MEMBER'), false), \
                        pg_has_role(current_user, 'pg_signal_backend', 'USAGE') OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
                 FROM (SELECT 1) one LEFT JOIN pg_roles a ON a.rolname = $1",
                &[&self.admin],
            )
            .await
            .map_err(|e| self.sql_err("checking the grantor role", &e))?;
        let user: String = row.get(0);
        let (admin_exists, member, can_signal): (bool, bool, bool) = (row.get(1), row.get(2), row.get(3));
        let admin = quote_ident(&self.admin);
        if !admin_exists {
            return Err(self.perm(format!(
                "the grantor role `{}` does not exist; a DBA must run (once, then once per database role that policies grant):\n{}",
                self.admin,
                setup_sql(&self.admin, &user, &["<role>"])
            )));
        }
        if !member {
            return Err(self.perm(format!(
                "the connecting user `{user}` cannot act as the grantor role `{}`; a DBA must run: GRANT {admin} TO {};",
                self.admin,
                quote_ident(&user)
            )));
        }
        Ok(Session { client, user, can_signal, marker_ready: false })
    }

    /// Creates the marker schema and table when absent, serialized by an
    /// advisory lock so concurrent runs do not race on the catalog.
    async fn ensure_marker_table(&self, s: &mut Session) -> Result<(), ProviderError> {
        if s.marker_ready {
            return Ok(());
        }
        let purpose = format!("creating the marker table {MARKER_TABLE}");
        let e = |e: tokio_postgres::Error| {
            let mut err = self.sql_err(&purpose, &e);
            if let (Some("42501"), ProviderError::Permanent { message, .. }) = (e.code().map(|c| c.code()), &mut err) {
                message.push_str(&format!("; a DBA must run: CREATE SCHEMA IF NOT EXISTS {MARKER_SCHEMA} AUTHORIZATION {};", quote_ident(&s.user)));
            }
            err
        };
        let tx = s.client.transaction().await.map_err(e)?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('gitgrant.grants setup'))", &[]).await.map_err(e)?;
        let row =
            tx.query_one(&format!("SELECT to_regnamespace('{MARKER_SCHEMA}') IS NOT NULL, to_regclass('{MARKER_TABLE}') IS NOT NULL"), &[]).await.map_err(e)?;
        let (schema, table): (bool, bool) = (row.get(0), row.get(1));
        if !schema {
            tx.batch_execute(&format!("CREATE SCHEMA {MARKER_SCHEMA}")).await.map_err(e)?;
        }
        if !table {
            tx.batch_execute(&format!(
                "CREATE TABLE {MARKER_TABLE} (
                    resource text NOT NULL,
                    principal text NOT NULL,
                    role text NOT NULL,
                    requests text[] NOT NULL,
                    end_at timestamptz NOT NULL,
                    granted_at timestamptz NOT NULL,
                    updated_at timestamptz NOT NULL,
                    PRIMARY KEY (resource, principal, role)
                );
                COMMENT ON TABLE {MARKER_TABLE} IS 'gitgrant: request ids and end time of the role memberships it granted'"
            ))
            .await
            .map_err(e)?;
        }
        tx.commit().await.map_err(e)?;
        s.marker_ready = true;
        Ok(())
    }

    /// Runs one operation under `OP_TIMEOUT`; a timed-out session is dropped
    /// (its transaction rolls back with the connection).
    async fn timed<T>(&self, what: &str, op: impl Future<Output = Result<T, ProviderError>>) -> Result<T, ProviderError> {
        match tokio::time::timeout(OP_TIMEOUT, op).await {
            Ok(out) => out,
            Err(_) => {
                *self.session.lock().await = None;
                Err(ProviderError::Transient {
                    provider: ProviderKind::Postgres,
                    resource: self.resource.clone(),
                    message: format!("{what} took longer than {}s", OP_TIMEOUT.as_secs()),
                })
            }
        }
    }

    async fn list_inner(&self) -> Result<Vec<Held>, ProviderError> {
        let s = self.session().await?;
        let purpose = format!("listing memberships granted by `{}`", self.admin);
        let has_table: bool =
            s.client.query_one(&format!("SELECT to_regclass('{MARKER_TABLE}') IS NOT NULL"), &[]).await.map_err(|e| self.sql_err(&purpose, &e))?.get(0);
        let markers = if has_table { MARKER_TABLE } else { NO_MARKERS };
        // A marker of another resource in this database claims the membership
        // for that resource; a membership with no marker at all is ours (and unexplained).
        let sql = format!(
            "SELECT r.rolname::text, m.rolname::text, g.requests, (extract(epoch FROM g.end_at) * 1000000)::int8
             FROM pg_auth_members am
             JOIN pg_roles a ON a.oid = am.grantor AND a.rolname = $2
             JOIN pg_roles r ON r.oid = am.roleid
             JOIN pg_roles m ON m.oid = am.member
             LEFT JOIN {markers} g ON g.resource = $1 AND g.principal = m.rolname AND g.role = r.rolname
             WHERE g.resource IS NOT NULL
                OR NOT EXISTS (SELECT 1 FROM {markers} o WHERE o.principal = m.rolname AND o.role = r.rolname)
             ORDER BY 2, 1"
        );
        let rows = s.client.query(&sql, &[&self.resource, &self.admin]).await.map_err(|e| self.sql_err(&purpose, &e))?;
        rows.iter()
            .map(|row| {
                let (role, principal): (String, String) = (row.get(0), row.get(1));
                let requests: Option<Vec<String>> = row.get(2);
                let end: Option<i64> = row.get(3);
                Ok(Held {
                    access: self.access(&principal, &role),
                    requests: requests.unwrap_or_default().into_iter().collect(),
                    end: end.and_then(DateTime::from_timestamp_micros),
                    handle: handle(&role, &principal),
                })
            })
            .collect()
    }

    async fn grant_inner(&self, spec: &GrantSpec) -> Result<Held, ProviderError> {
        let (principal, role) = (&spec.access.principal, &spec.access.access);
        self.check("principal", principal)?;
        self.check("role", role)?;
        let mut s = self.session().await?;
        self.ensure_marker_table(&mut s).await?;
        let purpose = format!("granting `{role}` to `{principal}`");
        let e = |e: tokio_postgres::Error| self.sql_err(&purpose, &e);
        let tx = s.client.transaction().await.map_err(e)?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock_key(role, principal)]).await.map_err(e)?;
        let row = tx
            .query_one(
                "SELECT r.oid IS NOT NULL, m.oid IS NOT NULL, coalesce(pg_has_role(a.oid, r.oid, 'MEMBER WITH ADMIN OPTION'), false),
                        EXISTS (SELECT 1 FROM pg_auth_members am WHERE am.roleid = r.oid AND am.member = m.oid AND am.grantor = a.oid)
                 FROM (SELECT 1) one
                 LEFT JOIN pg_roles r ON r.rolname = $1 LEFT JOIN pg_roles m ON m.rolname = $2 LEFT JOIN pg_roles a ON a.rolname = $3",
                &[role, principal, &self.admin],
            )
            .await
            .map_err(e)?;
        let (role_exists, principal_exists, can_grant, existed): (bool, bool, bool, bool) = (row.get(0), row.get(1), row.get(2), row.get(3));
        if !role_exists {
            return Err(self.perm(format!("database role `{role}` does not exist; create it, or fix the role's `postgres` grant in policies/")));
        }
        if !principal_exists {
            return Err(self.perm(format!(
                "principal `{principal}` is not a role in this database cluster; create the login role, or fix the login's `postgres` identity in policies/"
            )));
        }
        if !can_grant {
            return Err(self.perm(format!(
                "the grantor role `{}` cannot grant `{role}`; a DBA must run: GRANT {} TO {} WITH ADMIN OPTION;",
                self.admin,
                quote_ident(role),
                quote_ident(&self.admin)
            )));
        }
        let requests: Vec<&str> = spec.requests.iter().map(String::as_str).collect();
        let end = spec.end.to_rfc3339_opts(SecondsFormat::Micros, true);
        let now = self.now.to_rfc3339_opts(SecondsFormat::Micros, true);
        tx.execute(
            &format!(
                "INSERT INTO {MARKER_TABLE} AS g (resource, principal, role, requests, end_at, granted_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5::text::timestamptz, $6::text::timestamptz, $6::text::timestamptz)
                 ON CONFLICT (resource, principal, role) DO UPDATE SET
                    requests = EXCLUDED.requests, end_at = EXCLUDED.end_at, updated_at = EXCLUDED.updated_at,
                    granted_at = CASE WHEN $7 THEN g.granted_at ELSE EXCLUDED.granted_at END"
            ),
            &[&self.resource, principal, role, &requests, &end, &now, &existed],
        )
        .await
        .map_err(e)?;
        if !existed {
            let admin = quote_ident(&self.admin);
            // One statement each over the extended protocol, which refuses a
            // second statement: a defence behind the quoting.
            tx.execute(&format!("SET LOCAL ROLE {admin}"), &[]).await.map_err(e)?;
            tx.execute(&format!("GRANT {} TO {} GRANTED BY {admin}", quote_ident(role), quote_ident(principal)), &[]).await.map_err(e)?;
            // PostgreSQL 15 keeps a membership someone else granted and only
            // issues a NOTICE: then no row of ours exists.
            let row = tx
                .query_one(
                    "SELECT bool_or(g.rolname = $3), string_agg(g.rolname::text, ', ')
                     FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
                     JOIN pg_roles g ON g.oid = am.grantor
                     WHERE r.rolname = $1 AND m.rolname = $2",
                    &[role, principal, &self.admin],
                )
                .await
                .map_err(e)?;
            let (ours, grantors): (Option<bool>, Option<String>) = (row.get(0), row.get(1));
            if ours != Some(true) {
                return Err(self.perm(format!(
                    "`{principal}` is already a member of `{role}` through a grant by `{}` that gitgrant does not manage, \
                     and gitgrant neither takes it over nor revokes it; remove it (REVOKE {} FROM {};) so gitgrant can manage this access, or withdraw the request",
                    grantors.unwrap_or_default(),
                    quote_ident(role),
                    quote_ident(principal)
                )));
            }
        }
        tx.commit().await.map_err(e)?;
        Ok(Held { access: spec.access.clone(), requests: spec.requests.clone(), end: Some(spec.end), handle: handle(role, principal) })
    }

    async fn revoke_inner(&self, held: &Held) -> Result<(), ProviderError> {
        let (principal, role) = (&held.access.principal, &held.access.access);
        self.check("principal", principal)?;
        self.check("role", role)?;
        let mut s = self.session().await?;
        let purpose = format!("revoking `{role}` from `{principal}`");
        let e = |e: tokio_postgres::Error| self.sql_err(&purpose, &e);
        let can_signal = s.can_signal;
        let tx = s.client.transaction().await.map_err(e)?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock_key(role, principal)]).await.map_err(e)?;
        let row = tx
            .query_one(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM pg_auth_members am
                        JOIN pg_roles r ON r.oid = am.roleid AND r.rolname = $1
                        JOIN pg_roles m ON m.oid = am.member AND m.rolname = $2
                        JOIN pg_roles a ON a.oid = am.grantor AND a.rolname = $3),
                     to_regclass('{MARKER_TABLE}') IS NOT NULL"
                ),
                &[role, principal, &self.admin],
            )
            .await
            .map_err(e)?;
        let (ours, has_table): (bool, bool) = (row.get(0), row.get(1));
        if has_table {
            tx.execute(&format!("DELETE FROM {MARKER_TABLE} WHERE resource = $1 AND principal = $2 AND role = $3"), &[&self.resource, principal, role])
                .await
                .map_err(e)?;
        }
        if ours {
            if can_signal {
                terminate_sessions(&tx, principal).await.map_err(e)?;
            }
            let admin = quote_ident(&self.admin);
            tx.execute(&format!("SET LOCAL ROLE {admin}"), &[]).await.map_err(e)?;
            tx.execute(&format!("REVOKE {} FROM {} GRANTED BY {admin}", quote_ident(role), quote_ident(principal)), &[]).await.map_err(e)?;
        }
        tx.commit().await.map_err(e)?;
        if !ours {
            return Ok(());
        }
        if !can_signal {
            return Err(self.perm(format!(
                "revoked `{role}` from `{principal}`, but could not end their open sessions, which keep the role if they ran SET ROLE; \
                 a DBA must run: GRANT pg_signal_backend TO {};",
                quote_ident(&s.user)
            )));
        }
        terminate_sessions(&s.client, principal).await.map_err(e)?;
        Ok(())
    }

    fn access(&self, principal: &str, role: &str) -> super::Access {
        super::Access { provider: ProviderKind::Postgres, resource: self.resource.clone(), principal: principal.to_string(), access: role.to_string() }
    }
}

#[async_trait::async_trait]
impl Provider for PostgresProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Postgres
    }
    fn resource(&self) -> &str {
        &self.resource
    }
    fn native_expiry(&self) -> bool {
        false
    }
    fn marker(&self) -> String {
        format!("membership granted by role `{}` (pg_auth_members.grantor); request ids and end in {MARKER_TABLE}", self.admin)
    }

    fn access_for(&self, _request: &str, grant: &serde_json::Value) -> Result<String, ProviderError> {
        grant.get("role").and_then(|r| r.as_str()).map(str::to_string).ok_or_else(|| self.perm("the role's `postgres` grant has no `role`"))
    }

    async fn list(&self) -> Result<Vec<Held>, ProviderError> {
        self.timed("listing memberships", self.list_inner()).await
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Held, ProviderError> {
        self.timed("granting", self.grant_inner(spec)).await
    }

    async fn revoke(&self, held: &Held) -> Result<(), ProviderError> {
        self.timed("revoking", self.revoke_inner(held)).await
    }
}

/// Ends every backend of `principal` and of the login roles that are
/// members of it (they could have done `SET ROLE` through it); superuser
/// backends are skipped (they need no membership, and cannot be signalled).
async fn terminate_sessions(client: &impl tokio_postgres::GenericClient, principal: &str) -> Result<u64, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(s.pid))
             FROM pg_stat_activity s JOIN pg_roles u ON u.oid = s.usesysid
             WHERE s.pid <> pg_backend_pid() AND NOT u.rolsuper
               AND pg_has_role(u.oid, (SELECT oid FROM pg_roles WHERE rolname = $1), 'MEMBER')",
            &[&principal],
        )
        .await?;
    Ok(row.get::<_, i64>(0).unsigned_abs())
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('\0') || name.len() > MAX_NAME_BYTES {
        return Err(format!("{what} `{}` is not a valid PostgreSQL role name (1 to {MAX_NAME_BYTES} bytes, no NUL)", name.escape_debug()));
    }
    Ok(())
}

/// Serializes concurrent gitgrant runs on one membership (per database).
fn lock_key(role: &str, principal: &str) -> String {
    format!("gitgrant {role} {principal}")
}

fn handle(role: &str, principal: &str) -> String {
    format!("{} TO {}", quote_ident(role), quote_ident(principal))
}

/// SQLSTATEs worth retrying: connection exceptions (08), serialization
/// failure, deadlock, lock timeout, insufficient resources (53), query
/// canceled by timeout and server shutdowns (57014, 57P01-57P03, 57P05).
fn transient_sqlstate(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || matches!(code, "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03" | "57P05")
}

fn has_io_source(e: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// The error and its causes, e.g. "error connecting to server: Connection refused (os error 111)".
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_embedded_quotes() {
        assert_eq!(quote_ident("readonly"), "\"readonly\"");
        assert_eq!(quote_ident("a\"; DROP ROLE x; --"), "\"a\"\"; DROP ROLE x; --\"");
    }

    #[test]
    fn names_postgres_would_truncate_are_refused() {
        assert!(check_name("role", &"r".repeat(63)).is_ok());
        assert!(check_name("role", &"r".repeat(64)).is_err());
        assert!(check_name("role", "").is_err());
        assert!(check_name("role", "a\0b").is_err());
    }

    #[test]
    fn transient_sqlstates() {
        for code in ["08006", "08001", "40001", "40P01", "53300", "55P03", "57014", "57P01"] {
            assert!(transient_sqlstate(code), "{code}");
        }
        for code in ["42501", "42704", "28P01", "23505", "57P04"] {
            assert!(!transient_sqlstate(code), "{code}");
        }
    }
}
