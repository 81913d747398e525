//! Users' API tokens: create (for oneself), list, revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rekey_core::model::{ApiToken, ApiTokenId, Principal};
use rekey_core::secret::{generate_api_token, hint};
use rekey_proto::native::{ApiTokenList, ApiTokenView, CreateApiTokenRequest, CreatedApiToken};
use secrecy::ExposeSecret;

use super::orgs::parse_org;
use crate::errors::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::state::SharedState;

/// Longest API-token lifetime a caller may ask for: ten years.
const MAX_TOKEN_LIFETIME_SECS: i64 = 10 * 365 * 86_400;

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
pub async fn create(
    State(state): State<SharedState>,
    caller: Caller,
    Path(org_id): Path<String>,
    ApiJson(req): ApiJson<CreateApiTokenRequest>,
) -> Result<(StatusCode, Json<CreatedApiToken>), ApiError> {
    let org_id = parse_org(&org_id)?;
    caller.role_in(&state, org_id).await?;
    let Principal::User(user_id) = caller.principal else {
        return Err(ApiError::forbidden(
            "Only users have API tokens; service accounts use their client credentials",
        ));
    };
    if req.name.trim().is_empty() || req.name.len() > 256 || req.name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "name must be 1 to 256 printable characters",
        ));
    }
    if req
        .expires_in_seconds
        .is_some_and(|s| !(1..=MAX_TOKEN_LIFETIME_SECS).contains(&s))
    {
        return Err(ApiError::bad_request(
            "expiresInSeconds must be between 1 and 315360000",
        ));
    }
    let now = state.now();
    let plain = generate_api_token();
    let token = ApiToken {
        id: ApiTokenId::new(),
        user_id,
        org_id,
        name: req.name,
        hash: state.api_token_hasher.hash(plain.expose_secret()),
        hint: hint(plain.expose_secret()),
        created_at: now,
        expires_at: req.expires_in_seconds.map(|s| now.plus_secs(s)),
        revoked_at: None,
    };
    let ev = caller
        .audit
        .event(now, "api_token.created")
        .org(org_id)
        .details(
            serde_json::json!({ "tokenId": token.id.to_string(), "user": user_id.to_string() }),
        );
    state.store.create_api_token(&token, &[ev]).await?;
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
pub async fn list(
    State(state): State<SharedState>,
    caller: Caller,
    Path(org_id): Path<String>,
) -> Result<Json<ApiTokenList>, ApiError> {
    let org_id = parse_org(&org_id)?;
    let role = caller.role_in(&state, org_id).await?;
    let user = match caller.principal {
        _ if role.can_manage_members() => None,
        Principal::User(u) => Some(u),
        Principal::App(_) => return Ok(Json(ApiTokenList { items: vec![] })),
    };
    let tokens = state.store.list_api_tokens(org_id, user).await?;
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
pub async fn revoke(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, id)): Path<(String, String)>,
) -> Result<Json<ApiTokenView>, ApiError> {
    let org_id = parse_org(&org_id)?;
    let role = caller.role_in(&state, org_id).await?;
    let id = ApiTokenId::parse(&id)
        .ok_or_else(|| ApiError::bad_request("The token id must be a UUID"))?;
    let token = match state.store.get_api_token(id).await? {
        Some(t) if t.org_id == org_id => t,
        _ => {
            return Err(ApiError::not_found(
                "No such API token in this organization",
            ))
        }
    };
    if caller.principal != Principal::User(token.user_id) && !role.can_manage_members() {
        return Err(ApiError::forbidden(
            "Only the token's user, an org_owner or an org_admin may revoke it",
        ));
    }
    let now = state.now();
    let ev = caller
        .audit
        .event(now, "api_token.revoked")
        .org(org_id)
        .details(
            serde_json::json!({ "tokenId": id.to_string(), "user": token.user_id.to_string() }),
        );
    state.store.revoke_api_token(id, now, &[ev]).await?;
    let token = state
        .store
        .get_api_token(id)
        .await?
        .ok_or_else(ApiError::internal)?;
    Ok(Json(view(&token)))
}
