//! Signing-key rotation: by an operator (`rekey signing-keys rotate`), a server
//! administrator (the native API), or the schedule (`signing_key_rotation_days`, run by the
//! sweeper). A new key is published at once and signs only `prepublish_secs` later, so every
//! node and every verifier caching the JWKS knows it before its first token; the keys it
//! replaces stay published `overlap_secs` after that, longer than any token lives.

use crate::clock::Timestamp;
use crate::crypto::Sealer;
use crate::error::OpError;
use crate::model::{AuditContext, Principal, StoredSigningKey};
use crate::policy::Denied;
use crate::store::Store;
use crate::token::generate_signing_key;

use super::{Actor, Rekey};

/// When keys sign and stay published (from the server's configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigningKeyTiming {
    /// A new key is published this long before it signs.
    pub prepublish_secs: i64,
    /// Replaced keys stay published this long after their successor starts signing.
    pub overlap_secs: i64,
    /// Scheduled rotation: a key signs for this long; `None`: only on request.
    pub rotate_every_secs: Option<i64>,
}

/// The key signing at `now`: of the keys that started signing, the latest to start.
pub fn signing_at(keys: &[StoredSigningKey], now: Timestamp) -> Option<&StoredSigningKey> {
    keys.iter()
        .filter(|k| k.publish_until.is_none_or(|t| now < t) && k.signs_from() <= now)
        .max_by_key(|k| (k.signs_from(), k.created_at))
}

/// A key published that has not started signing yet.
pub fn waiting_at(keys: &[StoredSigningKey], now: Timestamp) -> Option<&StoredSigningKey> {
    keys.iter()
        .find(|k| k.signs_from.is_some_and(|from| now < from))
}

/// When the schedule wants the successor of the key signing at `now` published: its
/// rotation time less the pre-publication. `None`: no schedule, or no key signing.
pub fn successor_due_at(
    keys: &[StoredSigningKey],
    now: Timestamp,
    timing: SigningKeyTiming,
) -> Option<Timestamp> {
    let every = timing.rotate_every_secs?;
    let current = signing_at(keys, now)?;
    Some(
        current
            .signs_from()
            .plus_secs(every.saturating_sub(timing.prepublish_secs)),
    )
}

/// Whether the schedule rotates now: a successor is due and none waits already.
pub fn scheduled_rotation_due(
    keys: &[StoredSigningKey],
    now: Timestamp,
    timing: SigningKeyTiming,
) -> bool {
    waiting_at(keys, now).is_none() && successor_due_at(keys, now, timing).is_some_and(|t| t <= now)
}

/// Adds a successor key: published now, signing `prepublish_secs` from now. Refuses while
/// another key waits (a second one inside the window would not sign any sooner).
pub async fn add_successor(
    store: &dyn Store,
    sealer: &Sealer,
    now: Timestamp,
    timing: SigningKeyTiming,
    audit: &AuditContext,
) -> Result<StoredSigningKey, OpError> {
    if let Some(waiting) = waiting_at(&store.list_signing_keys().await?, now) {
        return Err(OpError::Conflict(format!(
            "signing key {} is already published and starts signing at {}: rotate again after \
             that",
            waiting.kid,
            waiting.signs_from().to_rfc3339()
        )));
    }
    let mut key = generate_signing_key(sealer, now);
    let signs_from = now.plus_secs(timing.prepublish_secs);
    key.signs_from = Some(signs_from);
    let event = audit
        .event(now, "signing_key.rotated")
        .details(serde_json::json!({ "kid": key.kid, "signsFrom": signs_from.to_rfc3339() }));
    store
        .add_signing_key(&key, signs_from.plus_secs(timing.overlap_secs), &[event])
        .await
        .map_err(|e| match e {
            // The one-signing-key index: another rotation committed first.
            crate::error::CoreError::Conflict(_) => {
                OpError::Conflict("another signing-key rotation happened at the same moment".into())
            }
            e => e.into(),
        })?;
    Ok(key)
}

impl Rekey {
    /// A server administrator rotates the signing key (native API).
    pub async fn rotate_signing_key(&self, actor: &Actor) -> Result<StoredSigningKey, OpError> {
        let Principal::User(user) = actor.principal else {
            return Err(Denied::NotServerAdmin.into());
        };
        if !self.store.is_server_admin(user).await? {
            return Err(Denied::NotServerAdmin.into());
        }
        let key = add_successor(
            &*self.store,
            &self.signing_key_sealer,
            self.now(),
            self.signing_key_timing,
            &actor.audit,
        )
        .await?;
        self.reload_keys().await?;
        Ok(key)
    }

    /// The sweeper's part: adds the successor the schedule wants, if it is due. Returns
    /// the new key, if one was added.
    pub async fn rotate_signing_key_if_due(&self) -> Result<Option<StoredSigningKey>, OpError> {
        let now = self.now();
        let keys = self.store.list_signing_keys().await?;
        if !scheduled_rotation_due(&keys, now, self.signing_key_timing) {
            return Ok(None);
        }
        let audit = AuditContext {
            actor: "schedule".into(),
            ..Default::default()
        };
        match add_successor(
            &*self.store,
            &self.signing_key_sealer,
            now,
            self.signing_key_timing,
            &audit,
        )
        .await
        {
            Ok(key) => {
                tracing::info!(kid = %key.kid, signs_from = %key.signs_from().to_rfc3339(), "scheduled signing-key rotation: published a new key");
                self.reload_keys().await?;
                Ok(Some(key))
            }
            // Another node's sweeper rotated first.
            Err(OpError::Conflict(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_millis(secs * 1000)
    }

    fn key(
        kid: &str,
        created: i64,
        signs_from: Option<i64>,
        until: Option<i64>,
    ) -> StoredSigningKey {
        StoredSigningKey {
            kid: kid.into(),
            algorithm: "EdDSA".into(),
            public_key: vec![],
            sealed_private_key: vec![],
            created_at: at(created),
            publish_until: until.map(at),
            signs_from: signs_from.map(at),
        }
    }

    fn timing(every_days: Option<i64>) -> SigningKeyTiming {
        SigningKeyTiming {
            prepublish_secs: 330,
            overlap_secs: DAY,
            rotate_every_secs: every_days.map(|d| d * DAY),
        }
    }

    #[test]
    fn the_successor_is_published_its_prepublication_before_the_rotation_time() {
        let keys = [key("a", 0, None, None)];
        let due = 90 * DAY - 330;
        assert_eq!(
            successor_due_at(&keys, at(1), timing(Some(90))),
            Some(at(due))
        );
        assert!(!scheduled_rotation_due(
            &keys,
            at(due - 1),
            timing(Some(90))
        ));
        assert!(scheduled_rotation_due(&keys, at(due), timing(Some(90))));
        assert!(!scheduled_rotation_due(&keys, at(due), timing(None)));
    }

    #[test]
    fn a_waiting_key_holds_the_schedule_and_its_start_counts_from_when_it_signs() {
        // "b" was published at day 90 - 330 s, signs from day 90.
        let keys = [
            key("a", 0, None, Some(91 * DAY)),
            key("b", 90 * DAY - 330, Some(90 * DAY), None),
        ];
        let before = at(90 * DAY - 10);
        assert_eq!(signing_at(&keys, before).map(|k| k.kid.as_str()), Some("a"));
        assert_eq!(waiting_at(&keys, before).map(|k| k.kid.as_str()), Some("b"));
        assert!(!scheduled_rotation_due(&keys, before, timing(Some(90))));
        let after = at(90 * DAY + 1);
        assert_eq!(signing_at(&keys, after).map(|k| k.kid.as_str()), Some("b"));
        assert_eq!(
            successor_due_at(&keys, after, timing(Some(90))),
            Some(at(180 * DAY - 330))
        );
    }
}
