//! Secret operations shared by every dialect: rotate, regenerate, finish. Each is one
//! `Store::change_secrets` call: the app is locked, a pure rule from `rekey_core::rotation`
//! plans the change, and the secret, its notification (outbox row) and audit events are
//! committed together.

use std::sync::Mutex;

use rekey_core::apps::secret_record;
use rekey_core::clock::Timestamp;
use rekey_core::error::CoreError;
use rekey_core::model::{App, AuditContext, NotificationId, Secret, SecretState};
use rekey_core::notify::{envelope, new_secret_payload, Delivery, NotificationType};
use rekey_core::rotation::{plan_finish, plan_regenerate, plan_rotate, RotationError};
use rekey_core::secret::generate_client_secret;
use secrecy::{ExposeSecret, SecretString};

use crate::state::AppState;

/// Why a rotation did not happen.
#[derive(Debug)]
pub enum RotateError {
    /// The app has no destination for `APPLICATION_OAUTH_CLIENT_NEW_SECRET`.
    NotEnrolled,
    /// A previous secret is still valid.
    InProgress {
        previous_expires_at: Option<Timestamp>,
    },
    /// Finishing would leave no valid secret: the current one is expired or revoked.
    NoValidCurrent,
    NotFound,
    Core(CoreError),
}

impl From<CoreError> for RotateError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound => RotateError::NotFound,
            e => RotateError::Core(e),
        }
    }
}

/// A new current secret, shown once to whoever asked for it.
pub struct NewSecret {
    pub secret: Secret,
    pub plain: SecretString,
    /// When the demoted secret stops working (rotation only).
    pub previous_expires_at: Option<Timestamp>,
    /// The `APPLICATION_OAUTH_CLIENT_NEW_SECRET` notification, if one was queued.
    pub notification_id: Option<NotificationId>,
}

/// Rotates `app`'s secret: the new one becomes current, the old one stays valid for
/// `grace_secs`. `supplied` is a caller-chosen secret (CSP), already checked for complexity.
/// With `require_destination` (SP-API) an app without a destination is refused; otherwise a
/// notification is queued only if a destination exists.
pub async fn rotate(
    state: &AppState,
    app: &App,
    grace_secs: i64,
    supplied: Option<SecretString>,
    require_destination: bool,
    ctx: &AuditContext,
) -> Result<NewSecret, RotateError> {
    let destination = state
        .store
        .get_destination(app.id, NotificationType::NewSecret)
        .await?;
    if require_destination && destination.is_none() {
        return Err(RotateError::NotEnrolled);
    }
    let now = state.now();
    let plain = supplied.unwrap_or_else(generate_client_secret);
    let new = secret_record(app, &plain, &state.secret_hasher, &ctx.actor, now);
    let notification_id = destination.as_ref().map(|_| NotificationId::new());
    let refused: Mutex<Option<RotationError>> = Mutex::new(None);
    let result = state
        .store
        .change_secrets(app.id, &|app, secrets| {
            let mut changes = match plan_rotate(secrets, new.clone(), grace_secs, now) {
                Ok(c) => c,
                Err(e) => {
                    *refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    return Err(CoreError::Conflict("a rotation is in progress".into()));
                }
            };
            let previous_expires_at = changes
                .update
                .iter()
                .find(|s| s.state == SecretState::Previous)
                .and_then(|s| s.expires_at);
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
                    &state.outbox_sealer,
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
        .await;
    let changes = match result {
        Ok(c) => c,
        Err(e) => {
            if let Some(RotationError::InProgress {
                previous_expires_at,
            }) = refused.lock().unwrap_or_else(|p| p.into_inner()).take()
            {
                return Err(RotateError::InProgress {
                    previous_expires_at,
                });
            }
            return Err(e.into());
        }
    };
    if notification_id.is_some() {
        state.delivery_wake.notify_one();
    }
    let previous_expires_at = changes
        .update
        .iter()
        .find(|s| s.state == SecretState::Previous)
        .and_then(|s| s.expires_at);
    Ok(NewSecret {
        secret: new,
        plain,
        previous_expires_at,
        notification_id,
    })
}

/// Regenerates `app`'s secret: every valid secret is revoked and one new current secret is
/// made (any rotation is reset). `supplied` as in [`rotate`].
pub async fn regenerate(
    state: &AppState,
    app: &App,
    supplied: Option<SecretString>,
    ctx: &AuditContext,
) -> Result<NewSecret, RotateError> {
    let now = state.now();
    let plain = supplied.unwrap_or_else(generate_client_secret);
    let new = secret_record(app, &plain, &state.secret_hasher, &ctx.actor, now);
    state
        .store
        .change_secrets(app.id, &|app, secrets| {
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
    Ok(NewSecret {
        secret: new,
        plain,
        previous_expires_at: None,
        notification_id: None,
    })
}

/// Finishes a rotation: the previous secret is revoked now. Idempotent: returns what was
/// revoked (nothing when there was no previous secret).
pub async fn finish(
    state: &AppState,
    app: &App,
    ctx: &AuditContext,
) -> Result<Vec<Secret>, RotateError> {
    let now = state.now();
    let refused: Mutex<Option<RotationError>> = Mutex::new(None);
    let result = state
        .store
        .change_secrets(app.id, &|app, secrets| {
            let mut changes = match plan_finish(secrets, now) {
                Ok(c) => c,
                Err(e) => {
                    *refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    return Err(CoreError::Conflict(
                        "the current secret is not valid".into(),
                    ));
                }
            };
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
        .await;
    match result {
        Ok(changes) => Ok(changes.update),
        Err(e) => match refused.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(RotationError::NoValidCurrent) => Err(RotateError::NoValidCurrent),
            _ => Err(e.into()),
        },
    }
}
