//! Building and running the server: store, server key, state, router, background tasks.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rekey_core::clock::Clock;
use rekey_core::crypto::ServerKey;
use rekey_core::metrics::{HTTP_CONNECTIONS_OPEN, HTTP_CONNECTIONS_REFUSED};
use rekey_core::store::Store;
use rekey_core::token::sealed_by;
use rekey_store::SqlStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;

use crate::config::{Config, NodeRole};
use crate::errors::FillRequestId;
use crate::extract::{ClientAddr, CLIENT_REQUEST_ID_HEADER, REQUEST_ID_HEADER};
use crate::metrics::MetricsEndpoint;
use crate::state::{AppState, SharedState};
use crate::{console, csp, native, oauth, spapi, telemetry};

/// Opens (and, if configured, migrates) the store named by the config. The embedded SQLite
/// database lives in a private data directory (0700) in files only the server's user reads
/// (0600): they hold every secret's hash and the sealed signing keys.
pub async fn open_store(config: &Config) -> anyhow::Result<SqlStore> {
    let url = config.effective_database_url();
    if config.database_url.is_empty() {
        make_private_dir(&config.data_dir)?;
    }
    if let Some(db) = sqlite_file(&url) {
        make_private_sqlite_files(&db)?;
    }
    make_private_key_file(&config.data_dir)?;
    let store = SqlStore::connect(&url, config.database_max_connections).await?;
    check_schema(&store, config.auto_migrate).await?;
    Ok(store)
}

/// Migrates the database when `auto_migrate` (else refuses a database behind this binary),
/// and refuses newer migrations this binary cannot run against (see docs/upgrading.md).
pub async fn check_schema(
    store: &SqlStore,
    auto_migrate: bool,
) -> anyhow::Result<rekey_store::SchemaStatus> {
    store
        .prepare_schema(auto_migrate)
        .await
        .map_err(|e| match e {
            rekey_core::error::CoreError::Invalid(why) => anyhow::anyhow!(why),
            e => e.into(),
        })
}

/// Opens the database of a command that works on an existing one (`signing-keys`,
/// `console-link`): a missing SQLite file is an error, not a new empty database (a command run
/// without the server's settings would otherwise show an empty list from a file it just made).
pub async fn open_existing_store(config: &Config) -> anyhow::Result<SqlStore> {
    if let Some(db) = sqlite_file(&config.effective_database_url()) {
        if !db.exists() {
            anyhow::bail!(
                "no database at {}: this command works on the server's database; point \
                 --config, --data-dir or --database-url at it (`rekey serve` or `rekey init` \
                 makes a new one)",
                db.display()
            );
        }
    }
    open_store(config).await
}

/// The database file of an SQLite URL (`sqlite://path?mode=rwc`, `sqlite:path`), if it names
/// one.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Gives a serving store its client cache (unless `client_cache_capacity` is 0). Clone the
/// store only after this, so every handle shares (and invalidates) the one cache.
pub async fn cache_clients(store: SqlStore, config: &Config) -> anyhow::Result<SqlStore> {
    if config.client_cache_capacity == 0 {
        return Ok(store);
    }
    let max_age = Duration::from_secs(config.client_cache_max_age_seconds);
    Ok(store
        .with_client_cache(config.client_cache_capacity, max_age)
        .await?)
}

/// The configured server key: `server_key` (or `REKEY_SERVER_KEY_FILE`), else
/// `<data_dir>/server.key` if that file exists.
pub fn configured_server_key(config: &Config) -> anyhow::Result<Option<ServerKey>> {
    if !config.server_key.is_empty() {
        return Ok(Some(ServerKey::from_base64(&config.server_key)?));
    }
    let path = config.data_dir.join("server.key");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    ServerKey::from_base64(&text)
        .map(Some)
        .with_context(|| format!("{} does not hold a valid server key", path.display()))
}

/// Whether a command may make the server key of an empty database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewKey {
    /// `serve` and `init`: the commands that set a database up.
    MayCreate,
    /// Every other command: a key made by a tool run from elsewhere would lock the real
    /// nodes out.
    MustExist,
}

/// The server key for `store`, checked against the database's key check. A new key
/// (`<data_dir>/server.key`, 0600) is made only for an empty database, and only by `serve`
/// and `init`: over existing data it could open nothing, and every secret would fail.
pub async fn server_key_for(
    config: &Config,
    store: &dyn Store,
    new_key: NewKey,
) -> anyhow::Result<ServerKey> {
    let missing = || {
        anyhow::anyhow!(
            "no server key for this database: server_key is not set and {} does not exist. \
             Give this command the database's own key (see \"Lost or wrong server key\" in \
             docs/operations.md); a new key cannot open what the database holds. No key was \
             made.",
            config.data_dir.join("server.key").display()
        )
    };
    if let Some(key) = configured_server_key(config)? {
        check_server_key(store, &key).await?;
        return Ok(key);
    }
    if new_key == NewKey::MustExist || !database_is_empty(store).await? {
        return Err(missing());
    }
    // Recorded first: of nodes setting up one database at once, the first wins, and a node
    // that lost never keeps a key file that does not match.
    let key = ServerKey::generate();
    let mine = key.key_check();
    let recorded = store
        .record_key_check(&mine, rekey_core::clock::SystemClock.now())
        .await?;
    if recorded != mine {
        return Err(missing());
    }
    store.set_audit_key(key.audit_hasher());
    let path = config.data_dir.join("server.key");
    make_private_dir(&config.data_dir)?;
    write_private_file(&path, key.to_base64().as_bytes())?;
    tracing::info!(path = %path.display(), "created a new server key; back it up with the database");
    Ok(key)
}

async fn database_is_empty(store: &dyn Store) -> anyhow::Result<bool> {
    Ok(store.key_check().await?.is_none()
        && store.count_orgs().await? == 0
        && store.list_signing_keys().await?.is_empty())
}

/// Stops when `key` is not the database's key; when it is, the store links audit events
/// with it from then on. A database from before key checks is checked against its signing
/// keys (sealed with the key), then gets its key check.
pub async fn check_server_key(store: &dyn Store, key: &ServerKey) -> anyhow::Result<()> {
    check_key(store, key).await?;
    store.set_audit_key(key.audit_hasher());
    Ok(())
}

async fn check_key(store: &dyn Store, key: &ServerKey) -> anyhow::Result<()> {
    let mine = key.key_check();
    let mismatch = || {
        anyhow::anyhow!(
            "this server key does not match the database: it is not the key the database was \
             set up with, so no secret, API token or signing key would work. Use the database's \
             own key (server_key, REKEY_SERVER_KEY_FILE or <data_dir>/server.key; see \"Lost or \
             wrong server key\" in docs/operations.md). Nothing was written with it."
        )
    };
    match store.key_check().await? {
        Some(recorded) if recorded == mine => Ok(()),
        Some(_) => Err(mismatch()),
        None => {
            let sealer = key.sealer("signing-keys");
            let signing_keys = store.list_signing_keys().await?;
            if !signing_keys.is_empty() && !signing_keys.iter().any(|k| sealed_by(k, &sealer)) {
                return Err(mismatch());
            }
            // Of nodes starting at once with different keys, the first to record wins.
            let recorded = store
                .record_key_check(&mine, rekey_core::clock::SystemClock.now())
                .await?;
            if recorded == mine {
                Ok(())
            } else {
                Err(mismatch())
            }
        }
    }
}

/// Creates `dir` (and its parents) if missing, 0700 from the start. An existing directory is
/// made 0700 only when it already holds Rekey's files (its data directory); any other (`.`, a
/// home directory) is left as it is, with a warning when others may read it.
pub fn make_private_dir(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create data directory {}", dir.display()))?;
            return Ok(());
        }
        let ours = ["rekey.db", "server.key"]
            .iter()
            .any(|f| dir.join(f).exists());
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if ours && mode != 0o700 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot make {} private (0700)", dir.display()))?;
        } else if !ours && mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                "the data directory can be read by others; make it 0700"
            );
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    Ok(())
}

/// The SQLite files (created empty if missing, so that SQLite's WAL and shared-memory files,
/// which copy the database file's mode, are private from the start) and the serving lock:
/// 0600.
fn make_private_sqlite_files(db: &Path) -> anyhow::Result<()> {
    if !db.exists() {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        opts.open(db)
            .with_context(|| format!("cannot create {}", db.display()))?;
    }
    for suffix in ["", "-wal", "-shm", ".lock"] {
        make_private_file(&with_suffix(db, suffix))?;
    }
    Ok(())
}

fn make_private_key_file(data_dir: &Path) -> anyhow::Result<()> {
    make_private_file(&data_dir.join("server.key"))
}

/// Makes an existing file 0600.
fn make_private_file(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    if path.exists() {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private (0600)", path.display()))?;
    }
    Ok(())
}

/// `path` with `suffix` appended to its file name (`rekey.db` + `-wal`).
fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// Takes the serving lock of the SQLite database `db` (`<db>.lock`), held as long as the
/// returned file is open: a second `rekey serve` on the same database refuses to start
/// (SQLite allows one serving process per database file, see the docs). The lock goes with
/// the process, even after `kill -9`.
pub fn lock_sqlite_for_serving(db: &Path) -> anyhow::Result<std::fs::File> {
    let path = with_suffix(db, ".lock");
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let file = opts
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another `rekey serve` is serving the SQLite database {} (it holds {}); one \
             serving process per SQLite database: stop it first, or use PostgreSQL for several nodes",
            db.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Creates `path` with mode 0600 (fails if it exists, so a key is never overwritten).
fn write_private_file(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(content)?;
    f.sync_all()?;
    Ok(())
}

/// A server bound to its listener, ready to run.
pub struct Application {
    listener: TcpListener,
    state: SharedState,
    /// The Prometheus endpoint, when `metrics_listen` is set.
    metrics: Option<MetricsEndpoint>,
    /// The SQLite serving lock (see [`lock_sqlite_for_serving`]), held until the server ends.
    _serving_lock: Option<std::fs::File>,
}

impl Application {
    /// Opens the configured store and key, binds `config.listen`.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        if config.database_url.is_empty() {
            make_private_dir(&config.data_dir)?;
        }
        // Several nodes share PostgreSQL: without one public_url each would be its own issuer
        // (its listen address), and would refuse the others' tokens.
        let postgres = config.database_url.starts_with("postgres");
        if postgres && config.public_url.is_empty() {
            anyhow::bail!(
                "public_url must be set with PostgreSQL: it is the token issuer, and every node \
                 of a cluster must use the same one (e.g. public_url = \"https://auth.example.com\")"
            );
        }
        if config.metrics_addr()?.is_some() {
            // Before the store opens: it reports its cache's state from the start.
            crate::metrics::recorder()?;
        }
        let serving_lock = match sqlite_file(&config.effective_database_url()) {
            Some(db) => Some(lock_sqlite_for_serving(&db)?),
            None => None,
        };
        let store = open_store(&config).await?;
        let key = server_key_for(&config, &store, NewKey::MayCreate).await?;
        let store = cache_clients(store, &config).await?;
        let mut app = Self::build_with(config, Arc::new(store), clock, &key).await?;
        app._serving_lock = serving_lock;
        Ok(app)
    }

    /// Builds on a given store and key (tests use this with a fresh database).
    pub async fn build_with(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        key: &ServerKey,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let metrics = match config.metrics_addr()? {
            Some(addr) => Some(MetricsEndpoint::bind(addr).await?),
            None => None,
        };
        store.set_audit_key(key.audit_hasher());
        let mut config = config;
        if config.public_url.is_empty() {
            // With port 0 the issuer must name the port actually bound.
            config.public_url = format!("http://{}", listener.local_addr()?);
        }
        let state = Arc::new(AppState::new(config, store, clock, key).await?);
        Ok(Self {
            listener,
            state,
            metrics,
            _serving_lock: None,
        })
    }

    #[allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "a bound listener has a local address"
    )]
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Where `/metrics` is served, when it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref()?.local_addr().ok()
    }

    pub fn state(&self) -> SharedState {
        self.state.clone()
    }

    /// Serves until `shutdown` completes; then `/readyz` answers 503 for
    /// `shutdown_drain_seconds` while requests are still served, then the listener closes,
    /// in-flight requests finish and last-use data is flushed.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let (stop_tx, stop_rx) = watch::channel(false);
        let flusher = tokio::spawn(flush_last_use_periodically(state.clone(), stop_rx.clone()));
        let reloader = tokio::spawn(reload_keys_periodically(state.clone(), stop_rx.clone()));
        let heartbeat = tokio::spawn(report_node_periodically(state.clone(), stop_rx.clone()));
        let mut workers = Vec::new();
        if state.config.role != NodeRole::Api {
            workers.push(tokio::spawn(state.dispatcher.clone().run(stop_rx.clone())));
            workers.push(tokio::spawn(sweep_periodically(
                state.clone(),
                stop_rx.clone(),
            )));
        }
        let address = self.local_addr();
        let metrics = self.metrics.map(|m| {
            tracing::info!(address = %m.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving /metrics");
            tokio::spawn(m.run(state.clone(), stop_rx.clone()))
        });
        let app = router(state.clone());
        tracing::info!(%address, backend = state.store.backend(), "rekey is serving");
        serve(
            self.listener,
            app,
            state.clone(),
            drain_after(shutdown, state.clone()),
        )
        .await;
        let _ = stop_tx.send(true);
        let _ = reloader.await;
        let _ = heartbeat.await;
        if let Some(m) = metrics {
            let _ = m.await;
        }
        for w in workers {
            let _ = w.await;
        }
        let _ = flusher.await;
        if let Err(e) = state.ops.last_use.flush(&*state.store).await {
            tracing::warn!(
                error = &e as &dyn std::error::Error,
                "final last-use flush failed"
            );
        }
        if let Err(e) = state.ops.flush_audit_tally().await {
            tracing::warn!(
                error = &e as &dyn std::error::Error,
                "final audit tally flush failed"
            );
        }
        tracing::info!("rekey stopped");
        Ok(())
    }
}

/// The accept loop: each connection is served by hyper's HTTP/1 server with a header-read
/// timeout, at most `max_connections` at once (more are closed at once), and the client's
/// address in the request's `ConnectInfo`. When `shutdown` completes the listener closes and
/// open connections finish their requests.
async fn serve(
    listener: TcpListener,
    app: Router,
    state: SharedState,
    shutdown: impl Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt as _;

    let config = &state.config;
    let permits = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
    let header_timeout = Duration::from_secs(config.header_read_timeout_seconds);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let (mut refused, mut last_refusal_log) = (0u64, None);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, then go on.
                    tracing::warn!(error = &e as &dyn std::error::Error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!(HTTP_CONNECTIONS_REFUSED).increment(1);
            refused += 1;
            // One line a second at most, with the count: a flood must not flood the log.
            if last_refusal_log
                .is_none_or(|t: std::time::Instant| t.elapsed() >= Duration::from_secs(1))
            {
                tracing::warn!(
                    max_connections = config.max_connections,
                    refused,
                    "connections refused: too many open connections"
                );
                last_refusal_log = Some(std::time::Instant::now());
                refused = 0;
            }
            continue;
        };
        let service = app
            .clone()
            .map_request(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(
                TokioIo::new(stream),
                hyper_util::service::TowerToHyperService::new(service),
            );
        let connection = graceful.watch(connection);
        let open = metrics::gauge!(HTTP_CONNECTIONS_OPEN);
        open.increment(1.0);
        tokio::spawn(async move {
            // Errors here are the client's (a reset, a header too slow): nothing to log.
            let _ = connection.await;
            drop(permit);
            open.decrement(1.0);
        });
    }
    drop(listener);
    // Open connections finish their requests, within the request timeout: a client that
    // stops reading must not hold the process forever.
    let limit = Duration::from_secs(config.request_timeout_seconds);
    if tokio::time::timeout(limit, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            seconds = limit.as_secs(),
            "connections still open after the request timeout were dropped"
        );
    }
}

/// Completes `shutdown_drain_seconds` after `shutdown`, with the node marked draining
/// meanwhile (see [`readyz`]).
async fn drain_after(shutdown: impl Future<Output = ()>, state: SharedState) {
    shutdown.await;
    state
        .draining
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let drain = Duration::from_secs(state.config.shutdown_drain_seconds);
    tracing::info!(
        seconds = drain.as_secs(),
        "draining: /readyz answers 503, requests are still served"
    );
    tokio::time::sleep(drain).await;
    tracing::info!("closing the listener; in-flight requests finish");
}

async fn flush_last_use_periodically(state: SharedState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(state.config.last_use_flush_seconds));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = state.ops.last_use.flush(&*state.store).await {
                    tracing::warn!(error = &e as &dyn std::error::Error, "last-use flush failed; will retry");
                }
                if let Err(e) = state.ops.flush_audit_tally().await {
                    tracing::warn!(error = &e as &dyn std::error::Error, "audit tally flush failed");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

async fn sweep_periodically(state: SharedState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(state.config.sweep_interval_seconds));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = state.ops.sweep_expiry().await {
                    tracing::warn!(error = &e as &dyn std::error::Error, "sweep failed; will retry");
                }
                if let Err(e) = state.ops.run_rotation_policies().await {
                    tracing::warn!(error = &e as &dyn std::error::Error, "rotation policy pass failed; will retry");
                }
                if let Err(e) = state.ops.rotate_signing_key_if_due().await {
                    tracing::warn!(error = &e as &dyn std::error::Error, "scheduled signing-key rotation failed; will retry");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// How often a node writes its row in `nodes` (`rekey doctor` reads them).
pub const NODE_REPORT_INTERVAL: Duration = Duration::from_secs(30);

/// Writes this node's row in `nodes` at start and every [`NODE_REPORT_INTERVAL`].
async fn report_node_periodically(state: SharedState, mut stop: watch::Receiver<bool>) {
    let node = rekey_core::model::NodeInfo {
        id: uuid::Uuid::new_v4().to_string(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        public_url: state.issuer().to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        schema_version: rekey_store::newest_known_migration(),
        started_at: state.now(),
        last_seen_at: state.now(),
        clock_skew_ms: 0,
    };
    let mut tick = tokio::time::interval(NODE_REPORT_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // The node's own clock, not the state's (a test's manual clock).
                let now = rekey_core::clock::SystemClock.now();
                if let Err(e) = state.store.record_node(&node, now).await {
                    tracing::warn!(error = &e as &dyn std::error::Error, "node report failed; will retry");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

async fn reload_keys_periodically(state: SharedState, mut stop: watch::Receiver<bool>) {
    let mut tick =
        tokio::time::interval(Duration::from_secs(state.config.signing_key_reload_seconds));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = state.reload_keys().await {
                    tracing::warn!(error = &e as &dyn std::error::Error, "signing key reload failed");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// Every route, with the shared layers: request ids, tracing, timeouts.
pub fn router(state: SharedState) -> Router {
    let timeout = Duration::from_secs(state.config.request_timeout_seconds);
    let health = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz));
    // A worker node serves only its health endpoints.
    let app = if state.config.role == NodeRole::Worker {
        health
    } else {
        health
            .merge(oauth::routes())
            .merge(native::routes())
            .merge(spapi::routes())
            .merge(csp::routes())
            .nest("/console", console::router(state.clone()))
            .route(
                "/",
                get(|| async { axum::response::Redirect::to("/console") }),
            )
    };
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Inside the trace layer, so that a request that times out still gets its access line.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(telemetry::request_span)
                // The access log: one info line per response, in the request's span (method,
                // route, request id, client address), with status and latency.
                .on_response(
                    DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(LatencyUnit::Micros),
                ),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_context,
        ))
        .with_state(state)
}

/// The outermost step of every request (one layer: each layer costs every token request).
/// - It works out the client's address once (through the trusted proxies; [`ClientAddr`]).
/// - The request id is always Rekey's own, a new UUID, in the request's `x-request-id` (for
///   the span and the handlers) and the response's. A caller's `x-request-id` is untrusted
///   input, moved to `x-client-request-id`, kept only when it is at most 128 printable ASCII
///   characters, and logged as that, never as the request id nor in audit events or error
///   bodies.
/// - Error bodies that ask for it ([`FillRequestId`]) get the request id, so a client can
///   quote it to an operator.
async fn request_context(
    State(state): State<SharedState>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(client) = ClientAddr::of(&req, &state.trusted_proxies) {
        req.extensions_mut().insert(client);
    }
    // Only this function writes the header: a client's own copy is dropped.
    req.headers_mut().remove(CLIENT_REQUEST_ID_HEADER);
    if let Some(theirs) = req.headers_mut().remove(REQUEST_ID_HEADER) {
        let printable = theirs
            .to_str()
            .is_ok_and(|v| v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()));
        if printable {
            req.headers_mut()
                .insert(HeaderName::from_static(CLIENT_REQUEST_ID_HEADER), theirs);
        }
    }
    let mut buf = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    let request_id = HeaderValue::from_str(id).unwrap_or_else(|_| HeaderValue::from_static("-"));
    req.headers_mut().insert(
        HeaderName::from_static(REQUEST_ID_HEADER),
        request_id.clone(),
    );
    let mut res = next.run(req).await;
    res.headers_mut().insert(
        HeaderName::from_static(REQUEST_ID_HEADER),
        request_id.clone(),
    );
    if res.extensions().get::<FillRequestId>().is_none() {
        return res;
    }
    add_request_id_to_body(res, &request_id).await
}

async fn readyz(State(state): State<SharedState>) -> Response {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: shutting down").into_response();
    }
    let recent = *state.readiness.lock().unwrap_or_else(|e| e.into_inner());
    let ready = match recent {
        Some((at, ready)) if at.elapsed() < Duration::from_secs(2) => ready,
        _ => {
            let ready = match state.store.ping().await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(
                        error = &e as &dyn std::error::Error,
                        "readiness check failed"
                    );
                    false
                }
            };
            *state.readiness.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((std::time::Instant::now(), ready));
            ready
        }
    };
    if ready {
        (StatusCode::OK, "ready").into_response()
    } else {
        let body = "not ready: the database cannot be reached or does not take writes (see the server log)";
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

/// 405 in the shape of the dialect the path belongs to.
async fn method_not_allowed(uri: axum::http::Uri) -> Response {
    let path = uri.path();
    let oauth = [
        "/auth/o2/",
        "/oauth2/",
        "/csp/gateway/am/api/auth/",
        "/.well-known/",
    ];
    if oauth.iter().any(|p| path.starts_with(p)) {
        let body = rekey_proto::oauth::OAuthErrorBody {
            error: "invalid_request".into(),
            error_description: Some("This method is not allowed here".into()),
        };
        return (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response();
    }
    crate::errors::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "This method is not allowed on this resource",
    )
    .into_response()
}

async fn not_found() -> Response {
    crate::errors::ApiError::not_found("No such endpoint").into_response()
}

/// Puts the request id into an error body (a JSON object) as `requestId`.
async fn add_request_id_to_body(res: Response, id: &HeaderValue) -> Response {
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return Response::from_parts(parts, axum::body::Body::empty());
    };
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if let (Some(obj), Ok(id)) = (v.as_object_mut(), id.to_str()) {
        obj.insert("requestId".into(), id.into());
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(v.to_string()))
}
