//! Notification preferences (destinations) and the deliveries of the outbox.

use crate::extract::NativePath as Path;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use rekey_core::model::DeliveryId;
use rekey_core::notify::{Delivery, DeliveryState, NotificationType, Target, TargetFields};
use rekey_proto::native::{
    DeliveryList, DeliveryQuery, DeliveryView, DestinationList, DestinationRequest,
    DestinationView, QueuedNotification,
};

use super::apps::{app_ref, load_app};
use super::orgs::{page, parse_org, parse_query};
use super::views;
use crate::errors::ApiError;
use crate::extract::{ApiJson, Caller};
use crate::state::SharedState;
use rekey_core::error::OpError;

fn parse_type(s: &str) -> Result<NotificationType, ApiError> {
    NotificationType::parse(s).ok_or_else(|| {
        ApiError::bad_request("The notification type must be APPLICATION_OAUTH_CLIENT_NEW_SECRET or APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY")
    })
}

fn target_from(req: DestinationRequest) -> Result<Target, ApiError> {
    let fields = TargetFields {
        queue_url: req.queue_url,
        region: req.region,
        endpoint_url: req.endpoint_url,
        url: req.url,
        directory: req.directory,
        secret_id: req.secret_id,
    };
    Target::from_fields(&req.kind, fields).map_err(ApiError::bad_request)
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
pub(super) async fn put_destination(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id, kind)): Path<(String, String, String)>,
    ApiJson(req): ApiJson<DestinationRequest>,
) -> Result<Json<DestinationView>, ApiError> {
    let set = state
        .ops
        .set_destination(
            &caller.actor(),
            parse_org(&org_id)?,
            &app_ref(&app_id),
            parse_type(&kind)?,
            target_from(req)?,
        )
        .await?;
    Ok(Json(views::destination(
        &set.destination,
        set.signing_secret,
    )))
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
pub(super) async fn list_destinations(
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
pub(super) async fn get_destination(
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
pub(super) async fn delete_destination(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id, kind)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .ops
        .remove_destination(
            &caller.actor(),
            parse_org(&org_id)?,
            &app_ref(&app_id),
            parse_type(&kind)?,
        )
        .await
        .map_err(no_destination)?;
    Ok(StatusCode::NO_CONTENT)
}

fn no_destination(e: OpError) -> ApiError {
    match e {
        OpError::NotFound => {
            ApiError::not_found("No such app, or no destination for this notification type")
        }
        e => e.into(),
    }
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
pub(super) async fn test_destination(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, app_id, kind)): Path<(String, String, String)>,
) -> Result<(StatusCode, Json<QueuedNotification>), ApiError> {
    let d = state
        .ops
        .test_destination(
            &caller.actor(),
            parse_org(&org_id)?,
            &app_ref(&app_id),
            parse_type(&kind)?,
        )
        .await
        .map_err(no_destination)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(QueuedNotification {
            notification_id: d.notification_id.0,
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
        ("appId" = Option<String>, Query, description = "Only this app (its id or its client id)"),
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
pub(super) async fn list_deliveries(
    State(state): State<SharedState>,
    caller: Caller,
    Path(org_id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<DeliveryList>, ApiError> {
    let org_id = parse_org(&org_id)?;
    caller.role_in(&state, org_id).await?;
    let q: DeliveryQuery = parse_query(q.as_deref())?;
    let page = page(q.page_start, q.page_limit)?;
    let app = match &q.app_id {
        Some(a) => Some(state.ops.app_in(org_id, &app_ref(a)).await?.id),
        None => None,
    };
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
pub(super) async fn get_delivery(
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
pub(super) async fn retry_delivery(
    State(state): State<SharedState>,
    caller: Caller,
    Path((org_id, id)): Path<(String, String)>,
) -> Result<Json<DeliveryView>, ApiError> {
    let id = DeliveryId::parse(&id)
        .ok_or_else(|| ApiError::bad_request("The delivery id must be a UUID"))?;
    let d = state
        .ops
        .retry_delivery(&caller.actor(), parse_org(&org_id)?, id)
        .await?;
    Ok(Json(views::delivery(&d)))
}
