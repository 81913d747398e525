//! The periodic sweep of a worker node (started by the server's background task): marks expired secrets (with audit events) and queues
//! `APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY` warnings 90, 60, 30, 15, 7 and 1 days before the
//! current secret expires, each once (a dedupe key per secret and threshold).
//!
//! It also deletes console sign-in links and sessions that ended more than a day ago.
//!
//! Validity never depends on the sweep: every request checks `expires_at` itself. The sweep
//! only makes states, audit and warnings catch up.

use std::collections::BTreeSet;

use super::Rekey;
use crate::error::OpError;
use crate::model::{AuditContext, NotificationId, SecretState};
use crate::notify::{
    envelope, expiry_warning_due, secret_expiry_payload, Delivery, NotificationType,
    EXPIRY_WARNING_DAYS,
};
use crate::rotation::plan_expire;
use crate::store::SecretChanges;

/// Secrets read per page.
const SWEEP_LIMIT: u32 = 1_000;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub expired: usize,
    pub warnings: usize,
    /// Console sign-in links and sessions deleted (ended more than a day ago).
    pub console_pruned: u64,
    /// Token revocations forgotten (their tokens expired).
    pub revocations_pruned: u64,
}

/// How long ended console links and sessions are kept (for a support question the same day).
const CONSOLE_KEEP_SECS: i64 = 86_400;

impl Rekey {
    /// Marks expired secrets and queues expiry warnings; see the module docs.
    pub async fn sweep_expiry(&self) -> Result<SweepReport, OpError> {
        let state = self;
        let now = state.now();
        let ctx = AuditContext {
            actor: "system:sweeper".into(),
            ..Default::default()
        };
        let mut report = SweepReport::default();

        let stale = state
            .store
            .secrets_expiring_before(
                now.plus(std::time::Duration::from_millis(1)),
                None,
                SWEEP_LIMIT,
            )
            .await?;
        let apps: BTreeSet<_> = stale.iter().map(|s| s.app_id).collect();
        for app_id in apps {
            let changes = state
                .store
                .change_secrets(app_id, &|app, secrets| {
                    let mut changes = SecretChanges {
                        update: plan_expire(secrets, now),
                        ..Default::default()
                    };
                    changes.audit = changes
                        .update
                        .iter()
                        .map(|s| {
                            ctx.event(now, "secret.expired")
                                .org(app.org_id)
                                .app(app.id)
                                .secret(s.id)
                        })
                        .collect();
                    Ok(changes)
                })
                .await;
            match changes {
                Ok(c) => report.expired += c.update.len(),
                // Deleted meanwhile: nothing left to expire.
                Err(OpError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }

        let horizon = now.plus_secs(EXPIRY_WARNING_DAYS[0] * 86_400 + 1);
        // Every secret within the horizon, page by page: secrets already warned are skipped by
        // the dedupe key, so no page can starve the ones after it.
        let mut cursor = None;
        loop {
            let page = state
                .store
                .secrets_expiring_before(horizon, cursor, SWEEP_LIMIT)
                .await?;
            cursor = page.last().and_then(|s| s.expires_at.map(|t| (t, s.id)));
            for s in page
                .iter()
                .filter(|s| s.state == SecretState::Current && s.is_valid(now))
            {
                let (Some(expires_at), Some(days)) = (
                    s.expires_at,
                    s.expires_at.and_then(|e| expiry_warning_due(e, now)),
                ) else {
                    continue;
                };
                let Some(dest) = state
                    .store
                    .get_destination(s.app_id, NotificationType::SecretExpiry)
                    .await?
                else {
                    continue;
                };
                let Some(app) = state.store.get_app(s.app_id).await? else {
                    continue;
                };
                // Say when the app's policy will rotate the secret, if it will.
                let policy = crate::rotation_policy::RotationPolicy::effective(
                    app.rotation_policy,
                    state.store.get_org_rotation_policy(app.org_id).await?,
                );
                let automatic_rotation_at =
                    crate::rotation_policy::next_rotation_at(policy, std::slice::from_ref(s), now);
                let nid = NotificationId::new();
                let env = envelope(
                    NotificationType::SecretExpiry,
                    nid,
                    &app.client_id,
                    dest.id,
                    secret_expiry_payload(&app.client_id, expires_at, automatic_rotation_at),
                    now,
                );
                let d = Delivery::new(
                    &state.outbox_sealer,
                    nid,
                    app.id,
                    app.org_id,
                    NotificationType::SecretExpiry,
                    dest.id,
                    &env,
                    Some(format!("expiry:{}:{days}", s.id)),
                    now,
                );
                let ev = ctx
                    .event(now, "notification.enqueued")
                    .org(app.org_id)
                    .app(app.id)
                    .secret(s.id)
                    .details(serde_json::json!({
                        "notificationId": nid.to_string(),
                        "notificationType": NotificationType::SecretExpiry.as_str(),
                        "daysBeforeExpiry": days,
                    }));
                report.warnings += state.store.enqueue_deliveries(&[d], &[ev]).await?;
            }
            if page.len() < SWEEP_LIMIT as usize {
                break;
            }
        }
        if report.warnings > 0 {
            (state.wake_dispatcher)();
        }
        report.console_pruned = state
            .store
            .prune_console(now.plus_secs(-CONSOLE_KEEP_SECS))
            .await?;
        // A revoked token that expired fails on its own: its revocation is no longer needed.
        report.revocations_pruned = state.store.prune_revoked_tokens(now).await?;
        Ok(report)
    }
}
