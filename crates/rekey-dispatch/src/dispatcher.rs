//! The dispatcher loop and the handling of one delivery.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;

use rekey_core::clock::Clock;
use rekey_core::crypto::Sealer;
use rekey_core::error::{CoreError, CoreResult};
use rekey_core::metrics::DELIVERY_ATTEMPTS;
use rekey_core::model::{AppId, AuditContext, DeliveryId, DestinationId};
use rekey_core::notify::{
    backoff_ms, payload_context, Delivery, DeliveryOutcome, DeliveryResult, Destination,
};
use rekey_core::store::Store;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::{watch, Notify};

use crate::sinks::{SendError, Sink};

/// How deliveries are attempted.
#[derive(Clone, Debug)]
pub struct DispatchSettings {
    /// Identifies this dispatcher in leases (node name and a random suffix).
    pub owner: String,
    /// How long a claimed row is ours; longer than `send_timeout`.
    pub lease: Duration,
    /// Attempts before a delivery is dead.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Rows claimed at once (their outcomes are recorded in one transaction).
    pub batch: u32,
    /// Sends in flight at once within a batch (one app's deliveries always go one by one).
    pub parallel_sends: usize,
    /// Longest time one send may take.
    pub send_timeout: Duration,
    /// How often to look for due rows when nobody wakes us.
    pub poll_interval: Duration,
}

/// A batch's last send must start this long before the lease ends (at most half the room
/// the lease leaves beside one send), so that its outcome is recorded while the rows are ours.
const RECORDING_MARGIN: Duration = Duration::from_secs(1);

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            owner: format!("dispatcher-{}", std::process::id()),
            lease: Duration::from_secs(60),
            max_attempts: 12,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(600),
            batch: 64,
            parallel_sends: 32,
            send_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// Each claimed delivery's destination, or why it has none.
type Destinations = HashMap<DeliveryId, Result<Destination, SendError>>;

pub struct Dispatcher {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    payload_sealer: Sealer,
    sink: Arc<dyn Sink>,
    settings: DispatchSettings,
    wake: Arc<Notify>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn jitter() -> f64 {
    let mut b = [0u8; 4];
    let _ = SystemRandom::new().fill(&mut b);
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        payload_sealer: Sealer,
        sink: Arc<dyn Sink>,
        settings: DispatchSettings,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            store,
            clock,
            payload_sealer,
            sink,
            settings,
            wake,
        }
    }

    /// Claims one batch of due deliveries, sends them, and records every outcome in one
    /// transaction. Returns how many were claimed.
    ///
    /// Deliveries of one app are sent one after another, in the order they were claimed
    /// (oldest first); different apps' deliveries are sent in parallel, up to
    /// `parallel_sends` at once. A send starts only while it can still end within the lease
    /// (`send_timeout` and a margin for the recording before it runs out); a delivery left
    /// unsent for lack of time is released, its attempt not counted, for the next batch.
    pub async fn try_execute_batch(&self) -> CoreResult<usize> {
        let now = self.clock.now();
        let started = tokio::time::Instant::now();
        let claimed = self
            .store
            .claim_deliveries(
                &self.settings.owner,
                now,
                now.plus(self.settings.lease),
                self.settings.batch,
            )
            .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let room = self
            .settings
            .lease
            .saturating_sub(self.settings.send_timeout);
        let start_by = started + room.saturating_sub(RECORDING_MARGIN.min(room / 2));
        let destinations = self.destinations_of(&claimed).await;
        let count = claimed.len();
        let mut by_app: Vec<Vec<Delivery>> = Vec::new();
        let mut group_of: HashMap<AppId, usize> = HashMap::new();
        for d in claimed {
            let g = *group_of.entry(d.app_id).or_insert_with(|| {
                by_app.push(Vec::new());
                by_app.len() - 1
            });
            by_app[g].push(d);
        }
        let outcomes: Vec<DeliveryOutcome> = futures_util::stream::iter(by_app)
            .map(|group| self.send_in_order(group, &destinations, start_by))
            .buffer_unordered(self.settings.parallel_sends.max(1))
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .flatten()
            .collect();
        self.store
            .record_delivery_outcomes(&self.settings.owner, &outcomes)
            .await?;
        Ok(count)
    }

    /// One app's deliveries, one after another.
    async fn send_in_order(
        &self,
        group: Vec<Delivery>,
        destinations: &Destinations,
        start_by: tokio::time::Instant,
    ) -> Vec<DeliveryOutcome> {
        let mut outcomes = Vec::with_capacity(group.len());
        for d in &group {
            if tokio::time::Instant::now() > start_by {
                outcomes.push(DeliveryOutcome {
                    id: d.id,
                    result: DeliveryResult::Released,
                    audit: Vec::new(),
                });
                continue;
            }
            outcomes.push(self.attempt(d, destinations).await);
        }
        outcomes
    }

    /// Attempts every due delivery until none is due (tests, shutdown).
    pub async fn drain(&self) -> CoreResult<usize> {
        let mut total = 0;
        loop {
            let n = self.try_execute_batch().await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Sends one delivery and says what became of it (recorded by the caller).
    async fn attempt(&self, d: &Delivery, destinations: &Destinations) -> DeliveryOutcome {
        let (sink, result) = self.send(d, destinations).await;
        let now = self.clock.now();
        let counted = |outcome: &'static str| {
            metrics::counter!(DELIVERY_ATTEMPTS, "sink" => sink, "outcome" => outcome).increment(1)
        };
        let ctx = AuditContext {
            actor: format!("dispatcher:{}", self.settings.owner),
            ..Default::default()
        };
        let event = |action: &str| {
            ctx.event(now, action)
                .org(d.org_id)
                .app(d.app_id)
                .details(serde_json::json!({
                    "notificationId": d.notification_id.to_string(),
                    "notificationType": d.notification_type.as_str(),
                    "deliveryId": d.id.to_string(),
                    "attempt": d.attempts,
                }))
        };
        let (result, audit) = match result {
            Ok(()) => {
                counted("delivered");
                tracing::info!(delivery = %d.id, notification = %d.notification_id, "notification delivered");
                (
                    DeliveryResult::Delivered { at: now },
                    event("notification.delivered"),
                )
            }
            Err(e) if d.attempts >= self.settings.max_attempts => {
                counted("dead");
                tracing::warn!(delivery = %d.id, error = %e.0, attempts = d.attempts, "delivery is dead");
                let failed = DeliveryResult::Failed {
                    error: e.0,
                    retry_at: None,
                };
                (failed, event("notification.dead").failed())
            }
            Err(e) => {
                counted("failed");
                let wait = backoff_ms(
                    d.attempts,
                    ms(self.settings.backoff_base),
                    ms(self.settings.backoff_cap),
                    jitter(),
                );
                tracing::info!(delivery = %d.id, error = %e.0, retry_in_ms = wait, "delivery failed; will retry");
                let retry_at = rekey_core::Timestamp::from_millis(now.as_millis() + wait);
                let failed = DeliveryResult::Failed {
                    error: e.0,
                    retry_at: Some(retry_at),
                };
                (failed, event("notification.failed").failed())
            }
        };
        DeliveryOutcome {
            id: d.id,
            result,
            audit: vec![audit],
        }
    }

    /// Sends one delivery; returns the sink kind it went to (`none` when none was found),
    /// for the metrics.
    async fn send(
        &self,
        d: &Delivery,
        destinations: &Destinations,
    ) -> (&'static str, Result<(), SendError>) {
        let dest = match destinations.get(&d.id) {
            Some(Ok(dest)) => dest,
            Some(Err(e)) => return ("none", Err(e.clone())),
            None => {
                return (
                    "none",
                    Err(SendError("no destination was looked up".into())),
                )
            }
        };
        let sink = dest.target.kind();
        let sent = async {
            let sealed = d
                .sealed_payload
                .as_ref()
                .ok_or_else(|| SendError("the payload is missing".into()))?;
            let body = self
                .payload_sealer
                .open(sealed, &payload_context(d.id))
                .map_err(|_| SendError("the payload does not open with this server key".into()))?;
            tokio::time::timeout(self.settings.send_timeout, self.sink.send(dest, d, &body))
                .await
                .unwrap_or_else(|_| Err(SendError("the destination did not answer in time".into())))
        };
        (sink, sent.await)
    }

    /// Each claimed delivery's destination: the one the notification was addressed to; if
    /// it was replaced since, the app's current one for the type (its Notification
    /// Preferences now). One query for the batch, one more per replaced destination.
    async fn destinations_of(&self, claimed: &[Delivery]) -> Destinations {
        let storage = |e: CoreError| SendError(format!("storage error: {e}"));
        let mut ids: Vec<DestinationId> = claimed.iter().map(|d| d.destination_id).collect();
        ids.sort_by_key(|id| id.to_string());
        ids.dedup();
        let found = match self.store.get_destinations_by_ids(&ids).await {
            Ok(found) => found,
            Err(e) => {
                let e = storage(e);
                return claimed.iter().map(|d| (d.id, Err(e.clone()))).collect();
            }
        };
        let by_id: HashMap<DestinationId, Destination> =
            found.into_iter().map(|dest| (dest.id, dest)).collect();
        let mut out = HashMap::with_capacity(claimed.len());
        for d in claimed {
            let dest = match by_id.get(&d.destination_id) {
                Some(dest) => Ok(dest.clone()),
                None => self
                    .store
                    .get_destination(d.app_id, d.notification_type)
                    .await
                    .map_err(storage)
                    .and_then(|dest| {
                        dest.ok_or_else(|| {
                            SendError(
                                "the app has no destination for this notification type".into(),
                            )
                        })
                    }),
            };
            out.insert(d.id, dest);
        }
        out
    }

    /// Delivers until `stop` turns true: a batch whenever woken or every poll interval.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            match self.try_execute_batch().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "dispatcher could not read the outbox"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
