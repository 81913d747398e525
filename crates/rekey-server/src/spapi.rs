//! The SP-API dialect: Application Management API v2023-11-30,
//! `POST /applications/2023-11-30/clientSecret` (`rotateApplicationClientSecret`).
//!
//! The calling application rotates its own secret. The new secret is never in the response:
//! it goes to the app's `APPLICATION_OAUTH_CLIENT_NEW_SECRET` destination through the outbox,
//! and the old secret stays valid for 7 days. Errors are `ErrorList` bodies; every response
//! carries `x-amzn-RequestId`, and those the model marks also `x-amzn-RateLimit-Limit`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router};
use rekey_core::error::CoreError;
use rekey_core::model::{App, AuditContext};
use rekey_core::ops::tokens::AuthFailure;

use crate::errors::report_refusal;
use crate::extract::{bearer_token, REQUEST_ID_HEADER};
use crate::state::{AppState, SharedState};
use rekey_core::error::OpError;
use rekey_core::model::Principal;
use rekey_core::ops::secrets::RotateInput;
use rekey_core::ops::{Actor, Surface};
use rekey_proto::spapi::ErrorList;

/// The scope an LWA token needs for rotation.
pub const ROTATION_SCOPE: &str = "sellingpartnerapi::client_credential:rotation";
/// SP-API keeps the old secret valid for seven days.
pub const SPAPI_GRACE_SECS: i64 = 7 * 86_400;
/// The seed's exact message for an app without a rotation destination.
pub const NOT_ENROLLED: &str = "Application is not enrolled for rotation notification. Please update application notification preference in Developer console.";
const ACCESS_DENIED: &str = "Access to requested resource is denied.";

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route(
            "/applications/2023-11-30/clientSecret",
            post(rotate_application_client_secret).fallback(not_found),
        )
        .route("/applications/{*rest}", any(not_found))
}

/// An error in the SP-API `ErrorList` shape.
#[derive(Debug)]
pub struct SpApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<String>,
}

impl SpApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    fn with_details(mut self, d: impl Into<String>) -> Self {
        self.details = Some(d.into());
        self
    }

    fn denied(details: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Unauthorized", ACCESS_DENIED).with_details(details)
    }

    fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "An unexpected condition occurred that prevented the server from fulfilling the request.",
        )
    }
}

impl From<CoreError> for SpApiError {
    fn from(e: CoreError) -> Self {
        tracing::error!(
            error = &e as &dyn std::error::Error,
            "SP-API request failed"
        );
        SpApiError::internal()
    }
}

/// Statuses whose responses carry the rate-limit header: those the API model marks, and
/// 429, so a throttled client learns the rate it exceeded.
fn carries_rate_limit(status: StatusCode) -> bool {
    matches!(status.as_u16(), 204 | 400 | 404 | 429)
}

fn finish(state: &AppState, request_id: &str, mut res: Response) -> Response {
    let status = res.status();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert(HeaderName::from_static("x-amzn-requestid"), v);
    }
    if carries_rate_limit(status) {
        if let Ok(v) = HeaderValue::from_str(&state.config.spapi_rotation_rate.to_string()) {
            h.insert(HeaderName::from_static("x-amzn-ratelimit-limit"), v);
        }
    }
    res
}

impl IntoResponse for SpApiError {
    fn into_response(self) -> Response {
        let body = ErrorList {
            errors: vec![rekey_proto::spapi::SpApiError {
                code: self.code.to_string(),
                message: self.message,
                details: self.details,
            }],
        };
        (self.status, Json(body)).into_response()
    }
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn not_found(State(state): State<SharedState>, headers: HeaderMap) -> Response {
    let e = SpApiError::new(
        StatusCode::NOT_FOUND,
        "NotFound",
        "The resource specified does not exist.",
    );
    finish(&state, &request_id(&headers), e.into_response())
}

/// `POST /applications/2023-11-30/clientSecret`
pub async fn rotate_application_client_secret(
    State(state): State<SharedState>,
    axum::Extension(client): axum::Extension<crate::extract::ClientAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let rid = request_id(&headers);
    let source = client.0.to_string();
    let res = match handle_rotate(&state, &headers, body, &rid, &source).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    };
    finish(&state, &rid, res)
}

/// The app whose token this is, if the token is valid, its secret still valid, and it has
/// the rotation scope.
async fn authorize(state: &AppState, headers: &HeaderMap) -> Result<App, SpApiError> {
    let token = headers
        .get("x-amz-access-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| bearer_token(headers))
        .ok_or_else(|| SpApiError::denied("The request has no x-amz-access-token header."))?;
    let authenticated = state.ops.authenticate(token).await.map_err(|e| match e {
        AuthFailure::Expired => SpApiError::denied("The access token has expired."),
        AuthFailure::Revoked => SpApiError::denied(
            "The client secret this access token was issued with has expired or was revoked.",
        ),
        AuthFailure::Storage(e) => e.into(),
        AuthFailure::WrongAudience => {
            SpApiError::denied("The access token is for another audience than this server.")
        }
        AuthFailure::Missing | AuthFailure::Invalid => {
            SpApiError::denied("The access token is not valid.")
        }
    })?;
    let Some(app) = authenticated.app else {
        return Err(SpApiError::denied(
            "The access token was not issued to an application.",
        ));
    };
    if !authenticated
        .claims
        .scope
        .split(' ')
        .any(|s| s == ROTATION_SCOPE)
    {
        return Err(SpApiError::denied(
            "The access token does not have the scope sellingpartnerapi::client_credential:rotation.",
        ));
    }
    // The token's claim says what the app could do when it was issued; the app's settings
    // say what it may do now (its scopes may have been reduced since).
    if !app.scopes.iter().any(|s| s == ROTATION_SCOPE) {
        return Err(SpApiError::denied(
            "The application no longer has the scope sellingpartnerapi::client_credential:rotation.",
        ));
    }
    Ok(app)
}

async fn handle_rotate(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    rid: &str,
    source: &str,
) -> Result<(), SpApiError> {
    let app = authorize(state, headers).await?;
    check_body(state, body).await?;
    let bucket = format!("spapi:rotate:{}", app.id);
    let c = &state.config;
    if !state
        .ops
        .spend_rate_token(&bucket, c.spapi_rotation_rate, c.spapi_rotation_burst)
        .await?
    {
        return Err(SpApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "QuotaExceeded",
            "You exceeded your quota for the requested resource.",
        ));
    }
    let actor = Actor {
        principal: Principal::App(app.id),
        org_id: app.org_id,
        surface: Surface::SpApi,
        audit: AuditContext {
            actor: format!("app:{}", app.id),
            request_id: Some(rid.to_string()),
            source: Some(source.to_string()),
        },
    };
    crate::telemetry::record_actor(&actor.audit.actor);
    let input = RotateInput {
        grace_secs: Some(SPAPI_GRACE_SECS),
        supplied: None,
        require_destination: true,
    };
    state
        .ops
        .rotate_own_secret(&actor, app, input)
        .await
        .map(|_| ())
        .map_err(refusal)
}

/// No input: any JSON body (or none) is accepted and ignored.
async fn check_body(state: &AppState, body: Body) -> Result<(), SpApiError> {
    let bytes = axum::body::to_bytes(body, state.config.body_limit_bytes)
        .await
        .map_err(|_| {
            SpApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                "The request size exceeded the maximum accepted size.",
            )
        })?;
    if !bytes.iter().all(u8::is_ascii_whitespace)
        && serde_json::from_slice::<serde_json::Value>(&bytes).is_err()
    {
        return Err(SpApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "The request payload is in an unsupported format.",
        )
        .with_details("The body must be JSON, or empty."));
    }
    Ok(())
}

/// A refused rotation in the `ErrorList` shape.
fn refusal(e: OpError) -> SpApiError {
    match e {
        OpError::NotEnrolled => {
            SpApiError::new(StatusCode::BAD_REQUEST, "InvalidInput", NOT_ENROLLED)
        }
        OpError::RotationInProgress {
            previous_expires_at,
        } => SpApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "A client secret rotation is already in progress.",
        )
        .with_details(format!(
            "The previous client secret stays valid until {}; rotate again after that.",
            previous_expires_at.map_or_else(|| "it expires".to_string(), |t| t.to_rfc3339())
        )),
        OpError::NotFound => SpApiError::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The resource specified does not exist.",
        ),
        OpError::Denied(d) => {
            report_refusal(Surface::SpApi, d);
            SpApiError::denied("The access token was not issued to this application.")
        }
        OpError::Store(e) => e.into(),
        e => {
            tracing::error!(
                error = &e as &dyn std::error::Error,
                "SP-API rotation failed"
            );
            SpApiError::internal()
        }
    }
}
