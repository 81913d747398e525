//! Rotation policies through the native API: an org's default, and an app's policy at work
//! (its own settings live on the app, `PATCH .../apps/{app}` `rotationPolicy`).

use crate::extract::NativePath as Path;
use axum::extract::State;
use axum::Json;
use rekey_proto::native::{RotationPolicyView, RotationStatusView};

use super::apps::app_ref;
use super::orgs::parse_org;
use super::views;
use crate::errors::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::state::SharedState;

/// `GET /api/v1/orgs/{org}/rotation-policy`
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/rotation-policy",
    tag = "rotation policies",
    params(("org_id" = Uuid, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The org's default rotation policy (fields left out are off)", body = rekey_proto::native::RotationPolicyView),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_org_policy(
    State(state): State<SharedState>,
    caller: Caller,
    Path(org_id): Path<String>,
) -> Result<Json<RotationPolicyView>, ApiError> {
    let policy = state
        .ops
        .org_rotation_policy(&caller.actor(), parse_org(&org_id)?)
        .await?;
    Ok(Json(views::rotation_policy(policy)))
}

/// `PUT /api/v1/orgs/{org}/rotation-policy`: owners and admins.
#[utoipa::path(
    put,
    path = "/api/v1/orgs/{org_id}/rotation-policy",
    tag = "rotation policies",
    params(("org_id" = Uuid, Path, description = "Organization id")),
    request_body = rekey_proto::native::RotationPolicyView,
    responses(
        (status = 200, description = "The org's new default rotation policy", body = rekey_proto::native::RotationPolicyView),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn set_org_policy(
    State(state): State<SharedState>,
    caller: Caller,
    Path(org_id): Path<String>,
    ApiJson(req): ApiJson<RotationPolicyView>,
) -> Result<Json<RotationPolicyView>, ApiError> {
    let policy = state
        .ops
        .set_org_rotation_policy(
            &caller.actor(),
            parse_org(&org_id)?,
            views::policy_from(req),
        )
        .await?;
    Ok(Json(views::rotation_policy(policy)))
}

/// `GET /api/v1/orgs/{org}/apps/{app}/rotation-policy`
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/apps/{app_id}/rotation-policy",
    tag = "rotation policies",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("app_id" = String, Path, description = "App id (UUID) or client id"),
    ),
    responses(
        (status = 200, description = "The app's policy at work: what applies, the next scheduled rotation, what the next pass does", body = rekey_proto::native::RotationStatusView),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn app_status(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id)): Path<(String, String)>,
) -> Result<Json<RotationStatusView>, ApiError> {
    let status = state
        .ops
        .rotation_status(&caller.actor(), parse_org(&org_id)?, &app_ref(&app_id))
        .await?;
    Ok(Json(views::rotation_status(&status)))
}
