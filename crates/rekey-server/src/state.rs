//! What every handler shares. Built once by [`crate::startup`]; no globals.

use std::sync::Arc;
use std::time::Duration;

use rekey_dispatch::{DestinationSinks, DispatchSettings, Dispatcher};
use tokio::sync::Notify;

use rekey_core::clock::{Clock, Timestamp};
use rekey_core::crypto::{Sealer, ServerKey};
use rekey_core::error::{CoreError, CoreResult};
use rekey_core::notify::AddressPolicy;
use rekey_core::ops::{Rekey, Settings};
use rekey_core::store::Store;
use rekey_core::throttle::FailureThrottle;
use rekey_core::token::{generate_signing_key, KeySet};

use crate::config::Config;

pub type SharedState = Arc<AppState>;

pub struct AppState {
    /// The use cases (the application layer), with the signing keys, the failure throttle and
    /// the last-use recorder; handlers call these.
    pub ops: Rekey,
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// Wakes this node's dispatcher when a notification is enqueued.
    pub delivery_wake: Arc<Notify>,
    /// This node's dispatcher (also what tests drain).
    pub dispatcher: Arc<Dispatcher>,
    /// Set when shutdown began: `/readyz` answers 503 from then on.
    pub draining: std::sync::atomic::AtomicBool,
    /// The last readiness probe (when, and whether the database took the write): probes
    /// more often than every 2 s answer from it, so `/readyz` cannot be used to make writes.
    pub readiness: std::sync::Mutex<Option<(std::time::Instant, bool)>>,
    /// `trusted_proxies` and `forwarded_header`, parsed.
    pub trusted_proxies: crate::extract::TrustedProxies,
}

impl AppState {
    /// Builds the state, creating the first signing key if the store has none.
    pub async fn new(
        config: Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        server_key: &ServerKey,
    ) -> CoreResult<Self> {
        let issuer = config.issuer();
        let trusted_proxies = crate::extract::TrustedProxies {
            nets: config
                .trusted_proxy_nets()
                .map_err(|e| rekey_core::error::CoreError::Invalid(e.to_string()))?,
            header: config.forwarded_header,
        };
        let now = clock.now();
        let keys =
            load_or_create_keys(&*store, &issuer, &server_key.sealer("signing-keys"), now).await?;
        let delivery_wake = Arc::new(Notify::new());
        let settings = DispatchSettings {
            owner: format!(
                "node-{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            lease: Duration::from_secs(config.delivery_lease_seconds),
            max_attempts: config.delivery_max_attempts,
            backoff_base: Duration::from_millis(config.delivery_backoff_base_ms),
            backoff_cap: Duration::from_secs(config.delivery_backoff_max_seconds),
            send_timeout: Duration::from_secs(config.delivery_timeout_seconds),
            poll_interval: Duration::from_millis(config.dispatcher_poll_ms),
            // Batch size and parallel sends are fixed (BENCHMARKS.md, issue 16).
            ..DispatchSettings::default()
        };
        let guard = rekey_dispatch::guard::DestinationGuard::new(AddressPolicy {
            allowed: config
                .allowed_destination_nets()
                .map_err(|e| CoreError::Invalid(e.to_string()))?,
        });
        let sinks = DestinationSinks::new(
            server_key.sealer("webhook-keys"),
            clock.clone(),
            settings.send_timeout,
            config.spool_root(),
            guard.clone(),
        );
        let dispatcher = Arc::new(Dispatcher::new(
            store.clone(),
            clock.clone(),
            server_key.sealer("outbox"),
            Arc::new(sinks),
            settings,
            delivery_wake.clone(),
        ));
        let wake = delivery_wake.clone();
        let ops = Rekey::new(
            store.clone(),
            clock.clone(),
            server_key,
            keys,
            Settings {
                issuer,
                user_token_ttl_secs: config.user_token_ttl_seconds,
                throttle: FailureThrottle::new(
                    config.auth_failure_window_seconds,
                    config.auth_failures_per_client,
                    config.auth_failures_per_address,
                ),
                allow_insecure_destinations: config.allow_insecure_destinations,
                destination_check: Arc::new(guard),
                signing_keys: config.signing_key_timing(),
                rotation_policy: config.rotation_policy_settings(),
                console_sessions: rekey_core::ops::console::SessionLimits {
                    idle_secs: config.console_session_idle_seconds,
                    max_secs: config.console_session_max_seconds,
                },
            },
            Arc::new(move || wake.notify_one()),
        );
        Ok(Self {
            ops,
            delivery_wake,
            dispatcher,
            draining: std::sync::atomic::AtomicBool::new(false),
            readiness: std::sync::Mutex::new(None),
            trusted_proxies,
            config,
            store,
            clock,
        })
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn keys(&self) -> Arc<KeySet> {
        self.ops.keys()
    }

    pub fn issuer(&self) -> &str {
        self.ops.issuer()
    }

    /// Re-reads the signing keys (another node may have added one).
    pub async fn reload_keys(&self) -> CoreResult<()> {
        self.ops.reload_keys().await
    }
}

async fn load_or_create_keys(
    store: &dyn Store,
    issuer: &str,
    sealer: &Sealer,
    now: Timestamp,
) -> CoreResult<KeySet> {
    let stored = store.list_signing_keys().await?;
    if stored.iter().any(|k| k.publish_until.is_none()) {
        return KeySet::load(issuer, &stored, sealer, now);
    }
    let key = generate_signing_key(sealer, now);
    let ev = rekey_core::model::AuditContext {
        actor: "system".into(),
        ..Default::default()
    }
    .event(now, "signing_key.created")
    .details(serde_json::json!({ "kid": key.kid }));
    match store.add_first_signing_key(&key, &[ev]).await {
        Ok(()) => tracing::info!(kid = %key.kid, "created the first signing key"),
        // Another node made the first key at the same moment: every node signs with that one.
        Err(CoreError::Conflict(_)) => {}
        Err(e) => return Err(e),
    }
    KeySet::load(issuer, &store.list_signing_keys().await?, sealer, now)
}
