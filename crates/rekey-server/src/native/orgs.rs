//! Orgs, members and the audit trail.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use rekey_core::model::{ApiToken, ApiTokenId, Membership, OrgId, Principal, Role, User, UserId};
use rekey_core::secret::{generate_api_token, hint};
use rekey_core::store::Page;
use rekey_proto::native::{AddMemberRequest, AddedMember, AuditEventList, MemberView, OrgView};
use secrecy::ExposeSecret;

use super::views;
use crate::errors::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::state::SharedState;

pub(super) fn parse_org(s: &str) -> Result<OrgId, ApiError> {
    OrgId::parse(s).ok_or_else(|| ApiError::bad_request("The organization id must be a UUID"))
}

/// `pageStart` / `pageLimit` from a query string (limit 1..=1000, default 100).
pub(super) fn page_from_query(q: Option<&str>) -> Result<Page, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct P {
        page_start: Option<u32>,
        page_limit: Option<u32>,
    }
    let p: P = serde_urlencoded::from_str(q.unwrap_or("")).map_err(|_| {
        ApiError::bad_request(
            "Query parameters are pageStart and pageLimit, both non-negative integers",
        )
    })?;
    let limit = p.page_limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "pageLimit must be between 1 and 1000",
        ));
    }
    Ok(Page {
        start: p.page_start.unwrap_or(0),
        limit,
    })
}

/// `GET /api/v1/orgs/{org_id}`
pub async fn get_org(
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
pub async fn list_members(
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
pub async fn add_member(
    State(state): State<SharedState>,
    caller: Caller,
    Path(org_id): Path<String>,
    ApiJson(req): ApiJson<AddMemberRequest>,
) -> Result<(StatusCode, Json<AddedMember>), ApiError> {
    let org_id = parse_org(&org_id)?;
    let my_role = caller.role_in(&state, org_id).await?;
    if !my_role.can_manage_members() {
        return Err(ApiError::forbidden(
            "Adding members needs the org_owner or org_admin role",
        ));
    }
    let role: Role = req.role.parse().map_err(|_| {
        ApiError::bad_request("role must be org_owner, org_admin, developer or org_member")
    })?;
    if role == Role::OrgOwner && my_role != Role::OrgOwner {
        return Err(ApiError::forbidden("Only an org_owner may grant org_owner"));
    }
    let email = req.email.trim().to_string();
    if email.len() > 320 || !email.contains('@') {
        return Err(ApiError::bad_request("email must be an email address"));
    }
    let now = state.now();
    let (user, is_new) = match state.store.find_user_by_email(&email).await? {
        Some(u) => (u, false),
        None => {
            let u = User {
                id: UserId::new(),
                display_name: req.display_name.clone().unwrap_or_else(|| email.clone()),
                email: email.clone(),
                created_at: now,
            };
            state.store.create_user(&u).await?;
            (u, true)
        }
    };
    let membership = Membership {
        org_id,
        principal: Principal::User(user.id),
        role,
        created_at: now,
    };
    let ev = caller
        .audit
        .event(now, "member.role_set")
        .org(org_id)
        .details(serde_json::json!({ "member": Principal::User(user.id).to_string(), "role": role.as_str() }));
    state.store.put_membership(&membership, &[ev]).await?;
    let api_token = if is_new {
        let plain = generate_api_token();
        let record = ApiToken {
            id: ApiTokenId::new(),
            user_id: user.id,
            org_id,
            name: "initial".into(),
            hash: state.api_token_hasher.hash(plain.expose_secret()),
            hint: hint(plain.expose_secret()),
            created_at: now,
            expires_at: None,
            revoked_at: None,
        };
        let ev = caller
            .audit
            .event(now, "api_token.created")
            .org(org_id)
            .details(serde_json::json!({ "user": user.id.to_string(), "tokenId": record.id.to_string() }));
        state.store.create_api_token(&record, &[ev]).await?;
        Some(plain.expose_secret().to_string())
    } else {
        None
    };
    Ok((
        StatusCode::CREATED,
        Json(AddedMember {
            user_id: user.id.0,
            email: user.email,
            role: role.as_str().to_string(),
            api_token,
        }),
    ))
}

/// `GET /api/v1/orgs/{org_id}/audit-events`: newest first; owners and admins only.
pub async fn list_audit(
    State(state): State<SharedState>,
    caller: Caller,
    Path(org_id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<AuditEventList>, ApiError> {
    let org_id = parse_org(&org_id)?;
    let page = page_from_query(q.as_deref())?;
    if !caller.role_in(&state, org_id).await?.can_manage_members() {
        return Err(ApiError::forbidden(
            "Reading the audit trail needs the org_owner or org_admin role",
        ));
    }
    let events = state.store.list_audit(Some(org_id), page).await?;
    Ok(Json(AuditEventList {
        items: events.iter().map(views::audit_event).collect(),
    }))
}
