//! Notification preferences (destinations) and the outbox's dead deliveries: set, remove and
//! test an app's destination, retry a dead delivery. Setting or testing a destination is a
//! change of the app, under the policy's service-account ceiling.

use super::{Actor, AppRef, Rekey};
use crate::error::OpError;
use crate::model::{DeliveryId, DestinationId, NotificationId, OrgId};
use crate::notify::{
    envelope, signing_key_context, Delivery, Destination, NotificationType, Target,
};
use crate::policy::Action;
use crate::secret::generate_webhook_secret;

/// A destination as set, with a webhook's new signing secret (shown once).
pub struct SetDestination {
    pub destination: Destination,
    pub signing_secret: Option<String>,
}

impl Rekey {
    /// Sets (replaces) the app's destination for `notification_type`. A webhook gets a new
    /// signing secret. Unless the server allows insecure destinations, URLs must be https
    /// and an SQS endpoint override is refused.
    pub async fn set_destination(
        &self,
        actor: &Actor,
        org: OrgId,
        app: &AppRef,
        notification_type: NotificationType,
        target: Target,
    ) -> Result<SetDestination, OpError> {
        let app = self
            .authorize_app(actor, org, app, Action::ChangeApp)
            .await?;
        target.validate()?;
        if matches!(target, Target::SecretsManager { .. })
            && notification_type != NotificationType::NewSecret
        {
            return Err(OpError::Invalid(
                "a secrets_manager destination holds new secrets: set it for APPLICATION_OAUTH_CLIENT_NEW_SECRET".into(),
            ));
        }
        if !self.allow_insecure_destinations {
            check_secure(&target)?;
        }
        self.destination_check
            .check(&target)
            .await
            .map_err(OpError::Invalid)?;
        let now = self.now();
        let id = DestinationId::new();
        let signing_secret = matches!(target, Target::Webhook { .. }).then(generate_webhook_secret);
        let destination = Destination {
            id,
            app_id: app.id,
            notification_type,
            sealed_signing_key: signing_secret.as_ref().map(|s| {
                self.webhook_key_sealer
                    .seal(s.as_bytes(), &signing_key_context(id))
            }),
            target,
            created_at: now,
            updated_at: now,
        };
        let ev = actor
            .audit
            .event(now, "destination.changed")
            .org(org)
            .app(app.id)
            .details(serde_json::json!({
                "notificationType": notification_type.as_str(),
                "kind": destination.target.kind(),
                "destinationId": id.to_string(),
            }));
        self.store.put_destination(&destination, &[ev]).await?;
        Ok(SetDestination {
            destination,
            signing_secret,
        })
    }

    /// Removes the app's destination for `notification_type` (`NotFound` if there is none).
    pub async fn remove_destination(
        &self,
        actor: &Actor,
        org: OrgId,
        app: &AppRef,
        notification_type: NotificationType,
    ) -> Result<(), OpError> {
        let app = self
            .authorize_app(actor, org, app, Action::ChangeApp)
            .await?;
        let ev = actor
            .audit
            .event(self.now(), "destination.removed")
            .org(org)
            .app(app.id)
            .details(serde_json::json!({ "notificationType": notification_type.as_str() }));
        if self
            .store
            .delete_destination(app.id, notification_type, &[ev])
            .await?
        {
            Ok(())
        } else {
            Err(OpError::NotFound)
        }
    }

    /// Queues a test notification (payload `testNotification`, no secret) to the app's
    /// destination for `notification_type`.
    pub async fn test_destination(
        &self,
        actor: &Actor,
        org: OrgId,
        app: &AppRef,
        notification_type: NotificationType,
    ) -> Result<Delivery, OpError> {
        let app = self
            .authorize_app(actor, org, app, Action::ChangeApp)
            .await?;
        let dest = self
            .store
            .get_destination(app.id, notification_type)
            .await?
            .ok_or(OpError::NotFound)?;
        let now = self.now();
        let nid = NotificationId::new();
        let env = envelope(
            notification_type,
            nid,
            &app.client_id,
            dest.id,
            serde_json::json!({
                "testNotification": {
                    "clientId": app.client_id,
                    "message": "A test notification from Rekey: this destination receives.",
                }
            }),
            now,
        );
        let delivery = Delivery::new(
            &self.outbox_sealer,
            nid,
            app.id,
            org,
            notification_type,
            dest.id,
            &env,
            None,
            now,
        );
        let ev = actor
            .audit
            .event(now, "notification.enqueued")
            .org(org)
            .app(app.id)
            .details(serde_json::json!({
                "notificationId": nid.to_string(),
                "notificationType": notification_type.as_str(),
                "test": true,
            }));
        self.store
            .enqueue_deliveries(std::slice::from_ref(&delivery), &[ev])
            .await?;
        (self.wake_dispatcher)();
        Ok(delivery)
    }

    /// Puts a dead delivery back to pending with a fresh retry budget.
    pub async fn retry_delivery(
        &self,
        actor: &Actor,
        org: OrgId,
        id: DeliveryId,
    ) -> Result<Delivery, OpError> {
        self.authorize(actor, org, Action::RetryDelivery).await?;
        let delivery = match self.store.get_delivery(id).await? {
            Some(d) if d.org_id == org => d,
            _ => return Err(OpError::NotFound),
        };
        let now = self.now();
        let ev = actor
            .audit
            .event(now, "notification.retried")
            .org(org)
            .app(delivery.app_id)
            .details(serde_json::json!({
                "notificationId": delivery.notification_id.to_string(),
                "deliveryId": delivery.id.to_string(),
            }));
        if !self.store.retry_delivery(id, now, &[ev]).await? {
            return Err(OpError::Conflict(
                "Only a dead delivery can be retried".into(),
            ));
        }
        (self.wake_dispatcher)();
        self.store.get_delivery(id).await?.ok_or(OpError::NotFound)
    }
}

/// Refuses plain-http URLs and SQS endpoint overrides (a server for production). The message
/// names the setting that allows them, for local development.
fn check_secure(target: &Target) -> Result<(), OpError> {
    const HINT: &str = "set allow_insecure_destinations = true (REKEY_ALLOW_INSECURE_DESTINATIONS=true) on a server for local development";
    if target.aws_endpoint_override().is_some() {
        return Err(OpError::Invalid(format!(
            "endpointUrl is not allowed on this server: {HINT}"
        )));
    }
    let insecure = match target {
        Target::Sqs { queue_url, .. } => !queue_url.starts_with("https://"),
        Target::Webhook { url } => !url.starts_with("https://"),
        Target::File { .. } | Target::SecretsManager { .. } => false,
    };
    if insecure {
        return Err(OpError::Invalid(format!(
            "Destination URLs must use https: {HINT}"
        )));
    }
    Ok(())
}
