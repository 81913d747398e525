//! The Prometheus endpoint: `GET /metrics` on a listener of its own (`metrics_listen`), so
//! the public listener never serves it. The names are in `rekey_core::metrics`.
//!
//! Counters and histograms are kept by the process-wide `metrics` recorder, installed once
//! (only when metrics are on: otherwise every recording is a no-op). The gauges that
//! describe the database (outbox, dead deliveries, expiring and previous secrets) are read
//! at scrape time, at most every few seconds.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rekey_core::metrics::{BUILD_INFO, TOKEN_REQUEST_DURATION};
use tokio::net::TcpListener;

use crate::state::SharedState;

/// Token latency buckets, in seconds: the token endpoint answers in well under a
/// millisecond from the cache, and a few milliseconds from the database.
const TOKEN_LATENCY_BUCKETS: &[f64] = &[
    0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The database is read for the gauges at most this often, however many scrapers there are.
const STORE_GAUGES_MAX_AGE: Duration = Duration::from_secs(5);

/// Installs the process-wide recorder on first use and returns its handle. Install it
/// before the store is opened: the store reports its cache's state as it starts.
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(TOKEN_REQUEST_DURATION.to_string()),
            TOKEN_LATENCY_BUCKETS,
        )
        .context("token latency buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// The bound metrics listener.
pub struct MetricsEndpoint {
    listener: TcpListener,
    handle: PrometheusHandle,
}

impl MetricsEndpoint {
    pub async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let handle = recorder()?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (metrics_listen)"))?;
        Ok(Self { listener, handle })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `/metrics` until `stop` turns true.
    pub async fn run(self, state: SharedState, mut stop: tokio::sync::watch::Receiver<bool>) {
        let upkeep = tokio::spawn(run_upkeep(self.handle.clone(), stop.clone()));
        let scrape = Arc::new(Scrape {
            state,
            handle: self.handle,
            gauges_read: Mutex::new(None),
        });
        let app = Router::new()
            .route("/metrics", get(render))
            .with_state(scrape);
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(self.listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::warn!(
                error = &e as &dyn std::error::Error,
                "metrics listener failed"
            );
        }
        let _ = upkeep.await;
    }
}

struct Scrape {
    state: SharedState,
    handle: PrometheusHandle,
    /// When the store gauges were last read.
    gauges_read: Mutex<Option<Instant>>,
}

async fn render(State(scrape): State<Arc<Scrape>>) -> Response {
    let due = scrape
        .gauges_read
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_none_or(|at| at.elapsed() >= STORE_GAUGES_MAX_AGE);
    if due {
        let now = scrape.state.clock.now();
        match scrape.state.store.gauges(now).await {
            Ok(gauges) => {
                gauges.record(now);
                *scrape.gauges_read.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Instant::now());
            }
            // The counters are still worth a scrape; the stale gauges say nothing new, and
            // /readyz reports the database.
            Err(e) => tracing::warn!(
                error = &e as &dyn std::error::Error,
                "metrics: cannot read the database gauges"
            ),
        }
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        scrape.handle.render(),
    )
        .into_response()
}

/// Drains the histograms' sample buffers now and then, so memory stays flat however long
/// nothing scrapes.
async fn run_upkeep(handle: PrometheusHandle, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => handle.run_upkeep(),
            _ = stop.changed() => return,
        }
    }
}
