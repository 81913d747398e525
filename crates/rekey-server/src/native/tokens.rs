//! Users' API tokens: create (for oneself), list, revoke.

use crate::extract::NativePath as Path;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rekey_core::model::{ApiToken, ApiTokenId};
use rekey_proto::native::{ApiTokenList, ApiTokenView, CreateApiTokenRequest, CreatedApiToken};
use secrecy::ExposeSecret;

use super::orgs::parse_org;
use crate::errors::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::state::SharedState;

fn view(t: &ApiToken) -> ApiTokenView {
    ApiTokenView {
        id: t.id.0,
        user_id: t.user_id.0,
        name: t.name.clone(),
        hint: t.hint.clone(),
        created_at: t.created_at.to_rfc3339(),
        expires_at: t.expires_at.map(|x| x.to_rfc3339()),
        revoked_at: t.revoked_at.map(|x| x.to_rfc3339()),
    }
}

/// `POST /api/v1/orgs/{org}/api-tokens` `{name, expiresInSeconds?}`: a new token for the
/// calling user in this org, shown once.
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/api-tokens",
    tag = "api-tokens",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
    ),
    request_body = rekey_proto::native::CreateApiTokenRequest,
    responses(
        (status = 201, description = "The token, shown once", body = rekey_proto::native::CreatedApiToken),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    Path(org_id): Path<String>,
    ApiJson(req): ApiJson<CreateApiTokenRequest>,
) -> Result<(StatusCode, Json<CreatedApiToken>), ApiError> {
    let org_id = parse_org(&org_id)?;
    let (token, plain) = state
        .ops
        .create_api_token(&caller.actor(), org_id, &req.name, req.expires_in_seconds)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiToken {
            token: view(&token),
            api_token: plain.expose_secret().to_string(),
        }),
    ))
}

/// `GET /api/v1/orgs/{org}/api-tokens`: owners and admins see every token of the org, others
/// their own.
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/api-tokens",
    tag = "api-tokens",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
    ),
    responses(
        (status = 200, description = "API tokens (metadata)", body = rekey_proto::native::ApiTokenList),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Path(org_id): Path<String>,
) -> Result<Json<ApiTokenList>, ApiError> {
    let org_id = parse_org(&org_id)?;
    let tokens = state.ops.list_api_tokens(&caller.actor(), org_id).await?;
    Ok(Json(ApiTokenList {
        items: tokens.iter().map(view).collect(),
    }))
}

/// `POST /api/v1/orgs/{org}/api-tokens/{id}/revoke`: one's own token, or any token of the org
/// for owners and admins. Access tokens minted with it stop working at once.
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/api-tokens/{token_id}/revoke",
    tag = "api-tokens",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("token_id" = Uuid, Path, description = "Token id"),
    ),
    responses(
        (status = 200, description = "The revoked token", body = rekey_proto::native::ApiTokenView),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn revoke(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, id)): Path<(String, String)>,
) -> Result<Json<ApiTokenView>, ApiError> {
    let org_id = parse_org(&org_id)?;
    let id = ApiTokenId::parse(&id)
        .ok_or_else(|| ApiError::bad_request("The token id must be a UUID"))?;
    let token = state
        .ops
        .revoke_api_token(&caller.actor(), org_id, id)
        .await?;
    Ok(Json(view(&token)))
}
