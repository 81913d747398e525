//! Building and running the server: store, server key, state, router, background tasks.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rekey_core::clock::Clock;
use rekey_core::crypto::ServerKey;
use rekey_core::store::Store;
use rekey_store::SqlStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;

use crate::config::{Config, NodeRole};
use crate::errors::FillRequestId;
use crate::extract::{CLIENT_REQUEST_ID_HEADER, REQUEST_ID_HEADER};
use crate::state::{AppState, SharedState};
use crate::{csp, native, oauth, spapi, telemetry};

/// Opens (and, if configured, migrates) the store named by the config. The embedded SQLite
/// database lives in a private data directory (0700) in files only the server's user reads
/// (0600): they hold every secret's hash and the sealed signing keys.
pub async fn open_store(config: &Config) -> anyhow::Result<SqlStore> {
    let url = config.effective_database_url();
    if config.database_url.is_empty() {
        make_private_dir(&config.data_dir)?;
        make_private_files(&config.data_dir)?;
    }
    let store = SqlStore::connect(&url, config.database_max_connections).await?;
    if config.auto_migrate {
        store.migrate().await?;
    }
    Ok(store)
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

/// The server key from config, else from `<data_dir>/server.key`, created (0600) if missing.
pub fn load_or_create_server_key(config: &Config) -> anyhow::Result<ServerKey> {
    if !config.server_key.is_empty() {
        return Ok(ServerKey::from_base64(&config.server_key)?);
    }
    let path = config.data_dir.join("server.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return ServerKey::from_base64(&text)
            .with_context(|| format!("{} does not hold a valid server key", path.display()));
    }
    make_private_dir(&config.data_dir)?;
    let key = ServerKey::generate();
    write_private_file(&path, key.to_base64().as_bytes())?;
    tracing::info!(path = %path.display(), "created a new server key; back it up with the database");
    Ok(key)
}

/// Creates `dir` (and its parents) if missing and makes it 0700.
pub fn make_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private (0700)", dir.display()))?;
    }
    Ok(())
}

/// The SQLite files (created empty if missing, so that SQLite's WAL and shared-memory files,
/// which copy the database file's mode, are private from the start) and the server key: 0600.
fn make_private_files(data_dir: &Path) -> anyhow::Result<()> {
    let db = data_dir.join("rekey.db");
    if !db.exists() {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(0o600);
        }
        opts.open(&db)
            .with_context(|| format!("cannot create {}", db.display()))?;
    }
    #[cfg(unix)]
    for name in [
        "rekey.db",
        "rekey.db-wal",
        "rekey.db-shm",
        "server.key",
        SQLITE_LOCK_FILE,
    ] {
        use std::os::unix::fs::PermissionsExt as _;
        let path = data_dir.join(name);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot make {} private (0600)", path.display()))?;
        }
    }
    Ok(())
}

/// The file whose lock marks the one process serving an SQLite database.
const SQLITE_LOCK_FILE: &str = "rekey.db.lock";

/// Takes the serving lock of the SQLite database in `data_dir`, held as long as the returned
/// file is open: a second `rekey serve` on the same database refuses to start (SQLite allows
/// one serving process per database file, see the docs). The lock goes with the process, even
/// after `kill -9`.
pub fn lock_sqlite_for_serving(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join(SQLITE_LOCK_FILE);
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
            "another `rekey serve` is serving the SQLite database in {} (it holds {}); one \
             serving process per SQLite database: stop it first, or use PostgreSQL for several nodes",
            data_dir.display(),
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
    /// The SQLite serving lock (see [`lock_sqlite_for_serving`]), held until the server ends.
    _serving_lock: Option<std::fs::File>,
}

impl Application {
    /// Opens the configured store and key, binds `config.listen`.
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let serving_lock = if config.database_url.is_empty() {
            make_private_dir(&config.data_dir)?;
            Some(lock_sqlite_for_serving(&config.data_dir)?)
        } else {
            None
        };
        let store = cache_clients(open_store(&config).await?, &config).await?;
        let key = load_or_create_server_key(&config)?;
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
        let mut config = config;
        if config.public_url.is_empty() {
            // With port 0 the issuer must name the port actually bound.
            config.public_url = format!("http://{}", listener.local_addr()?);
        }
        let state = Arc::new(AppState::new(config, store, clock, key).await?);
        Ok(Self {
            listener,
            state,
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
        let mut workers = Vec::new();
        if state.config.role != NodeRole::Api {
            workers.push(tokio::spawn(state.dispatcher.clone().run(stop_rx.clone())));
            workers.push(tokio::spawn(sweep_periodically(state.clone(), stop_rx)));
        }
        let app = router(state.clone());
        tracing::info!(address = %self.local_addr(), backend = state.store.backend(), "rekey is serving");
        serve(
            self.listener,
            app,
            state.clone(),
            drain_after(shutdown, state.clone()),
        )
        .await;
        let _ = stop_tx.send(true);
        let _ = reloader.await;
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
            tracing::warn!(
                max_connections = config.max_connections,
                "connection refused: too many open connections"
            );
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
        tokio::spawn(async move {
            // Errors here are the client's (a reset, a header too slow): nothing to log.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
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
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
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
    };
    app.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(add_request_id_to_errors))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(telemetry::RequestSpan::new(state.trusted_proxies.clone()))
                // The access log: one info line per response, in the request's span (method,
                // route, request id, client address), with status and latency.
                .on_response(
                    DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(LatencyUnit::Micros),
                ),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(middleware::from_fn(keep_caller_request_id_apart))
        .with_state(state)
}

/// The request id is always Rekey's own (a UUID, set next). A caller's `x-request-id` is
/// untrusted input: it moves to `x-client-request-id`, kept only when it is at most 128
/// printable ASCII characters, and is logged as that, never as the request id nor in audit
/// events or error bodies.
async fn keep_caller_request_id_apart(mut req: Request, next: Next) -> Response {
    if let Some(theirs) = req.headers_mut().remove(REQUEST_ID_HEADER) {
        let printable = theirs
            .to_str()
            .is_ok_and(|v| v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()));
        if printable {
            req.headers_mut()
                .insert(HeaderName::from_static(CLIENT_REQUEST_ID_HEADER), theirs);
        }
    }
    next.run(req).await
}

async fn readyz(State(state): State<SharedState>) -> Response {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: shutting down").into_response();
    }
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(
                error = &e as &dyn std::error::Error,
                "readiness check failed"
            );
            let body = "not ready: the database cannot be reached or does not take writes (see the server log)";
            (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
        }
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

/// Puts the request id into error bodies that ask for it ([`FillRequestId`]), so a client
/// can quote it to an operator.
async fn add_request_id_to_errors(req: Request, next: Next) -> Response {
    let request_id = req.headers().get(REQUEST_ID_HEADER).cloned();
    let res = next.run(req).await;
    if res.extensions().get::<FillRequestId>().is_none() {
        return res;
    }
    let Some(id) = request_id else {
        return res;
    };
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
