//! Rotation policies at work: the sweeper's pass over the apps a policy may have work for,
//! rotating and retiring through the same use cases as the APIs (outbox, notification, audit
//! with actor `policy`), and what the APIs show of a policy. The rules themselves are pure
//! functions in [`crate::rotation_policy`]; each is asked again with the app locked, so two
//! nodes running the pass at once rotate an app once.

use std::collections::HashMap;

use super::secrets::RotateInput;
use super::{Actor, AppRef, Rekey};
use crate::apps::MAX_DURATION_SECS;
use crate::clock::Timestamp;
use crate::error::{CoreResult, OpError};
use crate::metrics::{POLICY_ACTIONS, POLICY_WAITING};
use crate::model::{App, AppId, AuditContext, OrgId, Secret};
use crate::notify::NotificationType;
use crate::policy::Action;
use crate::rotation_policy::{
    decide, next_rotation_at, Decision, EffectivePolicy, Facts, RotationBlock, RotationPolicy,
    Wait, WaitingCounts,
};
use crate::store::Page;

/// The actor of every change a policy makes, in the audit trail.
pub const POLICY_ACTOR: &str = "policy";

/// Apps examined per store query.
const PAGE: u32 = 500;

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyReport {
    pub rotated: Vec<AppId>,
    pub retired: Vec<AppId>,
    /// Apps the pass examined whose previous secret may not be retired yet, and why (a dead
    /// notification, an invalid current secret, or a use since the candidates were listed).
    pub waiting: Vec<(AppId, Wait)>,
    /// Every rotation in progress that waits for the new secret's first use or for the old
    /// one to fall quiet (counted in the database; such apps are not examined).
    pub waiting_counts: WaitingCounts,
    /// Rotations that were due and could not start.
    pub blocked: Vec<(AppId, RotationBlock)>,
    /// Apps the pass could not handle (logged; tried again next pass).
    pub failed: usize,
}

/// An app's policy as the APIs show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationStatus {
    /// The app's own settings (unset fields inherit the org's).
    pub app: RotationPolicy,
    /// The org's defaults.
    pub org: RotationPolicy,
    pub effective: EffectivePolicy,
    /// When the policy starts the next rotation of the current secret.
    pub next_rotation_at: Option<Timestamp>,
    /// What the next pass would do.
    pub decision: Decision,
}

impl Rekey {
    /// One pass of every rotation policy: due rotations start, quiet previous secrets are
    /// retired. Run by every node's sweeper; an app is rotated once however many run it.
    pub async fn run_rotation_policies(&self) -> Result<PolicyReport, OpError> {
        // This node's own recent uses first: a previous secret it just saw used counts.
        self.last_use.flush(&*self.store).await?;
        let now = self.now();
        let mut report = PolicyReport::default();
        let mut org_policies = HashMap::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .rotation_policy_candidates(now, after, PAGE)
                .await?;
            after = page.last().copied();
            for &app in &page {
                if let Err(e) = self
                    .apply_rotation_policy(app, now, &mut org_policies, &mut report)
                    .await
                {
                    report.failed += 1;
                    tracing::warn!(app_id = %app, error = &e as &dyn std::error::Error, "rotation policy failed for an app; will retry");
                }
            }
            if page.len() < PAGE as usize {
                break;
            }
        }
        report.waiting_counts = self
            .store
            .rotation_policy_waiting(now, self.rotation_policy.min_quiet_secs)
            .await?;
        let examined = |reason: Wait| {
            report
                .waiting
                .iter()
                .filter(|(_, w)| w.as_str() == reason.as_str())
                .count() as u64
        };
        let counts = report.waiting_counts;
        for (reason, n) in [
            (Wait::NewSecretUnused, counts.new_secret_unused),
            (
                Wait::PreviousStillUsed { last_used_at: now },
                counts.previous_still_used,
            ),
            (Wait::QuietUntil { until: now }, counts.quiet_period),
            (Wait::NotificationDead, examined(Wait::NotificationDead)),
            (Wait::CurrentNotValid, examined(Wait::CurrentNotValid)),
        ] {
            metrics::gauge!(POLICY_WAITING, "reason" => reason.as_str()).set(n as f64);
        }
        Ok(report)
    }

    async fn apply_rotation_policy(
        &self,
        app_id: AppId,
        now: Timestamp,
        org_policies: &mut HashMap<OrgId, RotationPolicy>,
        report: &mut PolicyReport,
    ) -> Result<(), OpError> {
        let Some(app) = self.store.get_app(app_id).await? else {
            return Ok(());
        };
        let org_policy = match org_policies.get(&app.org_id) {
            Some(p) => *p,
            None => {
                let p = self.store.get_org_rotation_policy(app.org_id).await?;
                org_policies.insert(app.org_id, p);
                p
            }
        };
        let policy = RotationPolicy::effective(app.rotation_policy, org_policy);
        let secrets = self.store.list_secrets(app.id).await?;
        let facts = self.rotation_facts(&app, &secrets, now).await?;
        let settings = self.rotation_policy;
        let decision = decide(policy, settings, &secrets, facts, now);
        // Asked again with the app locked: another node may have acted since.
        let still = |want: Decision| {
            move |_: &crate::store::LockedApp, secrets: &[Secret]| {
                if decide(policy, settings, secrets, facts, now) == want {
                    Ok(())
                } else {
                    Err(OpError::Conflict(
                        "the rotation policy no longer applies".into(),
                    ))
                }
            }
        };
        let ctx = AuditContext {
            actor: POLICY_ACTOR.into(),
            ..Default::default()
        };
        match decision {
            Decision::Nothing => {}
            Decision::Rotate => {
                let input = RotateInput {
                    // The old secret keeps working until its own expiry (it is inside the
                    // window), or until the policy retires it.
                    grace_secs: Some(MAX_DURATION_SECS),
                    supplied: None,
                    require_destination: true,
                };
                match self
                    .rotate_with(&ctx, app.clone(), input, &still(Decision::Rotate))
                    .await
                {
                    Ok(new) => {
                        crate::metrics::secret_changed("rotate", "policy", "policy");
                        metrics::counter!(POLICY_ACTIONS, "action" => "rotated").increment(1);
                        tracing::info!(app_id = %app.id, client_id = %app.client_id, secret_id = %new.secret.id, "rotation policy rotated the secret");
                        report.rotated.push(app.id);
                    }
                    // Another node rotated it first, or the destination went meanwhile.
                    Err(OpError::Conflict(_) | OpError::RotationInProgress { .. }) => {}
                    Err(OpError::NotEnrolled) => {
                        report.blocked.push((app.id, RotationBlock::NoDestination));
                    }
                    Err(e) => return Err(e),
                }
            }
            Decision::Retire => {
                match self
                    .finish_with(&ctx, app.clone(), &still(Decision::Retire))
                    .await
                {
                    Ok(revoked) if !revoked.is_empty() => {
                        crate::metrics::secret_changed("finish", "policy", "policy");
                        metrics::counter!(POLICY_ACTIONS, "action" => "retired").increment(1);
                        tracing::info!(app_id = %app.id, client_id = %app.client_id, "rotation policy retired the previous secret");
                        report.retired.push(app.id);
                    }
                    Ok(_) | Err(OpError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Decision::Waiting(wait) => {
                if matches!(wait, Wait::NotificationDead | Wait::CurrentNotValid) {
                    tracing::warn!(app_id = %app.id, client_id = %app.client_id, reason = wait.as_str(), "rotation policy cannot retire the previous secret");
                } else {
                    tracing::debug!(app_id = %app.id, reason = wait.as_str(), "rotation policy waits to retire the previous secret");
                }
                report.waiting.push((app.id, wait));
            }
            Decision::RotationBlocked(block) => {
                metrics::counter!(POLICY_ACTIONS, "action" => "rotation_blocked").increment(1);
                tracing::warn!(app_id = %app.id, client_id = %app.client_id, "rotation policy cannot rotate: the app has no destination for new secrets");
                report.blocked.push((app.id, block));
            }
        }
        Ok(())
    }

    /// What the policy needs to know besides the secrets: whether new secrets have somewhere
    /// to go, and how the newest new-secret notification since the current secret fared.
    async fn rotation_facts(
        &self,
        app: &App,
        secrets: &[Secret],
        now: Timestamp,
    ) -> CoreResult<Facts> {
        let has_destination = self
            .store
            .get_destination(app.id, NotificationType::NewSecret)
            .await?
            .is_some();
        let since = secrets
            .iter()
            .find(|s| s.state == crate::model::SecretState::Current && s.is_valid(now))
            .map(|s| s.created_at);
        // Newest first, page by page, back to the current secret's creation: expiry warnings
        // and test notifications made since cannot hide the rotation's own notification.
        let mut notification = None;
        if let Some(since) = since {
            let mut start = 0;
            'pages: loop {
                let page = self
                    .store
                    .list_deliveries(app.org_id, Some(app.id), None, Page { start, limit: 50 })
                    .await?;
                for d in &page {
                    if d.created_at < since {
                        break 'pages;
                    }
                    if d.notification_type == NotificationType::NewSecret {
                        notification = Some(d.state);
                        break 'pages;
                    }
                }
                if page.len() < 50 {
                    break;
                }
                start += 50;
            }
        }
        Ok(Facts {
            has_destination,
            notification,
            access_token_ttl_secs: app.access_token_ttl_secs,
        })
    }

    /// An app's rotation policy, what applies and what the next pass would do (members).
    pub async fn rotation_status(
        &self,
        actor: &Actor,
        org: OrgId,
        app: &AppRef,
    ) -> Result<RotationStatus, OpError> {
        self.authorize(actor, org, Action::Read).await?;
        let app = self.app_in(org, app).await?;
        let secrets = self.store.list_secrets(app.id).await?;
        Ok(self.rotation_status_of(&app, &secrets).await?)
    }

    /// The rotation status of `app` with its `secrets` as already read, for a caller the
    /// policy has let read the app (the console's app page reads both anyway).
    pub async fn rotation_status_of(
        &self,
        app: &App,
        secrets: &[Secret],
    ) -> CoreResult<RotationStatus> {
        let org_policy = self.store.get_org_rotation_policy(app.org_id).await?;
        let effective = RotationPolicy::effective(app.rotation_policy, org_policy);
        let now = self.now();
        let facts = self.rotation_facts(app, secrets, now).await?;
        Ok(RotationStatus {
            app: app.rotation_policy,
            org: org_policy,
            effective,
            next_rotation_at: next_rotation_at(effective, secrets, now),
            decision: decide(effective, self.rotation_policy, secrets, facts, now),
        })
    }

    /// The org's default rotation policy (members).
    pub async fn org_rotation_policy(
        &self,
        actor: &Actor,
        org: OrgId,
    ) -> Result<RotationPolicy, OpError> {
        self.authorize(actor, org, Action::Read).await?;
        Ok(self.store.get_org_rotation_policy(org).await?)
    }

    /// Sets the org's default rotation policy (owners and admins), audited.
    pub async fn set_org_rotation_policy(
        &self,
        actor: &Actor,
        org: OrgId,
        policy: RotationPolicy,
    ) -> Result<RotationPolicy, OpError> {
        self.authorize(actor, org, Action::ChangeOrgSettings)
            .await?;
        policy.validate().map_err(OpError::Invalid)?;
        let event = actor
            .audit
            .event(self.now(), "org.rotation_policy_changed")
            .org(org)
            .details(serde_json::json!({
                "rotateBeforeExpirySeconds": policy.rotate_before_expiry_secs,
                "retireWhenUnusedSeconds": policy.retire_when_unused_secs,
            }));
        if !self
            .store
            .set_org_rotation_policy(org, policy, &[event])
            .await?
        {
            return Err(OpError::NotFound);
        }
        Ok(policy)
    }
}
