//! Secret use cases shared by every dialect: rotate, regenerate, finish, revoke. Each is one
//! `Store::change_secrets` call: the app is locked, a pure rule from [`crate::rotation`]
//! plans the change, and the secret, its notification (outbox row) and audit events are
//! committed together. A rule's refusal comes back through the store as an [`OpError`].

use secrecy::{ExposeSecret, SecretString};

use super::{Actor, AppRef, Rekey};
use crate::apps::{secret_record, MAX_DURATION_SECS};
use crate::clock::Timestamp;
use crate::error::OpError;
use crate::model::{App, AuditContext, NotificationId, OrgId, Secret, SecretId, SecretState};
use crate::notify::{envelope, new_secret_payload, Delivery, NotificationType};
use crate::policy::{self, Action, AppTarget, Subject};
use crate::rotation::{plan_finish, plan_regenerate, plan_rotate};
use crate::secret::generate_client_secret;
use crate::store::{LockedApp, SecretChanges};

/// Asked with the app locked and its secrets as they are then: may the change go ahead?
pub(super) type Recheck<'a> =
    &'a (dyn Fn(&LockedApp, &[Secret]) -> Result<(), OpError> + Send + Sync);

/// A new current secret, shown once to whoever asked for it.
pub struct NewSecret {
    pub app: App,
    pub secret: Secret,
    pub plain: SecretString,
    /// When the demoted secret stops working (rotation only).
    pub previous_expires_at: Option<Timestamp>,
    /// The `APPLICATION_OAUTH_CLIENT_NEW_SECRET` notification, if one was queued.
    pub notification_id: Option<NotificationId>,
}

/// How a rotation is asked for.
pub struct RotateInput {
    /// How long the old secret stays valid; the app's own grace when `None`.
    pub grace_secs: Option<i64>,
    /// A caller-chosen secret (CSP owner client), already checked for complexity.
    pub supplied: Option<SecretString>,
    /// SP-API: an app without a destination for new secrets is refused. Otherwise a
    /// notification is queued only if a destination exists.
    pub require_destination: bool,
}

impl Rekey {
    /// Rotates a secret for a manager of the app (native API): the new one becomes current,
    /// the old one stays valid for the grace period.
    pub async fn rotate(
        &self,
        actor: &Actor,
        org: OrgId,
        app: &AppRef,
        input: RotateInput,
    ) -> Result<NewSecret, OpError> {
        let (subject, app) = self
            .authorize_app_as(actor, org, app, Action::ChangeApp)
            .await?;
        self.rotate_app(actor, subject, app, input, Action::ChangeApp)
            .await
    }

    /// CSP's owner-client rotation: as [`Self::rotate`], or by the app itself unless its
    /// `ownerOnlySecretRotation` is set.
    pub async fn rotate_as_owner_client(
        &self,
        actor: &Actor,
        org: OrgId,
        app: &AppRef,
        input: RotateInput,
    ) -> Result<NewSecret, OpError> {
        let (subject, app) = self
            .authorize_app_as(actor, org, app, Action::RotateSecret)
            .await?;
        self.rotate_app(actor, subject, app, input, Action::RotateSecret)
            .await
    }

    /// The SP-API rotation: the caller is the app itself, whose token the dialect has
    /// checked for the rotation scope.
    pub async fn rotate_own_secret(
        &self,
        actor: &Actor,
        app: App,
        input: RotateInput,
    ) -> Result<NewSecret, OpError> {
        let subject = self.subject(actor, app.org_id).await?;
        let target = self.app_target(&app).await?;
        self.decide(
            actor,
            app.org_id,
            subject,
            Action::RotateOwnSecretWithScope(target),
        )?;
        self.rotate_app(actor, subject, app, input, Action::RotateOwnSecretWithScope)
            .await
    }

    async fn rotate_app(
        &self,
        actor: &Actor,
        subject: Subject,
        app: App,
        input: RotateInput,
        action: fn(AppTarget) -> Action,
    ) -> Result<NewSecret, OpError> {
        let new = self
            .rotate_with(&actor.audit, app, input, &|app, _| {
                still_allowed(subject, action, app)
            })
            .await?;
        counted("rotate", actor);
        Ok(new)
    }

    /// A rotation of `app` on behalf of `ctx`'s actor: `recheck` runs with the app locked and
    /// its secrets as they are then, and may refuse (authorization, or a policy that no
    /// longer applies). Shared by the APIs and the rotation policy.
    pub(super) async fn rotate_with(
        &self,
        ctx: &AuditContext,
        app: App,
        input: RotateInput,
        recheck: Recheck<'_>,
    ) -> Result<NewSecret, OpError> {
        let grace_secs = input.grace_secs.unwrap_or(app.rotation_grace_secs);
        if !(0..=MAX_DURATION_SECS).contains(&grace_secs) {
            return Err(OpError::Invalid(format!(
                "the grace period must be between 0 and {MAX_DURATION_SECS} seconds"
            )));
        }
        let destination = self
            .store
            .get_destination(app.id, NotificationType::NewSecret)
            .await?;
        if input.require_destination && destination.is_none() {
            return Err(OpError::NotEnrolled);
        }
        let now = self.now();
        let plain = input.supplied.unwrap_or_else(generate_client_secret);
        let new = secret_record(&app, &plain, &self.secret_hasher, &ctx.actor, now);
        let notification_id = destination.as_ref().map(|_| NotificationId::new());
        let changes = self
            .store
            .change_secrets(app.id, &|app, secrets| {
                recheck(app, secrets)?;
                // A supplied secret must be new: the same one twice is no rotation.
                if secrets
                    .iter()
                    .any(|s| s.is_valid(now) && s.hash.ct_eq(&new.hash))
                {
                    return Err(OpError::Invalid(
                        "Invalid client secret: it must differ from the current secret".into(),
                    ));
                }
                let mut changes = plan_rotate(secrets, new.clone(), grace_secs, now)?;
                let previous_expires_at = previous_expiry(&changes);
                changes.audit.push(
                    ctx.event(now, "secret.rotated")
                        .org(app.org_id)
                        .app(app.id)
                        .secret(new.id)
                        .details(serde_json::json!({
                            "graceSeconds": grace_secs,
                            "previousExpiresAt": previous_expires_at.map(Timestamp::to_rfc3339),
                        })),
                );
                if let (Some(dest), Some(nid)) = (&destination, notification_id) {
                    let env = envelope(
                        NotificationType::NewSecret,
                        nid,
                        &app.client_id,
                        dest.id,
                        new_secret_payload(
                            &app.client_id,
                            plain.expose_secret(),
                            new.expires_at,
                            previous_expires_at,
                        ),
                        now,
                    );
                    changes.deliveries.push(Delivery::new(
                        &self.outbox_sealer,
                        nid,
                        app.id,
                        app.org_id,
                        NotificationType::NewSecret,
                        dest.id,
                        &env,
                        None,
                        now,
                    ));
                    changes.audit.push(
                        ctx.event(now, "notification.enqueued")
                            .org(app.org_id)
                            .app(app.id)
                            .secret(new.id)
                            .details(serde_json::json!({
                                "notificationId": nid.to_string(),
                                "notificationType": NotificationType::NewSecret.as_str(),
                                "destination": dest.target.kind(),
                            })),
                    );
                }
                Ok(changes)
            })
            .await?;
        if notification_id.is_some() {
            (self.wake_dispatcher)();
        }
        Ok(NewSecret {
            app,
            secret: new,
            plain,
            previous_expires_at: previous_expiry(&changes),
            notification_id,
        })
    }

    /// Regenerates a secret: every valid secret is revoked and one new current secret is
    /// made (any rotation is reset).
    pub async fn regenerate(
        &self,
        actor: &Actor,
        org: OrgId,
        app: &AppRef,
    ) -> Result<NewSecret, OpError> {
        let (subject, app) = self
            .authorize_app_as(actor, org, app, Action::ChangeApp)
            .await?;
        let now = self.now();
        let ctx = &actor.audit;
        let plain = generate_client_secret();
        let new = secret_record(&app, &plain, &self.secret_hasher, &ctx.actor, now);
        self.store
            .change_secrets(app.id, &|app, secrets| {
                still_allowed(subject, Action::ChangeApp, app)?;
                let mut changes = plan_regenerate(secrets, new.clone(), now);
                changes.audit.push(
                    ctx.event(now, "secret.regenerated")
                        .org(app.org_id)
                        .app(app.id)
                        .secret(new.id)
                        .details(serde_json::json!({ "revoked": changes.update.len() })),
                );
                Ok(changes)
            })
            .await?;
        counted("regenerate", actor);
        Ok(NewSecret {
            app,
            secret: new,
            plain,
            previous_expires_at: None,
            notification_id: None,
        })
    }

    /// Finishes a rotation for a manager of the app (native API): the previous secret is
    /// revoked now. Idempotent: returns what was revoked (nothing when there was no previous
    /// secret).
    pub async fn finish(
        &self,
        actor: &Actor,
        org: OrgId,
        app: &AppRef,
    ) -> Result<Vec<Secret>, OpError> {
        let (subject, app) = self
            .authorize_app_as(actor, org, app, Action::ChangeApp)
            .await?;
        self.finish_app(actor, subject, app, Action::ChangeApp)
            .await
    }

    /// CSP's `DELETE .../secret`: as [`Self::finish`], or by the app itself unless its
    /// `ownerOnlySecretRotation` is set.
    pub async fn finish_as_owner_client(
        &self,
        actor: &Actor,
        org: OrgId,
        app: &AppRef,
    ) -> Result<Vec<Secret>, OpError> {
        let (subject, app) = self
            .authorize_app_as(actor, org, app, Action::RotateSecret)
            .await?;
        self.finish_app(actor, subject, app, Action::RotateSecret)
            .await
    }

    async fn finish_app(
        &self,
        actor: &Actor,
        subject: Subject,
        app: App,
        action: fn(AppTarget) -> Action,
    ) -> Result<Vec<Secret>, OpError> {
        let revoked = self
            .finish_with(&actor.audit, app, &|app, _| {
                still_allowed(subject, action, app)
            })
            .await?;
        if !revoked.is_empty() {
            counted("finish", actor);
        }
        Ok(revoked)
    }

    /// Finishes `app`'s rotation on behalf of `ctx`'s actor; `recheck` as in
    /// [`Self::rotate_with`].
    pub(super) async fn finish_with(
        &self,
        ctx: &AuditContext,
        app: App,
        recheck: Recheck<'_>,
    ) -> Result<Vec<Secret>, OpError> {
        let now = self.now();
        let changes = self
            .store
            .change_secrets(app.id, &|app, secrets| {
                recheck(app, secrets)?;
                let mut changes = plan_finish(secrets, now)?;
                changes.audit = changes
                    .update
                    .iter()
                    .map(|s| {
                        ctx.event(now, "secret.rotation_finished")
                            .org(app.org_id)
                            .app(app.id)
                            .secret(s.id)
                    })
                    .collect();
                Ok(changes)
            })
            .await?;
        Ok(changes.update)
    }

    /// Ends one secret now. Explicit, so it may leave the app without a valid secret.
    /// Revoking a revoked secret changes nothing and returns it.
    pub async fn revoke_secret(
        &self,
        actor: &Actor,
        org: OrgId,
        app: &AppRef,
        secret: SecretId,
    ) -> Result<Secret, OpError> {
        let (subject, app) = self
            .authorize_app_as(actor, org, app, Action::ChangeApp)
            .await?;
        let now = self.now();
        let ctx = &actor.audit;
        let reason = format!("revoked by {}", ctx.actor);
        let changes = self
            .store
            .change_secrets(app.id, &|app, secrets| {
                still_allowed(subject, Action::ChangeApp, app)?;
                let mut s = secrets
                    .iter()
                    .find(|s| s.id == secret)
                    .cloned()
                    .ok_or(OpError::NotFound)?;
                if s.state == SecretState::Revoked {
                    return Ok(SecretChanges {
                        update: vec![s],
                        ..Default::default()
                    });
                }
                s.state = SecretState::Revoked;
                s.revoked_at = Some(now);
                s.revoked_reason = Some(reason.clone());
                Ok(SecretChanges {
                    audit: vec![ctx
                        .event(now, "secret.revoked")
                        .org(app.org_id)
                        .app(app.id)
                        .secret(s.id)],
                    update: vec![s],
                    ..Default::default()
                })
            })
            .await?;
        if !changes.audit.is_empty() {
            counted("revoke", actor);
        }
        changes.update.into_iter().next().ok_or(OpError::NotFound)
    }
}

fn counted(action: &'static str, actor: &Actor) {
    crate::metrics::secret_changed(action, actor.surface.as_str(), actor.principal.kind());
}

/// The policy asked again inside the transaction, over the app's role as it is with the app
/// row locked: a role given to the app after the first check (say, `org_admin` while a
/// developer regenerates its secret) is seen here, and the change is refused.
fn still_allowed(
    subject: Subject,
    action: fn(AppTarget) -> Action,
    app: &LockedApp,
) -> Result<(), OpError> {
    let target = AppTarget {
        id: app.id,
        service_account: app.service_account_role,
        owner_only_secret_rotation: app.owner_only_secret_rotation,
    };
    Ok(policy::authorize(subject, action(target))?)
}

/// When the secret a plan demotes to previous stops working.
fn previous_expiry(changes: &SecretChanges) -> Option<Timestamp> {
    changes
        .update
        .iter()
        .find(|s| s.state == SecretState::Previous)
        .and_then(|s| s.expires_at)
}
