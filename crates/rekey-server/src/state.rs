//! What every handler shares. Built once by [`crate::startup`]; no globals.

use std::sync::{Arc, RwLock};

use rekey_core::clock::{Clock, Timestamp};
use rekey_core::crypto::{KeyedHasher, Sealer, ServerKey};
use rekey_core::error::CoreResult;
use rekey_core::store::Store;
use rekey_core::token::{generate_signing_key, KeySet};

use crate::config::Config;
use crate::last_use::LastUseRecorder;
use crate::throttle::FailureThrottle;

pub type SharedState = Arc<AppState>;

pub struct AppState {
    pub config: Config,
    pub issuer: String,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub secret_hasher: KeyedHasher,
    pub api_token_hasher: KeyedHasher,
    pub signing_key_sealer: Sealer,
    keys: RwLock<Arc<KeySet>>,
    pub throttle: FailureThrottle,
    pub last_use: LastUseRecorder,
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
        let sealer = server_key.sealer("signing-keys");
        let now = clock.now();
        let keys = load_or_create_keys(&*store, &issuer, &sealer, now).await?;
        Ok(Self {
            throttle: FailureThrottle::new(
                config.auth_failure_window_seconds,
                config.auth_failures_per_client,
                config.auth_failures_per_address,
            ),
            config,
            issuer,
            store,
            clock,
            secret_hasher: server_key.secret_hasher(),
            api_token_hasher: server_key.api_token_hasher(),
            signing_key_sealer: sealer,
            keys: RwLock::new(Arc::new(keys)),
            last_use: LastUseRecorder::default(),
        })
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the signing keys (another node may have added one).
    pub async fn reload_keys(&self) -> CoreResult<()> {
        let stored = self.store.list_signing_keys().await?;
        let ks = KeySet::load(&self.issuer, &stored, &self.signing_key_sealer, self.now())?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ks);
        Ok(())
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
    store.add_signing_key(&key, now, &[ev]).await?;
    KeySet::load(issuer, &store.list_signing_keys().await?, sealer, now)
}
