//! The native management API (`/api/v1`): request and response bodies.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// RFC 9457 problem details: the one error shape of the native API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// A URI naming the problem type, e.g. `urn:rekey:problem:not-found`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgView {
    pub id: Uuid,
    pub name: String,
    pub created_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// `user` or `app` (a service account).
    pub kind: String,
    pub id: Uuid,
    pub role: String,
    pub created_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddMemberRequest {
    pub email: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub role: String,
}

/// A member added by email. `apiToken` is shown once: it is how the new user signs in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddedMember {
    pub user_id: Uuid,
    pub email: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAppRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Leave out to have one generated (`rkc_...`).
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub access_token_ttl_seconds: Option<i64>,
    #[serde(default)]
    pub secret_lifetime_seconds: Option<i64>,
    #[serde(default)]
    pub rotation_grace_seconds: Option<i64>,
    #[serde(default)]
    pub owner_only_secret_rotation: Option<bool>,
    /// RFC 8707: the resource servers (`aud`) the app may ask tokens for; the first is the
    /// audience of a token whose request names none. Leave out for tokens without `aud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
    /// Automatic rotation; fields left out inherit the org's default policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_policy: Option<RotationPolicyView>,
    /// Makes the app a service account with this role in its org.
    #[serde(default)]
    pub service_account_role: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateAppRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub access_token_ttl_seconds: Option<i64>,
    #[serde(default)]
    pub secret_lifetime_seconds: Option<i64>,
    #[serde(default)]
    pub rotation_grace_seconds: Option<i64>,
    #[serde(default)]
    pub owner_only_secret_rotation: Option<bool>,
    /// Replaces the app's audiences (`[]` removes them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
    /// Replaces the app's rotation policy whole (`{}`: inherit the org's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_policy: Option<RotationPolicyView>,
}

/// A rotation policy. On an app, a field left out (or null) inherits the org's default; on
/// an org, it is off. `0` is off on both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotationPolicyView {
    /// Start a rotation this many seconds before the current secret expires (the new secret
    /// goes to the app's new-secret destination; the old one keeps working until it expires).
    #[serde(default)]
    pub rotate_before_expiry_seconds: Option<i64>,
    /// Retire the previous secret once the new one has been used and the previous one has
    /// not been used for this many seconds.
    #[serde(default)]
    pub retire_when_unused_seconds: Option<i64>,
}

/// An app's rotation policy at work: what applies, and what the sweeper's next pass does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationStatusView {
    /// The app's own settings.
    pub app: RotationPolicyView,
    /// The org's defaults.
    pub org: RotationPolicyView,
    /// What applies (`null`: off).
    pub effective: RotationPolicyView,
    /// When the policy starts the next rotation (RFC 3339), if it will.
    pub next_rotation_at: Option<String>,
    /// `nothing`, `rotate`, `retire`, `waiting` (a rotation in progress whose previous secret
    /// may not be retired yet) or `blocked` (a rotation is due and cannot start).
    pub next_step: String,
    /// Why it waits or is blocked: `new_secret_unused`, `previous_still_used`, `quiet_period`,
    /// `notification_dead`, `current_not_valid`, `no_destination`.
    pub reason: Option<String>,
    /// Until when a quiet period runs (RFC 3339), when it waits for one.
    pub waiting_until: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppView {
    pub id: Uuid,
    pub org_id: Uuid,
    pub client_id: String,
    pub name: String,
    pub description: String,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub access_token_ttl_seconds: i64,
    pub secret_lifetime_seconds: i64,
    pub rotation_grace_seconds: i64,
    pub owner_only_secret_rotation: bool,
    pub service_account: bool,
    /// The audiences the app may ask tokens for; the first is the default.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The app's own rotation policy (fields left out inherit the org's default).
    #[serde(default)]
    pub rotation_policy: RotationPolicyView,
    pub created_at: String,
    pub updated_at: String,
}

/// The answer to creating an app: the only time its first secret is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApp {
    pub app: AppView,
    pub client_secret: String,
    pub secret: SecretView,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppList {
    pub items: Vec<AppView>,
    pub page_start: u32,
    pub page_limit: u32,
}

/// A secret's metadata; never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretView {
    pub id: Uuid,
    pub state: String,
    pub hint: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub created_by: String,
    pub revoked_at: Option<String>,
    pub revoked_reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretList {
    pub items: Vec<SecretView>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventView {
    pub id: Uuid,
    pub time: String,
    pub action: String,
    pub actor: String,
    pub org_id: Option<Uuid>,
    pub app_id: Option<Uuid>,
    pub secret_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub source: Option<String>,
    pub outcome: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEventList {
    pub items: Vec<AuditEventView>,
}

/// `GET .../audit-events/verify`: the org's audit hash chain, checked link by link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerification {
    /// Whether every link and the chain's head check out.
    pub intact: bool,
    /// Events checked.
    pub events: u64,
    /// Events from before the chain existed, at its start, not linked.
    pub unlinked: u64,
    /// The first broken link, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken: Option<AuditBrokenLink>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditBrokenLink {
    /// The event where the chain breaks; absent when it breaks at its end (events deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the old secret stays valid; default: the app's rotation grace.
    #[serde(default)]
    pub grace_seconds: Option<i64>,
}

/// A new secret (rotate or regenerate): the only time it is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewSecretView {
    pub client_id: String,
    pub client_secret: String,
    pub secret: SecretView,
    /// When the previous secret stops working (rotation only).
    pub previous_expires_at: Option<String>,
    /// The `APPLICATION_OAUTH_CLIENT_NEW_SECRET` notification queued, if a destination exists.
    pub notification_id: Option<Uuid>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FinishedRotation {
    /// The previous secret(s) revoked now; empty when no rotation was in progress.
    pub revoked: Vec<SecretView>,
}

/// A destination as sent by a client (`kind` decides which other fields apply).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationRequest {
    /// `sqs`, `webhook`, `file` or `secrets_manager` (new secrets only).
    pub kind: String,
    #[serde(default)]
    pub queue_url: Option<String>,
    /// The queue's AWS region; taken from `queueUrl` when it names one
    /// (`https://sqs.<region>.amazonaws.com/...`).
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub directory: Option<String>,
    /// `secrets_manager`: the secret's name or ARN (the region is taken from an ARN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationView {
    pub id: Uuid,
    pub notification_type: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub queue_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub endpoint_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub directory: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub secret_id: Option<String>,
    /// Webhooks: the Standard Webhooks signing secret, shown only when the destination is set.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub signing_secret: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationList {
    pub items: Vec<DestinationView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: Uuid,
    pub notification_id: Uuid,
    pub app_id: Uuid,
    pub notification_type: String,
    pub destination_id: Uuid,
    /// `pending`, `delivered` or `dead`.
    pub state: String,
    pub attempts: u32,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryList {
    pub items: Vec<DeliveryView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueuedNotification {
    pub notification_id: Uuid,
    pub delivery_id: Uuid,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetRoleRequest {
    pub role: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApiTokenRequest {
    pub name: String,
    /// Lifetime in seconds; none: the token does not expire.
    #[serde(default)]
    pub expires_in_seconds: Option<i64>,
}

/// An API token's metadata; never the token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenView {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub hint: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A new API token: the only time it is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiToken {
    pub token: ApiTokenView,
    pub api_token: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenList {
    pub items: Vec<ApiTokenView>,
}

/// A token signing key's public metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyView {
    pub kid: String,
    pub algorithm: String,
    pub created_at: String,
    /// When an older key stops being published; `None` for the key that signs now.
    pub publish_until: Option<String>,
    /// When the key signs from (a rotated-in key is published before it signs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signs_from: Option<String>,
    pub signing: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyList {
    pub items: Vec<SigningKeyView>,
}

/// The query of `GET .../deliveries`: every field optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeliveryQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// `pending`, `delivered` or `dead`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_start: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_limit: Option<u32>,
}

/// The query of `GET .../audit-events`: every field optional; times are RFC 3339.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_start: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_limit: Option<u32>,
}
