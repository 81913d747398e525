//! Console pages of the organization: members and roles, API tokens, and the audit trail.
//! Each action is the native API's use case; owners and admins manage members and see every
//! token, others see their own tokens; the audit trail is for owners and admins.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use rekey_core::error::OpError;
use rekey_core::model::{ApiTokenId, AppId, Outcome, Principal, Role, UserId};
use rekey_core::policy::{self, Action};
use rekey_core::store::{AuditFilter, Page};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::apps::{when, ConfirmForm, SecretOncePage};
use super::{op_error_page, render, Chrome, Refused, Session};
use crate::state::SharedState;

const AUDIT_PAGE: u32 = 50;

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/members", get(members).post(add_member))
        .route("/members/{kind}/{id}/role", post(set_role))
        .route("/members/{kind}/{id}/remove", post(remove_member))
        .route("/api-tokens", get(api_tokens).post(create_api_token))
        .route("/api-tokens/{id}/revoke", post(revoke_api_token))
        .route("/audit", get(audit))
}

const ROLES: [&str; 4] = ["org_owner", "org_admin", "developer", "org_member"];

struct MemberRow {
    id: String,
    kind: &'static str,
    name: String,
    role: &'static str,
}

#[derive(Template)]
#[template(path = "console/members.html")]
struct MembersPage {
    chrome: Chrome,
    csrf: String,
    org_name: String,
    members: Vec<MemberRow>,
    roles: [&'static str; 4],
    may_manage: bool,
    email: String,
    error: Option<String>,
}

async fn members_page(
    state: &SharedState,
    session: &Session,
    notice: Option<&'static str>,
    email: String,
    error: Option<String>,
) -> Result<MembersPage, OpError> {
    let org = session.signed_in.org.id;
    let actor = &session.signed_in.actor;
    state.ops.authorize(actor, org, Action::Read).await?;
    let subject = state.ops.subject(actor, org).await?;
    // Managing members: what the policy lets this caller do to a developer.
    let may_manage = policy::authorize(
        subject,
        Action::ChangeMember {
            old: Some(Role::Developer),
            new: Some(Role::OrgMember),
        },
    )
    .is_ok();
    let mut rows = Vec::new();
    for m in state.store.list_memberships(org).await? {
        let name = match m.principal {
            Principal::User(u) => state.store.get_user(u).await?.map(|u| u.email),
            Principal::App(a) => state.store.get_app(a).await?.map(|a| a.name),
        };
        rows.push(MemberRow {
            id: m.principal.uuid().to_string(),
            kind: m.principal.kind(),
            name: name.unwrap_or_else(|| m.principal.to_string()),
            role: m.role.as_str(),
        });
    }
    Ok(MembersPage {
        chrome: session.chrome("members", notice),
        csrf: session.csrf.clone(),
        org_name: session.signed_in.org.name.clone(),
        members: rows,
        roles: ROLES,
        may_manage,
        email,
        error,
    })
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "role-set" => Some("The role was set."),
        "removed" => Some("The member was removed."),
        "added" => Some("The member was added."),
        "revoked" => Some("The token was revoked: it no longer works."),
        _ => None,
    }
}

async fn members(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<DoneQuery>,
) -> Response {
    match members_page(
        &state,
        &session,
        notice(q.done.as_deref()),
        String::new(),
        None,
    )
    .await
    {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => op_error_page(e),
    }
}

#[derive(Deserialize)]
struct AddMemberForm {
    csrf: String,
    email: String,
    role: String,
}

fn role(s: &str) -> Result<Role, OpError> {
    s.parse()
        .map_err(|_| OpError::Invalid(format!("{s} is not a role")))
}

async fn add_member(
    State(state): State<SharedState>,
    session: Session,
    Form(form): Form<AddMemberForm>,
) -> Response {
    if let Err(refused) = session.check_csrf(&state, &form.csrf) {
        return refused.into_response();
    }
    let added = match role(&form.role) {
        Ok(role) => {
            state
                .ops
                .add_member(
                    &session.signed_in.actor,
                    session.signed_in.org.id,
                    &form.email,
                    None,
                    role,
                )
                .await
        }
        Err(e) => Err(e),
    };
    match added {
        Ok(added) => match added.api_token {
            Some(token) => render(
                StatusCode::OK,
                &SecretOncePage {
                    chrome: session.chrome("members", None),
                    heading: "Member added",
                    explanation: format!(
                        "{} is a new user with the role {}. Give them this API token to sign in (here, or with the CLI).",
                        added.user.email,
                        added.role.as_str()
                    ),
                    back: "/console/members".into(),
                    back_label: "Done: back to the members",
                    client_id: None,
                    secret_label: "API token",
                    secret: token.expose_secret().to_string(),
                },
            ),
            None => Redirect::to("/console/members?done=added").into_response(),
        },
        Err(OpError::Invalid(message)) => {
            match members_page(&state, &session, None, form.email, Some(message)).await {
                Ok(page) => render(StatusCode::BAD_REQUEST, &page),
                Err(e) => op_error_page(e),
            }
        }
        Err(e) => op_error_page(e),
    }
}

fn principal(kind: &str, id: &str) -> Result<Principal, Refused> {
    let uuid = uuid::Uuid::parse_str(id).map_err(|_| Refused::NotFound)?;
    match kind {
        "user" => Ok(Principal::User(UserId(uuid))),
        "app" => Ok(Principal::App(AppId(uuid))),
        _ => Err(Refused::NotFound),
    }
}

#[derive(Deserialize)]
struct RoleForm {
    csrf: String,
    role: String,
}

async fn set_role(
    State(state): State<SharedState>,
    session: Session,
    Path((kind, id)): Path<(String, String)>,
    Form(form): Form<RoleForm>,
) -> Response {
    let who = match session
        .check_csrf(&state, &form.csrf)
        .and_then(|()| principal(&kind, &id))
    {
        Ok(who) => who,
        Err(refused) => return refused.into_response(),
    };
    let set = match role(&form.role) {
        Ok(role) => {
            state
                .ops
                .set_role(
                    &session.signed_in.actor,
                    session.signed_in.org.id,
                    who,
                    role,
                )
                .await
        }
        Err(e) => Err(e),
    };
    match set {
        Ok(_) => Redirect::to("/console/members?done=role-set").into_response(),
        Err(e) => op_error_page(e),
    }
}

async fn remove_member(
    State(state): State<SharedState>,
    session: Session,
    Path((kind, id)): Path<(String, String)>,
    Form(form): Form<ConfirmForm>,
) -> Response {
    let who = match session
        .check_csrf(&state, &form.csrf)
        .and(form.confirmed())
        .and_then(|()| principal(&kind, &id))
    {
        Ok(who) => who,
        Err(refused) => return refused.into_response(),
    };
    match state
        .ops
        .remove_member(&session.signed_in.actor, session.signed_in.org.id, who)
        .await
    {
        Ok(()) => Redirect::to("/console/members?done=removed").into_response(),
        Err(e) => op_error_page(e),
    }
}

struct TokenRow {
    id: String,
    name: String,
    hint: String,
    user: String,
    created: String,
    expires: String,
    state: &'static str,
}

#[derive(Template)]
#[template(path = "console/api_tokens.html")]
struct ApiTokensPage {
    chrome: Chrome,
    csrf: String,
    tokens: Vec<TokenRow>,
    sees_all: bool,
    name: String,
    error: Option<String>,
}

async fn api_tokens_page(
    state: &SharedState,
    session: &Session,
    notice: Option<&'static str>,
    name: String,
    error: Option<String>,
) -> Result<ApiTokensPage, OpError> {
    let org = session.signed_in.org.id;
    let actor = &session.signed_in.actor;
    let tokens = state.ops.list_api_tokens(actor, org).await?;
    let subject = state.ops.subject(actor, org).await?;
    let sees_all = policy::authorize(subject, Action::ManageOthersApiTokens).is_ok();
    let now = state.now();
    let mut rows = Vec::new();
    for t in tokens {
        let user = state.store.get_user(t.user_id).await?;
        rows.push(TokenRow {
            id: t.id.to_string(),
            name: t.name.clone(),
            hint: t.hint.clone(),
            user: user.map_or_else(|| t.user_id.to_string(), |u| u.email),
            created: when(Some(t.created_at)),
            expires: when(t.expires_at),
            state: if t.revoked_at.is_some() {
                "revoked"
            } else if t.is_valid(now) {
                "valid"
            } else {
                "expired"
            },
        });
    }
    Ok(ApiTokensPage {
        chrome: session.chrome("api-tokens", notice),
        csrf: session.csrf.clone(),
        tokens: rows,
        sees_all,
        name,
        error,
    })
}

async fn api_tokens(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<DoneQuery>,
) -> Response {
    match api_tokens_page(
        &state,
        &session,
        notice(q.done.as_deref()),
        String::new(),
        None,
    )
    .await
    {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => op_error_page(e),
    }
}

#[derive(Deserialize)]
struct NewTokenForm {
    csrf: String,
    name: String,
}

async fn create_api_token(
    State(state): State<SharedState>,
    session: Session,
    Form(form): Form<NewTokenForm>,
) -> Response {
    if let Err(refused) = session.check_csrf(&state, &form.csrf) {
        return refused.into_response();
    }
    match state
        .ops
        .create_api_token(
            &session.signed_in.actor,
            session.signed_in.org.id,
            &form.name,
            None,
        )
        .await
    {
        Ok((token, plain)) => render(
            StatusCode::CREATED,
            &SecretOncePage {
                chrome: session.chrome("api-tokens", None),
                heading: "API token created",
                explanation: format!(
                    "The token {} signs in as you. Keep it like a password.",
                    token.name
                ),
                back: "/console/api-tokens".into(),
                back_label: "Done: back to the API tokens",
                client_id: None,
                secret_label: "API token",
                secret: plain.expose_secret().to_string(),
            },
        ),
        Err(OpError::Invalid(message)) => {
            match api_tokens_page(&state, &session, None, form.name, Some(message)).await {
                Ok(page) => render(StatusCode::BAD_REQUEST, &page),
                Err(e) => op_error_page(e),
            }
        }
        Err(e) => op_error_page(e),
    }
}

async fn revoke_api_token(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<ConfirmForm>,
) -> Response {
    let checked = session
        .check_csrf(&state, &form.csrf)
        .and(form.confirmed())
        .and_then(|()| {
            uuid::Uuid::parse_str(&id)
                .map(ApiTokenId)
                .map_err(|_| Refused::NotFound)
        });
    let id = match checked {
        Ok(id) => id,
        Err(refused) => return refused.into_response(),
    };
    match state
        .ops
        .revoke_api_token(&session.signed_in.actor, session.signed_in.org.id, id)
        .await
    {
        Ok(_) => Redirect::to("/console/api-tokens?done=revoked").into_response(),
        Err(e) => op_error_page(e),
    }
}

struct EventRow {
    time: String,
    action: String,
    actor: String,
    app: String,
    outcome: &'static str,
    source: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    chrome: Chrome,
    events: Vec<EventRow>,
    action: String,
    app: String,
    prev_page: Option<String>,
    next_page: Option<String>,
}

#[derive(Deserialize)]
struct AuditQuery {
    action: Option<String>,
    app: Option<String>,
    page: Option<u32>,
}

async fn audit(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<AuditQuery>,
) -> Response {
    let org = session.signed_in.org.id;
    if let Err(e) = state
        .ops
        .authorize(&session.signed_in.actor, org, Action::ReadAudit)
        .await
    {
        return op_error_page(e);
    }
    let action = q.action.unwrap_or_default().trim().to_string();
    let app = q.app.unwrap_or_default().trim().to_string();
    let page = q.page.unwrap_or(0).min(100_000);
    let filter = AuditFilter {
        org: Some(org),
        app: AppId::parse(&app),
        action: (!action.is_empty()).then(|| action.clone()),
        since: None,
        until: None,
    };
    let events = match state
        .store
        .list_audit(
            &filter,
            Page {
                start: page * AUDIT_PAGE,
                limit: AUDIT_PAGE + 1,
            },
        )
        .await
    {
        Ok(events) => events,
        Err(e) => return op_error_page(OpError::Store(e)),
    };
    let more = events.len() > AUDIT_PAGE as usize;
    let link = |p: u32| {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!(
            "/console/audit?action={}&app={}&page={p}",
            enc(&action),
            enc(&app)
        )
    };
    render(
        StatusCode::OK,
        &AuditPage {
            chrome: session.chrome("audit", None),
            events: events
                .iter()
                .take(AUDIT_PAGE as usize)
                .map(|e| EventRow {
                    time: when(Some(e.time)),
                    action: e.action.clone(),
                    actor: e.actor.clone(),
                    app: e.app_id.map(|a| a.to_string()).unwrap_or_default(),
                    outcome: match e.outcome {
                        Outcome::Success => "success",
                        Outcome::Failure => "failure",
                    },
                    source: e.source.clone().unwrap_or_default(),
                })
                .collect(),
            prev_page: (page > 0).then(|| link(page - 1)),
            next_page: more.then(|| link(page + 1)),
            action,
            app,
        },
    )
}
