//! The audit trail as hash chains: each org's events (and the server's own, of no org) form
//! a chain in which every event stores the link of the event before it and its own link, an
//! HMAC (keyed from the server key) over that previous link and the event's content. Editing,
//! deleting, inserting or reordering events in the database breaks a link that
//! `rekey audit verify` (and `rekey doctor`) find; deleting the newest events is caught by the
//! chain's head, which records the last link and the number of events.

use crate::crypto::KeyedHasher;
use crate::model::{AuditEvent, Outcome};

/// The chain of the server's own events (signing keys, server administrators).
pub const SERVER_CHAIN: &str = "";

/// The chain `event` belongs to: its org's id, or [`SERVER_CHAIN`].
pub fn chain_of(event: &AuditEvent) -> String {
    event
        .org_id
        .map(|o| o.to_string())
        .unwrap_or_else(|| SERVER_CHAIN.to_string())
}

/// An event's content as it is hashed: every stored field, in a fixed order. `details` is
/// the stored JSON text itself, so that a verifier reading it back hashes the same bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkContent<'a> {
    /// The chain the event is linked into (so that a chain cannot be moved to another org).
    pub chain: &'a str,
    pub id: &'a str,
    pub time_ms: i64,
    pub action: &'a str,
    pub actor: &'a str,
    pub org_id: Option<&'a str>,
    pub app_id: Option<&'a str>,
    pub secret_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub source: Option<&'a str>,
    pub outcome: &'a str,
    pub details: &'a str,
}

impl LinkContent<'_> {
    fn canonical(&self) -> String {
        serde_json::json!([
            self.chain,
            self.id,
            self.time_ms,
            self.action,
            self.actor,
            self.org_id,
            self.app_id,
            self.secret_id,
            self.request_id,
            self.source,
            self.outcome,
            self.details,
        ])
        .to_string()
    }
}

/// How an outcome is stored.
pub fn outcome_str(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
    }
}

/// The link of an event that follows `previous` (empty for the first event of a chain).
pub fn link(key: &KeyedHasher, previous: &str, content: &LinkContent<'_>) -> String {
    let hash = key.hash(&format!("{previous}\n{}", content.canonical()));
    crate::crypto::to_hex(&hash.0)
}

/// The MAC of a chain's head: its name, its number of linked events and its last link, so
/// that the head cannot be rewritten (say, to match events cut off at the end) without the key.
pub fn head_mac(key: &KeyedHasher, chain: &str, events: u64, last_link: &str) -> String {
    let hash = key.hash(&format!("head\n{chain}\n{events}\n{last_link}"));
    crate::crypto::to_hex(&hash.0)
}

/// What a verification found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainReport {
    /// The org id, or empty for the server's chain.
    pub chain: String,
    /// Events checked (with links).
    pub events: u64,
    /// Events from before the chain existed (migration 8), at its start, not linked.
    pub unlinked: u64,
    /// The first broken link, if any.
    pub broken: Option<BrokenLink>,
}

/// Where and how a chain is broken.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokenLink {
    /// The event at which the chain breaks (`None`: at its end).
    pub event_id: Option<String>,
    pub reason: String,
}

/// Walks a chain event by event (in their stored order), then checks its head.
pub struct ChainVerifier<'k> {
    key: &'k KeyedHasher,
    report: ChainReport,
    previous: String,
}

impl<'k> ChainVerifier<'k> {
    pub fn new(key: &'k KeyedHasher, chain: &str) -> Self {
        Self {
            key,
            report: ChainReport {
                chain: chain.to_string(),
                ..Default::default()
            },
            previous: String::new(),
        }
    }

    /// The next event, with the links stored with it (`None` for an unlinked event).
    /// `after_chains_began`: the event was written after the first linked event of any chain
    /// (an unlinked one there had its links removed). Returns `false` once the chain is
    /// broken (later events need not be read).
    pub fn next(
        &mut self,
        content: &LinkContent<'_>,
        stored_previous: Option<&str>,
        stored_link: Option<&str>,
        after_chains_began: bool,
    ) -> bool {
        if self.report.broken.is_some() {
            return false;
        }
        let (Some(stored_previous), Some(stored_link)) = (stored_previous, stored_link) else {
            if self.report.events == 0 && !after_chains_began {
                self.report.unlinked += 1;
                return true;
            }
            return self.break_at(
                Some(content.id),
                "the event has no link, but the chain had begun (its link was removed)",
            );
        };
        if stored_previous != self.previous {
            return self.break_at(
                Some(content.id),
                "the event does not follow the one before it (an event was deleted, inserted or moved)",
            );
        }
        if link(self.key, stored_previous, content) != stored_link {
            return self.break_at(
                Some(content.id),
                "the event was changed after it was written",
            );
        }
        self.previous = stored_link.to_string();
        self.report.events += 1;
        true
    }

    /// Checks the chain's head (`None`: no head was ever written; else its last link, its
    /// count and its MAC) and returns the report.
    pub fn finish(mut self, head: Option<(&str, u64, &str)>) -> ChainReport {
        if self.report.broken.is_none() {
            let (last, events, mac) = head.unwrap_or(("", 0, ""));
            if head.is_some() && head_mac(self.key, &self.report.chain, events, last) != mac {
                self.break_at(None, "the chain's head was changed");
                return self.report;
            }
            if last != self.previous || events != self.report.events {
                self.break_at(
                    None,
                    "the chain ends before its head says it does (events at its end were deleted)",
                );
            }
        }
        self.report
    }

    fn break_at(&mut self, event_id: Option<&str>, reason: &str) -> bool {
        self.report.broken = Some(BrokenLink {
            event_id: event_id.map(str::to_string),
            reason: reason.to_string(),
        });
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content<'a>(id: &'a str, details: &'a str) -> LinkContent<'a> {
        LinkContent {
            chain: "org",
            id,
            time_ms: 1,
            action: "secret.rotated",
            actor: "user:x",
            org_id: Some("org"),
            app_id: None,
            secret_id: None,
            request_id: None,
            source: Some("127.0.0.1"),
            outcome: "success",
            details,
        }
    }

    /// Three events linked in order, and each kind of tampering with them.
    #[test]
    fn a_chain_verifies_and_every_edit_delete_or_reorder_breaks_it() {
        let key = KeyedHasher::new(&[9; 32]);
        let events = [
            content("a", "{}"),
            content("b", "{\"n\":1}"),
            content("c", "{}"),
        ];
        let mut links = Vec::new();
        let mut previous = String::new();
        for e in &events {
            let l = link(&key, &previous, e);
            links.push((previous.clone(), l.clone()));
            previous = l;
        }
        let verify = |order: &[usize], edited: Option<usize>, head: (&str, u64)| {
            let mut v = ChainVerifier::new(&key, "org");
            for &i in order {
                let mut c = events[i].clone();
                if edited == Some(i) {
                    c.details = "{\"n\":2}";
                }
                v.next(&c, Some(&links[i].0), Some(&links[i].1), true);
            }
            let mac = head_mac(&key, "org", head.1, head.0);
            v.finish(Some((head.0, head.1, &mac)))
        };
        let last = links[2].1.as_str();
        assert_eq!(verify(&[0, 1, 2], None, (last, 3)).broken, None);
        let edited = verify(&[0, 1, 2], Some(1), (last, 3)).broken.unwrap();
        assert_eq!(edited.event_id.as_deref(), Some("b"));
        assert!(edited.reason.contains("changed"));
        let deleted = verify(&[0, 2], None, (last, 3)).broken.unwrap();
        assert_eq!(deleted.event_id.as_deref(), Some("c"));
        let reordered = verify(&[1, 0, 2], None, (last, 3)).broken.unwrap();
        assert_eq!(reordered.event_id.as_deref(), Some("b"));
        let truncated = verify(&[0, 1], None, (last, 3)).broken.unwrap();
        assert_eq!(truncated.event_id, None);
        // Another key (a forger without the server key) cannot make links that verify.
        let other = KeyedHasher::new(&[8; 32]);
        let mut v = ChainVerifier::new(&other, "org");
        v.next(&events[0], Some(""), Some(&links[0].1), true);
        let mac = head_mac(&key, "org", 1, &links[0].1);
        assert!(v
            .finish(Some((links[0].1.as_str(), 1, &mac)))
            .broken
            .is_some());
        // A head rewritten without the key (to hide the last event) is found.
        let mut v = ChainVerifier::new(&key, "org");
        v.next(&events[0], Some(&links[0].0), Some(&links[0].1), true);
        let forged = head_mac(&other, "org", 1, &links[0].1);
        let report = v.finish(Some((links[0].1.as_str(), 1, &forged)));
        assert!(report.broken.unwrap().reason.contains("head"));
    }

    #[test]
    fn unlinked_events_before_the_chain_are_counted_and_after_it_break_it() {
        let key = KeyedHasher::new(&[9; 32]);
        let first = link(&key, "", &content("b", "{}"));
        let mac = head_mac(&key, "org", 1, &first);
        let mut v = ChainVerifier::new(&key, "org");
        v.next(&content("a", "{}"), None, None, false);
        v.next(&content("b", "{}"), Some(""), Some(&first), true);
        v.next(&content("c", "{}"), None, None, true);
        let report = v.finish(Some((first.as_str(), 1, &mac)));
        assert_eq!(report.unlinked, 1);
        assert_eq!(report.broken.unwrap().event_id.as_deref(), Some("c"));
        // Links removed from a whole chain (and its head deleted) while other chains had
        // begun: its events are after the start of the chains, so they are not "from before".
        let mut v = ChainVerifier::new(&key, "org");
        v.next(&content("d", "{}"), None, None, true);
        assert!(v.finish(None).broken.is_some());
    }
}
