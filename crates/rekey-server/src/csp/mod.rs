//! The VMware CSP dialect: organization-managed OAuth apps under
//! `/csp/gateway/am/api/orgs/{orgId}/oauth-apps`, and their secrets.
//!
//! `{oauthAppId}` is the app's client id. Errors are `CspErrorResponse` bodies whose
//! `requestId` equals the `x-request-id` response header.

mod apps;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use rekey_core::error::{CoreError, OpError};
use rekey_core::ops::Surface;
use rekey_core::policy::Denied;
use rekey_proto::csp::CspErrorResponse;
use serde::de::DeserializeOwned;

use crate::errors::{report_refusal, FillRequestId};
use crate::extract::{read_json, AuthFailure, BodyRejection, Caller};
use crate::state::SharedState;

pub fn routes() -> Router<SharedState> {
    // Nested, so that any other path under `orgs/` gets the CSP-shaped 404 below.
    let orgs = Router::new()
        .route(
            "/{org_id}/oauth-apps",
            get(apps::list)
                .post(apps::create)
                .delete(apps::bulk_delete)
                .fallback(not_found),
        )
        .route(
            "/{org_id}/oauth-apps/{oauth_app_id}",
            get(apps::get).patch(apps::patch).fallback(not_found),
        )
        .route(
            "/{org_id}/oauth-apps/{oauth_app_id}/secret",
            put(apps::regenerate_secret)
                .post(apps::rotate_secret)
                .delete(apps::finish_rotation)
                .fallback(not_found),
        )
        .fallback(not_found);
    Router::new().nest("/csp/gateway/am/api/orgs", orgs)
}

async fn not_found() -> CspError {
    CspError::not_found("The requested resource could not be found")
}

/// `CspErrorResponse`.
#[derive(Debug)]
pub struct CspError {
    status: StatusCode,
    error_code: &'static str,
    message: String,
}

/// The module code Rekey reports in `moduleCode` (identity and access management).
const MODULE_CODE: i32 = 1;

/// `axum::extract::Path` for the CSP API: an undecodable path is a `CspErrorResponse` 400.
pub struct CspPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<S>
    for CspPath<T>
{
    type Rejection = CspError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, CspError> {
        crate::extract::decode_path(parts, state)
            .await
            .map(Self)
            .map_err(CspError::bad_request)
    }
}

impl CspError {
    pub fn new(status: StatusCode, error_code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_code,
            message: message.into(),
        }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", m)
    }
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", m)
    }
    pub fn too_many_requests() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "The user has sent too many requests",
        )
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "An unexpected error has occurred while processing the request",
        )
    }
}

impl From<CoreError> for CspError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound => CspError::not_found("The requested resource could not be found"),
            CoreError::Conflict(m) => CspError::conflict(m),
            CoreError::Invalid(m) => CspError::bad_request(m),
            other => {
                tracing::error!(
                    error = &other as &dyn std::error::Error,
                    "CSP request failed"
                );
                CspError::internal()
            }
        }
    }
}

impl From<OpError> for CspError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Denied(d) => {
                report_refusal(Surface::Csp, d);
                match d {
                    Denied::NotAMember | Denied::NeedsAppManager => {
                        CspError::forbidden("The user is forbidden to use the API")
                    }
                    d => CspError::forbidden(d.to_string()),
                }
            }
            OpError::NotFound => CspError::not_found("The requested resource could not be found"),
            OpError::Invalid(m) => CspError::bad_request(m),
            OpError::Conflict(m) => CspError::conflict(m),
            OpError::ClientIdTaken => {
                CspError::conflict("An OAuth app with this id already exists")
            }
            OpError::RotationInProgress { previous_expires_at } => CspError::conflict(format!(
                "A secret rotation is in progress: the old secret is valid until {}. Delete the old secret first.",
                previous_expires_at.map_or_else(|| "it is revoked".into(), |t| t.to_rfc3339())
            )),
            OpError::NoValidCurrent => CspError::conflict(
                "The current secret is not valid: regenerate the secret (PUT) instead of deleting the old one",
            ),
            OpError::LastOwner => {
                CspError::conflict("The organization must keep at least one org_owner")
            }
            // CSP rotations never require a destination.
            OpError::NotEnrolled => CspError::internal(),
            OpError::Store(e) => e.into(),
        }
    }
}

impl From<AuthFailure> for CspError {
    fn from(f: AuthFailure) -> Self {
        match f {
            AuthFailure::Storage(e) => e.into(),
            f => CspError::unauthorized(f.to_string()),
        }
    }
}

impl From<BodyRejection> for CspError {
    fn from(r: BodyRejection) -> Self {
        match r {
            BodyRejection::UnsupportedMediaType => {
                CspError::bad_request("Invalid request body: Content-Type must be application/json")
            }
            BodyRejection::TooLarge => {
                CspError::bad_request("Invalid request body: it is too large")
            }
            BodyRejection::Invalid(m) => {
                CspError::bad_request(format!("Invalid request body: {m}"))
            }
        }
    }
}

impl IntoResponse for CspError {
    fn into_response(self) -> Response {
        let body = CspErrorResponse {
            csp_error_code: format!("{}.{}", self.status.as_u16(), self.error_code),
            error_code: self.error_code.to_string(),
            message: self.message,
            module_code: MODULE_CODE,
            // Filled in from the request id by the response middleware.
            request_id: String::new(),
            status_code: self.status.as_u16(),
        };
        let mut res = (self.status, Json(body)).into_response();
        res.extensions_mut().insert(FillRequestId);
        res
    }
}

/// The authenticated caller, with rejections in the CSP shape.
pub struct CspCaller(pub Caller);

impl FromRequestParts<SharedState> for CspCaller {
    type Rejection = CspError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, CspError> {
        Ok(CspCaller(Caller::authenticate(parts, state).await?))
    }
}

/// A JSON body with rejections in the CSP shape (an empty body is an error: `{}` is the
/// least a CSP endpoint with a body takes).
pub struct CspJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<SharedState> for CspJson<T> {
    type Rejection = CspError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, CspError> {
        Ok(CspJson(
            read_json(req, state.config.body_limit_bytes).await?,
        ))
    }
}
