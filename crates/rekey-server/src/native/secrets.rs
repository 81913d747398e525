//! Rotate, regenerate and finish through the native API. Unlike SP-API, the new secret is
//! also returned in the response (an operator asked for it); the notification goes to the
//! app's destination too when one is registered.

use axum::extract::{Path, State};
use axum::Json;
use rekey_proto::native::{FinishedRotation, NewSecretView, RotateRequest};
use secrecy::ExposeSecret;

use super::apps::load_app;
use super::orgs::parse_org;
use super::views;
use crate::errors::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::secrets::{self as ops, NewSecret, RotateError};
use crate::state::SharedState;

fn rotate_error(e: RotateError) -> ApiError {
    match e {
        RotateError::InProgress { previous_expires_at } => ApiError::conflict(format!(
            "A rotation is in progress: the previous secret is valid until {}. Finish the rotation first, or wait.",
            previous_expires_at.map_or_else(|| "it is revoked".into(), |t| t.to_rfc3339())
        )),
        RotateError::NotEnrolled => ApiError::bad_request("The app has no destination for APPLICATION_OAUTH_CLIENT_NEW_SECRET"),
        RotateError::NotFound => ApiError::not_found("No such app in this organization"),
        RotateError::NoValidCurrent => ApiError::conflict(
            "The current secret is not valid: regenerate instead of finishing the rotation",
        ),
        RotateError::Core(e) => e.into(),
    }
}

fn new_secret_view(client_id: &str, n: NewSecret) -> NewSecretView {
    NewSecretView {
        client_id: client_id.to_string(),
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
        ("app_id" = Uuid, Path, description = "App id"),
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
pub async fn rotate(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<RotateRequest>,
) -> Result<Json<NewSecretView>, ApiError> {
    caller
        .require_app_manager(&state, parse_org(&org_id)?)
        .await?;
    let (_, app) = load_app(&state, &org_id, &app_id).await?;
    let grace = req.grace_seconds.unwrap_or(app.rotation_grace_secs);
    if !(0..=rekey_core::apps::MAX_DURATION_SECS).contains(&grace) {
        return Err(ApiError::bad_request(
            "graceSeconds must be between 0 and 315360000",
        ));
    }
    let n = ops::rotate(&state, &app, grace, None, false, &caller.audit)
        .await
        .map_err(rotate_error)?;
    Ok(Json(new_secret_view(&app.client_id, n)))
}

/// `POST /api/v1/orgs/{org}/apps/{app}/secrets/regenerate`
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/apps/{app_id}/secrets/regenerate",
    tag = "secrets",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("app_id" = Uuid, Path, description = "App id"),
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
pub async fn regenerate(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id)): Path<(String, String)>,
) -> Result<Json<NewSecretView>, ApiError> {
    caller
        .require_app_manager(&state, parse_org(&org_id)?)
        .await?;
    let (_, app) = load_app(&state, &org_id, &app_id).await?;
    let n = ops::regenerate(&state, &app, None, &caller.audit)
        .await
        .map_err(rotate_error)?;
    Ok(Json(new_secret_view(&app.client_id, n)))
}

/// `POST /api/v1/orgs/{org}/apps/{app}/secrets/finish`
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/apps/{app_id}/secrets/finish",
    tag = "secrets",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("app_id" = Uuid, Path, description = "App id"),
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
pub async fn finish(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id)): Path<(String, String)>,
) -> Result<Json<FinishedRotation>, ApiError> {
    caller
        .require_app_manager(&state, parse_org(&org_id)?)
        .await?;
    let (_, app) = load_app(&state, &org_id, &app_id).await?;
    let revoked = ops::finish(&state, &app, &caller.audit)
        .await
        .map_err(rotate_error)?;
    Ok(Json(FinishedRotation {
        revoked: revoked.iter().map(views::secret).collect(),
    }))
}
