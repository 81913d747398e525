//! Rotate, regenerate and finish through the native API. Unlike SP-API, the new secret is
//! also returned in the response (an operator asked for it); the notification goes to the
//! app's destination too when one is registered.

use crate::extract::NativePath as Path;
use axum::extract::State;
use axum::Json;
use rekey_core::apps::MAX_DURATION_SECS;
use rekey_core::ops::secrets::{NewSecret, RotateInput};
use rekey_proto::native::{FinishedRotation, NewSecretView, RotateRequest};
use secrecy::ExposeSecret;

use super::apps::app_ref;
use super::orgs::parse_org;
use super::views;
use crate::errors::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::state::SharedState;

fn new_secret_view(n: NewSecret) -> NewSecretView {
    NewSecretView {
        client_id: n.app.client_id,
        client_secret: n.plain.expose_secret().to_string(),
        secret: views::secret(&n.secret),
        previous_expires_at: n.previous_expires_at.map(|t| t.to_rfc3339()),
        notification_id: n.notification_id.map(|n| n.0),
    }
}

/// `POST /api/v1/orgs/{org}/apps/{app}/secrets/rotate` `{graceSeconds?}`
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/apps/{app_id}/secrets/rotate",
    tag = "secrets",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("app_id" = String, Path, description = "App id (UUID) or client id"),
    ),
    request_body = rekey_proto::native::RotateRequest,
    responses(
        (status = 200, description = "The new secret, shown once", body = rekey_proto::native::NewSecretView),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Conflict with the current state", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn rotate(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<RotateRequest>,
) -> Result<Json<NewSecretView>, ApiError> {
    if req
        .grace_seconds
        .is_some_and(|g| !(0..=MAX_DURATION_SECS).contains(&g))
    {
        return Err(ApiError::bad_request(format!(
            "graceSeconds must be between 0 and {MAX_DURATION_SECS}"
        )));
    }
    let input = RotateInput {
        grace_secs: req.grace_seconds,
        supplied: None,
        require_destination: false,
    };
    let n = state
        .ops
        .rotate(
            &caller.actor(),
            parse_org(&org_id)?,
            &app_ref(&app_id),
            input,
        )
        .await?;
    Ok(Json(new_secret_view(n)))
}

/// `POST /api/v1/orgs/{org}/apps/{app}/secrets/regenerate`
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/apps/{app_id}/secrets/regenerate",
    tag = "secrets",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("app_id" = String, Path, description = "App id (UUID) or client id"),
    ),
    responses(
        (status = 200, description = "The new secret, shown once", body = rekey_proto::native::NewSecretView),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn regenerate(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id)): Path<(String, String)>,
) -> Result<Json<NewSecretView>, ApiError> {
    let n = state
        .ops
        .regenerate(&caller.actor(), parse_org(&org_id)?, &app_ref(&app_id))
        .await?;
    Ok(Json(new_secret_view(n)))
}

/// `POST /api/v1/orgs/{org}/apps/{app}/secrets/finish`
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/apps/{app_id}/secrets/finish",
    tag = "secrets",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("app_id" = String, Path, description = "App id (UUID) or client id"),
    ),
    responses(
        (status = 200, description = "What was revoked", body = rekey_proto::native::FinishedRotation),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Conflict with the current state", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn finish(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id)): Path<(String, String)>,
) -> Result<Json<FinishedRotation>, ApiError> {
    let revoked = state
        .ops
        .finish(&caller.actor(), parse_org(&org_id)?, &app_ref(&app_id))
        .await?;
    Ok(Json(FinishedRotation {
        revoked: revoked.iter().map(views::secret).collect(),
    }))
}
