//! Console pages for apps: the list (search, pages), create, the app page with its secrets,
//! and the secret actions (rotate, regenerate, finish, revoke). Each action calls the same
//! use case as the APIs; what a page offers follows the same policy.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use rekey_core::apps::AppSettings;
use rekey_core::clock::Timestamp;
use rekey_core::error::OpError;
use rekey_core::model::{App, AppId, SecretId, SecretState};
use rekey_core::notify::NotificationType;
use rekey_core::ops::apps::NewApp;
use rekey_core::ops::secrets::{NewSecret, RotateInput};
use rekey_core::ops::AppRef;
use rekey_core::policy::{self, Action};
use rekey_core::store::Page;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::destinations::{
    delivery_rows, destination_views, DeliveryRow, DestinationForm, DestinationView,
};
use super::{op_error_page, render, Chrome, CsrfForm, Refused, Session};
use crate::state::SharedState;

const PAGE_SIZE: u32 = 50;

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/apps", get(list).post(create))
        .route("/apps/new", get(new_form))
        .route("/apps/{app}", get(show))
        .route("/apps/{app}/edit", get(edit_form).post(edit))
        .route("/apps/{app}/delete", post(delete))
        .route("/apps/{app}/rotate", post(rotate))
        .route("/apps/{app}/regenerate", post(regenerate))
        .route("/apps/{app}/finish", post(finish))
        .route("/apps/{app}/secrets/{secret}/revoke", post(revoke))
}

/// A time for people: `2026-11-30 09:31 UTC`, or `never`.
pub(super) fn when(t: Option<Timestamp>) -> String {
    t.map_or_else(
        || "never".to_string(),
        |t| {
            let s = t.to_rfc3339();
            format!("{} {} UTC", &s[..10], &s[11..16])
        },
    )
}

/// Whether a secret last used at `last` is still in use by someone (the last 24 hours):
/// finishing its rotation now would likely break a client.
pub(super) fn used_recently(last: Timestamp, now: Timestamp) -> bool {
    now.since(last) < std::time::Duration::from_secs(86_400)
}

/// A duration for people: `48 hours`, `180 days`.
fn duration(secs: i64) -> String {
    let (n, unit) = match secs {
        0 => return "none".to_string(),
        s if s % 86_400 == 0 => (s / 86_400, "day"),
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

struct AppRow {
    id: String,
    name: String,
    client_id: String,
    created: String,
}

#[derive(Template)]
#[template(path = "console/apps.html")]
struct AppsPage {
    chrome: Chrome,
    apps: Vec<AppRow>,
    query: String,
    may_create: bool,
    prev_page: Option<String>,
    next_page: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    page: Option<u32>,
    done: Option<String>,
}

fn page_link(query: &str, page: u32) -> String {
    let q: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
    format!("/console/apps?q={q}&page={page}")
}

async fn list(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> Response {
    let org = session.signed_in.org.id;
    if let Err(e) = state
        .ops
        .authorize(&session.signed_in.actor, org, Action::Read)
        .await
    {
        return op_error_page(e);
    }
    let query = q.q.unwrap_or_default().trim().to_string();
    let page = q.page.unwrap_or(0).min(100_000);
    let term = (!query.is_empty()).then_some(query.as_str());
    // One more than a page: whether there is a next page, without counting every match.
    let found = state
        .store
        .find_apps(
            org,
            term,
            Page {
                start: page * PAGE_SIZE,
                limit: PAGE_SIZE + 1,
            },
        )
        .await;
    let mut apps = match found {
        Ok(found) => found,
        Err(e) => return op_error_page(OpError::Store(e)),
    };
    let more = apps.len() > PAGE_SIZE as usize;
    apps.truncate(PAGE_SIZE as usize);
    let may_create = state
        .ops
        .authorize(
            &session.signed_in.actor,
            org,
            Action::CreateApp {
                service_account: None,
            },
        )
        .await
        .is_ok();
    render(
        StatusCode::OK,
        &AppsPage {
            chrome: session.chrome("apps", notice(q.done.as_deref())),
            apps: apps
                .iter()
                .map(|a| AppRow {
                    id: a.id.to_string(),
                    name: a.name.clone(),
                    client_id: a.client_id.clone(),
                    created: when(Some(a.created_at)),
                })
                .collect(),
            may_create,
            prev_page: (page > 0).then(|| page_link(&query, page - 1)),
            next_page: more.then(|| page_link(&query, page + 1)),
            query,
        },
    )
}

#[derive(Template)]
#[template(path = "console/app_new.html")]
struct NewAppPage {
    chrome: Chrome,
    csrf: String,
    name: String,
    description: String,
    scopes: String,
    error: Option<String>,
    error_field: &'static str,
}

async fn new_form(session: Session) -> Response {
    render(
        StatusCode::OK,
        &NewAppPage {
            chrome: session.chrome("apps", None),
            csrf: session.csrf.clone(),
            name: String::new(),
            description: String::new(),
            scopes: String::new(),
            error: None,
            error_field: "",
        },
    )
}

#[derive(Deserialize)]
struct NewAppForm {
    csrf: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    scopes: String,
}

#[derive(Template)]
#[template(path = "console/secret_once.html")]
pub(super) struct SecretOncePage {
    pub chrome: Chrome,
    pub heading: &'static str,
    pub explanation: String,
    /// Where the page's button leads, and what it says.
    pub back: String,
    pub back_label: &'static str,
    pub client_id: Option<String>,
    pub secret_label: &'static str,
    pub secret: String,
}

async fn create(
    State(state): State<SharedState>,
    session: Session,
    Form(form): Form<NewAppForm>,
) -> Response {
    if let Err(refused) = session.check_csrf(&state, &form.csrf) {
        return refused.into_response();
    }
    let c = &state.config;
    let settings = AppSettings {
        name: form.name.trim().to_string(),
        description: form.description.trim().to_string(),
        grant_types: vec![rekey_core::model::GRANT_CLIENT_CREDENTIALS.into()],
        scopes: form.scopes.split_whitespace().map(str::to_string).collect(),
        access_token_ttl_secs: c.default_access_token_ttl_seconds,
        secret_lifetime_secs: c.default_secret_lifetime_seconds,
        rotation_grace_secs: c.default_rotation_grace_seconds,
        owner_only_secret_rotation: false,
        audiences: Vec::new(),
        rotation_policy: Default::default(),
    };
    let input = NewApp {
        settings,
        client_id: None,
        service_account: None,
        secret: None,
        dialect: "console",
    };
    match state
        .ops
        .create_app(&session.signed_in.actor, session.signed_in.org.id, input)
        .await
    {
        Ok(created) => render(
            StatusCode::CREATED,
            &SecretOncePage {
                chrome: session.chrome("apps", None),
                heading: "App created",
                explanation: format!(
                    "{} is ready. Give its client id and secret to the client that uses it.",
                    created.app.name
                ),
                back: format!("/console/apps/{}", created.app.id),
                back_label: "Done: go to the app",
                client_id: Some(created.app.client_id.clone()),
                secret_label: "Client secret",
                secret: created.plain.expose_secret().to_string(),
            },
        ),
        // Bad input: the form again, with what was typed and the field marked.
        Err(OpError::Invalid(message)) => {
            let error_field = if message.contains("scope") {
                "scopes"
            } else {
                "name"
            };
            render(
                StatusCode::BAD_REQUEST,
                &NewAppPage {
                    chrome: session.chrome("apps", None),
                    csrf: session.csrf.clone(),
                    name: form.name,
                    description: form.description,
                    scopes: form.scopes,
                    error: Some(message),
                    error_field,
                },
            )
        }
        Err(e) => op_error_page(e),
    }
}

struct AppView {
    id: String,
    name: String,
    description: String,
    client_id: String,
    scopes: Vec<String>,
    audiences: Vec<String>,
    token_ttl: String,
    secret_lifetime: String,
    grace: String,
    owner_only: bool,
    /// The rotation policy in force, in words.
    policy: String,
    next_rotation: Option<String>,
    /// What the policy waits for, or why it cannot rotate.
    policy_step: Option<String>,
}

struct SecretRow {
    id: String,
    state: &'static str,
    hint: String,
    created: String,
    expires: String,
    last_used: String,
    created_by: String,
    revocable: bool,
}

struct PreviousSecret {
    hint: String,
    expires: String,
    last_used: String,
    recently_used: bool,
}

#[derive(Template)]
#[template(path = "console/app.html")]
pub(super) struct AppPage {
    chrome: Chrome,
    csrf: String,
    app: AppView,
    secrets: Vec<SecretRow>,
    previous: Option<PreviousSecret>,
    may_change: bool,
    may_retry: bool,
    has_destination: bool,
    destinations: Vec<DestinationView>,
    deliveries: Vec<DeliveryRow>,
}

#[derive(Deserialize)]
struct ShowQuery {
    done: Option<String>,
}

/// The notices an action may leave (never text from the request).
fn notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "finished" => Some("Rotation finished: the previous secret no longer works."),
        "nothing-to-finish" => Some("There was no rotation to finish."),
        "revoked" => Some("The secret was revoked: it no longer works."),
        "updated" => Some("The settings were saved."),
        "deleted" => Some("The app was deleted: its secrets and tokens no longer work."),
        "destination-set" => Some("The destination was saved."),
        "destination-removed" => Some("The destination was removed."),
        "test-queued" => Some("A test notification is on its way; see its delivery below."),
        "retried" => Some("The delivery will be tried again."),
        _ => None,
    }
}

async fn show(
    State(state): State<SharedState>,
    session: Session,
    Path(app): Path<String>,
    Query(q): Query<ShowQuery>,
) -> Response {
    match app_page(&state, &session, &app, notice(q.done.as_deref()), None).await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => op_error_page(e),
    }
}

/// The app page; `failed` is a Notification Preferences form that was refused (shown again
/// with what was typed and why).
pub(super) async fn app_page(
    state: &SharedState,
    session: &Session,
    app: &str,
    notice: Option<&'static str>,
    failed: Option<(NotificationType, DestinationForm, String)>,
) -> Result<AppPage, OpError> {
    let actor = &session.signed_in.actor;
    let org = session.signed_in.org.id;
    let app: App = state
        .ops
        .authorize_app(actor, org, &AppRef::parse(app), |_| Action::Read)
        .await?;
    let subject = state.ops.subject(actor, org).await?;
    let target = state.ops.app_target(&app).await?;
    let may_change = policy::authorize(subject, Action::ChangeApp(target)).is_ok();
    let secrets = state.store.list_secrets(app.id).await?;
    let destinations = state.store.list_destinations(app.id).await?;
    let has_destination = destinations
        .iter()
        .any(|d| d.notification_type == NotificationType::NewSecret);
    let deliveries = state
        .store
        .list_deliveries(
            org,
            Some(app.id),
            None,
            Page {
                start: 0,
                limit: 10,
            },
        )
        .await?;
    let may_retry = policy::authorize(subject, Action::RetryDelivery).is_ok();
    let rotation = state.ops.rotation_status_of(&app, &secrets).await?;
    let now = state.now();
    let previous = secrets
        .iter()
        .find(|s| s.state == SecretState::Previous && s.is_valid(now))
        .map(|s| PreviousSecret {
            hint: s.hint.clone(),
            expires: when(s.expires_at),
            last_used: when(s.last_used_at),
            recently_used: s.last_used_at.is_some_and(|t| used_recently(t, now)),
        });
    Ok(AppPage {
        chrome: session.chrome("apps", notice),
        csrf: session.csrf.clone(),
        secrets: secrets
            .iter()
            .map(|s| SecretRow {
                id: s.id.to_string(),
                state: s.state.as_str(),
                hint: s.hint.clone(),
                created: when(Some(s.created_at)),
                expires: when(s.expires_at),
                last_used: when(s.last_used_at),
                created_by: s.created_by.clone(),
                revocable: s.is_valid(now),
            })
            .collect(),
        app: AppView {
            id: app.id.to_string(),
            name: app.name.clone(),
            description: app.description.clone(),
            client_id: app.client_id.clone(),
            scopes: app.scopes.clone(),
            audiences: app.audiences.clone(),
            token_ttl: duration(app.access_token_ttl_secs),
            secret_lifetime: duration(app.secret_lifetime_secs),
            grace: duration(app.rotation_grace_secs),
            owner_only: app.owner_only_secret_rotation,
            policy: policy_words(&rotation),
            next_rotation: rotation.next_rotation_at.map(|t| when(Some(t))),
            policy_step: policy_step_words(&rotation.decision),
        },
        previous,
        may_change,
        may_retry,
        has_destination,
        destinations: destination_views(&destinations, failed),
        deliveries: delivery_rows(&deliveries),
    })
}

/// The app's page path segment as Rekey writes it (the parsed id, lower-case hyphenated).
pub(super) fn canonical(app: &str) -> String {
    AppId::parse(app).map_or_else(String::new, |id| id.to_string())
}

pub(super) fn app_id(app: &str) -> Result<AppRef, Refused> {
    AppId::parse(app).map(AppRef::Id).ok_or(Refused::NotFound)
}

fn secret_shown_once(session: &Session, new: NewSecret, heading: &'static str) -> Response {
    let explanation = match (heading, new.previous_expires_at, new.notification_id) {
        ("Secret rotated", Some(until), Some(_)) => format!(
            "The new secret is current, and it is on its way to the app's destination for new secrets. The previous secret keeps working until {}.",
            when(Some(until))
        ),
        ("Secret rotated", Some(until), None) => format!(
            "The new secret is current. The previous secret keeps working until {}: give the new one to the client before then.",
            when(Some(until))
        ),
        _ => "The new secret is current; every other secret of the app stopped working.".into(),
    };
    render(
        StatusCode::OK,
        &SecretOncePage {
            chrome: session.chrome("apps", None),
            heading,
            explanation,
            back: format!("/console/apps/{}", new.app.id),
            back_label: "Done: go to the app",
            client_id: Some(new.app.client_id.clone()),
            secret_label: "Client secret",
            secret: new.plain.expose_secret().to_string(),
        },
    )
}

async fn rotate(
    State(state): State<SharedState>,
    session: Session,
    Path(app): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let app = match session.check_csrf(&state, &form.csrf).and(app_id(&app)) {
        Ok(app) => app,
        Err(refused) => return refused.into_response(),
    };
    let input = RotateInput {
        grace_secs: None,
        supplied: None,
        require_destination: false,
    };
    match state
        .ops
        .rotate(
            &session.signed_in.actor,
            session.signed_in.org.id,
            &app,
            input,
        )
        .await
    {
        Ok(new) => secret_shown_once(&session, new, "Secret rotated"),
        Err(e) => op_error_page(e),
    }
}

#[derive(Deserialize)]
pub(super) struct ConfirmForm {
    pub csrf: String,
    pub confirm: Option<String>,
}

impl ConfirmForm {
    pub(super) fn confirmed(&self) -> Result<(), Refused> {
        if self.confirm.as_deref() == Some("yes") {
            Ok(())
        } else {
            Err(Refused::Unconfirmed)
        }
    }
}

async fn regenerate(
    State(state): State<SharedState>,
    session: Session,
    Path(app): Path<String>,
    Form(form): Form<ConfirmForm>,
) -> Response {
    let checked = session
        .check_csrf(&state, &form.csrf)
        .and(form.confirmed())
        .and(app_id(&app));
    let app = match checked {
        Ok(app) => app,
        Err(refused) => return refused.into_response(),
    };
    match state
        .ops
        .regenerate(&session.signed_in.actor, session.signed_in.org.id, &app)
        .await
    {
        Ok(new) => secret_shown_once(&session, new, "Secret regenerated"),
        Err(e) => op_error_page(e),
    }
}

async fn finish(
    State(state): State<SharedState>,
    session: Session,
    Path(app): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let app_ref = match session.check_csrf(&state, &form.csrf).and(app_id(&app)) {
        Ok(app) => app,
        Err(refused) => return refused.into_response(),
    };
    match state
        .ops
        .finish(&session.signed_in.actor, session.signed_in.org.id, &app_ref)
        .await
    {
        Ok(revoked) => {
            let done = if revoked.is_empty() {
                "nothing-to-finish"
            } else {
                "finished"
            };
            Redirect::to(&format!("/console/apps/{}?done={done}", canonical(&app))).into_response()
        }
        Err(e) => op_error_page(e),
    }
}

async fn revoke(
    State(state): State<SharedState>,
    session: Session,
    Path((app, secret)): Path<(String, String)>,
    Form(form): Form<ConfirmForm>,
) -> Response {
    if let Err(refused) = session
        .check_csrf(&state, &form.csrf)
        .and_then(|()| form.confirmed())
    {
        return refused.into_response();
    }
    let (app_ref, secret_id) = match (app_id(&app), SecretId::parse(&secret)) {
        (Ok(a), Some(s)) => (a, s),
        _ => return op_error_page(OpError::NotFound),
    };
    match state
        .ops
        .revoke_secret(
            &session.signed_in.actor,
            session.signed_in.org.id,
            &app_ref,
            secret_id,
        )
        .await
    {
        Ok(_) => {
            Redirect::to(&format!("/console/apps/{}?done=revoked", canonical(&app))).into_response()
        }
        Err(e) => op_error_page(e),
    }
}

#[derive(Template)]
#[template(path = "console/app_edit.html")]
struct EditPage {
    chrome: Chrome,
    csrf: String,
    app_id: String,
    name: String,
    description: String,
    scopes: String,
    audiences: String,
    access_token_ttl_seconds: String,
    secret_lifetime_seconds: String,
    rotation_grace_seconds: String,
    owner_only: bool,
    /// The app's own policy fields; empty: the org's default.
    rotate_before_expiry_seconds: String,
    retire_when_unused_seconds: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct EditForm {
    csrf: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    audiences: String,
    access_token_ttl_seconds: String,
    secret_lifetime_seconds: String,
    rotation_grace_seconds: String,
    owner_only_secret_rotation: Option<String>,
    #[serde(default)]
    rotate_before_expiry_seconds: String,
    #[serde(default)]
    retire_when_unused_seconds: String,
}

impl EditPage {
    fn of(session: &Session, app: &App) -> Self {
        Self {
            chrome: session.chrome("apps", None),
            csrf: session.csrf.clone(),
            app_id: app.id.to_string(),
            name: app.name.clone(),
            description: app.description.clone(),
            scopes: app.scopes.join(" "),
            audiences: app.audiences.join(" "),
            access_token_ttl_seconds: app.access_token_ttl_secs.to_string(),
            secret_lifetime_seconds: app.secret_lifetime_secs.to_string(),
            rotation_grace_seconds: app.rotation_grace_secs.to_string(),
            owner_only: app.owner_only_secret_rotation,
            rotate_before_expiry_seconds: optional_seconds_text(
                app.rotation_policy.rotate_before_expiry_secs,
            ),
            retire_when_unused_seconds: optional_seconds_text(
                app.rotation_policy.retire_when_unused_secs,
            ),
            error: None,
        }
    }

    /// The form again, with what was typed and why it was refused.
    fn refused(session: &Session, app_id: String, form: EditForm, error: String) -> Self {
        Self {
            chrome: session.chrome("apps", None),
            csrf: session.csrf.clone(),
            app_id,
            name: form.name,
            description: form.description,
            scopes: form.scopes,
            audiences: form.audiences,
            access_token_ttl_seconds: form.access_token_ttl_seconds,
            secret_lifetime_seconds: form.secret_lifetime_seconds,
            rotation_grace_seconds: form.rotation_grace_seconds,
            owner_only: form.owner_only_secret_rotation.is_some(),
            rotate_before_expiry_seconds: form.rotate_before_expiry_seconds,
            retire_when_unused_seconds: form.retire_when_unused_seconds,
            error: Some(error),
        }
    }
}

async fn edit_form(
    State(state): State<SharedState>,
    session: Session,
    Path(app): Path<String>,
) -> Response {
    match state
        .ops
        .authorize_app(
            &session.signed_in.actor,
            session.signed_in.org.id,
            &AppRef::parse(&app),
            Action::ChangeApp,
        )
        .await
    {
        Ok(app) => render(StatusCode::OK, &EditPage::of(&session, &app)),
        Err(e) => op_error_page(e),
    }
}

/// An optional whole number of seconds: empty is `None` (the org's default).
fn optional_seconds(field: &str, value: &str) -> Result<Option<i64>, String> {
    if value.trim().is_empty() {
        Ok(None)
    } else {
        seconds(field, value).map(Some)
    }
}

fn optional_seconds_text(v: Option<i64>) -> String {
    v.map(|s| s.to_string()).unwrap_or_default()
}

/// A whole number of seconds from a form field, or what is wrong with it.
fn seconds(field: &str, value: &str) -> Result<i64, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{field} must be a whole number of seconds"))
}

async fn edit(
    State(state): State<SharedState>,
    session: Session,
    Path(app): Path<String>,
    Form(form): Form<EditForm>,
) -> Response {
    let app_ref = match session.check_csrf(&state, &form.csrf).and(app_id(&app)) {
        Ok(app) => app,
        Err(refused) => return refused.into_response(),
    };
    let numbers = (|| {
        Ok::<_, String>((
            seconds("The access token lifetime", &form.access_token_ttl_seconds)?,
            seconds("The secret lifetime", &form.secret_lifetime_seconds)?,
            seconds("The rotation grace", &form.rotation_grace_seconds)?,
            rekey_core::rotation_policy::RotationPolicy {
                rotate_before_expiry_secs: optional_seconds(
                    "The automatic rotation lead",
                    &form.rotate_before_expiry_seconds,
                )?,
                retire_when_unused_secs: optional_seconds(
                    "The quiet period before retirement",
                    &form.retire_when_unused_seconds,
                )?,
            },
        ))
    })();
    let updated = match numbers {
        Ok((ttl, lifetime, grace, rotation_policy)) => {
            let (name, description) = (
                form.name.trim().to_string(),
                form.description.trim().to_string(),
            );
            let scopes: Vec<String> = form.scopes.split_whitespace().map(str::to_string).collect();
            let audiences: Vec<String> = form
                .audiences
                .split_whitespace()
                .map(str::to_string)
                .collect();
            let owner_only = form.owner_only_secret_rotation.is_some();
            state
                .ops
                .update_app(
                    &session.signed_in.actor,
                    session.signed_in.org.id,
                    &app_ref,
                    move |s| {
                        s.name = name;
                        s.description = description;
                        s.scopes = scopes;
                        s.audiences = audiences;
                        s.access_token_ttl_secs = ttl;
                        s.secret_lifetime_secs = lifetime;
                        s.rotation_grace_secs = grace;
                        s.owner_only_secret_rotation = owner_only;
                        s.rotation_policy = rotation_policy;
                    },
                    None,
                )
                .await
        }
        Err(message) => Err(OpError::Invalid(message)),
    };
    match updated {
        Ok(_) => {
            Redirect::to(&format!("/console/apps/{}?done=updated", canonical(&app))).into_response()
        }
        Err(OpError::Invalid(message)) => render(
            StatusCode::BAD_REQUEST,
            &EditPage::refused(&session, canonical(&app), form, message),
        ),
        Err(e) => op_error_page(e),
    }
}

async fn delete(
    State(state): State<SharedState>,
    session: Session,
    Path(app): Path<String>,
    Form(form): Form<ConfirmForm>,
) -> Response {
    let checked = session
        .check_csrf(&state, &form.csrf)
        .and(form.confirmed())
        .and(app_id(&app));
    let app_ref = match checked {
        Ok(app) => app,
        Err(refused) => return refused.into_response(),
    };
    match state
        .ops
        .delete_app(&session.signed_in.actor, session.signed_in.org.id, &app_ref)
        .await
    {
        Ok(_) => Redirect::to("/console/apps?done=deleted").into_response(),
        Err(e) => op_error_page(e),
    }
}

/// The policy in force, as a sentence.
fn policy_words(s: &rekey_core::ops::auto_rotation::RotationStatus) -> String {
    let source = |own: Option<i64>| if own.is_some() { "" } else { " (org default)" };
    let rotate = match s.effective.rotate_before_expiry_secs {
        Some(secs) => format!(
            "rotates {} before the secret expires{}",
            duration(secs),
            source(s.app.rotate_before_expiry_secs)
        ),
        None => "no automatic rotation".to_string(),
    };
    let retire = match s.effective.retire_when_unused_secs {
        Some(secs) => format!(
            "retires the previous secret after {} unused{}",
            duration(secs),
            source(s.app.retire_when_unused_secs)
        ),
        None => "no automatic retirement".to_string(),
    };
    format!("{rotate}; {retire}")
}

/// What the policy's next pass waits for or cannot do, if anything.
fn policy_step_words(d: &rekey_core::rotation_policy::Decision) -> Option<String> {
    use rekey_core::rotation_policy::{Decision, Wait};
    Some(match d {
        Decision::Nothing => return None,
        Decision::Rotate => "A rotation is due: the next pass starts it.".into(),
        Decision::Retire => "The previous secret is quiet: the next pass retires it.".into(),
        Decision::RotationBlocked(_) => {
            "A rotation is due but cannot start: the app has no destination for new secrets.".into()
        }
        Decision::Waiting(Wait::NewSecretUnused) => {
            "Waiting: the new secret has not been used yet.".into()
        }
        Decision::Waiting(Wait::PreviousStillUsed { last_used_at }) => format!(
            "Waiting: the previous secret is still used (last {}).",
            when(Some(*last_used_at))
        ),
        Decision::Waiting(Wait::QuietUntil { until }) => {
            format!(
                "Waiting for the quiet period to end ({}).",
                when(Some(*until))
            )
        }
        Decision::Waiting(Wait::NotificationDead) => {
            "Blocked: the new secret's notification was given up on; retry it below.".into()
        }
        Decision::Waiting(Wait::CurrentNotValid) => {
            "Blocked: the current secret is not valid.".into()
        }
    })
}
