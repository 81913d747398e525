//! Notification Preferences on the app page: where each notification type goes (SQS,
//! webhook, spool directory), a test notification, and the app's latest deliveries with a
//! retry for dead ones. Every action is the same use case as the native API's.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Form, Router};
use rekey_core::error::OpError;
use rekey_core::model::DeliveryId;
use rekey_core::notify::{Delivery, Destination, NotificationType, Target, TargetFields};
use serde::Deserialize;

use super::apps::{app_id, app_page, canonical, when, ConfirmForm, SecretOncePage};
use super::{op_error_page, render, CsrfForm, Refused, Session};
use crate::state::SharedState;

pub(super) fn routes() -> Router<SharedState> {
    Router::new()
        .route("/apps/{app}/destinations/{kind}", post(set))
        .route("/apps/{app}/destinations/{kind}/remove", post(remove))
        .route("/apps/{app}/destinations/{kind}/test", post(test))
        .route("/apps/{app}/deliveries/{delivery}/retry", post(retry))
}

/// One notification type's row in Notification Preferences, with the set form's values
/// (what was typed, when it was refused).
pub(crate) struct DestinationView {
    pub code: &'static str,
    pub label: &'static str,
    pub slug: &'static str,
    pub current: Option<String>,
    pub form: DestinationForm,
    pub error: Option<String>,
}

#[derive(Clone, Default, Deserialize)]
pub(crate) struct DestinationForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub queue_url: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub endpoint_url: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub directory: String,
}

pub(crate) struct DeliveryRow {
    pub id: String,
    pub created: String,
    pub notification_type: &'static str,
    pub state: &'static str,
    pub attempts: u32,
    pub last_error: String,
    pub dead: bool,
}

fn label(t: NotificationType) -> (&'static str, &'static str) {
    match t {
        NotificationType::NewSecret => ("New secrets", "new-secret"),
        NotificationType::SecretExpiry => ("Expiry warnings", "expiry"),
    }
}

fn describe(target: &Target) -> String {
    match target {
        Target::Sqs {
            queue_url,
            region,
            endpoint_url,
        } => match endpoint_url {
            Some(e) => format!("SQS queue {queue_url} ({region}, through {e})"),
            None => format!("SQS queue {queue_url} ({region})"),
        },
        Target::Webhook { url } => format!("webhook {url}"),
        Target::File { directory } => format!("spool directory {directory}"),
        Target::SecretsManager {
            secret_id, region, ..
        } => format!("Secrets Manager secret {secret_id} ({region})"),
    }
}

/// The Notification Preferences rows, in a fixed order; `failed` is the type whose form
/// was refused, with what was typed and why.
pub(crate) fn destination_views(
    destinations: &[Destination],
    failed: Option<(NotificationType, DestinationForm, String)>,
) -> Vec<DestinationView> {
    NotificationType::ALL
        .into_iter()
        .map(|t| {
            let (label, slug) = label(t);
            let current = destinations
                .iter()
                .find(|d| d.notification_type == t)
                .map(|d| describe(&d.target));
            let (form, error) = match &failed {
                Some((ft, form, error)) if *ft == t => (form.clone(), Some(error.clone())),
                _ => (
                    DestinationForm {
                        kind: "sqs".into(),
                        ..Default::default()
                    },
                    None,
                ),
            };
            DestinationView {
                code: t.as_str(),
                label,
                slug,
                current,
                form,
                error,
            }
        })
        .collect()
}

pub(crate) fn delivery_rows(deliveries: &[Delivery]) -> Vec<DeliveryRow> {
    deliveries
        .iter()
        .map(|d| DeliveryRow {
            id: d.id.to_string(),
            created: when(Some(d.created_at)),
            notification_type: label(d.notification_type).0,
            state: d.state.as_str(),
            attempts: d.attempts,
            last_error: d.last_error.clone().unwrap_or_default(),
            dead: d.state == rekey_core::notify::DeliveryState::Dead,
        })
        .collect()
}

fn notification_type(kind: &str) -> Result<NotificationType, Refused> {
    NotificationType::parse(kind).ok_or(Refused::NotFound)
}

/// The app and notification type a destination form names, once its CSRF token passed.
fn destination_of(
    state: &SharedState,
    session: &Session,
    csrf: &str,
    app: &str,
    kind: &str,
) -> Result<(rekey_core::ops::AppRef, NotificationType), Refused> {
    session.check_csrf(state, csrf)?;
    Ok((app_id(app)?, notification_type(kind)?))
}

/// Back to the app page after an action, at `anchor`.
fn back_to_app(app: &str, done: &str, anchor: &str) -> Response {
    Redirect::to(&format!(
        "/console/apps/{}?done={done}#{anchor}",
        canonical(app)
    ))
    .into_response()
}

async fn set(
    State(state): State<SharedState>,
    session: Session,
    Path((app, kind)): Path<(String, String)>,
    Form(form): Form<DestinationForm>,
) -> Response {
    let (app_ref, t) = match destination_of(&state, &session, &form.csrf, &app, &kind) {
        Ok(v) => v,
        Err(refused) => return refused.into_response(),
    };
    let fields = TargetFields {
        queue_url: Some(form.queue_url.clone()),
        region: Some(form.region.clone()),
        endpoint_url: Some(form.endpoint_url.clone()),
        url: Some(form.url.clone()),
        directory: Some(form.directory.clone()),
        // The console offers the kinds a browser form suits; Secrets Manager is set through
        // the API or `rekey destinations set`.
        secret_id: None,
    };
    let set = match Target::from_fields(&form.kind, fields) {
        Ok(target) => {
            state
                .ops
                .set_destination(
                    &session.signed_in.actor,
                    session.signed_in.org.id,
                    &app_ref,
                    t,
                    target,
                )
                .await
        }
        Err(message) => Err(OpError::Invalid(message)),
    };
    match set {
        Ok(set) => match set.signing_secret {
            // A webhook's signing secret is shown once.
            Some(secret) => render(
                StatusCode::OK,
                &SecretOncePage {
                    chrome: session.chrome("apps", None),
                    heading: "Destination set",
                    explanation: format!(
                        "{} now go to {}. Requests carry Standard Webhooks signatures made with this signing secret: give it to the receiver to check them.",
                        label(t).0,
                        describe(&set.destination.target)
                    ),
                    back: format!("/console/apps/{}", canonical(&app)),
                    back_label: "Done: go to the app",
                    client_id: None,
                    secret_label: "Webhook signing secret",
                    secret,
                },
            ),
            None => back_to_app(&app, "destination-set", "notifications"),
        },
        // The page again, with what was typed and what is wrong.
        Err(OpError::Invalid(message)) => {
            match app_page(&state, &session, &app, None, Some((t, form, message))).await {
                Ok(page) => render(StatusCode::BAD_REQUEST, &page),
                Err(e) => op_error_page(e),
            }
        }
        Err(e) => op_error_page(e),
    }
}

async fn remove(
    State(state): State<SharedState>,
    session: Session,
    Path((app, kind)): Path<(String, String)>,
    Form(form): Form<ConfirmForm>,
) -> Response {
    let checked = form
        .confirmed()
        .and_then(|()| destination_of(&state, &session, &form.csrf, &app, &kind));
    let (app_ref, t) = match checked {
        Ok(v) => v,
        Err(refused) => return refused.into_response(),
    };
    match state
        .ops
        .remove_destination(
            &session.signed_in.actor,
            session.signed_in.org.id,
            &app_ref,
            t,
        )
        .await
    {
        Ok(()) => back_to_app(&app, "destination-removed", "notifications"),
        Err(e) => op_error_page(e),
    }
}

async fn test(
    State(state): State<SharedState>,
    session: Session,
    Path((app, kind)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (app_ref, t) = match destination_of(&state, &session, &form.csrf, &app, &kind) {
        Ok(v) => v,
        Err(refused) => return refused.into_response(),
    };
    match state
        .ops
        .test_destination(
            &session.signed_in.actor,
            session.signed_in.org.id,
            &app_ref,
            t,
        )
        .await
    {
        Ok(_) => back_to_app(&app, "test-queued", "deliveries"),
        Err(e) => op_error_page(e),
    }
}

async fn retry(
    State(state): State<SharedState>,
    session: Session,
    Path((app, delivery)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let checked = session
        .check_csrf(&state, &form.csrf)
        .and(app_id(&app))
        .and(
            uuid::Uuid::parse_str(&delivery)
                .map(DeliveryId)
                .map_err(|_| Refused::NotFound),
        );
    let id = match checked {
        Ok(id) => id,
        Err(refused) => return refused.into_response(),
    };
    match state
        .ops
        .retry_delivery(&session.signed_in.actor, session.signed_in.org.id, id)
        .await
    {
        Ok(_) => back_to_app(&app, "retried", "deliveries"),
        Err(e) => op_error_page(e),
    }
}
