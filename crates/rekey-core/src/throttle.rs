//! Throttling of failed client authentications, per client id (from any address) and per
//! source address.
//!
//! Fixed windows kept in memory on each node, with no database write per failure. Once a
//! client id or an address is over its budget, further *failed* attempts get 429 with
//! `Retry-After`; a request with a valid secret is never refused, so nobody can lock a client
//! out by failing in its name, and clients behind one proxy address do not suffer for each
//! other. (Secrets are 256 random bits: the throttle is about noise and abuse, not guessing
//! odds.) The SP-API rotation limit, which must hold across nodes, lives in the database.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::Timestamp;

#[derive(Debug)]
pub struct FailureThrottle {
    window_ms: i64,
    max_per_client: u32,
    max_per_address: u32,
    windows: Mutex<Windows>,
}

#[derive(Debug, Default)]
struct Windows {
    by_key: HashMap<String, Window>,
    /// When expired windows were last swept (at most once a second).
    last_sweep: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Timestamp,
    failures: u32,
}

/// Entries kept before expired windows are swept (at most once a second).
const SWEEP_ABOVE: usize = 10_000;
/// Entries at most: past this, failures only count against keys that exist already, so that
/// a flood of new keys cannot grow the map (the address key of a flood exists already).
const MAX_ENTRIES: usize = 100_000;

impl FailureThrottle {
    pub fn new(window_secs: u64, max_per_client: u32, max_per_address: u32) -> Self {
        Self {
            window_ms: i64::try_from(window_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            max_per_client,
            max_per_address,
            windows: Mutex::new(Windows::default()),
        }
    }

    /// One window per client id, whatever the address (guessing one client's secret from many
    /// addresses counts as one), and one per address. Neither ever refuses a valid secret: the
    /// use case asks only after a failed authentication (so nobody can lock a client out).
    fn keys(client_id: Option<&str>, address: Option<&str>) -> [(Option<String>, bool); 2] {
        [
            (client_id.map(|c| format!("c:{c}")), true),
            (address.map(|a| format!("a:{a}")), false),
        ]
    }

    /// Seconds until the caller may try again, if it is throttled now.
    pub fn blocked_for(
        &self,
        client_id: Option<&str>,
        address: Option<&str>,
        now: Timestamp,
    ) -> Option<u64> {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        Self::keys(client_id, address)
            .into_iter()
            .filter_map(|(key, is_client)| {
                let w = windows.by_key.get(key.as_ref()?)?;
                let max = if is_client {
                    self.max_per_client
                } else {
                    self.max_per_address
                };
                let end = w.start.as_millis() + self.window_ms;
                (w.failures >= max && now.as_millis() < end)
                    .then(|| u64::try_from((end - now.as_millis() + 999) / 1000).unwrap_or(1))
            })
            .max()
    }

    pub fn record_failure(&self, client_id: Option<&str>, address: Option<&str>, now: Timestamp) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let swept_lately = windows
            .last_sweep
            .is_some_and(|t| now.as_millis() < t.as_millis() + 1000);
        if windows.by_key.len() > SWEEP_ABOVE && !swept_lately {
            let window_ms = self.window_ms;
            windows
                .by_key
                .retain(|_, w| now.as_millis() < w.start.as_millis() + window_ms);
            windows.last_sweep = Some(now);
        }
        let full = windows.by_key.len() >= MAX_ENTRIES;
        for (key, _) in Self::keys(client_id, address) {
            let Some(key) = key else { continue };
            if full && !windows.by_key.contains_key(&key) {
                continue;
            }
            let w = windows.by_key.entry(key).or_insert(Window {
                start: now,
                failures: 0,
            });
            if now.as_millis() >= w.start.as_millis() + self.window_ms {
                *w = Window {
                    start: now,
                    failures: 0,
                };
            }
            w.failures = w.failures.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_000_000);

    #[test]
    fn a_client_is_blocked_after_its_failure_budget_until_the_window_ends() {
        let t = FailureThrottle::new(60, 3, 100);
        for _ in 0..2 {
            t.record_failure(Some("c1"), Some("1.1.1.1"), T0);
        }
        assert_eq!(t.blocked_for(Some("c1"), Some("1.1.1.1"), T0), None);
        t.record_failure(Some("c1"), Some("1.1.1.1"), T0);
        assert_eq!(t.blocked_for(Some("c1"), Some("1.1.1.1"), T0), Some(60));
        assert_eq!(t.blocked_for(Some("c2"), Some("1.1.1.1"), T0), None);
        assert_eq!(
            t.blocked_for(Some("c1"), Some("1.1.1.1"), T0.plus_secs(59)),
            Some(1)
        );
        assert_eq!(
            t.blocked_for(Some("c1"), Some("1.1.1.1"), T0.plus_secs(60)),
            None
        );
    }

    #[test]
    fn failures_for_one_client_from_many_addresses_count_together() {
        let t = FailureThrottle::new(60, 2, 100);
        t.record_failure(Some("c1"), Some("6.6.6.6"), T0);
        t.record_failure(Some("c1"), Some("7.7.7.7"), T0);
        assert!(t.blocked_for(Some("c1"), Some("8.8.8.8"), T0).is_some());
        assert!(t.blocked_for(Some("c2"), Some("8.8.8.8"), T0).is_none());
    }

    #[test]
    fn an_address_is_blocked_across_client_ids() {
        let t = FailureThrottle::new(60, 100, 2);
        t.record_failure(Some("a"), Some("9.9.9.9"), T0);
        t.record_failure(Some("b"), Some("9.9.9.9"), T0);
        assert!(t.blocked_for(Some("c"), Some("9.9.9.9"), T0).is_some());
        assert!(t.blocked_for(Some("c"), Some("8.8.8.8"), T0).is_none());
    }

    #[test]
    fn a_new_window_starts_the_count_again() {
        let t = FailureThrottle::new(10, 2, 100);
        t.record_failure(Some("c"), None, T0);
        t.record_failure(Some("c"), None, T0.plus_secs(11));
        assert!(t.blocked_for(Some("c"), None, T0.plus_secs(11)).is_none());
    }

    #[test]
    fn a_flood_of_new_keys_cannot_grow_the_map_past_its_bound() {
        let t = FailureThrottle::new(60, 10, u32::MAX);
        for n in 0..(MAX_ENTRIES + 500) {
            t.record_failure(Some(&format!("c{n}")), Some("9.9.9.9"), T0);
        }
        let len = t.windows.lock().unwrap().by_key.len();
        assert_eq!(len, MAX_ENTRIES);
        // The flood's address still counts every failure.
        let w = t.windows.lock().unwrap().by_key["a:9.9.9.9"];
        assert_eq!(w.failures as usize, MAX_ENTRIES + 500);
    }
}
