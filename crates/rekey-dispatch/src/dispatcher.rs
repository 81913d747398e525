//! The dispatcher loop and the handling of one delivery.

use std::sync::Arc;
use std::time::Duration;

use rekey_core::clock::Clock;
use rekey_core::crypto::Sealer;
use rekey_core::error::{CoreError, CoreResult};
use rekey_core::metrics::DELIVERY_ATTEMPTS;
use rekey_core::model::AuditContext;
use rekey_core::notify::{backoff_ms, payload_context, Delivery, Destination};
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
    /// Rows claimed at once. Sends run one after another, so the batch must finish within
    /// the lease: see [`DispatchSettings::safe_batch`].
    pub batch: u32,
    /// Longest time one send may take.
    pub send_timeout: Duration,
    /// How often to look for due rows when nobody wakes us.
    pub poll_interval: Duration,
}

impl DispatchSettings {
    /// The largest batch whose sends all end within the lease even if each one times out
    /// (with one send's time to spare), capped at `max`.
    pub fn safe_batch(lease: Duration, send_timeout: Duration, max: u32) -> u32 {
        let fits = lease.as_secs_f64() / send_timeout.as_secs_f64().max(0.001) - 1.0;
        (fits.floor().max(1.0) as u32).min(max)
    }
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            owner: format!("dispatcher-{}", std::process::id()),
            lease: Duration::from_secs(60),
            max_attempts: 12,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(600),
            batch: 5,
            send_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(500),
        }
    }
}

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

    /// Claims one batch of due deliveries and attempts each. Returns how many were attempted.
    pub async fn try_execute_batch(&self) -> CoreResult<usize> {
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_deliveries(
                &self.settings.owner,
                now,
                now.plus(self.settings.lease),
                self.settings.batch,
            )
            .await?;
        for d in &claimed {
            self.attempt(d).await?;
        }
        Ok(claimed.len())
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

    async fn attempt(&self, d: &Delivery) -> CoreResult<()> {
        let (sink, result) = self.send(d).await;
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
        match result {
            Ok(()) => {
                counted("delivered");
                tracing::info!(delivery = %d.id, notification = %d.notification_id, "notification delivered");
                self.store
                    .complete_delivery(
                        d.id,
                        &self.settings.owner,
                        now,
                        &[event("notification.delivered")],
                    )
                    .await
            }
            Err(e) if d.attempts >= self.settings.max_attempts => {
                counted("dead");
                tracing::warn!(delivery = %d.id, error = %e.0, attempts = d.attempts, "delivery is dead");
                let ev = event("notification.dead").failed();
                self.store
                    .fail_delivery(d.id, &self.settings.owner, &e.0, None, &[ev])
                    .await
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
                let ev = event("notification.failed").failed();
                self.store
                    .fail_delivery(d.id, &self.settings.owner, &e.0, Some(retry_at), &[ev])
                    .await
            }
        }
    }

    /// Sends one delivery; returns the sink kind it went to (`none` when none was found),
    /// for the metrics.
    async fn send(&self, d: &Delivery) -> (&'static str, Result<(), SendError>) {
        let dest = match self.destination_of(d).await {
            Ok(dest) => dest,
            Err(e) => return ("none", Err(e)),
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
            tokio::time::timeout(self.settings.send_timeout, self.sink.send(&dest, d, &body))
                .await
                .unwrap_or_else(|_| Err(SendError("the destination did not answer in time".into())))
        };
        (sink, sent.await)
    }

    /// The destination the notification was addressed to; if it was replaced since, the
    /// app's current one for the type (its Notification Preferences now).
    async fn destination_of(&self, d: &Delivery) -> Result<Destination, SendError> {
        let storage = |e: CoreError| SendError(format!("storage error: {e}"));
        let dest = match self
            .store
            .get_destination_by_id(d.destination_id)
            .await
            .map_err(storage)?
        {
            Some(dest) => Some(dest),
            None => self
                .store
                .get_destination(d.app_id, d.notification_type)
                .await
                .map_err(storage)?,
        };
        dest.ok_or_else(|| {
            SendError("the app has no destination for this notification type".into())
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_always_ends_within_its_lease() {
        let s = |l, t, m| {
            DispatchSettings::safe_batch(Duration::from_secs(l), Duration::from_secs(t), m)
        };
        assert_eq!(s(60, 10, 16), 5);
        assert_eq!(s(600, 10, 16), 16);
        assert_eq!(s(11, 10, 16), 1);
    }
}
