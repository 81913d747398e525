//! Failed authentications and refused actions, counted in memory and written to the audit
//! trail as one event per kind, org, caller, source and reason for each flush (every
//! `last_use_flush_seconds`), with the count and the first and last time: a flood of bad
//! credentials cannot turn into a flood of audit rows, and the trail still says who tried
//! what from where, and how often.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::Timestamp;
use crate::model::{AppId, AuditContext, AuditEvent, OrgId, Outcome};

/// At most this many distinct keys between two flushes; beyond, attempts are only counted
/// (and reported as one server event), so that memory stays bounded under a flood.
const MAX_KEYS: usize = 10_000;

/// What was counted: the kind (`auth.failed`, `action.refused`), where, by whom, from where.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TallyKey {
    pub action: &'static str,
    pub org: Option<OrgId>,
    pub app: Option<AppId>,
    /// The caller as far as known: `app:<id>`, `user:<id>`, or `client:<fingerprint>` for a
    /// client id that names no app (it may be a secret typed in the wrong field).
    pub actor: String,
    pub source: Option<String>,
    pub reason: String,
}

#[derive(Clone, Copy, Debug)]
struct Count {
    n: u64,
    first: Timestamp,
    last: Timestamp,
}

#[derive(Debug, Default)]
struct Counts {
    by_key: HashMap<TallyKey, Count>,
    overflow: u64,
}

/// The counts since the last flush.
#[derive(Debug, Default)]
pub struct AuditTally {
    counts: Mutex<Counts>,
}

impl AuditTally {
    pub fn record(&self, key: TallyKey, now: Timestamp) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let full = counts.by_key.len() >= MAX_KEYS;
        match counts.by_key.get_mut(&key) {
            Some(c) => {
                c.n += 1;
                c.last = now;
            }
            None if full => counts.overflow += 1,
            None => {
                counts.by_key.insert(
                    key,
                    Count {
                        n: 1,
                        first: now,
                        last: now,
                    },
                );
            }
        }
    }

    /// The events for everything counted since the last call (and resets the counts).
    pub fn drain(&self, now: Timestamp) -> Vec<AuditEvent> {
        let Counts { by_key, overflow } =
            std::mem::take(&mut *self.counts.lock().unwrap_or_else(|e| e.into_inner()));
        let mut events: Vec<AuditEvent> = by_key
            .into_iter()
            .map(|(key, count)| {
                let mut e = AuditContext {
                    actor: key.actor,
                    request_id: None,
                    source: key.source,
                }
                .event(count.last, key.action)
                .details(serde_json::json!({
                    "count": count.n,
                    "firstAt": count.first.to_rfc3339(),
                    "lastAt": count.last.to_rfc3339(),
                    "reason": key.reason,
                }));
                e.org_id = key.org;
                e.app_id = key.app;
                e.outcome = Outcome::Failure;
                e
            })
            .collect();
        if overflow > 0 {
            let mut e = AuditContext {
                actor: "system".into(),
                ..Default::default()
            }
            .event(now, "audit.tally_overflow")
            .details(serde_json::json!({ "count": overflow }));
            e.outcome = Outcome::Failure;
            events.push(e);
        }
        events.sort_by_key(|e| e.time);
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(source: &str) -> TallyKey {
        TallyKey {
            action: "auth.failed",
            org: None,
            app: None,
            actor: "client:abc".into(),
            source: Some(source.into()),
            reason: "invalid client credentials".into(),
        }
    }

    #[test]
    fn attempts_are_counted_per_key_and_drained_once() {
        let tally = AuditTally::default();
        for i in 0..5 {
            tally.record(key("10.0.0.1"), Timestamp::from_millis(1000 + i));
        }
        tally.record(key("10.0.0.2"), Timestamp::from_millis(2000));
        let events = tally.drain(Timestamp::from_millis(3000));
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].details["count"], 5);
        assert_eq!(events[0].source.as_deref(), Some("10.0.0.1"));
        assert_eq!(events[0].outcome, Outcome::Failure);
        assert!(tally.drain(Timestamp::from_millis(4000)).is_empty());
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_bounded() {
        let tally = AuditTally::default();
        for i in 0..(MAX_KEYS + 50) {
            tally.record(key(&format!("s{i}")), Timestamp::from_millis(1));
        }
        let events = tally.drain(Timestamp::from_millis(2));
        assert_eq!(events.len(), MAX_KEYS + 1);
        let overflow = events
            .iter()
            .find(|e| e.action == "audit.tally_overflow")
            .unwrap();
        assert_eq!(overflow.details["count"], 50);
    }
}
