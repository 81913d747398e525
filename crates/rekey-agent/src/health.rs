//! What `/healthz` says: the last secret applied (its hint and time, never the secret) and
//! the last failure.

use std::sync::Mutex;

use rekey_core::clock::Clock as _;
use serde::Serialize;

use crate::apply::Failure;
use crate::state::AppliedSecret;

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// `ok`, or `failing` while the newest attempt failed.
    pub status: &'static str,
    pub last_applied_hint: Option<String>,
    pub last_applied_at: Option<String>,
    pub last_failure: Option<String>,
    pub last_failure_at: Option<String>,
    pub failures: u64,
}

#[derive(Default)]
pub struct Health(Mutex<HealthReport>);

impl Health {
    fn update(&self, f: impl FnOnce(&mut HealthReport)) {
        let mut report = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut report);
    }

    pub fn applied(&self, secret: &AppliedSecret) {
        self.update(|r| {
            r.status = "ok";
            r.last_applied_hint = Some(secret.hint.clone());
            r.last_applied_at = Some(secret.applied_at.clone());
        });
        if let Some(t) = rekey_core::clock::Timestamp::parse_rfc3339(&secret.applied_at) {
            metrics::gauge!(crate::metric_names::LAST_APPLIED).set(t.as_millis() as f64 / 1000.0);
        }
    }

    pub fn failed(&self, f: &Failure) {
        self.update(|r| {
            r.status = "failing";
            r.last_failure = Some(f.to_string());
            r.last_failure_at = Some(rekey_core::clock::SystemClock.now().to_rfc3339());
            r.failures += 1;
        });
    }

    /// A step that succeeded without applying (a redelivery, a test notification).
    pub fn recovered(&self) {
        self.update(|r| r.status = "ok");
    }

    pub fn report(&self) -> HealthReport {
        let r = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        HealthReport {
            status: if r.status.is_empty() { "ok" } else { r.status },
            ..r
        }
    }
}
