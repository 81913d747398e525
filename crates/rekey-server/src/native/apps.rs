//! Apps and their secrets' metadata.

use crate::extract::NativePath as Path;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use rekey_core::apps::{replace_if_given as set, AppSettings};
use rekey_core::model::{App, OrgId, Role, SecretId, GRANT_CLIENT_CREDENTIALS};
use rekey_core::ops::apps::NewApp;
use rekey_proto::native::{
    AppList, AppView, CreateAppRequest, CreatedApp, SecretList, SecretView, UpdateAppRequest,
};
use secrecy::ExposeSecret;

use super::orgs::{page_from_query, parse_org};
use super::views;
use crate::config::Config;
use crate::errors::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::state::SharedState;
use rekey_core::ops::AppRef;
use rekey_core::policy::Action;

/// The `{app_id}` of a path: the app's id, or its client id (as `rekey rotate`, CSP and the
/// token endpoints take it).
pub(super) fn app_ref(s: &str) -> AppRef {
    AppRef::parse(s)
}

/// Parses both path ids and loads the app, which must belong to the org (404 otherwise).
/// For reads: the caller must be a member of the org.
pub(super) async fn load_app(
    state: &SharedState,
    caller: &Caller,
    org: &str,
    app: &str,
) -> Result<(OrgId, App), ApiError> {
    let org_id = parse_org(org)?;
    let actor = caller.actor();
    state.ops.authorize(&actor, org_id, Action::Read).await?;
    Ok((org_id, state.ops.app_in(org_id, &app_ref(app)).await?))
}

/// `POST /api/v1/orgs/{org_id}/apps`: 201 with the app and its first secret (shown once).
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/apps",
    tag = "apps",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
    ),
    request_body = rekey_proto::native::CreateAppRequest,
    responses(
        (status = 201, description = "The app and its first secret, shown once", body = rekey_proto::native::CreatedApp),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Conflict with the current state", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn create_app(
    State(state): State<SharedState>,
    caller: Caller,
    Path(org_id): Path<String>,
    ApiJson(req): ApiJson<CreateAppRequest>,
) -> Result<(StatusCode, Json<CreatedApp>), ApiError> {
    let org_id = parse_org(&org_id)?;
    let input = new_app_input(req, &state.config)?;
    let created = state.ops.create_app(&caller.actor(), org_id, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApp {
            app: views::app(&created.app),
            client_secret: created.plain.expose_secret().to_string(),
            secret: views::secret(&created.secret),
        }),
    ))
}

/// The use case's input from the request, with the server's defaults.
fn new_app_input(req: CreateAppRequest, c: &Config) -> Result<NewApp, ApiError> {
    let service_account = req
        .service_account_role
        .as_deref()
        .map(|r| {
            r.parse::<Role>().map_err(|_| {
                ApiError::bad_request(
                    "serviceAccountRole must be org_owner, org_admin, developer or org_member",
                )
            })
        })
        .transpose()?;
    let settings = AppSettings {
        name: req.name,
        description: req.description.unwrap_or_default(),
        grant_types: req
            .grant_types
            .unwrap_or_else(|| vec![GRANT_CLIENT_CREDENTIALS.into()]),
        scopes: req.scopes.unwrap_or_default(),
        access_token_ttl_secs: req
            .access_token_ttl_seconds
            .unwrap_or(c.default_access_token_ttl_seconds),
        secret_lifetime_secs: req
            .secret_lifetime_seconds
            .unwrap_or(c.default_secret_lifetime_seconds),
        rotation_grace_secs: req
            .rotation_grace_seconds
            .unwrap_or(c.default_rotation_grace_seconds),
        owner_only_secret_rotation: req.owner_only_secret_rotation.unwrap_or(false),
        audiences: req.audiences.unwrap_or_default(),
        rotation_policy: req
            .rotation_policy
            .map(super::views::policy_from)
            .unwrap_or_default(),
    };
    Ok(NewApp {
        settings,
        client_id: req.client_id,
        service_account,
        secret: None,
        dialect: "native",
    })
}

/// `GET /api/v1/orgs/{org_id}/apps`
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/apps",
    tag = "apps",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("pageStart" = Option<u32>, Query, description = "Items to skip (default 0)"),
        ("pageLimit" = Option<u32>, Query, description = "Items per page, 1-1000 (default 100)"),
    ),
    responses(
        (status = 200, description = "A page of apps", body = rekey_proto::native::AppList),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_apps(
    State(state): State<SharedState>,
    caller: Caller,
    Path(org_id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<AppList>, ApiError> {
    let org_id = parse_org(&org_id)?;
    let page = page_from_query(q.as_deref())?;
    caller.role_in(&state, org_id).await?;
    let apps = state.store.list_apps(org_id, page).await?;
    Ok(Json(AppList {
        items: apps.iter().map(views::app).collect(),
        page_start: page.start,
        page_limit: page.limit,
    }))
}

/// `GET /api/v1/orgs/{org_id}/apps/{app_id}`
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/apps/{app_id}",
    tag = "apps",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("app_id" = String, Path, description = "App id (UUID) or client id"),
    ),
    responses(
        (status = 200, description = "The app", body = rekey_proto::native::AppView),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_app(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id)): Path<(String, String)>,
) -> Result<Json<AppView>, ApiError> {
    let (_, app) = load_app(&state, &caller, &org_id, &app_id).await?;
    Ok(Json(views::app(&app)))
}

/// `PATCH /api/v1/orgs/{org_id}/apps/{app_id}`: changes the given fields only.
#[utoipa::path(
    patch,
    path = "/api/v1/orgs/{org_id}/apps/{app_id}",
    tag = "apps",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("app_id" = String, Path, description = "App id (UUID) or client id"),
    ),
    request_body = rekey_proto::native::UpdateAppRequest,
    responses(
        (status = 200, description = "The changed app", body = rekey_proto::native::AppView),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn update_app(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<UpdateAppRequest>,
) -> Result<Json<AppView>, ApiError> {
    let change = |s: &mut AppSettings| {
        let UpdateAppRequest {
            name,
            description,
            grant_types,
            scopes,
            access_token_ttl_seconds,
            secret_lifetime_seconds,
            rotation_grace_seconds,
            owner_only_secret_rotation,
            audiences,
            rotation_policy,
        } = req;
        set(&mut s.name, name);
        set(&mut s.description, description);
        set(&mut s.grant_types, grant_types);
        set(&mut s.scopes, scopes);
        set(&mut s.access_token_ttl_secs, access_token_ttl_seconds);
        set(&mut s.secret_lifetime_secs, secret_lifetime_seconds);
        set(&mut s.rotation_grace_secs, rotation_grace_seconds);
        set(
            &mut s.owner_only_secret_rotation,
            owner_only_secret_rotation,
        );
        set(&mut s.audiences, audiences);
        set(
            &mut s.rotation_policy,
            rotation_policy.map(super::views::policy_from),
        );
    };
    let app = state
        .ops
        .update_app(
            &caller.actor(),
            parse_org(&org_id)?,
            &app_ref(&app_id),
            change,
            None,
        )
        .await?;
    Ok(Json(views::app(&app)))
}

/// `DELETE /api/v1/orgs/{org_id}/apps/{app_id}`: 204; the app's secrets go with it.
#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org_id}/apps/{app_id}",
    tag = "apps",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("app_id" = String, Path, description = "App id (UUID) or client id"),
    ),
    responses(
        (status = 204, description = "Deleted with its secrets"),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn delete_app(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .ops
        .delete_app(&caller.actor(), parse_org(&org_id)?, &app_ref(&app_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/orgs/{org_id}/apps/{app_id}/secrets`: metadata only, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/apps/{app_id}/secrets",
    tag = "secrets",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("app_id" = String, Path, description = "App id (UUID) or client id"),
    ),
    responses(
        (status = 200, description = "Secrets metadata, newest first", body = rekey_proto::native::SecretList),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_secrets(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id)): Path<(String, String)>,
) -> Result<Json<SecretList>, ApiError> {
    let (_, app) = load_app(&state, &caller, &org_id, &app_id).await?;
    let secrets = state.store.list_secrets(app.id).await?;
    Ok(Json(SecretList {
        items: secrets.iter().map(views::secret).collect(),
    }))
}

/// `POST /api/v1/orgs/{org_id}/apps/{app_id}/secrets/{secret_id}/revoke`: ends one secret
/// now. Explicit, so it may leave the app without a valid secret; access tokens minted with
/// the secret stop working on Rekey's APIs at once.
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/apps/{app_id}/secrets/{secret_id}/revoke",
    tag = "secrets",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("app_id" = String, Path, description = "App id (UUID) or client id"),
        ("secret_id" = Uuid, Path, description = "Secret id"),
    ),
    responses(
        (status = 200, description = "The revoked secret", body = rekey_proto::native::SecretView),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn revoke_secret(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id, secret_id)): Path<(String, String, String)>,
) -> Result<Json<SecretView>, ApiError> {
    let org_id = parse_org(&org_id)?;
    let secret_id = SecretId::parse(&secret_id)
        .ok_or_else(|| ApiError::bad_request("The secret id must be a UUID"))?;
    let s = state
        .ops
        .revoke_secret(&caller.actor(), org_id, &app_ref(&app_id), secret_id)
        .await?;
    Ok(Json(views::secret(&s)))
}
