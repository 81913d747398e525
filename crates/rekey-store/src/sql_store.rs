//! [`SqlStore`]: the `Store` over SQLite or PostgreSQL.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rekey_core::audit_chain;
use rekey_core::clock::Timestamp;
use rekey_core::crypto::{KeyedHasher, SecretHash};
use rekey_core::error::{CoreError, CoreResult, OpError};
use rekey_core::metrics::StoreGauges;
use rekey_core::model::{
    ApiToken, ApiTokenId, App, AppId, AuditEvent, ConsoleLink, ConsoleSession, ConsoleSessionId,
    Membership, NodeInfo, Org, OrgId, Outcome, Principal, Secret, SecretId, StoredSigningKey, User,
    UserId,
};
use rekey_core::model::{DeliveryId, DestinationId};
use rekey_core::notify::{
    Delivery, DeliveryOutcome, DeliveryResult, DeliveryState, Destination, NotificationType,
};
use rekey_core::rotation_policy::RotationPolicy;
use rekey_core::store::{
    AuditFilter, ClientRecord, LockedApp, MembershipChanges, MembershipPlan, Page, SecretChanges,
    SecretPlan, Store,
};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool};

use crate::client_cache::{self, keep_cache_invalidated, listen_for_client_changes, ClientCache};
use crate::rows::{
    self, db_err, to_json_list, APP_COLUMNS, DELIVERY_COLUMNS, DESTINATION_COLUMNS, SECRET_COLUMNS,
};
use crate::sqlite_reader::SqliteReader;

/// Which database a [`SqlStore`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> CoreResult<Self> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            Err(CoreError::Invalid(
                "database url must start with sqlite: or postgres:".into(),
            ))
        }
    }
}

/// The store. Cheap to clone (a pool handle).
#[derive(Clone)]
pub struct SqlStore {
    pub(crate) pool: AnyPool,
    backend: Backend,
    /// Kept for the PostgreSQL listener's own connection; never printed (may hold a password).
    url: Arc<str>,
    cache: Option<Arc<ClientCache>>,
    /// The client read on SQLite without sqlx's worker thread (none for PostgreSQL or an
    /// in-memory database).
    sqlite_reader: Option<Arc<SqliteReader>>,
    /// SQLite only: whose turn it is to write (see [`WriteTx`]).
    write_turn: Option<Arc<tokio::sync::Mutex<()>>>,
    /// The audit chains' key, set by whoever opened the store with the server key.
    audit_key: Arc<std::sync::OnceLock<KeyedHasher>>,
}

/// A write transaction. On SQLite it also holds this process's write turn: writers wait in
/// line here instead of in SQLite's busy handler, whose growing sleeps gave concurrent
/// rotations a tail of over a second. It remembers the clients whose records it changed
/// ([`SqlStore::announce_client_change`]) so that [`SqlStore::commit`] can forget them.
/// Derefs to the connection, like `sqlx::Transaction`.
pub(crate) struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
    changed_clients: Vec<String>,
    /// The audit events written, logged (one info line each) once the commit succeeded.
    audited: Vec<AuditEvent>,
    audit_key: Arc<std::sync::OnceLock<KeyedHasher>>,
}

impl Deref for WriteTx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

impl fmt::Debug for SqlStore {
    // No URL here: it may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .field("client_cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

/// An app with its valid secrets, by client id: the token endpoint's read.
pub(crate) fn client_query() -> String {
    format!(
        "SELECT {APP_COLUMNS}, {SECRET_COLUMNS} FROM apps \
         LEFT JOIN secrets ON secrets.app_id = apps.id \
             AND secrets.state IN ('current', 'previous') \
         WHERE apps.client_id = $1"
    )
}

impl SqlStore {
    /// The URL of an SQLite database file, created if missing.
    pub fn sqlite_url(path: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", path.display())
    }

    /// Connects (does not migrate). `max_connections` bounds the pool.
    pub async fn connect(url: &str, max_connections: u32) -> CoreResult<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        if backend == Backend::Postgres {
            // One direct connection first: the pool would retry for its whole acquire
            // timeout and then say only "pool timed out", hiding "connection refused".
            use sqlx::Connection as _;
            let probe = sqlx::AnyConnection::connect(url)
                .await
                .map_err(|e| CoreError::storage("cannot connect to the database", e))?;
            let _ = probe.close().await;
        }
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings an idle connection before handing it out. On PostgreSQL that finds a
            // connection the server dropped; an SQLite connection is a file handle in this
            // process that cannot go away, and the ping is one more round trip to its worker
            // thread before every statement outside a transaction.
            .test_before_acquire(backend != Backend::Sqlite)
            .connect(url)
            .await
            .map_err(|e| CoreError::storage("cannot connect to the database", e))?;
        if backend == Backend::Sqlite {
            // WAL lets readers run beside the one writer; the setting lives in the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(db_err)?;
        }
        Ok(Self {
            pool,
            backend,
            url: url.into(),
            cache: None,
            sqlite_reader: (backend == Backend::Sqlite)
                .then(|| SqliteReader::for_url(url, client_query()))
                .flatten()
                .map(Arc::new),
            write_turn: (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(()))),
            audit_key: Arc::default(),
        })
    }

    /// Serves [`Store::load_client`] from a cache of about `capacity` records, each kept at
    /// most `max_age`. On PostgreSQL this also starts the listener that invalidates records
    /// changed by other nodes; it fails if the first `LISTEN` does (a broken set-up shows at
    /// start-up, not as stale records).
    pub async fn with_client_cache(
        mut self,
        capacity: usize,
        max_age: Duration,
    ) -> CoreResult<Self> {
        let cache = Arc::new(ClientCache::new(capacity, max_age));
        if self.backend == Backend::Postgres {
            let listener = listen_for_client_changes(&self.url).await?;
            // Out of service until the listener hears its first heartbeat (within a second).
            cache.suspend();
            tokio::spawn(keep_cache_invalidated(
                listener,
                self.url.clone(),
                Arc::downgrade(&cache),
                self.pool.clone(),
            ));
        }
        self.cache = Some(cache);
        Ok(self)
    }

    /// Starts a write transaction, on SQLite after waiting for this process's write turn.
    async fn begin_write(&self) -> CoreResult<WriteTx> {
        let turn = match &self.write_turn {
            Some(turn) => Some(turn.clone().lock_owned().await),
            None => None,
        };
        let tx = self.pool.begin().await.map_err(db_err)?;
        Ok(WriteTx {
            tx,
            _turn: turn,
            changed_clients: Vec::new(),
            audited: Vec::new(),
            audit_key: self.audit_key.clone(),
        })
    }

    /// Commits, then drops this node's cached records of the clients the transaction
    /// changed (other nodes hear the NOTIFY). They are dropped even when the commit failed:
    /// it may have happened all the same.
    async fn commit(&self, tx: WriteTx) -> CoreResult<()> {
        let WriteTx {
            tx,
            _turn,
            changed_clients,
            audited,
            audit_key: _,
        } = tx;
        let committed = tx.commit().await.map_err(db_err);
        if let Some(cache) = &self.cache {
            for client in &changed_clients {
                cache.invalidate(client);
            }
        }
        if committed.is_ok() {
            for e in &audited {
                log_audit_event(e);
            }
        }
        committed
    }

    /// Inside a write transaction: on PostgreSQL, tells every node (at commit) that this
    /// client's record changed; [`SqlStore::commit`] then drops it on this node.
    async fn announce_client_change(&self, tx: &mut WriteTx, client_id: &str) -> CoreResult<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(client_cache::CHANNEL)
                .bind(client_id.to_string())
                .execute(&mut **tx)
                .await
                .map_err(db_err)?;
        }
        tx.changed_clients.push(client_id.to_string());
        Ok(())
    }

    async fn put_membership_on(&self, tx: &mut WriteTx, m: &Membership) -> CoreResult<()> {
        sqlx::query(
            "INSERT INTO memberships (org_id, principal_kind, principal_id, role, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (org_id, principal_kind, principal_id) DO UPDATE SET role = excluded.role",
        )
        .bind(m.org_id.to_string())
        .bind(m.principal.kind())
        .bind(m.principal.uuid().to_string())
        .bind(m.role.as_str())
        .bind(ms(m.created_at))
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
        self.set_service_account(tx, m.org_id, m.principal, true)
            .await
    }

    /// Keeps `apps.service_account` equal to "the app is a member of its org", and announces
    /// the change of the app's client record.
    async fn set_service_account(
        &self,
        tx: &mut WriteTx,
        org: OrgId,
        principal: Principal,
        member: bool,
    ) -> CoreResult<()> {
        let Principal::App(app) = principal else {
            return Ok(());
        };
        let client: Option<String> = sqlx::query_scalar(
            "UPDATE apps SET service_account = $1 WHERE id = $2 AND org_id = $3 \
             RETURNING client_id",
        )
        .bind(flag(member))
        .bind(app.to_string())
        .bind(org.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
        match client {
            Some(client) => self.announce_client_change(tx, &client).await,
            // The app is gone (deleted meanwhile, or of another org): no membership for it.
            None => Err(CoreError::NotFound),
        }
    }

    /// One round trip: the app, joined with the secrets that can authenticate it.
    async fn read_client(&self, client_id: &str) -> CoreResult<Option<ClientRecord>> {
        if let Some(read) = self
            .sqlite_reader
            .as_ref()
            .and_then(|reader| reader.read_client(client_id))
        {
            return read;
        }
        let rows = sqlx::query(&client_query())
            .bind(client_id.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let app = rows::app(first)?;
        let mut secrets = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: Option<String> = sqlx::Row::try_get(r, "s_id").map_err(db_err)?;
            if id.is_some() {
                secrets.push(rows::secret(r)?);
            }
        }
        Ok(Some(ClientRecord { app, secrets }))
    }

    /// Applies pending forward-only migrations (see [`SqlStore::prepare_schema`]).
    pub async fn migrate(&self) -> CoreResult<crate::schema::SchemaStatus> {
        self.prepare_schema(true).await
    }

    /// Which database this is.
    pub fn kind(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        if let Some(reader) = &self.sqlite_reader {
            reader.close();
        }
        self.pool.close().await;
    }

    /// Runs one statement in a transaction; when it changed exactly one row, `audit` is
    /// written in the same transaction. Returns whether the row changed.
    async fn change_one<'q>(
        &self,
        statement: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        audit: &[AuditEvent],
    ) -> CoreResult<bool> {
        self.change_one_client(statement, None, audit).await
    }

    /// [`SqlStore::change_one`] for a statement that changes an app row: when it did,
    /// `client`'s cached record is invalidated on every node.
    async fn change_one_client<'q>(
        &self,
        statement: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        client: Option<&str>,
        audit: &[AuditEvent],
    ) -> CoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = statement
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected()
            == 1;
        if done {
            if let Some(client) = client {
                self.announce_client_change(&mut tx, client).await?;
            }
            insert_audit(&mut tx, audit).await?;
        }
        self.commit(tx).await?;
        Ok(done)
    }
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// An org's apps whose name or client id contains a term (`$2`, a [`like_pattern`]; empty:
/// all of them).
const APP_SEARCH: &str = "apps.org_id = $1 AND ($2 = '' OR LOWER(apps.name) LIKE $2 ESCAPE '\\' \
     OR LOWER(apps.client_id) LIKE $2 ESCAPE '\\')";

/// A LIKE pattern for "contains `term`", case-insensitive, with the term's wildcards escaped
/// (a search for "a_b" means it); empty for no term.
fn like_pattern(term: Option<&str>) -> String {
    term.map(|t| {
        let escaped = t
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    })
    .unwrap_or_default()
}

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;

fn ms(t: Timestamp) -> i64 {
    t.as_millis()
}

fn opt_ms(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::as_millis)
}

/// One info line per audited change, for operators reading logs: who did what to what. The
/// details stay in the audit trail (they are for the API, and may be long).
fn log_audit_event(e: &AuditEvent) {
    let outcome = match e.outcome {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
    };
    let id = |v: Option<String>| v.unwrap_or_default();
    tracing::info!(
        action = %e.action,
        actor = %e.actor,
        org = %id(e.org_id.map(|v| v.to_string())),
        app = %id(e.app_id.map(|v| v.to_string())),
        secret = %id(e.secret_id.map(|v| v.to_string())),
        request_id = %e.request_id.as_deref().unwrap_or(""),
        source = %e.source.as_deref().unwrap_or(""),
        outcome,
        "audit"
    );
}

/// Audit events per multi-row INSERT (14 parameters each; well under every limit).
const AUDIT_ROWS_PER_INSERT: usize = 50;

/// Writes audit events, each linked into its chain (see `rekey_core::audit_chain`). The
/// chain's head row is locked (an upsert) until the transaction ends, so events of one chain
/// are linked one after the other even across nodes.
async fn insert_audit(tx: &mut WriteTx, events: &[AuditEvent]) -> CoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let key = tx.audit_key.clone();
    let Some(key) = key.get() else {
        return Err(CoreError::storage_msg(
            "the audit chain key is not set (the store was opened without the server key)",
        ));
    };
    tx.audited.extend_from_slice(events);
    let conn: &mut AnyConnection = tx;
    // Heads are locked first, in one order (by chain) in every transaction, so that two
    // nodes writing events of the same orgs cannot deadlock; the events are then linked and
    // written in their own order.
    let mut chains: Vec<String> = events.iter().map(audit_chain::chain_of).collect();
    chains.sort();
    chains.dedup();
    let mut heads: std::collections::HashMap<String, (String, u64)> =
        std::collections::HashMap::new();
    for chain in chains {
        let head = sqlx::query(
            "INSERT INTO audit_chain_heads (chain, last_link, events, mac) VALUES ($1, '', 0, '') \
             ON CONFLICT (chain) DO UPDATE SET events = audit_chain_heads.events \
             RETURNING last_link, events",
        )
        .bind(chain.clone())
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
        let last: String = sqlx::Row::try_get(&head, "last_link").map_err(db_err)?;
        let count: i64 = sqlx::Row::try_get(&head, "events").map_err(db_err)?;
        heads.insert(chain, (last, u64::try_from(count).unwrap_or(0)));
    }
    let mut rows = Vec::with_capacity(events.len());
    for e in events {
        let chain = audit_chain::chain_of(e);
        let Some((previous, count)) = heads.get_mut(&chain) else {
            return Err(CoreError::storage_msg("an audit chain head was not locked"));
        };
        let fields = AuditFields::of(e);
        let link = audit_chain::link(key, previous, &fields.content(&chain));
        let prev_link = std::mem::replace(previous, link.clone());
        *count += 1;
        rows.push((fields, chain, prev_link, link));
    }
    // Multi-row inserts (a batch of deliveries or a policy pass writes many events): one
    // statement per chunk instead of one per event. Rows keep their order, so `seq` follows
    // the links.
    for chunk in rows.chunks(AUDIT_ROWS_PER_INSERT) {
        let values = (0..chunk.len())
            .map(|i| {
                let b = i * 14;
                let params: Vec<String> = (1..=14).map(|k| format!("${}", b + k)).collect();
                format!("({})", params.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO audit_events (id, time, action, actor, org_id, app_id, secret_id, \
             request_id, source, outcome, details, chain, prev_link, link) VALUES {values}"
        );
        let mut q = sqlx::query(&sql);
        for (fields, chain, prev_link, link) in chunk {
            let e = fields.event;
            q = q
                .bind(fields.id.clone())
                .bind(fields.time_ms)
                .bind(e.action.clone())
                .bind(e.actor.clone())
                .bind(fields.org_id.clone())
                .bind(fields.app_id.clone())
                .bind(fields.secret_id.clone())
                .bind(e.request_id.clone())
                .bind(e.source.clone())
                .bind(fields.outcome)
                .bind(fields.details.clone())
                .bind(chain.clone())
                .bind(prev_link.clone())
                .bind(link.clone());
        }
        q.execute(&mut *conn).await.map_err(db_err)?;
    }
    for (chain, (last, count)) in heads {
        sqlx::query(
            "UPDATE audit_chain_heads SET last_link = $1, events = $2, mac = $3 WHERE chain = $4",
        )
        .bind(last.clone())
        .bind(i64::try_from(count).unwrap_or(i64::MAX))
        .bind(audit_chain::head_mac(key, &chain, count, &last))
        .bind(chain)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}

/// An audit event's fields as they are stored (and hashed).
struct AuditFields<'a> {
    event: &'a AuditEvent,
    id: String,
    time_ms: i64,
    org_id: Option<String>,
    app_id: Option<String>,
    secret_id: Option<String>,
    outcome: &'static str,
    details: String,
}

impl<'a> AuditFields<'a> {
    fn of(e: &'a AuditEvent) -> Self {
        Self {
            event: e,
            id: e.id.to_string(),
            time_ms: ms(e.time),
            org_id: e.org_id.map(|v| v.to_string()),
            app_id: e.app_id.map(|v| v.to_string()),
            secret_id: e.secret_id.map(|v| v.to_string()),
            outcome: audit_chain::outcome_str(e.outcome),
            details: e.details.to_string(),
        }
    }

    fn content<'c>(&'c self, chain: &'c str) -> audit_chain::LinkContent<'c> {
        audit_chain::LinkContent {
            chain,
            id: &self.id,
            time_ms: self.time_ms,
            action: &self.event.action,
            actor: &self.event.actor,
            org_id: self.org_id.as_deref(),
            app_id: self.app_id.as_deref(),
            secret_id: self.secret_id.as_deref(),
            request_id: self.event.request_id.as_deref(),
            source: self.event.source.as_deref(),
            outcome: self.outcome,
            details: &self.details,
        }
    }
}

/// The statement that writes an app's mutable settings.
fn update_app_statement(
    app: &App,
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments<'static>> {
    sqlx::query(
        "UPDATE apps SET name = $1, description = $2, grant_types = $3, scopes = $4, \
         access_token_ttl_secs = $5, secret_lifetime_secs = $6, rotation_grace_secs = $7, \
         owner_only_secret_rotation = $8, audiences = $9, rotate_before_expiry_secs = $10, \
         retire_when_unused_secs = $11, updated_at = $12 WHERE id = $13",
    )
    .bind(app.name.clone())
    .bind(app.description.clone())
    .bind(to_json_list(&app.grant_types))
    .bind(to_json_list(&app.scopes))
    .bind(app.access_token_ttl_secs)
    .bind(app.secret_lifetime_secs)
    .bind(app.rotation_grace_secs)
    .bind(flag(app.owner_only_secret_rotation))
    .bind(to_json_list(&app.audiences))
    .bind(app.rotation_policy.rotate_before_expiry_secs)
    .bind(app.rotation_policy.retire_when_unused_secs)
    .bind(ms(app.updated_at))
    .bind(app.id.to_string())
}

async fn insert_user(conn: &mut AnyConnection, user: &User) -> CoreResult<()> {
    sqlx::query("INSERT INTO users (id, email, display_name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(user.id.to_string())
        .bind(user.email.clone())
        .bind(user.display_name.clone())
        .bind(ms(user.created_at))
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

async fn insert_api_token(conn: &mut AnyConnection, t: &ApiToken) -> CoreResult<()> {
    sqlx::query(
        "INSERT INTO api_tokens (id, user_id, org_id, name, hash, hint, created_at, \
         expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(t.id.to_string())
    .bind(t.user_id.to_string())
    .bind(t.org_id.to_string())
    .bind(t.name.clone())
    .bind(t.hash.0.to_vec())
    .bind(t.hint.clone())
    .bind(ms(t.created_at))
    .bind(opt_ms(t.expires_at))
    .bind(opt_ms(t.revoked_at))
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn insert_secret(conn: &mut AnyConnection, s: &Secret) -> CoreResult<()> {
    sqlx::query(
        "INSERT INTO secrets (id, app_id, state, hash, hint, created_at, expires_at, \
         last_used_at, created_by, revoked_at, revoked_reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(s.id.to_string())
    .bind(s.app_id.to_string())
    .bind(s.state.as_str())
    .bind(s.hash.0.to_vec())
    .bind(s.hint.clone())
    .bind(ms(s.created_at))
    .bind(opt_ms(s.expires_at))
    .bind(opt_ms(s.last_used_at))
    .bind(s.created_by.clone())
    .bind(opt_ms(s.revoked_at))
    .bind(s.revoked_reason.clone())
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Inserts a delivery; false when its dedupe key exists already.
async fn insert_delivery(conn: &mut AnyConnection, d: &Delivery) -> CoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO deliveries (id, notification_id, app_id, org_id, notification_type, \
         destination_id, sealed_payload, state, attempts, next_attempt_at, lease_owner, \
         lease_until, last_error, dedupe_key, created_at, delivered_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(d.id.to_string())
    .bind(d.notification_id.to_string())
    .bind(d.app_id.to_string())
    .bind(d.org_id.to_string())
    .bind(d.notification_type.as_str())
    .bind(d.destination_id.to_string())
    .bind(d.sealed_payload.clone())
    .bind(d.state.as_str())
    .bind(i64::from(d.attempts))
    .bind(ms(d.next_attempt_at))
    .bind(d.lease_owner.clone())
    .bind(opt_ms(d.lease_until))
    .bind(d.last_error.clone())
    .bind(d.dedupe_key.clone())
    .bind(ms(d.created_at))
    .bind(opt_ms(d.delivered_at))
    .execute(&mut *conn)
    .await
    .map_err(db_err)?
    .rows_affected();
    Ok(done == 1)
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    async fn ping(&self) -> CoreResult<()> {
        // A real write, in a write transaction: a database that answers reads but refuses
        // writes (read-only files, a full disk, a standby) is not ready to rotate anything.
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO rate_limits (bucket, tokens, updated_at) VALUES ('rekey:readiness', 0, 0) \
             ON CONFLICT (bucket) DO UPDATE SET tokens = 0",
        )
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        self.commit(tx).await
    }

    async fn create_org(&self, org: &Org, audit: &[AuditEvent]) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(org.id.to_string())
            .bind(org.name.clone())
            .bind(ms(org.created_at))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        insert_audit(&mut tx, audit).await?;
        self.commit(tx).await
    }

    async fn get_org(&self, id: OrgId) -> CoreResult<Option<Org>> {
        sqlx::query("SELECT id, name, created_at FROM orgs WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(|r| rows::org(&r))
            .transpose()
    }

    async fn count_orgs(&self) -> CoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orgs")
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn create_user(&self, user: &User) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_user(&mut tx, user).await?;
        self.commit(tx).await
    }

    async fn get_user(&self, id: UserId) -> CoreResult<Option<User>> {
        sqlx::query("SELECT id, email, display_name, created_at FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(|r| rows::user(&r))
            .transpose()
    }

    async fn find_user_by_email(&self, email: &str) -> CoreResult<Option<User>> {
        sqlx::query("SELECT id, email, display_name, created_at FROM users WHERE email = $1")
            .bind(email.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .map(|r| rows::user(&r))
            .transpose()
    }

    async fn change_membership(
        &self,
        org: OrgId,
        plan: MembershipPlan<'_>,
    ) -> Result<MembershipChanges, OpError> {
        let mut tx = self.begin_write().await?;
        // Lock the org first (a write as the first statement, as in `change_secrets`): two
        // concurrent changes then plan one after the other, each over committed members.
        let locked = sqlx::query("UPDATE orgs SET name = name WHERE id = $1")
            .bind(org.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if locked != 1 {
            return Err(OpError::NotFound);
        }
        let members: Vec<Membership> = sqlx::query(
            "SELECT org_id, principal_kind, principal_id, role, created_at FROM memberships \
             WHERE org_id = $1 ORDER BY created_at, principal_id",
        )
        .bind(org.to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::membership)
        .collect::<CoreResult<_>>()?;
        let changes = plan(&members)?;
        for u in &changes.new_users {
            insert_user(&mut tx, u).await?;
        }
        for m in &changes.put {
            self.put_membership_on(&mut tx, m).await?;
        }
        for p in &changes.remove {
            sqlx::query(
                "DELETE FROM memberships \
                 WHERE org_id = $1 AND principal_kind = $2 AND principal_id = $3",
            )
            .bind(org.to_string())
            .bind(p.kind())
            .bind(p.uuid().to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            self.set_service_account(&mut tx, org, *p, false).await?;
        }
        for t in &changes.new_api_tokens {
            insert_api_token(&mut tx, t).await?;
        }
        for app in &changes.apps {
            let updated = update_app_statement(app)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
            if updated != 1 {
                return Err(OpError::NotFound);
            }
            self.announce_client_change(&mut tx, &app.client_id).await?;
        }
        insert_audit(&mut tx, &changes.audit).await?;
        self.commit(tx).await?;
        Ok(changes)
    }

    async fn put_membership(&self, m: &Membership, audit: &[AuditEvent]) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        self.put_membership_on(&mut tx, m).await?;
        insert_audit(&mut tx, audit).await?;
        self.commit(tx).await
    }

    async fn get_membership(
        &self,
        org: OrgId,
        principal: Principal,
    ) -> CoreResult<Option<Membership>> {
        sqlx::query(
            "SELECT org_id, principal_kind, principal_id, role, created_at FROM memberships \
             WHERE org_id = $1 AND principal_kind = $2 AND principal_id = $3",
        )
        .bind(org.to_string())
        .bind(principal.kind())
        .bind(principal.uuid().to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| rows::membership(&r))
        .transpose()
    }

    async fn list_memberships(&self, org: OrgId) -> CoreResult<Vec<Membership>> {
        sqlx::query(
            "SELECT org_id, principal_kind, principal_id, role, created_at FROM memberships \
             WHERE org_id = $1 ORDER BY created_at, principal_id",
        )
        .bind(org.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::membership)
        .collect()
    }

    async fn create_api_token(&self, t: &ApiToken, audit: &[AuditEvent]) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_api_token(&mut tx, t).await?;
        insert_audit(&mut tx, audit).await?;
        self.commit(tx).await
    }

    async fn find_api_token_by_hash(&self, hash: &SecretHash) -> CoreResult<Option<ApiToken>> {
        sqlx::query(
            "SELECT id, user_id, org_id, name, hash, hint, created_at, expires_at, revoked_at \
             FROM api_tokens WHERE hash = $1",
        )
        .bind(hash.0.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| rows::api_token(&r))
        .transpose()
    }

    async fn get_api_token(&self, id: ApiTokenId) -> CoreResult<Option<ApiToken>> {
        sqlx::query(
            "SELECT id, user_id, org_id, name, hash, hint, created_at, expires_at, revoked_at \
             FROM api_tokens WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| rows::api_token(&r))
        .transpose()
    }

    async fn list_api_tokens(&self, org: OrgId, user: Option<UserId>) -> CoreResult<Vec<ApiToken>> {
        sqlx::query(
            "SELECT id, user_id, org_id, name, hash, hint, created_at, expires_at, revoked_at \
             FROM api_tokens WHERE org_id = $1 AND ($2 = '' OR user_id = $2) \
             ORDER BY created_at DESC, id",
        )
        .bind(org.to_string())
        .bind(user.map(|u| u.to_string()).unwrap_or_default())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::api_token)
        .collect()
    }

    async fn revoke_api_token(
        &self,
        id: ApiTokenId,
        now: Timestamp,
        audit: &[AuditEvent],
    ) -> CoreResult<bool> {
        self.change_one(
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(ms(now))
            .bind(id.to_string()),
            audit,
        )
        .await
    }

    async fn create_app(
        &self,
        app: &App,
        first_secret: &Secret,
        membership: Option<&Membership>,
        audit: &[AuditEvent],
    ) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO apps (id, org_id, client_id, name, description, grant_types, scopes, \
             access_token_ttl_secs, secret_lifetime_secs, rotation_grace_secs, \
             owner_only_secret_rotation, service_account, audiences, rotate_before_expiry_secs, \
             retire_when_unused_secs, secret_version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 0, $16, $17)",
        )
        .bind(app.id.to_string())
        .bind(app.org_id.to_string())
        .bind(app.client_id.clone())
        .bind(app.name.clone())
        .bind(app.description.clone())
        .bind(to_json_list(&app.grant_types))
        .bind(to_json_list(&app.scopes))
        .bind(app.access_token_ttl_secs)
        .bind(app.secret_lifetime_secs)
        .bind(app.rotation_grace_secs)
        .bind(flag(app.owner_only_secret_rotation))
        .bind(flag(app.service_account))
        .bind(to_json_list(&app.audiences))
        .bind(app.rotation_policy.rotate_before_expiry_secs)
        .bind(app.rotation_policy.retire_when_unused_secs)
        .bind(ms(app.created_at))
        .bind(ms(app.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        insert_secret(&mut tx, first_secret).await?;
        if let Some(m) = membership {
            self.put_membership_on(&mut tx, m).await?;
        }
        insert_audit(&mut tx, audit).await?;
        self.commit(tx).await
    }

    async fn get_app(&self, id: AppId) -> CoreResult<Option<App>> {
        sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE apps.id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| rows::app(&r))
        .transpose()
    }

    async fn find_app_by_client_id(&self, client_id: &str) -> CoreResult<Option<App>> {
        sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE apps.client_id = $1"
        ))
        .bind(client_id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| rows::app(&r))
        .transpose()
    }

    async fn list_apps(&self, org: OrgId, page: Page) -> CoreResult<Vec<App>> {
        sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE apps.org_id = $1 \
             ORDER BY apps.created_at, apps.id LIMIT $2 OFFSET $3"
        ))
        .bind(org.to_string())
        .bind(i64::from(page.limit))
        .bind(i64::from(page.start))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::app)
        .collect()
    }

    async fn search_apps(
        &self,
        org: OrgId,
        term: Option<&str>,
        page: Page,
    ) -> CoreResult<(Vec<App>, u64)> {
        let pattern = like_pattern(term);
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM apps WHERE {APP_SEARCH}"))
                .bind(org.to_string())
                .bind(pattern)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
        let apps = self.find_apps(org, term, page).await?;
        Ok((apps, u64::try_from(total).unwrap_or(0)))
    }

    async fn find_apps(&self, org: OrgId, term: Option<&str>, page: Page) -> CoreResult<Vec<App>> {
        sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE {APP_SEARCH} \
             ORDER BY apps.created_at, apps.id LIMIT $3 OFFSET $4"
        ))
        .bind(org.to_string())
        .bind(like_pattern(term))
        .bind(i64::from(page.limit))
        .bind(i64::from(page.start))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::app)
        .collect()
    }

    async fn update_app(&self, app: &App, audit: &[AuditEvent]) -> CoreResult<bool> {
        self.change_one_client(update_app_statement(app), Some(&app.client_id), audit)
            .await
    }

    async fn delete_app(&self, id: AppId, audit: &[AuditEvent]) -> CoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let client: Option<String> =
            sqlx::query_scalar("DELETE FROM apps WHERE id = $1 RETURNING client_id")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if let Some(client) = &client {
            self.announce_client_change(&mut tx, client).await?;
            sqlx::query(
                "DELETE FROM memberships WHERE principal_kind = 'app' AND principal_id = $1",
            )
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            insert_audit(&mut tx, audit).await?;
        }
        self.commit(tx).await?;
        Ok(client.is_some())
    }

    async fn load_client(&self, client_id: &str) -> CoreResult<Option<Arc<ClientRecord>>> {
        let Some(cache) = &self.cache else {
            return Ok(self.read_client(client_id).await?.map(Arc::new));
        };
        if let Some(hit) = cache.get(client_id) {
            return Ok(Some(hit));
        }
        let epoch = cache.epoch();
        let Some(record) = self.read_client(client_id).await?.map(Arc::new) else {
            return Ok(None);
        };
        cache.fill(client_id, epoch, record.clone());
        Ok(Some(record))
    }

    async fn list_secrets(&self, app: AppId) -> CoreResult<Vec<Secret>> {
        sqlx::query(&format!(
            "SELECT {SECRET_COLUMNS} FROM secrets WHERE secrets.app_id = $1 \
             ORDER BY secrets.created_at DESC, secrets.id"
        ))
        .bind(app.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::secret)
        .collect()
    }

    async fn get_secret(&self, id: SecretId) -> CoreResult<Option<Secret>> {
        sqlx::query(&format!(
            "SELECT {SECRET_COLUMNS} FROM secrets WHERE secrets.id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| rows::secret(&r))
        .transpose()
    }

    async fn change_secrets(
        &self,
        app_id: AppId,
        plan: SecretPlan<'_>,
    ) -> Result<SecretChanges, OpError> {
        let mut tx = self.begin_write().await?;
        // Lock first (a write as the first statement: see the crate docs).
        let locked =
            sqlx::query("UPDATE apps SET secret_version = secret_version + 1 WHERE id = $1")
                .bind(app_id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
        if locked != 1 {
            return Err(OpError::NotFound);
        }
        let app = sqlx::query(&format!(
            "SELECT {APP_COLUMNS} FROM apps WHERE apps.id = $1"
        ))
        .bind(app_id.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        let app = rows::app(&app)?;
        let secrets: Vec<Secret> = sqlx::query(&format!(
            "SELECT {SECRET_COLUMNS} FROM secrets WHERE secrets.app_id = $1"
        ))
        .bind(app_id.to_string())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::secret)
        .collect::<CoreResult<_>>()?;
        // The app row is locked, and setting an app's role writes that row: the role read
        // here holds until the commit.
        let service_account_role = if app.service_account {
            sqlx::query(
                "SELECT org_id, principal_kind, principal_id, role, created_at FROM memberships \
                 WHERE org_id = $1 AND principal_kind = 'app' AND principal_id = $2",
            )
            .bind(app.org_id.to_string())
            .bind(app_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .map(|r| rows::membership(&r))
            .transpose()?
            .map(|m| m.role)
        } else {
            None
        };
        let app = LockedApp {
            app,
            service_account_role,
        };
        let changes = plan(&app, &secrets)?;
        self.announce_client_change(&mut tx, &app.client_id).await?;
        // Updates first: a demoted current must leave its slot before the new one takes it.
        for s in &changes.update {
            sqlx::query(
                "UPDATE secrets SET state = $1, expires_at = $2, revoked_at = $3, \
                 revoked_reason = $4 WHERE id = $5 AND app_id = $6",
            )
            .bind(s.state.as_str())
            .bind(opt_ms(s.expires_at))
            .bind(opt_ms(s.revoked_at))
            .bind(s.revoked_reason.clone())
            .bind(s.id.to_string())
            .bind(app_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        for s in &changes.insert {
            insert_secret(&mut tx, s).await?;
        }
        for d in &changes.deliveries {
            insert_delivery(&mut tx, d).await?;
        }
        insert_audit(&mut tx, &changes.audit).await?;
        self.commit(tx).await?;
        Ok(changes)
    }

    async fn record_last_use(&self, uses: &[(SecretId, Timestamp)]) -> CoreResult<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for (id, at) in uses {
            sqlx::query(
                "UPDATE secrets SET last_used_at = $1 WHERE id = $2 \
                 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(ms(*at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        self.commit(tx).await
    }

    async fn list_signing_keys(&self) -> CoreResult<Vec<StoredSigningKey>> {
        sqlx::query(
            "SELECT kid, algorithm, public_key, sealed_private_key, created_at, publish_until, \
             signs_from FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::signing_key)
        .collect()
    }

    async fn add_signing_key(
        &self,
        key: &StoredSigningKey,
        retire_others_at: Timestamp,
        audit: &[AuditEvent],
    ) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE signing_keys SET publish_until = $1 WHERE publish_until IS NULL")
            .bind(ms(retire_others_at))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, public_key, sealed_private_key, \
             created_at, publish_until, signs_from) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(key.kid.clone())
        .bind(key.algorithm.clone())
        .bind(key.public_key.clone())
        .bind(key.sealed_private_key.clone())
        .bind(ms(key.created_at))
        .bind(opt_ms(key.publish_until))
        .bind(opt_ms(key.signs_from))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        insert_audit(&mut tx, audit).await?;
        self.commit(tx).await
    }

    async fn append_audit(&self, events: &[AuditEvent]) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        insert_audit(&mut tx, events).await?;
        self.commit(tx).await
    }

    async fn list_audit(&self, filter: &AuditFilter, page: Page) -> CoreResult<Vec<AuditEvent>> {
        let cols = "id, time, action, actor, org_id, app_id, secret_id, request_id, source, \
                    outcome, details";
        sqlx::query(&format!(
            "SELECT {cols} FROM audit_events WHERE ($1 = '' OR org_id = $1) \
             AND ($4 = '' OR app_id = $4) AND ($5 = '' OR action = $5) \
             AND time >= $6 AND time < $7 \
             ORDER BY seq DESC LIMIT $2 OFFSET $3"
        ))
        .bind(filter.org.map(|o| o.to_string()).unwrap_or_default())
        .bind(i64::from(page.limit))
        .bind(i64::from(page.start))
        .bind(filter.app.map(|a| a.to_string()).unwrap_or_default())
        .bind(filter.action.clone().unwrap_or_default())
        .bind(filter.since.map_or(i64::MIN, ms))
        .bind(filter.until.map_or(i64::MAX, ms))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::audit_event)
        .collect()
    }

    async fn put_destination(&self, d: &Destination, audit: &[AuditEvent]) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO destinations (id, app_id, notification_type, target, sealed_signing_key, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (app_id, notification_type) DO UPDATE SET id = excluded.id, \
             target = excluded.target, sealed_signing_key = excluded.sealed_signing_key, \
             updated_at = excluded.updated_at",
        )
        .bind(d.id.to_string())
        .bind(d.app_id.to_string())
        .bind(d.notification_type.as_str())
        .bind(serde_json::to_string(&d.target).map_err(|e| CoreError::Invalid(e.to_string()))?)
        .bind(d.sealed_signing_key.clone())
        .bind(ms(d.created_at))
        .bind(ms(d.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        insert_audit(&mut tx, audit).await?;
        self.commit(tx).await
    }

    async fn get_destination(
        &self,
        app: AppId,
        notification_type: NotificationType,
    ) -> CoreResult<Option<Destination>> {
        sqlx::query(&format!(
            "SELECT {DESTINATION_COLUMNS} FROM destinations WHERE app_id = $1 AND notification_type = $2"
        ))
        .bind(app.to_string())
        .bind(notification_type.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| rows::destination(&r))
        .transpose()
    }

    async fn get_destination_by_id(&self, id: DestinationId) -> CoreResult<Option<Destination>> {
        sqlx::query(&format!(
            "SELECT {DESTINATION_COLUMNS} FROM destinations WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| rows::destination(&r))
        .transpose()
    }

    async fn get_destinations_by_ids(&self, ids: &[DestinationId]) -> CoreResult<Vec<Destination>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let params: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {DESTINATION_COLUMNS} FROM destinations WHERE id IN ({})",
            params.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(id.to_string());
        }
        q.fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(rows::destination)
            .collect()
    }

    async fn list_destinations(&self, app: AppId) -> CoreResult<Vec<Destination>> {
        sqlx::query(&format!(
            "SELECT {DESTINATION_COLUMNS} FROM destinations WHERE app_id = $1 ORDER BY notification_type"
        ))
        .bind(app.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::destination)
        .collect()
    }

    async fn list_all_destinations(&self, limit: u32) -> CoreResult<Vec<Destination>> {
        sqlx::query(&format!(
            "SELECT {DESTINATION_COLUMNS} FROM destinations ORDER BY created_at, id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::destination)
        .collect()
    }

    async fn delete_destination(
        &self,
        app: AppId,
        notification_type: NotificationType,
        audit: &[AuditEvent],
    ) -> CoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("DELETE FROM destinations WHERE app_id = $1 AND notification_type = $2")
                .bind(app.to_string())
                .bind(notification_type.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected()
                == 1;
        if done {
            insert_audit(&mut tx, audit).await?;
        }
        self.commit(tx).await?;
        Ok(done)
    }

    async fn enqueue_deliveries(&self, d: &[Delivery], audit: &[AuditEvent]) -> CoreResult<usize> {
        let mut tx = self.begin_write().await?;
        let mut added = 0;
        for item in d {
            if insert_delivery(&mut tx, item).await? {
                added += 1;
            }
        }
        if added > 0 {
            insert_audit(&mut tx, audit).await?;
        }
        self.commit(tx).await?;
        Ok(added)
    }

    async fn claim_deliveries(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> CoreResult<Vec<Delivery>> {
        // The conditions are repeated outside the subquery: on PostgreSQL a row another
        // dispatcher leased meanwhile is re-checked after its lock is released and skipped.
        let mut tx = self.begin_write().await?;
        let claimed = sqlx::query(&format!(
            "UPDATE deliveries SET lease_owner = $1, lease_until = $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM deliveries WHERE state = 'pending' \
                 AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until <= $3) \
                 ORDER BY next_attempt_at LIMIT $4) \
             AND state = 'pending' AND (lease_until IS NULL OR lease_until <= $3) \
             RETURNING {DELIVERY_COLUMNS}"
        ))
        .bind(owner.to_string())
        .bind(ms(lease_until))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        self.commit(tx).await?;
        // RETURNING gives no order: sort, so that the dispatcher sends one app's
        // notifications oldest first.
        let mut claimed = claimed
            .iter()
            .map(rows::delivery)
            .collect::<CoreResult<Vec<_>>>()?;
        claimed.sort_by_key(|d| (d.next_attempt_at, d.created_at));
        Ok(claimed)
    }

    async fn record_delivery_outcomes(
        &self,
        owner: &str,
        outcomes: &[DeliveryOutcome],
    ) -> CoreResult<usize> {
        if outcomes.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let mut audit = Vec::new();
        let mut applied = 0;
        for o in outcomes {
            let statement = match &o.result {
                DeliveryResult::Delivered { at } => sqlx::query(
                    "UPDATE deliveries SET state = 'delivered', sealed_payload = NULL, \
                     delivered_at = $1, lease_owner = NULL, lease_until = NULL, last_error = NULL \
                     WHERE id = $2 AND state = 'pending' AND lease_owner = $3",
                )
                .bind(ms(*at))
                .bind(o.id.to_string())
                .bind(owner.to_string()),
                DeliveryResult::Failed { error, retry_at } => {
                    let (state, next) = match retry_at {
                        Some(t) => ("pending", Some(ms(*t))),
                        None => ("dead", None),
                    };
                    sqlx::query(
                        "UPDATE deliveries SET state = $1, \
                         next_attempt_at = COALESCE($2, next_attempt_at), last_error = $3, \
                         lease_owner = NULL, lease_until = NULL \
                         WHERE id = $4 AND state = 'pending' AND lease_owner = $5",
                    )
                    .bind(state)
                    .bind(next)
                    .bind(error.chars().take(1000).collect::<String>())
                    .bind(o.id.to_string())
                    .bind(owner.to_string())
                }
                DeliveryResult::Released => sqlx::query(
                    "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL, \
                     attempts = attempts - 1 \
                     WHERE id = $1 AND state = 'pending' AND lease_owner = $2",
                )
                .bind(o.id.to_string())
                .bind(owner.to_string()),
            };
            let changed = statement
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
            if changed == 1 {
                applied += 1;
                audit.extend_from_slice(&o.audit);
            }
        }
        insert_audit(&mut tx, &audit).await?;
        self.commit(tx).await?;
        Ok(applied)
    }

    async fn get_delivery(&self, id: DeliveryId) -> CoreResult<Option<Delivery>> {
        sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| rows::delivery(&r))
        .transpose()
    }

    async fn list_deliveries(
        &self,
        org: OrgId,
        app: Option<AppId>,
        state: Option<DeliveryState>,
        page: Page,
    ) -> CoreResult<Vec<Delivery>> {
        sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE org_id = $1 \
             AND ($2 = '' OR app_id = $2) AND ($3 = '' OR state = $3) \
             ORDER BY created_at DESC, id LIMIT $4 OFFSET $5"
        ))
        .bind(org.to_string())
        .bind(app.map(|a| a.to_string()).unwrap_or_default())
        .bind(state.map(|s| s.as_str().to_string()).unwrap_or_default())
        .bind(i64::from(page.limit))
        .bind(i64::from(page.start))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::delivery)
        .collect()
    }

    async fn retry_delivery(
        &self,
        id: DeliveryId,
        now: Timestamp,
        audit: &[AuditEvent],
    ) -> CoreResult<bool> {
        self.change_one(
            sqlx::query(
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = $1, \
             lease_owner = NULL, lease_until = NULL WHERE id = $2 AND state = 'dead'",
            )
            .bind(ms(now))
            .bind(id.to_string()),
            audit,
        )
        .await
    }

    async fn take_rate_token(
        &self,
        key: &str,
        rate_per_sec: f64,
        burst: f64,
        now: Timestamp,
    ) -> CoreResult<bool> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO rate_limits (bucket, tokens, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (bucket) DO NOTHING",
        )
        .bind(key.to_string())
        .bind(burst)
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        // Refill for the time passed (never for time going backwards), cap at the burst,
        // and take one token only if one is there: a single atomic statement.
        let refilled = "(CASE WHEN tokens + (CASE WHEN $2 > updated_at THEN $2 - updated_at ELSE 0 END) * $3 > $4 \
             THEN $4 ELSE tokens + (CASE WHEN $2 > updated_at THEN $2 - updated_at ELSE 0 END) * $3 END)";
        let taken = sqlx::query(&format!(
            "UPDATE rate_limits SET tokens = {refilled} - 1, \
             updated_at = CASE WHEN $2 > updated_at THEN $2 ELSE updated_at END \
             WHERE bucket = $1 AND {refilled} >= 1"
        ))
        .bind(key.to_string())
        .bind(ms(now))
        .bind(rate_per_sec / 1000.0)
        .bind(burst)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            == 1;
        self.commit(tx).await?;
        Ok(taken)
    }

    async fn secrets_expiring_before(
        &self,
        before: Timestamp,
        after: Option<(Timestamp, SecretId)>,
        limit: u32,
    ) -> CoreResult<Vec<Secret>> {
        let (after_time, after_id) =
            after.map_or((i64::MIN, String::new()), |(t, id)| (ms(t), id.to_string()));
        sqlx::query(&format!(
            "SELECT {SECRET_COLUMNS} FROM secrets WHERE secrets.state IN ('current', 'previous') \
             AND secrets.expires_at IS NOT NULL AND secrets.expires_at < $1 \
             AND (secrets.expires_at > $3 OR (secrets.expires_at = $3 AND secrets.id > $4)) \
             ORDER BY secrets.expires_at, secrets.id LIMIT $2"
        ))
        .bind(ms(before))
        .bind(i64::from(limit))
        .bind(after_time)
        .bind(after_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::secret)
        .collect()
    }

    async fn get_org_rotation_policy(&self, org: OrgId) -> CoreResult<RotationPolicy> {
        let row = sqlx::query(
            "SELECT rotate_before_expiry_secs, retire_when_unused_secs FROM orgs WHERE id = $1",
        )
        .bind(org.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| {
            Ok(RotationPolicy {
                rotate_before_expiry_secs: rows::opt_int(&r, "rotate_before_expiry_secs")?,
                retire_when_unused_secs: rows::opt_int(&r, "retire_when_unused_secs")?,
            })
        })
        .transpose()
        .map(Option::unwrap_or_default)
    }

    async fn set_org_rotation_policy(
        &self,
        org: OrgId,
        policy: RotationPolicy,
        audit: &[AuditEvent],
    ) -> CoreResult<bool> {
        self.change_one(
            sqlx::query(
                "UPDATE orgs SET rotate_before_expiry_secs = $1, retire_when_unused_secs = $2 \
                 WHERE id = $3",
            )
            .bind(policy.rotate_before_expiry_secs)
            .bind(policy.retire_when_unused_secs)
            .bind(org.to_string()),
            audit,
        )
        .await
    }

    async fn rotation_policy_candidates(
        &self,
        now: Timestamp,
        after: Option<AppId>,
        limit: u32,
    ) -> CoreResult<Vec<AppId>> {
        // The policy test comes first, so apps without a policy cost no secret lookup. A
        // rotation in progress is a candidate only once the rule might retire it (the new
        // secret used, the old one and the rotation older than the quiet period as set; the
        // rule stretches a short one): waiting rotations, however many, cost nothing here.
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT a.id FROM apps a JOIN orgs o ON o.id = a.org_id WHERE a.id > $2 AND ( \
               (COALESCE(a.rotate_before_expiry_secs, o.rotate_before_expiry_secs, 0) > 0 \
                AND EXISTS (SELECT 1 FROM secrets s WHERE s.app_id = a.id \
                  AND s.state = 'current' AND s.revoked_at IS NULL AND s.expires_at IS NOT NULL \
                  AND s.expires_at - 1000 * COALESCE(a.rotate_before_expiry_secs, \
                      o.rotate_before_expiry_secs) <= $1)) \
               OR (COALESCE(a.retire_when_unused_secs, o.retire_when_unused_secs, 0) > 0 \
                AND EXISTS (SELECT 1 FROM secrets p JOIN secrets c \
                    ON c.app_id = p.app_id AND c.state = 'current' \
                  WHERE p.app_id = a.id AND p.state = 'previous' AND p.revoked_at IS NULL \
                  AND (p.expires_at IS NULL OR p.expires_at > $1) \
                  AND c.last_used_at >= c.created_at \
                  AND c.created_at <= $1 - 1000 * COALESCE(a.retire_when_unused_secs, \
                      o.retire_when_unused_secs) \
                  AND (p.last_used_at IS NULL OR p.last_used_at <= $1 - 1000 * \
                      COALESCE(a.retire_when_unused_secs, o.retire_when_unused_secs))))) \
             ORDER BY a.id LIMIT $3",
        )
        .bind(ms(now))
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        ids.iter()
            .map(|s| {
                AppId::parse(s).ok_or_else(|| {
                    CoreError::storage("a stored value is not valid", "column apps.id")
                })
            })
            .collect()
    }

    async fn rotation_policy_waiting(
        &self,
        now: Timestamp,
        min_quiet_secs: i64,
    ) -> CoreResult<rekey_core::rotation_policy::WaitingCounts> {
        // The quiet period as the rule applies it: the app's (or org's), at least the minimum.
        const QUIET: &str = "(1000 * CASE WHEN COALESCE(a.retire_when_unused_secs, \
            o.retire_when_unused_secs) > $2 THEN COALESCE(a.retire_when_unused_secs, \
            o.retire_when_unused_secs) ELSE $2 END)";
        let row = sqlx::query(&format!(
            "SELECT \
               COALESCE(SUM(CASE WHEN c.last_used_at IS NULL OR c.last_used_at < c.created_at \
                 THEN 1 ELSE 0 END), 0) AS new_unused, \
               COALESCE(SUM(CASE WHEN c.last_used_at >= c.created_at \
                 AND p.last_used_at >= c.created_at AND p.last_used_at > $1 - {QUIET} \
                 THEN 1 ELSE 0 END), 0) AS still_used, \
               COALESCE(SUM(CASE WHEN c.last_used_at >= c.created_at \
                 AND (p.last_used_at IS NULL OR p.last_used_at < c.created_at) \
                 AND c.created_at > $1 - {QUIET} THEN 1 ELSE 0 END), 0) AS quiet \
             FROM secrets p \
             JOIN secrets c ON c.app_id = p.app_id AND c.state = 'current' \
               AND c.revoked_at IS NULL AND (c.expires_at IS NULL OR c.expires_at > $1) \
             JOIN apps a ON a.id = p.app_id JOIN orgs o ON o.id = a.org_id \
             WHERE p.state = 'previous' AND p.revoked_at IS NULL \
               AND (p.expires_at IS NULL OR p.expires_at > $1) \
               AND COALESCE(a.retire_when_unused_secs, o.retire_when_unused_secs, 0) > 0"
        ))
        .bind(ms(now))
        .bind(min_quiet_secs)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        let count = |c: &str| -> CoreResult<u64> {
            let v: i64 = sqlx::Row::try_get(&row, c).map_err(db_err)?;
            Ok(u64::try_from(v).unwrap_or(0))
        };
        Ok(rekey_core::rotation_policy::WaitingCounts {
            new_secret_unused: count("new_unused")?,
            previous_still_used: count("still_used")?,
            quiet_period: count("quiet")?,
        })
    }

    async fn create_console_link(
        &self,
        link: &ConsoleLink,
        audit: &[AuditEvent],
    ) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO console_links (hash, user_id, org_id, created_at, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(link.hash.0.to_vec())
        .bind(link.user_id.to_string())
        .bind(link.org_id.to_string())
        .bind(ms(link.created_at))
        .bind(ms(link.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        insert_audit(&mut tx, audit).await?;
        self.commit(tx).await
    }

    async fn use_console_link(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> CoreResult<Option<ConsoleLink>> {
        let mut tx = self.begin_write().await?;
        // One UPDATE decides: of racing requests, only one sees a row.
        let row = sqlx::query(
            "UPDATE console_links SET used_at = $2 \
             WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 \
             RETURNING hash, user_id, org_id, created_at, expires_at, used_at",
        )
        .bind(hash.0.to_vec())
        .bind(ms(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        self.commit(tx).await?;
        row.map(|r| rows::console_link(&r)).transpose()
    }

    async fn create_console_session(
        &self,
        session: &ConsoleSession,
        audit: &[AuditEvent],
    ) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO console_sessions (id, hash, user_id, org_id, created_at, last_seen_at, \
             expires_at, revoked_at, api_token_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(session.id.to_string())
        .bind(session.hash.0.to_vec())
        .bind(session.user_id.to_string())
        .bind(session.org_id.to_string())
        .bind(ms(session.created_at))
        .bind(ms(session.last_seen_at))
        .bind(ms(session.expires_at))
        .bind(opt_ms(session.revoked_at))
        .bind(session.api_token_id.map(|t| t.to_string()))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        insert_audit(&mut tx, audit).await?;
        self.commit(tx).await
    }

    async fn find_console_session(&self, hash: &SecretHash) -> CoreResult<Option<ConsoleSession>> {
        sqlx::query(
            "SELECT id, hash, user_id, org_id, created_at, last_seen_at, expires_at, revoked_at, \
             api_token_id FROM console_sessions WHERE hash = $1",
        )
        .bind(hash.0.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| rows::console_session(&r))
        .transpose()
    }

    async fn touch_console_session(&self, id: ConsoleSessionId, now: Timestamp) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE console_sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2",
        )
        .bind(id.to_string())
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        self.commit(tx).await
    }

    async fn revoke_console_session(
        &self,
        id: ConsoleSessionId,
        now: Timestamp,
        audit: &[AuditEvent],
    ) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE console_sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id.to_string())
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        insert_audit(&mut tx, audit).await?;
        self.commit(tx).await
    }

    async fn secrets_expiring_in_org(
        &self,
        org: OrgId,
        now: Timestamp,
        before: Timestamp,
        limit: u32,
    ) -> CoreResult<Vec<Secret>> {
        sqlx::query(&format!(
            // Secrets first (CROSS JOIN keeps SQLite to that order): the expiry index finds
            // the few in the window, where starting from the org's apps would probe them all.
            // `state IN` lets SQLite use that partial index.
            "SELECT {SECRET_COLUMNS} FROM secrets CROSS JOIN apps \
             WHERE apps.id = secrets.app_id AND apps.org_id = $1 \
             AND secrets.state IN ('current', 'previous') AND secrets.state = 'current' \
             AND secrets.revoked_at IS NULL \
             AND secrets.expires_at > $2 AND secrets.expires_at <= $3 \
             ORDER BY secrets.expires_at, secrets.id LIMIT $4"
        ))
        .bind(org.to_string())
        .bind(ms(now))
        .bind(ms(before))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::secret)
        .collect()
    }

    async fn previous_secrets_in_org(
        &self,
        org: OrgId,
        now: Timestamp,
        limit: u32,
    ) -> CoreResult<Vec<Secret>> {
        sqlx::query(&format!(
            // Previous secrets first, through their partial index (see above).
            "SELECT {SECRET_COLUMNS} FROM secrets CROSS JOIN apps \
             WHERE apps.id = secrets.app_id AND apps.org_id = $1 AND secrets.state = 'previous' \
             AND secrets.revoked_at IS NULL \
             AND (secrets.expires_at IS NULL OR secrets.expires_at > $2) \
             ORDER BY secrets.created_at DESC, secrets.id LIMIT $3"
        ))
        .bind(org.to_string())
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::secret)
        .collect()
    }

    async fn prune_console(&self, before: Timestamp) -> CoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let links = sqlx::query("DELETE FROM console_links WHERE expires_at < $1")
            .bind(ms(before))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let sessions =
            sqlx::query("DELETE FROM console_sessions WHERE expires_at < $1 OR revoked_at < $1")
                .bind(ms(before))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        self.commit(tx).await?;
        Ok(links.rows_affected() + sessions.rows_affected())
    }

    async fn list_memberships_of(&self, principal: Principal) -> CoreResult<Vec<Membership>> {
        sqlx::query(
            "SELECT org_id, principal_kind, principal_id, role, created_at FROM memberships \
             WHERE principal_kind = $1 AND principal_id = $2 ORDER BY created_at, org_id",
        )
        .bind(principal.kind())
        .bind(principal.uuid().to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::membership)
        .collect()
    }

    async fn add_first_signing_key(
        &self,
        key: &StoredSigningKey,
        audit: &[AuditEvent],
    ) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        // The unique index `signing_keys_one_signing` refuses a second signing key.
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, public_key, sealed_private_key, \
             created_at, publish_until) VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(key.kid.clone())
        .bind(key.algorithm.clone())
        .bind(key.public_key.clone())
        .bind(key.sealed_private_key.clone())
        .bind(ms(key.created_at))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        insert_audit(&mut tx, audit).await?;
        self.commit(tx).await
    }

    async fn key_check(&self) -> CoreResult<Option<String>> {
        sqlx::query_scalar("SELECT key_check FROM server_key_check WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn record_key_check(&self, check: &str, now: Timestamp) -> CoreResult<String> {
        let mut tx = self.begin_write().await?;
        // The first one wins, however many nodes start at once.
        sqlx::query(
            "INSERT INTO server_key_check (id, key_check, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(check.to_string())
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let recorded: String =
            sqlx::query_scalar("SELECT key_check FROM server_key_check WHERE id = 1")
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
        self.commit(tx).await?;
        Ok(recorded)
    }

    async fn record_node(&self, node: &NodeInfo, node_now: Timestamp) -> CoreResult<()> {
        let db_now = self.database_now().await?;
        sqlx::query(
            "INSERT INTO nodes (id, hostname, public_url, version, schema_version, started_at, \
             last_seen_at, clock_skew_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET last_seen_at = excluded.last_seen_at, \
             clock_skew_ms = excluded.clock_skew_ms, public_url = excluded.public_url",
        )
        .bind(node.id.clone())
        .bind(node.hostname.clone())
        .bind(node.public_url.clone())
        .bind(node.version.clone())
        .bind(node.schema_version)
        .bind(ms(node.started_at))
        .bind(ms(db_now))
        .bind(ms(node_now) - ms(db_now))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        // Nodes gone for a day are forgotten.
        sqlx::query("DELETE FROM nodes WHERE last_seen_at < $1")
            .bind(ms(db_now) - DAY * 1000)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn list_nodes(&self, since: Timestamp) -> CoreResult<Vec<NodeInfo>> {
        let rows = sqlx::query(
            "SELECT id, hostname, public_url, version, schema_version, started_at, \
             last_seen_at, clock_skew_ms FROM nodes WHERE last_seen_at >= $1 \
             ORDER BY last_seen_at DESC, id",
        )
        .bind(ms(since))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(rows::node).collect()
    }

    async fn database_now(&self) -> CoreResult<Timestamp> {
        let sql = match self.backend {
            Backend::Sqlite => "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
            Backend::Postgres => {
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
            }
        };
        let now: i64 = sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(Timestamp::from_millis(now))
    }

    async fn is_server_admin(&self, user: UserId) -> CoreResult<bool> {
        let flag: Option<i64> = sqlx::query_scalar("SELECT server_admin FROM users WHERE id = $1")
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(flag == Some(1))
    }

    async fn revoke_token(
        &self,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
        audit: &[AuditEvent],
    ) -> CoreResult<()> {
        let mut tx = self.begin_write().await?;
        let added = sqlx::query(
            "INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES ($1, $2, $3) \
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti.to_string())
        .bind(ms(expires_at))
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if added.rows_affected() == 1 {
            insert_audit(&mut tx, audit).await?;
        }
        self.commit(tx).await
    }

    async fn is_token_revoked(&self, jti: &str) -> CoreResult<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM revoked_tokens WHERE jti = $1")
            .bind(jti.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(n > 0)
    }

    async fn prune_revoked_tokens(&self, before: Timestamp) -> CoreResult<u64> {
        let done = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(ms(before))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    fn set_audit_key(&self, key: KeyedHasher) {
        let _ = self.audit_key.set(key);
    }

    async fn verify_audit_chain(&self, chain: &str) -> CoreResult<audit_chain::ChainReport> {
        let Some(key) = self.audit_key.get() else {
            return Err(CoreError::storage_msg("the audit chain key is not set"));
        };
        let mut verifier = audit_chain::ChainVerifier::new(key, chain);
        // Where the chains began (recorded by migration 8): an unlinked event after that had
        // its links removed. Without the record, every event must be linked.
        let began: i64 = sqlx::query_scalar("SELECT after_seq FROM audit_chain_start WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .unwrap_or(0);
        // Events from before the chains have no chain column: they belong to the chain of
        // their org. Pages by seq, oldest first.
        let mut after = i64::MIN;
        'pages: loop {
            let rows = sqlx::query(
                "SELECT seq, id, time, action, actor, org_id, app_id, secret_id, request_id, \
                 source, outcome, details, prev_link, link FROM audit_events \
                 WHERE COALESCE(chain, COALESCE(org_id, '')) = $1 AND seq > $2 \
                 ORDER BY seq LIMIT 1000",
            )
            .bind(chain.to_string())
            .bind(after)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
            let Some(last) = rows.last() else {
                break;
            };
            after = sqlx::Row::try_get(last, "seq").map_err(db_err)?;
            for r in &rows {
                let text = |c: &str| -> CoreResult<Option<String>> {
                    sqlx::Row::try_get(r, c).map_err(db_err)
                };
                let (id, action, actor, outcome, details) = (
                    text("id")?.unwrap_or_default(),
                    text("action")?.unwrap_or_default(),
                    text("actor")?.unwrap_or_default(),
                    text("outcome")?.unwrap_or_default(),
                    text("details")?.unwrap_or_default(),
                );
                let (org_id, app_id, secret_id, request_id, source) = (
                    text("org_id")?,
                    text("app_id")?,
                    text("secret_id")?,
                    text("request_id")?,
                    text("source")?,
                );
                let seq: i64 = sqlx::Row::try_get(r, "seq").map_err(db_err)?;
                let content = audit_chain::LinkContent {
                    chain,
                    id: &id,
                    time_ms: sqlx::Row::try_get(r, "time").map_err(db_err)?,
                    action: &action,
                    actor: &actor,
                    org_id: org_id.as_deref(),
                    app_id: app_id.as_deref(),
                    secret_id: secret_id.as_deref(),
                    request_id: request_id.as_deref(),
                    source: source.as_deref(),
                    outcome: &outcome,
                    details: &details,
                };
                let (prev_link, link) = (text("prev_link")?, text("link")?);
                let after_chains_began = seq > began;
                if !verifier.next(
                    &content,
                    prev_link.as_deref(),
                    link.as_deref(),
                    after_chains_began,
                ) {
                    break 'pages;
                }
            }
        }
        let head =
            sqlx::query("SELECT last_link, events, mac FROM audit_chain_heads WHERE chain = $1")
                .bind(chain.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        let head = match &head {
            Some(r) => {
                let last: String = sqlx::Row::try_get(r, "last_link").map_err(db_err)?;
                let events: i64 = sqlx::Row::try_get(r, "events").map_err(db_err)?;
                let mac: String = sqlx::Row::try_get(r, "mac").map_err(db_err)?;
                Some((last, u64::try_from(events).unwrap_or(0), mac))
            }
            None => None,
        };
        Ok(verifier.finish(head.as_ref().map(|(l, n, m)| (l.as_str(), *n, m.as_str()))))
    }

    async fn list_audit_chains(&self) -> CoreResult<Vec<String>> {
        // Every chain there is evidence of: a head, a linked event, an org (a chain whose
        // head was deleted is still checked).
        sqlx::query_scalar(
            "SELECT chain FROM audit_chain_heads \
             UNION SELECT chain FROM audit_events WHERE chain IS NOT NULL \
             UNION SELECT id FROM orgs ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn list_server_admins(&self) -> CoreResult<Vec<User>> {
        sqlx::query(
            "SELECT id, email, display_name, created_at FROM users WHERE server_admin = 1 \
             ORDER BY email",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(rows::user)
        .collect()
    }

    async fn set_server_admin(&self, user: UserId, admin: bool) -> CoreResult<()> {
        let done = sqlx::query("UPDATE users SET server_admin = $1 WHERE id = $2")
            .bind(flag(admin))
            .bind(user.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(CoreError::NotFound);
        }
        Ok(())
    }

    async fn gauges(&self, now: Timestamp) -> CoreResult<StoreGauges> {
        // One statement, one snapshot. Dead deliveries of deleted apps no longer matter.
        let row = sqlx::query(
            "SELECT \
             (SELECT COUNT(*) FROM deliveries WHERE state = 'pending') AS pending, \
             (SELECT MIN(created_at) FROM deliveries WHERE state = 'pending') AS oldest, \
             (SELECT COUNT(*) FROM deliveries d WHERE d.state = 'dead' \
                AND EXISTS (SELECT 1 FROM apps a WHERE a.id = d.app_id)) AS dead, \
             (SELECT COUNT(*) FROM secrets WHERE state = 'current' \
                AND expires_at > $1 AND expires_at <= $2) AS expiring_7d, \
             (SELECT COUNT(*) FROM secrets WHERE state = 'current' \
                AND expires_at > $1 AND expires_at <= $3) AS expiring_30d, \
             (SELECT COUNT(*) FROM secrets WHERE state = 'previous' \
                AND (expires_at IS NULL OR expires_at > $1) AND last_used_at >= $4) AS used_1h, \
             (SELECT COUNT(*) FROM secrets WHERE state = 'previous' \
                AND (expires_at IS NULL OR expires_at > $1) \
                AND last_used_at >= $5 AND last_used_at < $4) AS used_24h, \
             (SELECT COUNT(*) FROM secrets WHERE state = 'previous' \
                AND (expires_at IS NULL OR expires_at > $1) AND last_used_at < $5) AS used_older, \
             (SELECT COUNT(*) FROM secrets WHERE state = 'previous' \
                AND (expires_at IS NULL OR expires_at > $1) AND last_used_at IS NULL) AS never_used",
        )
        .bind(ms(now))
        .bind(ms(now.plus_secs(7 * DAY)))
        .bind(ms(now.plus_secs(30 * DAY)))
        .bind(ms(now.plus_secs(-HOUR)))
        .bind(ms(now.plus_secs(-DAY)))
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        rows::store_gauges(&row)
    }
}
