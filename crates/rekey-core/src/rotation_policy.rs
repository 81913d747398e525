//! Rotation that runs itself: when a policy starts a rotation and when it retires the
//! previous secret, as pure functions over the app's secrets, the state of the rotation's
//! notification and `now`.
//!
//! - **Rotate** `rotate_before_expiry_secs` before the current secret expires, when no
//!   rotation is in progress and the app has a destination for new secrets (a secret nobody
//!   receives is no rotation: it is reported instead).
//! - **Retire** the previous secret once the new one has been used and the previous one has
//!   not been used for `retire_when_unused_secs` (counted from its last use, or from the
//!   rotation when that is later). Never when the new secret was never used, when the
//!   rotation's notification is dead, or when the current secret is not valid: the app is never
//!   left without a valid secret, and a service that has not switched keeps working.
//!
//! Last uses reach the database in batches (every node flushes every
//! `last_use_flush_seconds`), and a service that caches its access token uses its secret only
//! once per token lifetime: a quiet period is stretched to at least the app's access-token
//! lifetime plus [`Settings::min_quiet_secs`], so neither a use still in another node's memory
//! nor a service between two token requests is taken for quiet.

use crate::clock::Timestamp;
use crate::model::{Secret, SecretState};
use crate::notify::DeliveryState;

/// A rotation policy as set on an app or as an org's default. On an app, `None` inherits
/// the org's value; on an org, `None` is off. `Some(0)` is off in both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Start a rotation this long before the current secret expires.
    pub rotate_before_expiry_secs: Option<i64>,
    /// Retire the previous secret once it has not been used for this long (and the new one
    /// has been).
    pub retire_when_unused_secs: Option<i64>,
}

impl RotationPolicy {
    /// The policy that applies to an app: each field its own, else the org's; zero is off.
    pub fn effective(app: RotationPolicy, org: RotationPolicy) -> EffectivePolicy {
        let pick = |a: Option<i64>, o: Option<i64>| a.or(o).filter(|v| *v > 0);
        EffectivePolicy {
            rotate_before_expiry_secs: pick(
                app.rotate_before_expiry_secs,
                org.rotate_before_expiry_secs,
            ),
            retire_when_unused_secs: pick(app.retire_when_unused_secs, org.retire_when_unused_secs),
        }
    }

    /// Whether any field is set (the app or org has a policy of its own).
    pub fn is_set(&self) -> bool {
        self.rotate_before_expiry_secs.is_some() || self.retire_when_unused_secs.is_some()
    }

    /// Each value is 0 (off) up to ten years.
    pub fn validate(&self) -> Result<(), String> {
        let ok =
            |v: Option<i64>| v.is_none_or(|v| (0..=crate::apps::MAX_DURATION_SECS).contains(&v));
        if ok(self.rotate_before_expiry_secs) && ok(self.retire_when_unused_secs) {
            Ok(())
        } else {
            Err(
                "rotateBeforeExpirySeconds and retireWhenUnusedSeconds must be between 0 (off) \
                 and 315360000"
                    .into(),
            )
        }
    }
}

/// The policy in force for one app: `None` is off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EffectivePolicy {
    pub rotate_before_expiry_secs: Option<i64>,
    pub retire_when_unused_secs: Option<i64>,
}

impl EffectivePolicy {
    pub fn is_off(&self) -> bool {
        self.rotate_before_expiry_secs.is_none() && self.retire_when_unused_secs.is_none()
    }
}

/// Settings of the policy runner, from the server's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The shortest quiet period honoured (a multiple of the last-use flush interval).
    pub min_quiet_secs: i64,
}

/// What the policy asks for now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No policy, or nothing due.
    Nothing,
    /// Start a rotation.
    Rotate,
    /// Finish the rotation: revoke the previous secret.
    Retire,
    /// A rotation is due and cannot start.
    RotationBlocked(RotationBlock),
    /// A rotation is in progress and the previous secret may not be retired yet.
    Waiting(Wait),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationBlock {
    /// No destination for new secrets: nobody would receive the new one.
    NoDestination,
}

/// Why a previous secret is not retired yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The new secret has not been used: the service has not switched.
    NewSecretUnused,
    /// The previous secret was used within the quiet period (last at `last_used_at`).
    PreviousStillUsed { last_used_at: Timestamp },
    /// Neither is in the way: the quiet period since the rotation runs until `until`.
    QuietUntil { until: Timestamp },
    /// The new secret's notification is dead: the service may never have received it.
    NotificationDead,
    /// The current secret is not valid; retiring would leave no valid secret.
    CurrentNotValid,
}

impl Wait {
    /// A short label (metrics, logs, the API).
    pub fn as_str(&self) -> &'static str {
        match self {
            Wait::NewSecretUnused => "new_secret_unused",
            Wait::PreviousStillUsed { .. } => "previous_still_used",
            Wait::QuietUntil { .. } => "quiet_period",
            Wait::NotificationDead => "notification_dead",
            Wait::CurrentNotValid => "current_not_valid",
        }
    }
}

/// Rotations in progress waiting for their previous secret to fall quiet, counted in the
/// database for the whole server (the pass examines only apps it may act on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WaitingCounts {
    pub new_secret_unused: u64,
    pub previous_still_used: u64,
    pub quiet_period: u64,
}

/// What the runner knows about an app besides its secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// Whether the app has a destination for new secrets.
    pub has_destination: bool,
    /// The state of the newest new-secret notification made since the current secret.
    pub notification: Option<DeliveryState>,
    /// The app's access-token lifetime: a service that reuses its token asks for a new one
    /// (using its secret) only this often, so a shorter quiet period proves nothing.
    pub access_token_ttl_secs: i64,
}

fn valid(secrets: &[Secret], state: SecretState, now: Timestamp) -> Option<&Secret> {
    secrets.iter().find(|s| s.state == state && s.is_valid(now))
}

/// When the policy starts the next rotation of the current secret, if it will.
pub fn next_rotation_at(
    policy: EffectivePolicy,
    secrets: &[Secret],
    now: Timestamp,
) -> Option<Timestamp> {
    let before = policy.rotate_before_expiry_secs?;
    let current = valid(secrets, SecretState::Current, now)?;
    Some(current.expires_at?.plus_secs(-before))
}

/// What `policy` asks for, for an app with `secrets` (all states) at `now`.
pub fn decide(
    policy: EffectivePolicy,
    settings: Settings,
    secrets: &[Secret],
    facts: Facts,
    now: Timestamp,
) -> Decision {
    let current = valid(secrets, SecretState::Current, now);
    if let Some(previous) = valid(secrets, SecretState::Previous, now) {
        let Some(quiet) = policy.retire_when_unused_secs else {
            return Decision::Nothing;
        };
        // At least the flush minimum, and a whole token lifetime on top of it.
        let quiet = quiet.max(settings.min_quiet_secs).max(
            facts
                .access_token_ttl_secs
                .saturating_add(settings.min_quiet_secs),
        );
        let Some(current) = current else {
            return Decision::Waiting(Wait::CurrentNotValid);
        };
        if facts.notification == Some(DeliveryState::Dead) {
            return Decision::Waiting(Wait::NotificationDead);
        }
        // A use recorded before the new secret was made (a clock step) does not count.
        if current
            .last_used_at
            .is_none_or(|used| used < current.created_at)
        {
            return Decision::Waiting(Wait::NewSecretUnused);
        }
        let since_rotation = current.created_at.plus_secs(quiet);
        return match previous.last_used_at {
            Some(used) if used >= current.created_at && now < used.plus_secs(quiet) => {
                Decision::Waiting(Wait::PreviousStillUsed { last_used_at: used })
            }
            _ if now < since_rotation => Decision::Waiting(Wait::QuietUntil {
                until: since_rotation,
            }),
            _ => Decision::Retire,
        };
    }
    match next_rotation_at(policy, secrets, now) {
        Some(due) if now >= due && current.is_some() => {
            if facts.has_destination {
                Decision::Rotate
            } else {
                Decision::RotationBlocked(RotationBlock::NoDestination)
            }
        }
        _ => Decision::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::secret;

    const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);
    const DAY: i64 = 86_400;
    const SETTINGS: Settings = Settings { min_quiet_secs: 30 };
    const POLICY: EffectivePolicy = EffectivePolicy {
        rotate_before_expiry_secs: Some(7 * DAY),
        retire_when_unused_secs: Some(3600),
    };
    const READY: Facts = Facts {
        has_destination: true,
        notification: Some(DeliveryState::Delivered),
        access_token_ttl_secs: 60,
    };

    /// An app whose current secret (made at T0) expires after 90 days.
    fn one_secret() -> Vec<Secret> {
        vec![secret(
            SecretState::Current,
            T0,
            Some(T0.plus_secs(90 * DAY)),
        )]
    }

    /// Mid-rotation at `rotated`: a new current secret and the previous one.
    fn rotated(
        rotated: Timestamp,
        new_used: Option<Timestamp>,
        old_used: Option<Timestamp>,
    ) -> Vec<Secret> {
        let mut new = secret(
            SecretState::Current,
            rotated,
            Some(rotated.plus_secs(90 * DAY)),
        );
        new.last_used_at = new_used;
        let mut old = secret(SecretState::Previous, T0, Some(T0.plus_secs(90 * DAY)));
        old.last_used_at = old_used;
        vec![new, old]
    }

    #[test]
    fn a_rotation_starts_exactly_when_the_window_opens_and_only_with_a_destination() {
        let secrets = one_secret();
        let due = T0.plus_secs(83 * DAY);
        assert_eq!(next_rotation_at(POLICY, &secrets, T0), Some(due));
        let at = |now| decide(POLICY, SETTINGS, &secrets, READY, now);
        assert_eq!(at(due.plus_secs(-1)), Decision::Nothing);
        assert_eq!(at(due), Decision::Rotate);
        let nowhere = Facts {
            has_destination: false,
            notification: None,
            ..READY
        };
        assert_eq!(
            decide(POLICY, SETTINGS, &secrets, nowhere, due),
            Decision::RotationBlocked(RotationBlock::NoDestination)
        );
    }

    #[test]
    fn no_policy_and_secrets_that_never_expire_never_rotate() {
        let secrets = one_secret();
        let late = T0.plus_secs(89 * DAY);
        let off = EffectivePolicy::default();
        assert_eq!(
            decide(off, SETTINGS, &secrets, READY, late),
            Decision::Nothing
        );
        let forever = vec![secret(SecretState::Current, T0, None)];
        assert_eq!(next_rotation_at(POLICY, &forever, late), None);
        assert_eq!(
            decide(POLICY, SETTINGS, &forever, READY, late),
            Decision::Nothing
        );
        // An expired current secret: the expiry sweep's business, not a rotation.
        let after = T0.plus_secs(91 * DAY);
        assert_eq!(
            decide(POLICY, SETTINGS, &secrets, READY, after),
            Decision::Nothing
        );
    }

    #[test]
    fn a_rotation_in_progress_is_never_rotated_again() {
        let r = T0.plus_secs(83 * DAY);
        let secrets = rotated(r, None, None);
        let rotate_only = EffectivePolicy {
            retire_when_unused_secs: None,
            ..POLICY
        };
        assert_eq!(
            decide(rotate_only, SETTINGS, &secrets, READY, r.plus_secs(DAY)),
            Decision::Nothing
        );
    }

    #[test]
    fn the_previous_secret_is_retired_only_after_the_new_one_is_used_and_the_old_one_is_quiet() {
        let r = T0.plus_secs(83 * DAY);
        let decide_at = |secrets: &[Secret], now| decide(POLICY, SETTINGS, secrets, READY, now);
        // The new secret never used: never retired, however long it waits.
        assert_eq!(
            decide_at(&rotated(r, None, None), r.plus_secs(6 * DAY)),
            Decision::Waiting(Wait::NewSecretUnused)
        );
        // Used, and the old one used after the rotation: an hour from its last use.
        let old_use = r.plus_secs(600);
        let secrets = rotated(r, Some(r.plus_secs(60)), Some(old_use));
        assert_eq!(
            decide_at(&secrets, old_use.plus_secs(3599)),
            Decision::Waiting(Wait::PreviousStillUsed {
                last_used_at: old_use
            })
        );
        assert_eq!(
            decide_at(&secrets, old_use.plus_secs(3600)),
            Decision::Retire
        );
        // The old one last used before the rotation: an hour from the rotation.
        let secrets = rotated(r, Some(r.plus_secs(60)), Some(r.plus_secs(-5)));
        assert_eq!(
            decide_at(&secrets, r.plus_secs(3599)),
            Decision::Waiting(Wait::QuietUntil {
                until: r.plus_secs(3600)
            })
        );
        assert_eq!(decide_at(&secrets, r.plus_secs(3600)), Decision::Retire);
    }

    #[test]
    fn a_new_secret_use_stamped_before_its_creation_does_not_count() {
        let r = T0.plus_secs(83 * DAY);
        let secrets = rotated(r, Some(r.plus_secs(-1)), None);
        assert_eq!(
            decide(POLICY, SETTINGS, &secrets, READY, r.plus_secs(DAY)),
            Decision::Waiting(Wait::NewSecretUnused)
        );
    }

    #[test]
    fn a_dead_notification_or_an_invalid_current_secret_blocks_retirement() {
        let r = T0.plus_secs(83 * DAY);
        let later = r.plus_secs(DAY);
        let secrets = rotated(r, Some(r.plus_secs(60)), None);
        let dead = Facts {
            notification: Some(DeliveryState::Dead),
            ..READY
        };
        assert_eq!(
            decide(POLICY, SETTINGS, &secrets, dead, later),
            Decision::Waiting(Wait::NotificationDead)
        );
        let mut revoked = secrets.clone();
        revoked[0].revoked_at = Some(r.plus_secs(120));
        assert_eq!(
            decide(POLICY, SETTINGS, &revoked, READY, later),
            Decision::Waiting(Wait::CurrentNotValid)
        );
    }

    #[test]
    fn a_quiet_period_shorter_than_a_token_lifetime_and_the_flush_interval_is_stretched() {
        let r = T0.plus_secs(83 * DAY);
        let short = EffectivePolicy {
            retire_when_unused_secs: Some(1),
            ..POLICY
        };
        let old_use = r.plus_secs(10);
        let secrets = rotated(r, Some(r.plus_secs(5)), Some(old_use));
        // A token lives 60 s (READY), the flush minimum is 30 s: 90 s of quiet.
        assert_eq!(
            decide(short, SETTINGS, &secrets, READY, old_use.plus_secs(89)),
            Decision::Waiting(Wait::PreviousStillUsed {
                last_used_at: old_use
            })
        );
        assert_eq!(
            decide(short, SETTINGS, &secrets, READY, old_use.plus_secs(90)),
            Decision::Retire
        );
        // A service holding an hour-long token is given the hour.
        let hourly = Facts {
            access_token_ttl_secs: 3600,
            ..READY
        };
        assert_eq!(
            decide(POLICY, SETTINGS, &secrets, hourly, old_use.plus_secs(3600)),
            Decision::Waiting(Wait::PreviousStillUsed {
                last_used_at: old_use
            })
        );
        assert_eq!(
            decide(POLICY, SETTINGS, &secrets, hourly, old_use.plus_secs(3630)),
            Decision::Retire
        );
    }

    #[test]
    fn app_values_override_the_org_default_and_zero_turns_a_field_off() {
        let org = RotationPolicy {
            rotate_before_expiry_secs: Some(100),
            retire_when_unused_secs: Some(200),
        };
        let app = RotationPolicy {
            rotate_before_expiry_secs: Some(0),
            retire_when_unused_secs: None,
        };
        assert_eq!(
            RotationPolicy::effective(app, org),
            EffectivePolicy {
                rotate_before_expiry_secs: None,
                retire_when_unused_secs: Some(200),
            }
        );
        assert!(
            RotationPolicy::effective(RotationPolicy::default(), RotationPolicy::default())
                .is_off()
        );
        assert!(RotationPolicy {
            rotate_before_expiry_secs: Some(-1),
            retire_when_unused_secs: None
        }
        .validate()
        .is_err());
    }

    /// Whatever the secrets' uses and the time, a retirement is only ever asked for when the
    /// current secret is valid (the app keeps a valid secret).
    #[test]
    fn retirement_never_leaves_the_app_without_a_valid_secret() {
        let r = T0.plus_secs(83 * DAY);
        for new_used in [None, Some(r.plus_secs(1))] {
            for old_used in [None, Some(r.plus_secs(-1)), Some(r.plus_secs(100))] {
                for revoked in [false, true] {
                    for offset in [0, 30, 3600, 4000, 90 * DAY] {
                        let mut secrets = rotated(r, new_used, old_used);
                        if revoked {
                            secrets[0].revoked_at = Some(r);
                        }
                        let now = r.plus_secs(offset);
                        if decide(POLICY, SETTINGS, &secrets, READY, now) == Decision::Retire {
                            assert!(secrets[0].is_valid(now));
                            assert!(new_used.is_some());
                        }
                    }
                }
            }
        }
    }
}
