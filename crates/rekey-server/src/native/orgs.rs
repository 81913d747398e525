//! Orgs, members and the audit trail.

use crate::extract::NativePath as Path;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use rekey_core::model::{OrgId, Principal, Role, UserId};
use rekey_core::ops::AppRef;
use rekey_core::policy::Action;
use rekey_core::store::Page;
use rekey_proto::native::{
    AddMemberRequest, AddedMember, AuditEventList, AuditQuery, MemberView, OrgView,
};
use secrecy::ExposeSecret;

use super::views;
use crate::errors::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::state::SharedState;

pub(super) fn parse_org(s: &str) -> Result<OrgId, ApiError> {
    OrgId::parse(s).ok_or_else(|| ApiError::bad_request("The organization id must be a UUID"))
}

/// Parses a query string into `T` (which names every parameter it accepts).
pub(super) fn parse_query<T: serde::de::DeserializeOwned>(q: Option<&str>) -> Result<T, ApiError> {
    serde_urlencoded::from_str(q.unwrap_or("")).map_err(|e| {
        let msg = e.to_string();
        ApiError::bad_request(if msg.starts_with("unknown field") {
            msg
        } else {
            "A query parameter has the wrong type (pageStart and pageLimit are non-negative integers)".into()
        })
    })
}

/// A page from `pageStart` (default 0) and `pageLimit` (1..=1000, default 100).
pub(super) fn page(start: Option<u32>, limit: Option<u32>) -> Result<Page, ApiError> {
    let limit = limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "pageLimit must be between 1 and 1000",
        ));
    }
    Ok(Page {
        start: start.unwrap_or(0),
        limit,
    })
}

/// Query parameters of a plain list.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct PageQuery {
    page_start: Option<u32>,
    page_limit: Option<u32>,
}

/// `pageStart` / `pageLimit` from a query string (limit 1..=1000, default 100).
pub(super) fn page_from_query(q: Option<&str>) -> Result<Page, ApiError> {
    let p: PageQuery = parse_query(q)?;
    page(p.page_start, p.page_limit)
}

/// `GET /api/v1/orgs/{org_id}`
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}",
    tag = "orgs",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
    ),
    responses(
        (status = 200, description = "The organization", body = rekey_proto::native::OrgView),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn get_org(
    State(state): State<SharedState>,
    caller: Caller,
    Path(org_id): Path<String>,
) -> Result<Json<OrgView>, ApiError> {
    let org_id = parse_org(&org_id)?;
    caller.role_in(&state, org_id).await?;
    let org = state
        .store
        .get_org(org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("No such organization"))?;
    Ok(Json(views::org(&org)))
}

/// `GET /api/v1/orgs/{org_id}/members`
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/members",
    tag = "orgs",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
    ),
    responses(
        (status = 200, description = "Members with their roles", body = Vec<rekey_proto::native::MemberView>),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_members(
    State(state): State<SharedState>,
    caller: Caller,
    Path(org_id): Path<String>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    let org_id = parse_org(&org_id)?;
    caller.role_in(&state, org_id).await?;
    let members = state.store.list_memberships(org_id).await?;
    Ok(Json(members.iter().map(views::member).collect()))
}

/// `POST /api/v1/orgs/{org_id}/members`: adds a user by email (creating the user if new)
/// with a role. A new user gets an API token, shown once in the response.
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/members",
    tag = "orgs",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
    ),
    request_body = rekey_proto::native::AddMemberRequest,
    responses(
        (status = 201, description = "Added; a new user gets an API token, shown once", body = rekey_proto::native::AddedMember),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Conflict with the current state", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn add_member(
    State(state): State<SharedState>,
    caller: Caller,
    Path(org_id): Path<String>,
    ApiJson(req): ApiJson<AddMemberRequest>,
) -> Result<(StatusCode, Json<AddedMember>), ApiError> {
    let org_id = parse_org(&org_id)?;
    let role = parse_role(&req.role)?;
    let added = state
        .ops
        .add_member(
            &caller.actor(),
            org_id,
            &req.email,
            req.display_name.as_deref(),
            role,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(AddedMember {
            user_id: added.user.id.0,
            email: added.user.email,
            role: added.role.as_str().to_string(),
            api_token: added.api_token.map(|t| t.expose_secret().to_string()),
        }),
    ))
}

fn parse_role(s: &str) -> Result<Role, ApiError> {
    s.parse().map_err(|_| {
        ApiError::bad_request("role must be org_owner, org_admin, developer or org_member")
    })
}

/// `GET /api/v1/orgs/{org_id}/audit-events?appId&action&since&until&pageStart&pageLimit`:
/// newest first; owners and admins only. `since`/`until` are RFC 3339 times.
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/audit-events",
    tag = "audit",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("appId" = Option<String>, Query, description = "Only this app (its id or its client id)"),
        ("action" = Option<String>, Query, description = "Only this action"),
        ("since" = Option<String>, Query, description = "RFC 3339, inclusive"),
        ("until" = Option<String>, Query, description = "RFC 3339, exclusive"),
        ("pageStart" = Option<u32>, Query, description = "Items to skip (default 0)"),
        ("pageLimit" = Option<u32>, Query, description = "Items per page, 1-1000 (default 100)"),
    ),
    responses(
        (status = 200, description = "Audit events, newest first", body = rekey_proto::native::AuditEventList),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_audit(
    State(state): State<SharedState>,
    caller: Caller,
    Path(org_id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<AuditEventList>, ApiError> {
    let org_id = parse_org(&org_id)?;
    let q: AuditQuery = parse_query(q.as_deref())?;
    let page = page(q.page_start, q.page_limit)?;
    let time = |v: &str, name: &str| {
        rekey_core::Timestamp::parse_rfc3339(v)
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be an RFC 3339 time")))
    };
    if q.action.as_ref().is_some_and(|a| a.len() > 64) {
        return Err(ApiError::bad_request("action is at most 64 characters"));
    }
    caller.authorize(&state, org_id, Action::ReadAudit).await?;
    // An app id names a deleted app's events too; a client id names a current app.
    let app = match q.app_id.as_deref().map(AppRef::parse) {
        Some(AppRef::Id(id)) => Some(id),
        Some(client_id) => Some(state.ops.app_in(org_id, &client_id).await?.id),
        None => None,
    };
    let filter = rekey_core::store::AuditFilter {
        org: Some(org_id),
        app,
        action: q.action,
        since: q.since.map(|v| time(&v, "since")).transpose()?,
        until: q.until.map(|v| time(&v, "until")).transpose()?,
    };
    let events = state.store.list_audit(&filter, page).await?;
    Ok(Json(AuditEventList {
        items: events.iter().map(views::audit_event).collect(),
    }))
}

/// `GET /api/v1/orgs/{org_id}/audit-events/verify`: checks the org's audit hash chain link
/// by link and reports the first broken one; owners and admins only.
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/audit-events/verify",
    tag = "audit",
    params(("org_id" = Uuid, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The chain, checked", body = rekey_proto::native::AuditVerification),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn verify_audit(
    State(state): State<SharedState>,
    caller: Caller,
    Path(org_id): Path<String>,
) -> Result<Json<rekey_proto::native::AuditVerification>, ApiError> {
    let org_id = parse_org(&org_id)?;
    caller.authorize(&state, org_id, Action::ReadAudit).await?;
    let report = state.store.verify_audit_chain(&org_id.to_string()).await?;
    Ok(Json(rekey_proto::native::AuditVerification {
        intact: report.broken.is_none(),
        events: report.events,
        unlinked: report.unlinked,
        broken: report.broken.map(|b| rekey_proto::native::AuditBrokenLink {
            event_id: b.event_id,
            reason: b.reason,
        }),
    }))
}

fn parse_member(kind: &str, id: &str) -> Result<Principal, ApiError> {
    let uuid = uuid::Uuid::parse_str(id)
        .ok()
        .filter(|_| id.len() == 36)
        .ok_or_else(|| ApiError::bad_request("The member id must be a UUID"))?;
    match kind {
        "user" => Ok(Principal::User(UserId(uuid))),
        "app" => Ok(Principal::App(rekey_core::model::AppId(uuid))),
        _ => Err(ApiError::bad_request("The member kind must be user or app")),
    }
}

/// `PUT /api/v1/orgs/{org}/members/{kind}/{id}` `{role}`: sets the role of a user or of an
/// app (which makes it a service account).
#[utoipa::path(
    put,
    path = "/api/v1/orgs/{org_id}/members/{kind}/{member_id}",
    tag = "orgs",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("kind" = String, Path, description = "user or app"),
        ("member_id" = Uuid, Path, description = "User or app id"),
    ),
    request_body = rekey_proto::native::SetRoleRequest,
    responses(
        (status = 200, description = "The member with the new role", body = rekey_proto::native::MemberView),
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
pub(super) async fn set_member_role(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, kind, id)): Path<(String, String, String)>,
    ApiJson(req): ApiJson<rekey_proto::native::SetRoleRequest>,
) -> Result<Json<MemberView>, ApiError> {
    let org_id = parse_org(&org_id)?;
    let principal = parse_member(&kind, &id)?;
    let role = parse_role(&req.role)?;
    let m = state
        .ops
        .set_role(&caller.actor(), org_id, principal, role)
        .await?;
    let stored = state
        .store
        .get_membership(org_id, principal)
        .await?
        .unwrap_or(m);
    Ok(Json(views::member(&stored)))
}

/// `DELETE /api/v1/orgs/{org}/members/{kind}/{id}`
#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org_id}/members/{kind}/{member_id}",
    tag = "orgs",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("kind" = String, Path, description = "user or app"),
        ("member_id" = Uuid, Path, description = "User or app id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Conflict with the current state", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn remove_member(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, kind, id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let org_id = parse_org(&org_id)?;
    let principal = parse_member(&kind, &id)?;
    state
        .ops
        .remove_member(&caller.actor(), org_id, principal)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/signing-keys`: the token signing keys (public metadata), for any
/// authenticated caller. Rotating them: [`rotate_signing_key`].
#[utoipa::path(
    get,
    path = "/api/v1/signing-keys",
    tag = "keys",
    responses(
        (status = 200, description = "Published signing keys", body = rekey_proto::native::SigningKeyList),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn list_signing_keys(
    State(state): State<SharedState>,
    _caller: Caller,
) -> Result<Json<rekey_proto::native::SigningKeyList>, ApiError> {
    let signing = state.keys().signing_kid_at(state.now()).to_string();
    let keys = state.store.list_signing_keys().await?;
    let now = state.now();
    Ok(Json(rekey_proto::native::SigningKeyList {
        items: keys
            .iter()
            .filter(|k| k.publish_until.is_none_or(|t| now < t))
            .map(|k| signing_key_view(k, &signing))
            .collect(),
    }))
}

fn signing_key_view(
    k: &rekey_core::model::StoredSigningKey,
    signing: &str,
) -> rekey_proto::native::SigningKeyView {
    rekey_proto::native::SigningKeyView {
        signing: k.kid == signing,
        kid: k.kid.clone(),
        algorithm: k.algorithm.clone(),
        created_at: k.created_at.to_rfc3339(),
        publish_until: k.publish_until.map(|t| t.to_rfc3339()),
        signs_from: k.signs_from.map(|t| t.to_rfc3339()),
    }
}

/// `POST /api/v1/signing-keys`: a server administrator rotates the signing key. The new key
/// is published at once and signs `signing_key_prepublish_seconds` later; 409 while another
/// rotated-in key waits to sign.
#[utoipa::path(
    post,
    path = "/api/v1/signing-keys",
    tag = "keys",
    responses(
        (status = 201, description = "The new key, published, signing later", body = rekey_proto::native::SigningKeyView),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not a server administrator", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A rotated-in key waits to sign already", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(super) async fn rotate_signing_key(
    State(state): State<SharedState>,
    caller: Caller,
) -> Result<(StatusCode, Json<rekey_proto::native::SigningKeyView>), ApiError> {
    let key = state.ops.rotate_signing_key(&caller.actor()).await?;
    let signing = state.keys().signing_kid_at(state.now()).to_string();
    Ok((StatusCode::CREATED, Json(signing_key_view(&key, &signing))))
}
