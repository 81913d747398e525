//! The oauth-apps endpoints and their `/secret` sub-resource.

use super::CspPath as Path;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use rekey_core::apps::{replace_if_given as set, AppSettings, MAX_DURATION_SECS};
use rekey_core::model::{App, OrgId, Principal, Role, GRANT_CLIENT_CREDENTIALS};
use rekey_core::secret::{check_complexity, is_valid_client_id};
use rekey_core::store::Page;
use rekey_proto::csp::{
    AllowedScopes, BulkDeleteRequest, BulkDeleteResult, ClientCredentials, EmptyBody, OauthApp,
    OauthAppList, OauthAppPatch, OauthAppRequest, OrganizationScopes, OwnerRotationRequest,
    RoleRef,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{CspCaller, CspError, CspJson};
use crate::config::Config;
use crate::state::SharedState;
use rekey_core::error::OpError;
use rekey_core::ops::apps::NewApp;
use rekey_core::ops::secrets::RotateInput;
use rekey_core::ops::AppRef;
use rekey_core::policy::{Action, AppTarget, Denied};

/// Most client ids in one bulk delete.
const MAX_BULK_DELETE: usize = 15;

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
        .ops
        .spend_rate_token(
            &format!("csp:org:{org}"),
            c.csp_rate_per_second,
            c.csp_rate_burst,
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
async fn view(state: &SharedState, app: &App, role: Option<Role>) -> Result<OauthApp, CspError> {
    let now = state.now();
    let secrets = state.store.list_secrets(app.id).await?;
    let valid: Vec<_> = secrets.iter().filter(|s| s.is_valid(now)).collect();
    let last_used = valid.iter().filter_map(|s| s.last_used_at).max();
    let current_age = valid
        .iter()
        .find(|s| s.state == rekey_core::model::SecretState::Current)
        .map(|s| now.since(s.created_at).as_secs());
    Ok(OauthApp {
        id: app.client_id.clone(),
        org_id: app.org_id.to_string(),
        display_name: app.name.clone(),
        description: app.description.clone(),
        access_token_ttl: app.access_token_ttl_secs,
        allowed_grant_types: app.grant_types.clone(),
        allowed_scopes: AllowedScopes {
            general_scopes: app.scopes.clone(),
            organization_scopes: Some(OrganizationScopes {
                roles: role
                    .map(|r| RoleRef { name: r.perm() })
                    .into_iter()
                    .collect(),
            }),
            services_scopes: Vec::new(),
        },
        owner_only_secret_rotation: app.owner_only_secret_rotation,
        secret_rotation_expiration_in_seconds: app.rotation_grace_secs,
        created_at: app.created_at.as_millis(),
        updated_at: app.updated_at.as_millis(),
        last_used_at: last_used.map(|t| t.as_millis()),
        secret_age: current_age.map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
    })
}

async fn role_of(state: &SharedState, app: &App) -> Result<Option<Role>, CspError> {
    Ok(state
        .store
        .get_membership(app.org_id, Principal::App(app.id))
        .await?
        .map(|m| m.role))
}

/// `POST .../oauth-apps`: 200 `{clientId, clientSecret}`.
pub(super) async fn create(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path(org): Path<String>,
    CspJson(req): CspJson<OauthAppRequest>,
) -> Result<Json<ClientCredentials>, CspError> {
    let org = managed(&state, &caller, &org).await?;
    if let Some(id) = &req.id {
        check_client_id(id)?;
    }
    let input = new_app_input(req, &state.config)?;
    let created = state.ops.create_app(&caller.0.actor(), org, input).await?;
    Ok(Json(ClientCredentials {
        client_id: created.app.client_id,
        client_secret: created.plain.expose_secret().to_string(),
    }))
}

/// The use case's input from `OrgOauthAppRequest`, with the server's defaults.
fn new_app_input(req: OauthAppRequest, c: &Config) -> Result<NewApp, CspError> {
    let scopes = req.allowed_scopes.unwrap_or_default();
    let role = org_role(&scopes)?;
    let supplied = req.secret.as_deref().map(supplied_secret).transpose()?;
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
        // CSP's wire shape has no audiences: set them through the native API.
        audiences: Vec::new(),
        // CSP apps follow their org's default policy (set through the native API).
        rotation_policy: Default::default(),
    };
    Ok(NewApp {
        settings,
        client_id: req.id,
        service_account: role,
        secret: supplied,
        dialect: "csp",
    })
}

/// The list's query: `pageStart` (1-based, default 1), `pageLimit` (1 to 200, default 20),
/// `searchTerm` (at most 256 characters).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListQuery {
    #[serde(default = "first_page")]
    page_start: u32,
    #[serde(default = "default_page_limit")]
    page_limit: u32,
    search_term: Option<String>,
}

fn first_page() -> u32 {
    1
}

fn default_page_limit() -> u32 {
    20
}

impl ListQuery {
    fn parse(q: Option<&str>) -> Result<Self, CspError> {
        let q: Self = serde_urlencoded::from_str(q.unwrap_or("")).map_err(|_| {
            CspError::bad_request(
                "Query parameters are pageStart, pageLimit (positive integers) and searchTerm",
            )
        })?;
        if q.page_start == 0 || !(1..=200).contains(&q.page_limit) {
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
        Ok(q)
    }
}

/// `GET .../oauth-apps?pageStart&pageLimit&searchTerm`: `pageStart` is 1-based.
pub(super) async fn list(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path(org): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<OauthAppList>, CspError> {
    let org = managed(&state, &caller, &org).await?;
    let q = ListQuery::parse(q.as_deref())?;
    let (start, limit) = (q.page_start, q.page_limit);
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
    Ok(Json(OauthAppList {
        results,
        total_results: total,
        page_start: start,
        page_limit: limit,
    }))
}

/// `GET .../oauth-apps/{id}`
pub(super) async fn get(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path((org, id)): Path<(String, String)>,
) -> Result<Json<OauthApp>, CspError> {
    check_client_id(&id)?;
    let org_id = managed(&state, &caller, &org).await?;
    let app = load_app(&state, org_id, &id).await?;
    let role = role_of(&state, &app).await?;
    Ok(Json(view(&state, &app, role).await?))
}

/// `PATCH .../oauth-apps/{id}`: changes the given fields; 200 with the app.
pub(super) async fn patch(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path((org, id)): Path<(String, String)>,
    CspJson(req): CspJson<OauthAppPatch>,
) -> Result<Json<OauthApp>, CspError> {
    check_client_id(&id)?;
    let org = managed(&state, &caller, &org).await?;
    let grace = validate_grace(req.secret_rotation_expiration_in_seconds)?;
    let (scopes, role) = match req.allowed_scopes {
        Some(scopes) => {
            let role = org_role(&scopes)?;
            (Some(scopes.general_scopes), Some(role))
        }
        None => (None, None),
    };
    let change = |s: &mut AppSettings| {
        set(&mut s.name, req.display_name);
        set(&mut s.description, req.description);
        set(&mut s.access_token_ttl_secs, req.access_token_ttl);
        set(&mut s.grant_types, req.allowed_grant_types);
        set(
            &mut s.owner_only_secret_rotation,
            req.owner_only_secret_rotation,
        );
        set(&mut s.rotation_grace_secs, grace);
        set(&mut s.scopes, scopes);
    };
    let app = state
        .ops
        .update_app(&caller.0.actor(), org, &AppRef::ClientId(id), change, role)
        .await?;
    let role = role_of(&state, &app).await?;
    Ok(Json(view(&state, &app, role).await?))
}

/// `DELETE .../oauth-apps` `{"clientIdsToDelete": [...]}` (1 to 15):
/// 200 `{"succeeded": [...], "failed": [...]}`.
pub(super) async fn bulk_delete(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path(org): Path<String>,
    CspJson(req): CspJson<BulkDeleteRequest>,
) -> Result<Json<BulkDeleteResult>, CspError> {
    let org = managed(&state, &caller, &org).await?;
    let ids = req.client_ids_to_delete;
    if ids.is_empty() || ids.len() > MAX_BULK_DELETE {
        return Err(CspError::bad_request(
            "clientIdsToDelete must hold 1 to 15 client ids",
        ));
    }
    let mut succeeded = Vec::new();
    let mut failed = Vec::new();
    let actor = caller.0.actor();
    for id in ids {
        // Each id on its own: one the caller may not delete (a service account above its
        // role) or that is not there fails without failing the others.
        let deleted = if is_valid_client_id(&id) {
            match state
                .ops
                .delete_app(&actor, org, &AppRef::ClientId(id.clone()))
                .await
            {
                Ok(_) => true,
                Err(OpError::NotFound | OpError::Denied(_)) => false,
                Err(e) => return Err(e.into()),
            }
        } else {
            false
        };
        if deleted {
            succeeded.push(id);
        } else {
            failed.push(id);
        }
    }
    Ok(Json(BulkDeleteResult { succeeded, failed }))
}

/// `PUT .../oauth-apps/{id}/secret` `{}`: regenerate; 200 `{clientId, clientSecret}`.
pub(super) async fn regenerate_secret(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path((org, id)): Path<(String, String)>,
    CspJson(_): CspJson<EmptyBody>,
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
pub(super) async fn rotate_secret(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path((org, id)): Path<(String, String)>,
    CspJson(req): CspJson<OwnerRotationRequest>,
) -> Result<StatusCode, CspError> {
    let (org, app) = secret_request(&state, &caller, &org, &id, Action::RotateSecret).await?;
    let input = RotateInput {
        grace_secs: validate_grace(req.secret_rotation_expiration_in_seconds)?,
        supplied: Some(supplied_secret(&req.new_client_secret)?),
        require_destination: false,
    };
    state
        .ops
        .rotate_as_owner_client(&caller.0.actor(), org, &app, input)
        .await?;
    Ok(StatusCode::OK)
}

/// `DELETE .../oauth-apps/{id}/secret`: finish the rotation (idempotent); 200, no body.
pub(super) async fn finish_rotation(
    State(state): State<SharedState>,
    caller: CspCaller,
    Path((org, id)): Path<(String, String)>,
) -> Result<StatusCode, CspError> {
    let (org, app) = secret_request(&state, &caller, &org, &id, Action::RotateSecret).await?;
    state
        .ops
        .finish_as_owner_client(&caller.0.actor(), org, &app)
        .await?;
    Ok(StatusCode::OK)
}
