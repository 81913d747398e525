//! Every metric Rekey exports, named in one place (`docs/operations.md` lists them and
//! `deploy/prometheus/alerts.yml` uses them). Recorded through the `metrics` facade, like
//! logs through `tracing`: with no exporter installed (no `metrics_listen`), a recording
//! is a no-op.
//!
//! Labels take bounded values only (dialects, outcomes, error codes, sink kinds): never a
//! client id, an org or an app, which would grow without bound and leak tenant names.

use crate::clock::Timestamp;

/// Token requests, by `dialect`, `outcome` (`issued`, `refused`) and `error` (the OAuth
/// error code, or `none`).
pub const TOKEN_REQUESTS: &str = "rekey_token_requests_total";
/// Latency of the token endpoints, by `dialect`.
pub const TOKEN_REQUEST_DURATION: &str = "rekey_token_request_duration_seconds";
/// Secret changes, by `action` (`rotate`, `regenerate`, `finish`, `revoke`), `dialect` and
/// `actor` (`user`, `app`).
pub const SECRET_CHANGES: &str = "rekey_secret_changes_total";
/// Management requests the policy refused, by `dialect`.
pub const REFUSED_ACTIONS: &str = "rekey_refused_actions_total";
/// Failed authentications answered with 429 by the failure throttle.
pub const THROTTLED_REQUESTS: &str = "rekey_throttled_requests_total";
/// Delivery attempts, by `sink` (`sqs`, `webhook`, `file`) and `outcome` (`delivered`,
/// `failed`: retried later, `dead`: given up).
pub const DELIVERY_ATTEMPTS: &str = "rekey_delivery_attempts_total";
/// Client-record lookups of the token path, by `result` (`hit`, `miss`, `bypassed`).
pub const CLIENT_CACHE_LOOKUPS: &str = "rekey_client_cache_lookups_total";
/// 1 while the client cache is in service, 0 while its PostgreSQL listener is down.
pub const CLIENT_CACHE_IN_SERVICE: &str = "rekey_client_cache_in_service";
/// Open HTTP connections of the public listener (at most `max_connections`).
pub const HTTP_CONNECTIONS_OPEN: &str = "rekey_http_connections_open";
/// Connections closed at once because `max_connections` were open.
pub const HTTP_CONNECTIONS_REFUSED: &str = "rekey_http_connections_refused_total";
/// What rotation policies did, by `action` (`rotated`, `retired`, `rotation_blocked`).
pub const POLICY_ACTIONS: &str = "rekey_rotation_policy_actions_total";
/// Rotations in progress whose previous secret a policy may not retire yet, after the last
/// policy pass, by `reason` (`new_secret_unused`, `previous_still_used`, `quiet_period`,
/// `notification_dead`, `current_not_valid`).
pub const POLICY_WAITING: &str = "rekey_rotation_policy_waiting";
/// Always 1, with the `version` label.
pub const BUILD_INFO: &str = "rekey_build_info";

// Read from the database at scrape time (the same on every node: alert on `max`).

/// Notifications waiting in the outbox.
pub const OUTBOX_PENDING: &str = "rekey_outbox_pending";
/// Age of the oldest waiting notification (0 when none waits).
pub const OUTBOX_OLDEST_PENDING_AGE: &str = "rekey_outbox_oldest_pending_age_seconds";
/// Notifications given up on, of apps that still exist (retry them or fix the destination).
pub const DELIVERIES_DEAD: &str = "rekey_deliveries_dead";
/// Current secrets that expire within `within` (`7d`, `30d`).
pub const CURRENT_SECRETS_EXPIRING: &str = "rekey_current_secrets_expiring";
/// Previous secrets still valid (rotations in progress), by their `last_use` (`1h`: used in
/// the last hour, `24h`, `older`, `never`).
pub const PREVIOUS_SECRETS_VALID: &str = "rekey_previous_secrets_valid";

/// What the database says at one moment, for the gauges above.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreGauges {
    pub outbox_pending: u64,
    pub oldest_pending_since: Option<Timestamp>,
    pub deliveries_dead: u64,
    pub current_expiring_7d: u64,
    pub current_expiring_30d: u64,
    pub previous_used_1h: u64,
    pub previous_used_24h: u64,
    pub previous_used_older: u64,
    pub previous_never_used: u64,
}

impl StoreGauges {
    /// Sets the gauges, as of `now`.
    pub fn record(&self, now: Timestamp) {
        let gauge = |name: &'static str, v: u64| metrics::gauge!(name).set(v as f64);
        gauge(OUTBOX_PENDING, self.outbox_pending);
        let age = self
            .oldest_pending_since
            .map_or(0.0, |since| now.since(since).as_secs_f64());
        metrics::gauge!(OUTBOX_OLDEST_PENDING_AGE).set(age);
        gauge(DELIVERIES_DEAD, self.deliveries_dead);
        for (within, v) in [
            ("7d", self.current_expiring_7d),
            ("30d", self.current_expiring_30d),
        ] {
            metrics::gauge!(CURRENT_SECRETS_EXPIRING, "within" => within).set(v as f64);
        }
        for (last_use, v) in [
            ("1h", self.previous_used_1h),
            ("24h", self.previous_used_24h),
            ("older", self.previous_used_older),
            ("never", self.previous_never_used),
        ] {
            metrics::gauge!(PREVIOUS_SECRETS_VALID, "last_use" => last_use).set(v as f64);
        }
    }
}

/// Counts one secret change.
pub fn secret_changed(action: &'static str, dialect: &'static str, actor: &'static str) {
    metrics::counter!(SECRET_CHANGES, "action" => action, "dialect" => dialect, "actor" => actor)
        .increment(1);
}
