//! Notification preferences (destinations) and the deliveries of the outbox.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use rekey_core::model::{AppId, DeliveryId, DestinationId, NotificationId};
use rekey_core::notify::{
    envelope, signing_key_context, Delivery, DeliveryState, Destination, NotificationType, Target,
};
use rekey_proto::native::{
    DeliveryList, DeliveryView, DestinationList, DestinationRequest, DestinationView,
    QueuedNotification,
};

use super::apps::{app_to_change, load_app};
use super::orgs::{page, parse_org, parse_query};
use super::views;
use crate::errors::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::state::SharedState;
use rekey_core::policy::Action;

fn parse_type(s: &str) -> Result<NotificationType, ApiError> {
    NotificationType::parse(s).ok_or_else(|| {
        ApiError::bad_request("The notification type must be APPLICATION_OAUTH_CLIENT_NEW_SECRET or APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY")
    })
}

fn target_from(req: DestinationRequest, allow_insecure: bool) -> Result<Target, ApiError> {
    let missing = |f: &str| ApiError::bad_request(format!("{f} is required for this kind"));
    let target = match req.kind.as_str() {
        "sqs" => Target::Sqs {
            queue_url: req.queue_url.ok_or_else(|| missing("queueUrl"))?,
            region: req.region.ok_or_else(|| missing("region"))?,
            endpoint_url: req.endpoint_url,
        },
        "webhook" => Target::Webhook {
            url: req.url.ok_or_else(|| missing("url"))?,
        },
        "file" => Target::File {
            directory: req.directory.ok_or_else(|| missing("directory"))?,
        },
        _ => return Err(ApiError::bad_request("kind must be sqs, webhook or file")),
    };
    target.validate()?;
    if !allow_insecure {
        let insecure = match &target {
            Target::Sqs {
                queue_url,
                endpoint_url,
                ..
            } => {
                if endpoint_url.is_some() {
                    return Err(ApiError::bad_request(
                        "endpointUrl is not allowed on this server (allow_insecure_destinations is off)",
                    ));
                }
                !queue_url.starts_with("https://")
            }
            Target::Webhook { url } => !url.starts_with("https://"),
            Target::File { .. } => false,
        };
        if insecure {
            return Err(ApiError::bad_request("Destination URLs must use https"));
        }
    }
    Ok(target)
}

/// `PUT .../apps/{app}/destinations/{type}`: sets (replaces) the destination. A webhook gets a
/// new signing secret, returned only now.
#[utoipa::path(
    put,
    path = "/api/v1/orgs/{org_id}/apps/{app_id}/destinations/{notification_type}",
    tag = "destinations",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("app_id" = String, Path, description = "App id (UUID) or client id"),
        ("notification_type" = String, Path, description = "APPLICATION_OAUTH_CLIENT_NEW_SECRET or APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY"),
    ),
    request_body = rekey_proto::native::DestinationRequest,
    responses(
        (status = 200, description = "The destination (a webhook signing secret shown once)", body = rekey_proto::native::DestinationView),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not JSON", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn put_destination(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id, kind)): Path<(String, String, String)>,
    ApiJson(req): ApiJson<DestinationRequest>,
) -> Result<Json<DestinationView>, ApiError> {
    let (org_id, app) = app_to_change(&state, &caller, &org_id, &app_id).await?;
    let notification_type = parse_type(&kind)?;
    let target = target_from(req, state.config.allow_insecure_destinations)?;
    let now = state.now();
    let id = DestinationId::new();
    let signing_secret = matches!(target, Target::Webhook { .. })
        .then(rekey_dispatch::sinks::generate_webhook_secret);
    let dest = Destination {
        id,
        app_id: app.id,
        notification_type,
        sealed_signing_key: signing_secret.as_ref().map(|s| {
            state
                .webhook_key_sealer
                .seal(s.as_bytes(), &signing_key_context(id))
        }),
        target,
        created_at: now,
        updated_at: now,
    };
    let ev = caller.audit.event(now, "destination.changed").org(org_id).app(app.id).details(serde_json::json!({
        "notificationType": notification_type.as_str(), "kind": dest.target.kind(), "destinationId": id.to_string(),
    }));
    state.store.put_destination(&dest, &[ev]).await?;
    Ok(Json(views::destination(&dest, signing_secret)))
}

/// `GET .../apps/{app}/destinations`
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/apps/{app_id}/destinations",
    tag = "destinations",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("app_id" = String, Path, description = "App id (UUID) or client id"),
    ),
    responses(
        (status = 200, description = "Destinations", body = rekey_proto::native::DestinationList),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_destinations(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id)): Path<(String, String)>,
) -> Result<Json<DestinationList>, ApiError> {
    let (_, app) = load_app(&state, &caller, &org_id, &app_id).await?;
    let items = state.store.list_destinations(app.id).await?;
    Ok(Json(DestinationList {
        items: items.iter().map(|d| views::destination(d, None)).collect(),
    }))
}

/// `GET .../apps/{app}/destinations/{type}`
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/apps/{app_id}/destinations/{notification_type}",
    tag = "destinations",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("app_id" = String, Path, description = "App id (UUID) or client id"),
        ("notification_type" = String, Path, description = "APPLICATION_OAUTH_CLIENT_NEW_SECRET or APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY"),
    ),
    responses(
        (status = 200, description = "The destination", body = rekey_proto::native::DestinationView),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_destination(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id, kind)): Path<(String, String, String)>,
) -> Result<Json<DestinationView>, ApiError> {
    let (_, app) = load_app(&state, &caller, &org_id, &app_id).await?;
    let d = state
        .store
        .get_destination(app.id, parse_type(&kind)?)
        .await?
        .ok_or_else(|| ApiError::not_found("No destination for this notification type"))?;
    Ok(Json(views::destination(&d, None)))
}

/// `DELETE .../apps/{app}/destinations/{type}`
#[utoipa::path(
    delete,
    path = "/api/v1/orgs/{org_id}/apps/{app_id}/destinations/{notification_type}",
    tag = "destinations",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("app_id" = String, Path, description = "App id (UUID) or client id"),
        ("notification_type" = String, Path, description = "APPLICATION_OAUTH_CLIENT_NEW_SECRET or APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn delete_destination(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id, kind)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let (org_id, app) = app_to_change(&state, &caller, &org_id, &app_id).await?;
    let t = parse_type(&kind)?;
    let ev = caller
        .audit
        .event(state.now(), "destination.removed")
        .org(org_id)
        .app(app.id)
        .details(serde_json::json!({ "notificationType": t.as_str() }));
    if !state.store.delete_destination(app.id, t, &[ev]).await? {
        return Err(ApiError::not_found(
            "No destination for this notification type",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../apps/{app}/destinations/{type}/test`: queues a test notification (payload
/// `testNotification`, no secret) to check that the destination receives.
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/apps/{app_id}/destinations/{notification_type}/test",
    tag = "destinations",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("app_id" = String, Path, description = "App id (UUID) or client id"),
        ("notification_type" = String, Path, description = "APPLICATION_OAUTH_CLIENT_NEW_SECRET or APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY"),
    ),
    responses(
        (status = 202, description = "A test notification is queued", body = rekey_proto::native::QueuedNotification),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn test_destination(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id, kind)): Path<(String, String, String)>,
) -> Result<(StatusCode, Json<QueuedNotification>), ApiError> {
    let (org_id, app) = app_to_change(&state, &caller, &org_id, &app_id).await?;
    let t = parse_type(&kind)?;
    let dest = state
        .store
        .get_destination(app.id, t)
        .await?
        .ok_or_else(|| ApiError::not_found("No destination for this notification type"))?;
    let now = state.now();
    let nid = NotificationId::new();
    let env = envelope(
        t,
        nid,
        &app.client_id,
        dest.id,
        serde_json::json!({
            "testNotification": { "clientId": app.client_id, "message": "A test notification from Rekey: this destination receives." }
        }),
        now,
    );
    let d = Delivery::new(
        &state.outbox_sealer,
        nid,
        app.id,
        org_id,
        t,
        dest.id,
        &env,
        None,
        now,
    );
    let ev = caller.audit.event(now, "notification.enqueued").org(org_id).app(app.id)
        .details(serde_json::json!({ "notificationId": nid.to_string(), "notificationType": t.as_str(), "test": true }));
    state
        .store
        .enqueue_deliveries(std::slice::from_ref(&d), &[ev])
        .await?;
    state.delivery_wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(QueuedNotification {
            notification_id: nid.0,
            delivery_id: d.id.0,
        }),
    ))
}

/// `GET /api/v1/orgs/{org}/deliveries?appId&state&pageStart&pageLimit`
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/deliveries",
    tag = "deliveries",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("appId" = Option<Uuid>, Query, description = "Only this app"),
        ("state" = Option<String>, Query, description = "pending, delivered or dead"),
        ("pageStart" = Option<u32>, Query, description = "Items to skip (default 0)"),
        ("pageLimit" = Option<u32>, Query, description = "Items per page, 1-1000 (default 100)"),
    ),
    responses(
        (status = 200, description = "Deliveries, newest first", body = rekey_proto::native::DeliveryList),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn list_deliveries(
    State(state): State<SharedState>,
    caller: Caller,
    Path(org_id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<DeliveryList>, ApiError> {
    let org_id = parse_org(&org_id)?;
    caller.role_in(&state, org_id).await?;
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct DeliveriesQuery {
        app_id: Option<String>,
        state: Option<String>,
        page_start: Option<u32>,
        page_limit: Option<u32>,
    }
    let q: DeliveriesQuery = parse_query(q.as_deref())?;
    let page = page(q.page_start, q.page_limit)?;
    let app = q
        .app_id
        .map(|a| AppId::parse(&a).ok_or_else(|| ApiError::bad_request("appId must be a UUID")))
        .transpose()?;
    let st = q
        .state
        .map(|v| {
            DeliveryState::parse(&v)
                .ok_or_else(|| ApiError::bad_request("state must be pending, delivered or dead"))
        })
        .transpose()?;
    let items = state.store.list_deliveries(org_id, app, st, page).await?;
    Ok(Json(DeliveryList {
        items: items.iter().map(views::delivery).collect(),
    }))
}

async fn load_delivery(
    state: &SharedState,
    org: rekey_core::model::OrgId,
    id: &str,
) -> Result<Delivery, ApiError> {
    let id = DeliveryId::parse(id)
        .ok_or_else(|| ApiError::bad_request("The delivery id must be a UUID"))?;
    match state.store.get_delivery(id).await? {
        Some(d) if d.org_id == org => Ok(d),
        _ => Err(ApiError::not_found("No such delivery in this organization")),
    }
}

/// `GET /api/v1/orgs/{org}/deliveries/{id}`
#[utoipa::path(
    get,
    path = "/api/v1/orgs/{org_id}/deliveries/{delivery_id}",
    tag = "deliveries",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("delivery_id" = Uuid, Path, description = "Delivery id"),
    ),
    responses(
        (status = 200, description = "The delivery", body = rekey_proto::native::DeliveryView),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_delivery(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, id)): Path<(String, String)>,
) -> Result<Json<DeliveryView>, ApiError> {
    let org_id = parse_org(&org_id)?;
    caller.role_in(&state, org_id).await?;
    Ok(Json(views::delivery(
        &load_delivery(&state, org_id, &id).await?,
    )))
}

/// `POST /api/v1/orgs/{org}/deliveries/{id}/retry`: a dead delivery gets a new retry budget.
#[utoipa::path(
    post,
    path = "/api/v1/orgs/{org_id}/deliveries/{delivery_id}/retry",
    tag = "deliveries",
    params(
        ("org_id" = Uuid, Path, description = "Organization id"),
        ("delivery_id" = Uuid, Path, description = "Delivery id"),
    ),
    responses(
        (status = 200, description = "Back to pending", body = rekey_proto::native::DeliveryView),
        (status = 400, description = "Invalid request", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller may not do this", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such resource", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Conflict with the current state", body = rekey_proto::native::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn retry_delivery(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, id)): Path<(String, String)>,
) -> Result<Json<DeliveryView>, ApiError> {
    let org_id = parse_org(&org_id)?;
    caller
        .authorize(&state, org_id, Action::RetryDelivery)
        .await?;
    let d = load_delivery(&state, org_id, &id).await?;
    let now = state.now();
    let ev = caller.audit.event(now, "notification.retried").org(org_id).app(d.app_id)
        .details(serde_json::json!({ "notificationId": d.notification_id.to_string(), "deliveryId": d.id.to_string() }));
    if !state.store.retry_delivery(d.id, now, &[ev]).await? {
        return Err(ApiError::conflict("Only a dead delivery can be retried"));
    }
    state.delivery_wake.notify_one();
    let d = load_delivery(&state, org_id, &id).await?;
    Ok(Json(views::delivery(&d)))
}
