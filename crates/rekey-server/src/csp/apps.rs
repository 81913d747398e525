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
use crate::state::SharedState;
use rekey_core::error::OpError;
use rekey_core::ops::secrets::RotateInput;
use rekey_core::ops::AppRef;
use rekey_core::policy::{Action, AppTarget, Denied};

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
    state
        .ops
        .authorize(&caller.0.actor(), org, Action::ManageApps)
        .await?
        .ok_or_else(|| OpError::Denied(Denied::NotAMember).into())
}

/// Loads the app `client_id` of `org` (404 if it is not there).
async fn load_app(state: &SharedState, org: OrgId, client_id: &str) -> Result<App, CspError> {
    Ok(state
        .ops
        .app_in(org, &AppRef::ClientId(client_id.to_string()))
        .await?)
}

/// Common start of every request: ids, the caller's right to manage apps, rate limit.
async fn managed(state: &SharedState, caller: &CspCaller, org: &str) -> Result<OrgId, CspError> {
    let org = parse_org(org)?;
    require_manager(state, caller, org).await?;
    rate_limit(state, org).await?;
    Ok(org)
}

/// For the `/secret` sub-resource: parses the ids, asks the policy about `action` on the app
/// (before the rate limit, so that strangers cannot spend the org's budget), then takes a
/// rate token.
async fn secret_request(
    state: &SharedState,
    caller: &CspCaller,
    org: &str,
    client_id: &str,
    action: fn(AppTarget) -> Action,
) -> Result<(OrgId, AppRef), CspError> {
    let org = parse_org(org)?;
    check_client_id(client_id)?;
    let app = AppRef::ClientId(client_id.to_string());
    state
        .ops
        .authorize_app(&caller.0.actor(), org, &app, action)
        .await?;
    rate_limit(state, org).await?;
    Ok((org, app))
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
    let org = managed(&state, &caller, &org).await?;
    if let Some(id) = &req.id {
        check_client_id(id)?;
    }
    let scopes = req.allowed_scopes.unwrap_or_default();
    let role = org_role(&scopes)?;
    state
        .ops
        .authorize(
            &caller.0.actor(),
            org,
            Action::CreateApp {
                service_account: role,
            },
        )
        .await?;
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
    let org = managed(&state, &caller, &org).await?;
    let actor = caller.0.actor();
    let mut app = state
        .ops
        .authorize_app(
            &actor,
            org,
            &AppRef::ClientId(id.clone()),
            Action::ChangeApp,
        )
        .await?;
    let mut s = AppSettings::of(&app);
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
    let mut new_role = None;
    if let Some(scopes) = req.allowed_scopes {
        new_role = Some(org_role(&scopes)?);
        s.scopes = scopes.general_scopes;
    }
    let now = state.now();
    s.apply_to(&mut app, now)?;
    // The role first: it is the part the policy may refuse, and it is checked again in
    // its own transaction.
    if let Some(role) = new_role {
        if role != role_of(&state, &app).await? {
            let member = Principal::App(app.id);
            match role {
                Some(role) => {
                    state.ops.set_role(&actor, org, member, role).await?;
                }
                None => state.ops.remove_member(&actor, org, member).await?,
            }
        }
    }
    state
        .store
        .update_app(
            &app,
            &[actor.audit.event(now, "app.updated").org(org).app(app.id)],
        )
        .await?;
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

/// `PUT .../oauth-apps/{id}/secret` `{}`: regenerate; 200 `{clientId, clientSecret}`.
pub async fn regenerate_secret(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path((org, id)): Path<(String, String)>,
    CspJson(_): CspJson<Empty>,
) -> Result<Json<ClientCredentials>, CspError> {
    let (org, app) = secret_request(&state, &caller, &org, &id, Action::ChangeApp).await?;
    let n = state.ops.regenerate(&caller.0.actor(), org, &app).await?;
    Ok(Json(ClientCredentials {
        client_id: n.app.client_id,
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
    let (org, app) = secret_request(&state, &caller, &org, &id, Action::RotateSecret).await?;
    let input = RotateInput {
        grace_secs: validate_grace(req.secret_rotation_expiration_in_seconds)?,
        supplied: Some(supplied_secret(&req.new_client_secret)?),
        require_destination: false,
    };
    state
        .ops
        .rotate(&caller.0.actor(), org, &app, input)
        .await?;
    Ok(StatusCode::OK)
}

/// `DELETE .../oauth-apps/{id}/secret`: finish the rotation (idempotent); 200, no body.
pub async fn finish_rotation(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, CspError> {
    let (org, app) = secret_request(&state, &caller, &org, &id, Action::RotateSecret).await?;
    state.ops.finish(&caller.0.actor(), org, &app).await?;
    Ok(StatusCode::OK)
}
