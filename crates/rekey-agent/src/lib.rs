//! `rekey agent`: keeps one application's secret current on a host.
//!
//! It receives new-secret notifications (SQS long polling, or a webhook listener that checks
//! Standard Webhooks signatures), verifies each new secret by getting a token with it, writes
//! it atomically where the service reads it (a file or an env file, mode 0600, or standard
//! output for a pipe), runs a reload hook (a command, or a signal to a process), and only
//! then acknowledges the notification (deletes the SQS message, answers the webhook 2xx). A
//! notification that was not acknowledged comes back and finishes the job; the state file
//! recognises a secret already applied, so the hook runs once per secret. Nothing logs a
//! secret. The notification shape is SP-API's, so the agent works against Amazon's SP-API
//! as well as against Rekey.
//!
//! - [`apply`]: one notification, end to end;
//! - [`sink`]: where a secret is written (shared with `rekey rotate`);
//! - [`state`]: what was applied, across restarts;
//! - [`health`], [`metric_names`]: `/healthz` and `/metrics` on `--listen`.

pub mod apply;
pub mod health;
pub mod metric_names;
pub mod sink;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rekey_core::clock::Clock as _;

use aws_sdk_sqs::Client as Sqs;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};

use crate::apply::{Applier, Outcome};

/// Where notifications come from.
pub enum Source {
    /// Long polling of the app's new-secret queue.
    Sqs {
        client: Sqs,
        queue_url: String,
        /// How long a received message stays invisible to others while it is applied.
        visibility_timeout: i32,
    },
    /// Rekey's webhook deliveries (Standard Webhooks), on this address.
    Webhook {
        listen: SocketAddr,
        signing_secret: SecretString,
    },
}

/// Failed attempts wait 1 s, 2 s, 4 s ... up to a minute before the next one.
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        let secs = 1u64 << self.0.min(6);
        self.0 = self.0.saturating_add(1);
        Duration::from_secs(secs.min(60))
    }

    fn reset(&mut self) {
        self.0 = 0;
    }
}

/// Runs the agent until `stop` resolves.
pub async fn run(
    applier: Applier,
    source: Source,
    listen: Option<SocketAddr>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let applier = Arc::new(applier);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop.await;
        let _ = stop_tx.send(true);
    });
    if let Some(addr) = listen {
        let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
        let health = applier.health.clone();
        let app = Router::new()
            .route(
                "/healthz",
                get(move || {
                    let health = health.clone();
                    async move { Json(health.report()) }
                }),
            )
            .route(
                "/metrics",
                get(move || {
                    let p = prometheus.clone();
                    async move { p.render() }
                }),
            );
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        tracing::info!(%addr, "health and metrics listening");
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await;
        });
    }
    match source {
        Source::Sqs {
            client,
            queue_url,
            visibility_timeout,
        } => poll_sqs(applier, client, queue_url, visibility_timeout, stop_rx).await,
        Source::Webhook {
            listen,
            signing_secret,
        } => serve_webhooks(applier, listen, signing_secret, stop_rx).await,
    }
}

async fn poll_sqs(
    applier: Arc<Applier>,
    sqs: Sqs,
    queue_url: String,
    visibility_timeout: i32,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut backoff = Backoff(0);
    tracing::info!(queue_url = %queue_url, client_id = %applier.client_id, "waiting for new secrets on the queue");
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let received = tokio::select! {
            r = sqs
                .receive_message()
                .queue_url(&queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(20)
                .visibility_timeout(visibility_timeout)
                .send() => r,
            _ = stop.changed() => return Ok(()),
        };
        let messages = match received {
            Ok(r) => r.messages.unwrap_or_default(),
            Err(e) => {
                metrics::counter!(metric_names::FAILURES, "stage" => "receive").increment(1);
                let wait = backoff.next();
                tracing::warn!(error = %rekey_dispatch::sinks::aws_error_text(&e), wait_secs = wait.as_secs(), "cannot receive from the queue; will retry");
                sleep_or_stop(wait, &mut stop).await;
                continue;
            }
        };
        // Oldest first, so a newer secret is applied last.
        let mut messages: Vec<_> = messages
            .into_iter()
            .filter_map(|m| Some((m.body?, m.receipt_handle?)))
            .collect();
        messages.sort_by_key(|(body, _)| event_time(body.as_bytes()));
        let mut failed = false;
        for (body, receipt) in messages {
            match applier.handle(body.as_bytes()).await {
                Ok(Outcome::NotOurs) => {
                    // Someone else's: back to the queue for its reader, after a pause (at
                    // once, this agent would receive it again and again).
                    let _ = sqs
                        .change_message_visibility()
                        .queue_url(&queue_url)
                        .receipt_handle(&receipt)
                        .visibility_timeout(30)
                        .send()
                        .await;
                }
                Ok(outcome) => {
                    if outcome != Outcome::Applied {
                        applier.health.recovered();
                    }
                    if let Err(e) = sqs
                        .delete_message()
                        .queue_url(&queue_url)
                        .receipt_handle(&receipt)
                        .send()
                        .await
                    {
                        // Comes back after the visibility timeout, and is recognised then.
                        metrics::counter!(metric_names::FAILURES, "stage" => "acknowledge")
                            .increment(1);
                        tracing::warn!(error = %rekey_dispatch::sinks::aws_error_text(&e), "cannot delete the message; it will come back and be recognised");
                    }
                }
                Err(_) => {
                    failed = true;
                    let wait = backoff.next();
                    // Visible again after the backoff, for the next attempt.
                    let _ = sqs
                        .change_message_visibility()
                        .queue_url(&queue_url)
                        .receipt_handle(&receipt)
                        .visibility_timeout(i32::try_from(wait.as_secs()).unwrap_or(60))
                        .send()
                        .await;
                }
            }
        }
        if !failed {
            backoff.reset();
        }
    }
}

async fn sleep_or_stop(wait: Duration, stop: &mut tokio::sync::watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = stop.changed() => {}
    }
}

fn event_time(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["eventTime"].as_str().map(str::to_string))
        .unwrap_or_default()
}

struct WebhookState {
    applier: Arc<Applier>,
    signing_secret: SecretString,
}

/// How far a webhook's timestamp may be from now (Standard Webhooks' replay window).
const WEBHOOK_TOLERANCE_SECS: i64 = 300;

async fn serve_webhooks(
    applier: Arc<Applier>,
    listen: SocketAddr,
    signing_secret: SecretString,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let state = Arc::new(WebhookState {
        applier,
        signing_secret,
    });
    // Notifications are a few hundred bytes: refuse anything much larger before hashing it.
    let app = Router::new()
        .route("/", post(receive_webhook))
        .route("/{*path}", post(receive_webhook))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(%listen, "waiting for new secrets by webhook");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        })
        .await?;
    Ok(())
}

/// A webhook delivery: 204 once applied (or recognised), 401 for a bad signature, 503 when
/// applying failed (Rekey delivers it again later).
async fn receive_webhook(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let fresh = timestamp.parse::<i64>().is_ok_and(|t| {
        (rekey_core::clock::SystemClock.now().as_secs() - t).abs() <= WEBHOOK_TOLERANCE_SECS
    });
    if !fresh
        || !rekey_dispatch::sinks::verify_webhook(
            state.signing_secret.expose_secret(),
            id,
            timestamp,
            &body,
            signature,
        )
    {
        tracing::warn!("refused a webhook with a missing, stale or wrong signature");
        return StatusCode::UNAUTHORIZED;
    }
    match state.applier.handle(&body).await {
        Ok(outcome) => {
            if outcome != Outcome::Applied {
                state.applier.health.recovered();
            }
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute_and_resets() {
        let mut b = Backoff(0);
        let waits: Vec<u64> = (0..8).map(|_| b.next().as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        b.reset();
        assert_eq!(b.next().as_secs(), 1);
    }
}
