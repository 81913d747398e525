//! The rotation rules (SPEC section 3) as pure functions over an app's secrets and `now`.
//!
//! Each planner returns the secrets to update and to insert; the store applies them in one
//! transaction with the app locked (`Store::change_secrets`). Rules:
//! - at most one `current` and one `previous`; a secret is valid while it is one of those,
//!   not revoked, and `now < expires_at`;
//! - **rotate**: the new secret becomes current, the old current becomes previous with
//!   `expires_at = min(its expires_at, now + grace)`; refused while a previous is still valid,
//!   so a deployed secret is never cut off by a second rotation;
//! - **regenerate**: every current/previous secret is revoked and one new current is made;
//! - **finish**: the previous secret is revoked now (idempotent);
//! - **expire**: current/previous secrets past `expires_at` are marked expired.
//!
//! Before each plan, secrets that hold a slot but are no longer valid by time are marked
//! expired, so a stale previous never blocks a rotation.

use crate::clock::Timestamp;
use crate::model::{Secret, SecretState};
use crate::store::SecretChanges;

/// Why a rotation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    /// A previous secret is still valid; finish the rotation (or wait for it to expire) first.
    #[error(
        "a rotation is in progress: the previous secret is valid until {previous_expires_at:?}"
    )]
    InProgress {
        previous_expires_at: Option<Timestamp>,
    },
    /// Finishing would end the only valid secret: the current one is expired or revoked.
    #[error("the current secret is not valid; regenerate instead of finishing the rotation")]
    NoValidCurrent,
}

/// Reason recorded on secrets revoked by a regeneration.
pub const REASON_REGENERATED: &str = "regenerated";
/// Reason recorded on a previous secret whose rotation was finished early.
pub const REASON_ROTATION_FINISHED: &str = "rotation finished";

fn holds_slot(s: &Secret) -> bool {
    matches!(s.state, SecretState::Current | SecretState::Previous)
}

/// Marks slot-holding secrets that are past `expires_at` as expired.
pub fn plan_expire(secrets: &[Secret], now: Timestamp) -> Vec<Secret> {
    secrets
        .iter()
        .filter(|s| holds_slot(s) && s.revoked_at.is_none() && !s.is_valid(now))
        .map(|s| Secret {
            state: SecretState::Expired,
            ..s.clone()
        })
        .collect()
}

fn revoke(s: &Secret, now: Timestamp, reason: &str) -> Secret {
    Secret {
        state: SecretState::Revoked,
        revoked_at: Some(now),
        revoked_reason: Some(reason.to_string()),
        ..s.clone()
    }
}

/// Rotation: `new` (state `current`) takes over; the old current stays valid for `grace_secs`
/// at most. Returns the change, or why it is refused.
pub fn plan_rotate(
    secrets: &[Secret],
    new: Secret,
    grace_secs: i64,
    now: Timestamp,
) -> Result<SecretChanges, RotationError> {
    if let Some(prev) = secrets
        .iter()
        .find(|s| s.state == SecretState::Previous && s.is_valid(now))
    {
        return Err(RotationError::InProgress {
            previous_expires_at: prev.expires_at,
        });
    }
    let mut update = plan_expire(secrets, now);
    // A revoked secret still in a slot (not normally possible) must leave it too.
    update.extend(
        secrets
            .iter()
            .filter(|s| holds_slot(s) && s.revoked_at.is_some())
            .map(|s| Secret {
                state: SecretState::Revoked,
                ..s.clone()
            }),
    );
    if let Some(current) = secrets
        .iter()
        .find(|s| s.state == SecretState::Current && s.is_valid(now))
    {
        let grace_end = now.plus_secs(grace_secs.max(0));
        let expires_at = Some(current.expires_at.map_or(grace_end, |e| e.min(grace_end)));
        update.push(Secret {
            state: SecretState::Previous,
            expires_at,
            ..current.clone()
        });
    }
    debug_assert_eq!(new.state, SecretState::Current);
    Ok(SecretChanges {
        insert: vec![new],
        update,
        ..Default::default()
    })
}

/// Regeneration: every current and previous secret is revoked; `new` becomes current.
pub fn plan_regenerate(secrets: &[Secret], new: Secret, now: Timestamp) -> SecretChanges {
    let update = secrets
        .iter()
        .filter(|s| holds_slot(s))
        .map(|s| revoke(s, now, REASON_REGENERATED))
        .collect();
    SecretChanges {
        insert: vec![new],
        update,
        ..Default::default()
    }
}

/// Finishing a rotation: the previous secret, if any, is revoked now. Empty when there is
/// none (idempotent). Refused when the current secret is not valid (expired or revoked):
/// the previous one would be the last valid secret, and regenerating is the way out.
pub fn plan_finish(secrets: &[Secret], now: Timestamp) -> Result<SecretChanges, RotationError> {
    let update: Vec<Secret> = secrets
        .iter()
        .filter(|s| s.state == SecretState::Previous)
        .map(|s| revoke(s, now, REASON_ROTATION_FINISHED))
        .collect();
    let current_valid = secrets
        .iter()
        .any(|s| s.state == SecretState::Current && s.is_valid(now));
    let previous_valid = secrets
        .iter()
        .any(|s| s.state == SecretState::Previous && s.is_valid(now));
    if previous_valid && !current_valid {
        return Err(RotationError::NoValidCurrent);
    }
    Ok(SecretChanges {
        update,
        ..Default::default()
    })
}

/// The secrets valid at `now` after applying `changes` to `secrets`.
pub fn valid_after(secrets: &[Secret], changes: &SecretChanges, now: Timestamp) -> Vec<Secret> {
    let mut all: Vec<Secret> = secrets
        .iter()
        .map(|s| {
            changes
                .update
                .iter()
                .find(|u| u.id == s.id)
                .cloned()
                .unwrap_or_else(|| s.clone())
        })
        .collect();
    all.extend(changes.insert.iter().cloned());
    all.into_iter().filter(|s| s.is_valid(now)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::secret;
    use crate::model::SecretId;

    const DAY: i64 = 86_400;
    const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

    fn new_current(now: Timestamp) -> Secret {
        secret(SecretState::Current, now, Some(now.plus_secs(180 * DAY)))
    }

    fn state_of(changes: &SecretChanges, id: SecretId) -> Option<(SecretState, Option<Timestamp>)> {
        changes
            .update
            .iter()
            .find(|s| s.id == id)
            .map(|s| (s.state, s.expires_at))
    }

    #[test]
    fn rotation_demotes_the_current_secret_to_previous_for_the_grace_period() {
        let cur = secret(SecretState::Current, T0, Some(T0.plus_secs(180 * DAY)));
        let now = T0.plus_secs(DAY);
        let new = new_current(now);
        let ch = plan_rotate(std::slice::from_ref(&cur), new.clone(), 7 * DAY, now).unwrap();
        assert_eq!(ch.insert, vec![new]);
        assert_eq!(
            state_of(&ch, cur.id),
            Some((SecretState::Previous, Some(now.plus_secs(7 * DAY))))
        );
        assert_eq!(valid_after(&[cur], &ch, now).len(), 2);
    }

    #[test]
    fn grace_longer_than_the_old_secrets_remaining_life_keeps_its_own_expiry() {
        let cur = secret(SecretState::Current, T0, Some(T0.plus_secs(3 * DAY)));
        let now = T0.plus_secs(DAY);
        let ch = plan_rotate(std::slice::from_ref(&cur), new_current(now), 7 * DAY, now).unwrap();
        assert_eq!(
            state_of(&ch, cur.id),
            Some((SecretState::Previous, Some(T0.plus_secs(3 * DAY))))
        );
    }

    #[test]
    fn a_secret_without_expiry_gets_the_grace_end_as_expiry() {
        let cur = secret(SecretState::Current, T0, None);
        let ch = plan_rotate(std::slice::from_ref(&cur), new_current(T0), 60, T0).unwrap();
        assert_eq!(
            state_of(&ch, cur.id),
            Some((SecretState::Previous, Some(T0.plus_secs(60))))
        );
    }

    #[test]
    fn a_second_rotation_is_refused_while_the_previous_secret_is_valid() {
        let prev = secret(SecretState::Previous, T0, Some(T0.plus_secs(100)));
        let cur = secret(SecretState::Current, T0, None);
        let secrets = [prev.clone(), cur];
        assert_eq!(
            plan_rotate(&secrets, new_current(T0), 10, T0.plus_secs(99)).unwrap_err(),
            RotationError::InProgress {
                previous_expires_at: prev.expires_at
            }
        );
    }

    #[test]
    fn rotation_is_allowed_again_exactly_when_the_previous_secret_expires() {
        let prev = secret(SecretState::Previous, T0, Some(T0.plus_secs(100)));
        let cur = secret(SecretState::Current, T0, None);
        let at = T0.plus_secs(100);
        let ch = plan_rotate(&[prev.clone(), cur.clone()], new_current(at), 10, at).unwrap();
        assert_eq!(state_of(&ch, prev.id).unwrap().0, SecretState::Expired);
        assert_eq!(state_of(&ch, cur.id).unwrap().0, SecretState::Previous);
    }

    #[test]
    fn a_revoked_previous_does_not_block_rotation() {
        let mut prev = secret(SecretState::Revoked, T0, Some(T0.plus_secs(100)));
        prev.revoked_at = Some(T0);
        let cur = secret(SecretState::Current, T0, None);
        assert!(plan_rotate(&[prev, cur], new_current(T0), 10, T0.plus_secs(1)).is_ok());
    }

    #[test]
    fn rotating_right_at_the_current_secrets_expiry_expires_it_instead_of_demoting_it() {
        let cur = secret(SecretState::Current, T0, Some(T0.plus_secs(50)));
        let at = T0.plus_secs(50);
        let new = new_current(at);
        let ch = plan_rotate(std::slice::from_ref(&cur), new.clone(), 10, at).unwrap();
        assert_eq!(state_of(&ch, cur.id).unwrap().0, SecretState::Expired);
        assert_eq!(valid_after(&[cur], &ch, at), vec![new]);
    }

    #[test]
    fn a_rotation_keeps_the_old_secret_exactly_while_it_was_still_valid() {
        // (old secret's expiry, old secret's state and expiry after a rotation with a day of
        // grace, secrets valid just after it)
        let cases = [
            (None, SecretState::Previous, Some(T0.plus_secs(DAY)), 2),
            (Some(T0), SecretState::Expired, Some(T0), 1),
            (
                Some(T0.plus_secs(1)),
                SecretState::Previous,
                Some(T0.plus_secs(1)),
                2,
            ),
            (
                Some(T0.plus_secs(2 * DAY)),
                SecretState::Previous,
                Some(T0.plus_secs(DAY)),
                2,
            ),
        ];
        for (expires, state, expires_after, valid) in cases {
            let cur = secret(SecretState::Current, T0, expires);
            let new = new_current(T0);
            let ch = plan_rotate(std::slice::from_ref(&cur), new.clone(), DAY, T0).unwrap();
            assert_eq!(
                state_of(&ch, cur.id),
                Some((state, expires_after)),
                "{expires:?}"
            );
            let after = valid_after(std::slice::from_ref(&cur), &ch, T0);
            assert_eq!(after.len(), valid, "{expires:?}");
            assert_eq!(after.iter().filter(|s| s.id == new.id).count(), 1);
        }
    }

    #[test]
    fn regeneration_revokes_every_valid_secret_and_resets_a_rotation() {
        let prev = secret(SecretState::Previous, T0, Some(T0.plus_secs(100)));
        let cur = secret(SecretState::Current, T0, None);
        let new = new_current(T0);
        let ch = plan_regenerate(&[prev.clone(), cur.clone()], new.clone(), T0.plus_secs(1));
        for id in [prev.id, cur.id] {
            let s = ch.update.iter().find(|s| s.id == id).unwrap();
            assert_eq!(s.state, SecretState::Revoked);
            assert_eq!(s.revoked_reason.as_deref(), Some(REASON_REGENERATED));
        }
        assert_eq!(valid_after(&[prev, cur], &ch, T0.plus_secs(1)), vec![new]);
    }

    #[test]
    fn finishing_revokes_the_previous_secret_and_is_idempotent() {
        let prev = secret(SecretState::Previous, T0, Some(T0.plus_secs(100)));
        let cur = secret(SecretState::Current, T0, None);
        let ch = plan_finish(&[prev.clone(), cur.clone()], T0).unwrap();
        assert_eq!(ch.update.len(), 1);
        assert_eq!(ch.update[0].id, prev.id);
        assert_eq!(ch.update[0].revoked_at, Some(T0));
        assert!(plan_finish(std::slice::from_ref(&cur), T0)
            .unwrap()
            .update
            .is_empty());
        assert_eq!(valid_after(&[prev, cur.clone()], &ch, T0), vec![cur]);
    }

    #[test]
    fn finishing_is_refused_when_the_previous_secret_is_the_only_valid_one() {
        let prev = secret(SecretState::Previous, T0, Some(T0.plus_secs(100)));
        let mut cur = secret(SecretState::Current, T0, None);
        cur.revoked_at = Some(T0);
        assert_eq!(
            plan_finish(&[prev, cur], T0.plus_secs(1)).unwrap_err(),
            RotationError::NoValidCurrent
        );
    }

    #[test]
    fn expiry_marks_only_slot_holders_past_expires_at() {
        let stale = secret(SecretState::Previous, T0, Some(T0.plus_secs(10)));
        let fresh = secret(SecretState::Current, T0, Some(T0.plus_secs(11)));
        let ch = plan_expire(&[stale.clone(), fresh], T0.plus_secs(10));
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].id, stale.id);
        assert_eq!(ch[0].state, SecretState::Expired);
    }
}
