//! The oauth-apps endpoints and their `/secret` sub-resource.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use rekey_core::apps::{new_app, secret_record, AppSettings, MAX_DURATION_SECS};
use rekey_core::error::CoreError;
use rekey_core::model::{App, Membership, OrgId, Principal, Role, GRANT_CLIENT_CREDENTIALS};
use rekey_core::secret::{check_complexity, is_valid_client_id};
use rekey_core::store::Page;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{CspCaller, CspError, CspJson};
use crate::secrets::{self as ops, RotateError};
use crate::state::SharedState;

/// Most client ids in one bulk delete.
const MAX_BULK_DELETE: usize = 15;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RoleRef {
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OrganizationScopes {
    #[serde(default)]
    roles: Vec<RoleRef>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AllowedScopes {
    #[serde(default)]
    general_scopes: Vec<String>,
    #[serde(default)]
    organization_scopes: Option<OrganizationScopes>,
    #[serde(default)]
    services_scopes: Vec<Value>,
}

/// `OrgOauthAppRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOauthApp {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "accessTokenTTL")]
    access_token_ttl: Option<i64>,
    #[serde(default)]
    allowed_grant_types: Option<Vec<String>>,
    #[serde(default)]
    allowed_scopes: Option<AllowedScopes>,
    #[serde(default)]
    owner_only_secret_rotation: Option<bool>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    secret_rotation_expiration_in_seconds: Option<i64>,
}

/// A patch: every create field but `id` and `secret`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchOauthApp {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "accessTokenTTL")]
    access_token_ttl: Option<i64>,
    #[serde(default)]
    allowed_grant_types: Option<Vec<String>>,
    #[serde(default)]
    allowed_scopes: Option<AllowedScopes>,
    #[serde(default)]
    owner_only_secret_rotation: Option<bool>,
    #[serde(default)]
    secret_rotation_expiration_in_seconds: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkDelete {
    client_ids_to_delete: Vec<String>,
}

/// `{}`: the PUT body CSP requires.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerRotation {
    new_client_secret: String,
    #[serde(default)]
    secret_rotation_expiration_in_seconds: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientCredentials {
    client_id: String,
    client_secret: String,
}

fn parse_org(s: &str) -> Result<OrgId, CspError> {
    OrgId::parse(s).ok_or_else(|| CspError::bad_request("orgId must be a GUID"))
}

fn check_client_id(s: &str) -> Result<(), CspError> {
    if is_valid_client_id(s) {
        Ok(())
    } else {
        Err(CspError::bad_request(
            "oauthAppId must be 5 to 256 characters of A-Z, a-z, 0-9, '_' and '-'",
        ))
    }
}

/// The org role granted by `organizationScopes.roles` (the most privileged named), if any.
fn org_role(scopes: &AllowedScopes) -> Result<Option<Role>, CspError> {
    if !scopes.services_scopes.is_empty() {
        return Err(CspError::bad_request(
            "servicesScopes are not supported by this server",
        ));
    }
    let mut best: Option<Role> = None;
    for r in scopes.organization_scopes.iter().flat_map(|o| &o.roles) {
        let role: Role = r
            .name
            .strip_prefix("csp:")
            .unwrap_or(&r.name)
            .parse()
            .map_err(|_| {
                CspError::bad_request(format!(
                    "Unknown organization role {:?}: use org_admin, developer or org_member",
                    r.name
                ))
            })?;
        if role == Role::OrgOwner {
            return Err(CspError::bad_request(
                "An OAuth app cannot have the org_owner role",
            ));
        }
        let rank = |r: Role| Role::ALL.iter().position(|x| *x == r);
        if best.is_none_or(|b| rank(role) < rank(b)) {
            best = Some(role);
        }
    }
    Ok(best)
}

/// Refuses a request beyond the org's rate limit (shared by every node).
async fn rate_limit(state: &SharedState, org: OrgId) -> Result<(), CspError> {
    let c = &state.config;
    if state
        .store
        .take_rate_token(
            &format!("csp:org:{org}"),
            c.csp_rate_per_second,
            c.csp_rate_burst,
            state.now(),
        )
        .await?
    {
        Ok(())
    } else {
        Err(CspError::too_many_requests())
    }
}

/// Requires an org_owner, org_admin or developer of `org` (user or service account).
async fn require_manager(
    state: &SharedState,
    caller: &CspCaller,
    org: OrgId,
) -> Result<Role, CspError> {
    let forbidden = || CspError::forbidden("The user is forbidden to use the API");
    if caller.0.org_id != org {
        return Err(forbidden());
    }
    let role = state
        .store
        .get_membership(org, caller.0.principal)
        .await?
        .map(|m| m.role)
        .ok_or_else(forbidden)?;
    if role.can_manage_apps() {
        Ok(role)
    } else {
        Err(forbidden())
    }
}

/// An app's org role may only be set by someone who may grant it.
fn check_grant(caller_role: Role, role: Option<Role>) -> Result<(), CspError> {
    match role {
        Some(r) if !caller_role.may_grant(r) => Err(CspError::forbidden(
            "Organization roles for an OAuth app need the org_owner or org_admin role, and none above your own",
        )),
        _ => Ok(()),
    }
}

/// Loads the app `client_id` of `org` (404 if it is not there).
async fn load_app(state: &SharedState, org: OrgId, client_id: &str) -> Result<App, CspError> {
    match state.store.find_app_by_client_id(client_id).await? {
        Some(a) if a.org_id == org => Ok(a),
        _ => Err(CspError::not_found(
            "The requested resource could not be found",
        )),
    }
}

/// Common start of every request: ids, rate limit, and the caller's right to manage apps.
async fn managed(state: &SharedState, caller: &CspCaller, org: &str) -> Result<OrgId, CspError> {
    managed_with_role(state, caller, org)
        .await
        .map(|(org, _)| org)
}

async fn managed_with_role(
    state: &SharedState,
    caller: &CspCaller,
    org: &str,
) -> Result<(OrgId, Role), CspError> {
    let org = parse_org(org)?;
    let role = require_manager(state, caller, org).await?;
    rate_limit(state, org).await?;
    Ok((org, role))
}

/// For POST/DELETE on a secret: a manager, or the app itself unless `ownerOnlySecretRotation`.
async fn secret_actor(
    state: &SharedState,
    caller: &CspCaller,
    org: &str,
    client_id: &str,
) -> Result<App, CspError> {
    let org = parse_org(org)?;
    check_client_id(client_id)?;
    if caller.0.org_id == org {
        if let Principal::App(me) = caller.0.principal {
            if let Some(app) = state.store.get_app(me).await? {
                if app.client_id == client_id && !app.owner_only_secret_rotation {
                    rate_limit(state, org).await?;
                    return Ok(app);
                }
            }
        }
    }
    require_manager(state, caller, org).await?;
    rate_limit(state, org).await?;
    load_app(state, org, client_id).await
}

fn validate_grace(g: Option<i64>) -> Result<Option<i64>, CspError> {
    match g {
        Some(v) if !(0..=MAX_DURATION_SECS).contains(&v) => Err(CspError::bad_request(
            "secretRotationExpirationInSeconds must be between 0 and 315360000",
        )),
        g => Ok(g),
    }
}

fn supplied_secret(s: &str) -> Result<SecretString, CspError> {
    check_complexity(s)
        .map_err(|e| CspError::bad_request(format!("Invalid client secret: {e}")))?;
    Ok(SecretString::from(s.to_string()))
}

/// The CSP view of an app: never a secret; times in epoch milliseconds.
async fn view(state: &SharedState, app: &App, role: Option<Role>) -> Result<Value, CspError> {
    let now = state.now();
    let secrets = state.store.list_secrets(app.id).await?;
    let valid: Vec<_> = secrets.iter().filter(|s| s.is_valid(now)).collect();
    let last_used = valid.iter().filter_map(|s| s.last_used_at).max();
    let current_age = valid
        .iter()
        .find(|s| s.state == rekey_core::model::SecretState::Current)
        .map(|s| now.since(s.created_at).as_secs());
    Ok(json!({
        "id": app.client_id,
        "orgId": app.org_id.to_string(),
        "displayName": app.name,
        "description": app.description,
        "accessTokenTTL": app.access_token_ttl_secs,
        "allowedGrantTypes": app.grant_types,
        "allowedScopes": {
            "generalScopes": app.scopes,
            "organizationScopes": { "roles": role.map(|r| vec![json!({ "name": r.perm() })]).unwrap_or_default() },
            "servicesScopes": [],
        },
        "ownerOnlySecretRotation": app.owner_only_secret_rotation,
        "secretRotationExpirationInSeconds": app.rotation_grace_secs,
        "createdAt": app.created_at.as_millis(),
        "updatedAt": app.updated_at.as_millis(),
        "lastUsedAt": last_used.map(|t| t.as_millis()),
        "secretAge": current_age,
    }))
}

async fn role_of(state: &SharedState, app: &App) -> Result<Option<Role>, CspError> {
    Ok(state
        .store
        .get_membership(app.org_id, Principal::App(app.id))
        .await?
        .map(|m| m.role))
}

/// `POST .../oauth-apps`: 200 `{clientId, clientSecret}`.
pub async fn create(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path(org): Path<String>,
    CspJson(req): CspJson<CreateOauthApp>,
) -> Result<Json<ClientCredentials>, CspError> {
    let (org, caller_role) = managed_with_role(&state, &caller, &org).await?;
    if let Some(id) = &req.id {
        check_client_id(id)?;
    }
    let scopes = req.allowed_scopes.unwrap_or_default();
    let role = org_role(&scopes)?;
    check_grant(caller_role, role)?;
    let supplied = req.secret.as_deref().map(supplied_secret).transpose()?;
    let c = &state.config;
    let settings = AppSettings {
        name: req
            .display_name
            .or_else(|| req.id.clone())
            .unwrap_or_else(|| "OAuth app".into()),
        description: req.description.unwrap_or_default(),
        grant_types: req
            .allowed_grant_types
            .unwrap_or_else(|| vec![GRANT_CLIENT_CREDENTIALS.into()]),
        scopes: scopes.general_scopes,
        access_token_ttl_secs: req
            .access_token_ttl
            .unwrap_or(c.default_access_token_ttl_seconds),
        secret_lifetime_secs: c.default_secret_lifetime_seconds,
        rotation_grace_secs: validate_grace(req.secret_rotation_expiration_in_seconds)?
            .unwrap_or(c.default_rotation_grace_seconds),
        owner_only_secret_rotation: req.owner_only_secret_rotation.unwrap_or(false),
    };
    let now = state.now();
    let ctx = &caller.0.audit;
    let (app, mut secret, mut plain) = new_app(
        org,
        req.id,
        settings,
        role.is_some(),
        &state.secret_hasher,
        &ctx.actor,
        now,
    )?;
    if let Some(s) = supplied {
        secret = secret_record(&app, &s, &state.secret_hasher, &ctx.actor, now);
        plain = s;
    }
    let membership = role.map(|role| Membership {
        org_id: org,
        principal: Principal::App(app.id),
        role,
        created_at: now,
    });
    let audit = [
        ctx.event(now, "app.created")
            .org(org)
            .app(app.id)
            .details(json!({ "clientId": app.client_id, "dialect": "csp" })),
        ctx.event(now, "secret.created")
            .org(org)
            .app(app.id)
            .secret(secret.id),
    ];
    state
        .store
        .create_app(&app, &secret, membership.as_ref(), &audit)
        .await
        .map_err(|e| match e {
            CoreError::Conflict(_) => {
                CspError::conflict("An OAuth app with this id already exists")
            }
            e => e.into(),
        })?;
    Ok(Json(ClientCredentials {
        client_id: app.client_id,
        client_secret: plain.expose_secret().to_string(),
    }))
}

/// `GET .../oauth-apps?pageStart&pageLimit&searchTerm`: `pageStart` is 1-based.
pub async fn list(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path(org): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, CspError> {
    let org = managed(&state, &caller, &org).await?;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Q {
        page_start: Option<u32>,
        page_limit: Option<u32>,
        search_term: Option<String>,
    }
    let q: Q = serde_urlencoded::from_str(q.as_deref().unwrap_or("")).map_err(|_| {
        CspError::bad_request(
            "Query parameters are pageStart, pageLimit (positive integers) and searchTerm",
        )
    })?;
    let start = q.page_start.unwrap_or(1);
    let limit = q.page_limit.unwrap_or(20);
    if start == 0 || !(1..=200).contains(&limit) {
        return Err(CspError::bad_request(
            "pageStart must be at least 1 and pageLimit between 1 and 200",
        ));
    }
    if q.search_term
        .as_ref()
        .is_some_and(|t| t.len() > 256 || t.chars().any(char::is_control))
    {
        return Err(CspError::bad_request(
            "searchTerm must be at most 256 characters",
        ));
    }
    let term = q.search_term.as_deref().filter(|t| !t.is_empty());
    let (apps, total) = state
        .store
        .search_apps(
            org,
            term,
            Page {
                start: start - 1,
                limit,
            },
        )
        .await?;
    let roles = state.store.list_memberships(org).await?;
    let mut results = Vec::with_capacity(apps.len());
    for a in &apps {
        let role = roles
            .iter()
            .find(|m| m.principal == Principal::App(a.id))
            .map(|m| m.role);
        results.push(view(&state, a, role).await?);
    }
    Ok(Json(
        json!({ "results": results, "totalResults": total, "pageStart": start, "pageLimit": limit }),
    ))
}

/// `GET .../oauth-apps/{id}`
pub async fn get(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<Value>, CspError> {
    check_client_id(&id)?;
    let org_id = managed(&state, &caller, &org).await?;
    let app = load_app(&state, org_id, &id).await?;
    let role = role_of(&state, &app).await?;
    Ok(Json(view(&state, &app, role).await?))
}

/// `PATCH .../oauth-apps/{id}`: changes the given fields; 200 with the app.
pub async fn patch(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path((org, id)): Path<(String, String)>,
    CspJson(req): CspJson<PatchOauthApp>,
) -> Result<Json<Value>, CspError> {
    check_client_id(&id)?;
    let (org, caller_role) = managed_with_role(&state, &caller, &org).await?;
    let mut app = load_app(&state, org, &id).await?;
    let mut s = AppSettings::of(&app);
    let mut new_role = None;
    if let Some(v) = req.display_name {
        s.name = v;
    }
    if let Some(v) = req.description {
        s.description = v;
    }
    if let Some(v) = req.access_token_ttl {
        s.access_token_ttl_secs = v;
    }
    if let Some(v) = req.allowed_grant_types {
        s.grant_types = v;
    }
    if let Some(v) = req.owner_only_secret_rotation {
        s.owner_only_secret_rotation = v;
    }
    if let Some(v) = validate_grace(req.secret_rotation_expiration_in_seconds)? {
        s.rotation_grace_secs = v;
    }
    if let Some(scopes) = req.allowed_scopes {
        let role = org_role(&scopes)?;
        let old = role_of(&state, &app).await?;
        if role != old {
            check_grant(caller_role, role)?;
            check_grant(caller_role, old)?;
        }
        new_role = Some(role);
        s.scopes = scopes.general_scopes;
    }
    let now = state.now();
    s.apply_to(&mut app, now)?;
    let ctx = &caller.0.audit;
    state
        .store
        .update_app(&app, &[ctx.event(now, "app.updated").org(org).app(app.id)])
        .await?;
    if let Some(role) = new_role {
        let principal = Principal::App(app.id);
        let ev = ctx
            .event(now, "member.role_set")
            .org(org)
            .app(app.id)
            .details(json!({ "member": principal.to_string(), "role": role.map(Role::as_str) }));
        match role {
            Some(role) => {
                state
                    .store
                    .put_membership(
                        &Membership {
                            org_id: org,
                            principal,
                            role,
                            created_at: now,
                        },
                        &[ev],
                    )
                    .await?
            }
            None => {
                state.store.delete_membership(org, principal, &[ev]).await?;
            }
        }
    }
    let app = load_app(&state, org, &id).await?;
    let role = role_of(&state, &app).await?;
    Ok(Json(view(&state, &app, role).await?))
}

/// `DELETE .../oauth-apps` `{"clientIdsToDelete": [...]}` (1 to 15):
/// 200 `{"succeeded": [...], "failed": [...]}`.
pub async fn bulk_delete(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path(org): Path<String>,
    CspJson(req): CspJson<BulkDelete>,
) -> Result<Json<Value>, CspError> {
    let org = managed(&state, &caller, &org).await?;
    let ids = req.client_ids_to_delete;
    if ids.is_empty() || ids.len() > MAX_BULK_DELETE {
        return Err(CspError::bad_request(
            "clientIdsToDelete must hold 1 to 15 client ids",
        ));
    }
    let mut succeeded = Vec::new();
    let mut failed = Vec::new();
    let now = state.now();
    for id in ids {
        let app = if is_valid_client_id(&id) {
            load_app(&state, org, &id).await.ok()
        } else {
            None
        };
        let Some(app) = app else {
            failed.push(id);
            continue;
        };
        let ev = caller
            .0
            .audit
            .event(now, "app.deleted")
            .org(org)
            .app(app.id)
            .details(json!({ "clientId": id }));
        if state.store.delete_app(app.id, &[ev]).await? {
            succeeded.push(id);
        } else {
            failed.push(id);
        }
    }
    Ok(Json(json!({ "succeeded": succeeded, "failed": failed })))
}

fn rotate_error(e: RotateError) -> CspError {
    match e {
        RotateError::InProgress { previous_expires_at } => CspError::conflict(format!(
            "A secret rotation is in progress: the old secret is valid until {}. Delete the old secret first.",
            previous_expires_at.map_or_else(|| "it is revoked".into(), |t| t.to_rfc3339())
        )),
        RotateError::NotFound => CspError::not_found("The requested resource could not be found"),
        RotateError::NotEnrolled => CspError::internal(),
        RotateError::NoValidCurrent => CspError::conflict(
            "The current secret is not valid: regenerate the secret (PUT) instead of deleting the old one",
        ),
        RotateError::Core(e) => e.into(),
    }
}

/// `PUT .../oauth-apps/{id}/secret` `{}`: regenerate; 200 `{clientId, clientSecret}`.
pub async fn regenerate_secret(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path((org, id)): Path<(String, String)>,
    CspJson(_): CspJson<Empty>,
) -> Result<Json<ClientCredentials>, CspError> {
    check_client_id(&id)?;
    let org = managed(&state, &caller, &org).await?;
    let app = load_app(&state, org, &id).await?;
    let n = ops::regenerate(&state, &app, None, &caller.0.audit)
        .await
        .map_err(rotate_error)?;
    Ok(Json(ClientCredentials {
        client_id: app.client_id,
        client_secret: n.plain.expose_secret().to_string(),
    }))
}

/// `POST .../oauth-apps/{id}/secret` `{newClientSecret, secretRotationExpirationInSeconds?}`:
/// owner-client rotation with a caller-supplied secret; 200, no body.
pub async fn rotate_secret(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path((org, id)): Path<(String, String)>,
    CspJson(req): CspJson<OwnerRotation>,
) -> Result<StatusCode, CspError> {
    let app = secret_actor(&state, &caller, &org, &id).await?;
    let secret = supplied_secret(&req.new_client_secret)?;
    let grace = validate_grace(req.secret_rotation_expiration_in_seconds)?
        .unwrap_or(app.rotation_grace_secs);
    let hash = state.secret_hasher.hash(secret.expose_secret());
    let now = state.now();
    if state
        .store
        .list_secrets(app.id)
        .await?
        .iter()
        .any(|s| s.is_valid(now) && s.hash.ct_eq(&hash))
    {
        return Err(CspError::bad_request(
            "Invalid client secret: it must differ from the current secret",
        ));
    }
    ops::rotate(&state, &app, grace, Some(secret), false, &caller.0.audit)
        .await
        .map_err(rotate_error)?;
    Ok(StatusCode::OK)
}

/// `DELETE .../oauth-apps/{id}/secret`: finish the rotation (idempotent); 200, no body.
pub async fn finish_rotation(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, CspError> {
    let app = secret_actor(&state, &caller, &org, &id).await?;
    ops::finish(&state, &app, &caller.0.audit)
        .await
        .map_err(rotate_error)?;
    Ok(StatusCode::OK)
}
