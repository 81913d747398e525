//! A per-node cache of client records (an app with its valid secrets), so that a token
//! request needs no database round trip.
//!
//! What keeps it honest (SPEC 3: a cache must be invalidated on every node and may never
//! extend a secret's life):
//! - Every write to an app row or its secrets forgets the app's client id on this node after
//!   commit, and on PostgreSQL sends `pg_notify` inside the transaction, so every node that
//!   listens forgets it when the change commits (see [`crate::SqlStore::with_client_cache`]).
//! - A fill that raced an invalidation is dropped: a reader notes the epoch before it reads
//!   the database and only keeps what it read when no invalidation happened meanwhile.
//! - While a node's PostgreSQL listener is disconnected, its cache is emptied and bypassed.
//! - An entry older than `max_age` is read again: a bound for writes made outside Rekey.
//! - Expiry is never cached: callers check `expires_at` against the clock on every request.

use std::hash::{BuildHasher as _, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rekey_core::error::{CoreError, CoreResult};
use rekey_core::metrics::{CLIENT_CACHE_IN_SERVICE, CLIENT_CACHE_LOOKUPS};
use rekey_core::store::ClientRecord;
use sqlx::postgres::PgListener;
use sqlx::AnyPool;

/// The notification channel on PostgreSQL; the payload is a client id, or empty for a
/// listener's heartbeat.
pub(crate) const CHANNEL: &str = "rekey_client_changed";

/// How often the listener checks that notifications still reach it.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// Silence after which the listener is taken for dead (a connection can die without error).
const HEARTBEAT_LOST_AFTER: Duration = Duration::from_secs(3);

/// Locks that make "check the epoch, insert" and "bump the epoch, remove" atomic for one
/// client id; striped by a hash of the id.
const STRIPES: usize = 64;

#[derive(Clone)]
struct Entry {
    record: Arc<ClientRecord>,
    loaded: Instant,
}

/// Cached client records keyed by client id. Cheap to share behind an `Arc`.
pub struct ClientCache {
    entries: quick_cache::sync::Cache<String, Entry>,
    /// Bumped by every invalidation; see [`ClientCache::fill`].
    epoch: AtomicU64,
    stripes: [Mutex<()>; STRIPES],
    hasher: RandomState,
    enabled: AtomicBool,
    max_age: Duration,
}

impl ClientCache {
    /// Holds about `capacity` records (least useful ones are evicted), each for at most
    /// `max_age`.
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        metrics::gauge!(CLIENT_CACHE_IN_SERVICE).set(1.0);
        Self {
            entries: quick_cache::sync::Cache::new(capacity.max(1)),
            epoch: AtomicU64::new(0),
            stripes: std::array::from_fn(|_| Mutex::new(())),
            hasher: RandomState::new(),
            enabled: AtomicBool::new(true),
            max_age,
        }
    }

    /// The cached record, if present, fresh enough and the cache is in service.
    pub fn get(&self, client_id: &str) -> Option<Arc<ClientRecord>> {
        if !self.enabled.load(Ordering::SeqCst) {
            lookup("bypassed");
            return None;
        }
        let fresh = self
            .entries
            .get(client_id)
            .filter(|entry| entry.loaded.elapsed() < self.max_age)
            .map(|entry| entry.record);
        lookup(if fresh.is_some() { "hit" } else { "miss" });
        fresh
    }

    /// Take this before reading the database; pass it to [`ClientCache::fill`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Keeps a record read from the database, unless an invalidation happened since
    /// `epoch_before_read` was taken (the record may then predate the change).
    pub fn fill(&self, client_id: &str, epoch_before_read: u64, record: Arc<ClientRecord>) {
        // Under the client's stripe, an invalidation of this client comes wholly before the
        // check (and the fill is dropped) or wholly after the insert (and removes it): a
        // stale record is never visible, not even for an instant.
        let _turn = self.stripe(client_id);
        if !self.enabled.load(Ordering::SeqCst) || self.epoch() != epoch_before_read {
            return;
        }
        let entry = Entry {
            record,
            loaded: Instant::now(),
        };
        self.entries.insert(client_id.to_string(), entry);
    }

    /// Forgets one client (its app or secrets changed).
    pub fn invalidate(&self, client_id: &str) {
        let _turn = self.stripe(client_id);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.entries.remove(client_id);
    }

    fn stripe(&self, client_id: &str) -> std::sync::MutexGuard<'_, ()> {
        let i = (self.hasher.hash_one(client_id) % STRIPES as u64) as usize;
        // The guarded sections cannot panic halfway; a poisoned stripe is still usable.
        self.stripes[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets everything and stops serving from the cache until [`ClientCache::resume`].
    pub fn suspend(&self) {
        self.enabled.store(false, Ordering::SeqCst);
        metrics::gauge!(CLIENT_CACHE_IN_SERVICE).set(0.0);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.entries.clear();
    }

    /// Serves from the cache again, starting empty.
    pub fn resume(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.entries.clear();
        self.enabled.store(true, Ordering::SeqCst);
        metrics::gauge!(CLIENT_CACHE_IN_SERVICE).set(1.0);
    }

    /// Whether the cache is in service (false while the PostgreSQL listener is down).
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::SeqCst)
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn lookup(result: &'static str) {
    metrics::counter!(CLIENT_CACHE_LOOKUPS, "result" => result).increment(1);
}

/// A listener subscribed to [`CHANNEL`].
pub(crate) async fn listen_for_client_changes(url: &str) -> CoreResult<PgListener> {
    let fail = |e: sqlx::Error| CoreError::storage("cannot listen for client changes", e);
    let mut listener = PgListener::connect(url).await.map_err(fail)?;
    // Report a lost connection at once (the default first reconnects, which can take the
    // whole connect timeout while the cache goes on serving).
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await.map_err(fail)?;
    Ok(listener)
}

/// Applies other nodes' invalidations until the pool closes or the cache is dropped. A lost
/// connection may have lost notifications, so the cache is suspended (emptied, bypassed)
/// until a new listener is subscribed and hears something. A connection can also die
/// silently (a NAT or a proxy dropping it), so the listener sends itself a heartbeat every
/// second through the pool and counts the connection lost when nothing has arrived for three.
pub(crate) async fn keep_cache_invalidated(
    mut listener: PgListener,
    url: Arc<str>,
    cache: Weak<ClientCache>,
    pool: AnyPool,
) {
    let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
    let mut heard = Instant::now();
    loop {
        let event = tokio::select! {
            event = listener.try_recv() => event,
            _ = heartbeat.tick() => {
                if heard.elapsed() < HEARTBEAT_LOST_AFTER {
                    // Sent on its own task: a hung connection must not stall this loop. A
                    // send that fails or hangs shows up as silence three seconds later.
                    let pool = pool.clone();
                    tokio::spawn(async move {
                        let send = sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&pool);
                        let _ = tokio::time::timeout(HEARTBEAT_LOST_AFTER, send).await;
                    });
                    continue;
                }
                Ok(None)
            }
            _ = pool.close_event() => return,
        };
        let Some(cache) = cache.upgrade() else {
            return;
        };
        match event {
            Ok(Some(notification)) => {
                heard = Instant::now();
                if !cache.is_enabled() {
                    // The first thing heard since (re)subscribing: notifications flow.
                    cache.resume();
                    tracing::info!("client-change listener back; client cache in service");
                }
                if !notification.payload().is_empty() {
                    cache.invalidate(notification.payload());
                }
            }
            Ok(None) | Err(_) => {
                if cache.is_enabled() {
                    tracing::warn!(
                        "lost the client-change listener; client cache bypassed until it is back"
                    );
                } else {
                    tracing::debug!(
                        "client-change listener still hears nothing; subscribing again"
                    );
                }
                cache.suspend();
                let mut wait = Duration::from_millis(100);
                listener = loop {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {},
                        _ = pool.close_event() => return,
                    }
                    match listen_for_client_changes(&url).await {
                        Ok(l) => break l,
                        Err(e) => {
                            tracing::warn!(
                                error = &e as &dyn std::error::Error,
                                "client-change listener still down"
                            );
                            wait = (wait * 2).min(Duration::from_secs(5));
                        }
                    }
                };
                // Back in service only once something is heard on the new subscription: a
                // LISTEN can succeed where notifications never arrive (PgBouncer in
                // transaction pooling).
                heard = Instant::now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rekey_core::clock::Timestamp;
    use rekey_core::model::{App, AppId, OrgId};

    fn record(name: &str) -> Arc<ClientRecord> {
        let app = App {
            id: AppId::new(),
            org_id: OrgId::new(),
            client_id: "rkc_a".into(),
            name: name.into(),
            description: String::new(),
            grant_types: vec![],
            scopes: vec![],
            access_token_ttl_secs: 3600,
            secret_lifetime_secs: 0,
            rotation_grace_secs: 0,
            owner_only_secret_rotation: false,
            service_account: false,
            audiences: Vec::new(),
            rotation_policy: Default::default(),
            created_at: Timestamp::from_millis(0),
            updated_at: Timestamp::from_millis(0),
        };
        Arc::new(ClientRecord {
            app,
            secrets: vec![],
        })
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_dropped() {
        let cache = ClientCache::new(10, Duration::from_secs(60));
        let before = cache.epoch();
        cache.invalidate("rkc_a");
        cache.fill("rkc_a", before, record("stale"));
        assert!(cache.get("rkc_a").is_none());

        let before = cache.epoch();
        cache.fill("rkc_a", before, record("fresh"));
        assert_eq!(cache.get("rkc_a").unwrap().app.name, "fresh");
        cache.invalidate("rkc_a");
        assert!(cache.get("rkc_a").is_none());
    }

    #[test]
    fn a_suspended_cache_serves_and_keeps_nothing() {
        let cache = ClientCache::new(10, Duration::from_secs(60));
        cache.fill("rkc_a", cache.epoch(), record("a"));
        cache.suspend();
        assert!(cache.get("rkc_a").is_none());
        cache.fill("rkc_a", cache.epoch(), record("a"));
        assert!(cache.is_empty());
        cache.resume();
        assert!(cache.get("rkc_a").is_none(), "resume starts empty");
        cache.fill("rkc_a", cache.epoch(), record("a"));
        assert!(cache.get("rkc_a").is_some());
    }

    #[test]
    fn old_entries_are_read_again() {
        let cache = ClientCache::new(10, Duration::ZERO);
        cache.fill("rkc_a", cache.epoch(), record("a"));
        assert!(cache.get("rkc_a").is_none());
    }
}
