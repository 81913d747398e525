//! Amazon Selling Partner API bodies: the `ErrorList` of every error answer, and the
//! notification that carries a new client secret to the app's SQS queue (the shapes of
//! Amazon's published Application Management and Notifications models).

use serde::{Deserialize, Serialize};

/// One error of an `ErrorList`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpApiError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// `{"errors": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorList {
    pub errors: Vec<SpApiError>,
}

/// A notification as SP-API delivers it (camelCase, times ISO 8601 UTC), with its payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification<P> {
    pub notification_version: String,
    /// `APPLICATION_OAUTH_CLIENT_NEW_SECRET`, `APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY`.
    pub notification_type: String,
    pub payload_version: String,
    pub event_time: String,
    pub payload: P,
    pub notification_metadata: NotificationMetadata,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationMetadata {
    /// The app's client id.
    pub application_id: String,
    /// The destination's id.
    pub subscription_id: String,
    pub publish_time: String,
    pub notification_id: String,
}

/// `APPLICATION_OAUTH_CLIENT_NEW_SECRET`'s payload. Holds the new secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSecretPayload {
    #[serde(rename = "applicationOAuthClientNewSecret")]
    pub new_secret: NewClientSecret,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewClientSecret {
    pub client_id: String,
    pub new_client_secret: String,
    pub new_client_secret_expiry_time: Option<String>,
    /// When the secret it replaces stops working.
    pub old_client_secret_expiry_time: Option<String>,
}

/// `APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY`'s payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretExpiryPayload {
    #[serde(rename = "applicationOAuthClientSecretExpiry")]
    pub expiry: ClientSecretExpiry,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecretExpiry {
    pub client_id: String,
    pub client_secret_expiry_time: String,
    pub client_secret_expiry_reason: String,
    /// Rekey's addition: when the app's rotation policy will rotate the secret (absent when
    /// no policy will).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automatic_rotation_time: Option<String>,
}

impl std::fmt::Debug for NewClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewClientSecret")
            .field("client_id", &self.client_id)
            .field("new_client_secret", &"<redacted>")
            .field(
                "new_client_secret_expiry_time",
                &self.new_client_secret_expiry_time,
            )
            .field(
                "old_client_secret_expiry_time",
                &self.old_client_secret_expiry_time,
            )
            .finish()
    }
}
