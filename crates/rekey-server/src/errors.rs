//! One error type per dialect, each rendering its own schema. Internal errors are logged with
//! their cause and rendered opaque: no `to_string()` of an internal error reaches a client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rekey_core::error::{CoreError, OpError};
use rekey_core::ops::Surface;
use rekey_core::policy::Denied;
use rekey_proto::native::Problem;
use rekey_proto::oauth::OAuthErrorBody;

/// An RFC 6749 section 5.2 error from a token endpoint.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: StatusCode,
    pub code: &'static str,
    pub description: String,
    /// Adds `WWW-Authenticate: Basic` (required when the client tried Basic auth).
    pub basic_challenge: bool,
    /// Adds `Retry-After` (throttling).
    pub retry_after_secs: Option<u64>,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            basic_challenge: false,
            retry_after_secs: None,
        }
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }

    /// Client authentication failed. `status` is 401 for Basic (and on the LWA path), 400
    /// for credentials in the body elsewhere (RFC 6749 section 5.2).
    pub fn invalid_client(status: StatusCode, basic: bool) -> Self {
        let mut e = Self::new(status, "invalid_client", "Client authentication failed");
        e.basic_challenge = basic;
        e
    }

    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }

    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", d)
    }

    pub fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", d)
    }

    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
    }

    /// RFC 8707: the requested resource is not one the client may ask tokens for.
    pub fn invalid_target(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_target", d)
    }

    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "The request body is too large",
        )
    }

    /// Too many failed authentications (`slow_down`, from the IANA OAuth error registry).
    pub fn throttled(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            "Too many failed authentication attempts; retry later",
        );
        e.retry_after_secs = Some(retry_after_secs);
        e
    }

    pub fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The server could not complete the request",
        )
    }
}

impl From<CoreError> for OAuthError {
    fn from(e: CoreError) -> Self {
        tracing::error!(
            error = &e as &dyn std::error::Error,
            "token endpoint failed"
        );
        OAuthError::server_error()
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = OAuthErrorBody {
            error: self.code.to_string(),
            error_description: Some(self.description),
        };
        let mut res = (self.status, Json(body)).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.basic_challenge {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"rekey\", charset=\"UTF-8\""),
            );
        }
        if let Some(s) = self.retry_after_secs {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        res
    }
}

/// Marks an error response whose JSON body gets a `requestId` (the `x-request-id` of the
/// request) added by the response middleware in `startup`.
#[derive(Clone, Copy, Debug)]
pub struct FillRequestId;

/// An error of the native API, rendered as RFC 9457 problem details.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub detail: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            detail: Some(detail.into()),
        }
    }

    pub fn bad_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-request", d)
    }

    pub fn unauthenticated(d: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", d)
    }

    pub fn forbidden(d: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", d)
    }

    pub fn not_found(d: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", d)
    }

    pub fn conflict(d: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", d)
    }

    pub fn internal() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            detail: None,
        }
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }
}

impl From<CoreError> for ApiError {
    #[track_caller]
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound => ApiError::not_found("The resource does not exist"),
            CoreError::Conflict(m) => ApiError::conflict(m),
            CoreError::Invalid(m) => ApiError::bad_request(m),
            other => {
                let at = std::panic::Location::caller();
                tracing::error!(error = &other as &dyn std::error::Error, at = %at, "request failed");
                ApiError::internal()
            }
        }
    }
}

/// Logs and counts a request the policy refused. The line is written inside the request's
/// span, which carries the route, the request id, the client address and the caller.
pub(crate) fn report_refusal(surface: Surface, denied: Denied) {
    metrics::counter!(rekey_core::metrics::REFUSED_ACTIONS, "dialect" => surface.as_str())
        .increment(1);
    tracing::info!(dialect = surface.as_str(), reason = %denied, "refused by the policy");
}

impl From<OpError> for ApiError {
    #[track_caller]
    fn from(e: OpError) -> Self {
        match e {
            OpError::Denied(d) => {
                report_refusal(Surface::Native, d);
                ApiError::forbidden(d.to_string())
            }
            OpError::NotFound => ApiError::not_found("No such app, secret or member in this organization"),
            OpError::Invalid(m) => ApiError::bad_request(m),
            OpError::Conflict(m) => ApiError::conflict(m),
            OpError::ClientIdTaken => ApiError::conflict("An app with this clientId exists"),
            OpError::NotEnrolled => ApiError::bad_request(
                "The app has no destination for APPLICATION_OAUTH_CLIENT_NEW_SECRET",
            ),
            OpError::RotationInProgress { previous_expires_at } => ApiError::conflict(format!(
                "A rotation is in progress: the previous secret is valid until {}. Finish the rotation first, or wait.",
                previous_expires_at.map_or_else(|| "it is revoked".into(), |t| t.to_rfc3339())
            )),
            OpError::NoValidCurrent => ApiError::conflict(
                "The current secret is not valid: regenerate instead of finishing the rotation",
            ),
            OpError::LastOwner => {
                ApiError::conflict("The organization must keep at least one org_owner")
            }
            OpError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = Problem {
            type_: format!("urn:rekey:problem:{}", self.kind),
            title: self.title().to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
            // Filled in from the request id by the response middleware.
            request_id: None,
        };
        let mut res = (self.status, Json(problem)).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res.extensions_mut().insert(FillRequestId);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(res: Response) -> serde_json::Value {
        let b = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&b).unwrap()
    }

    #[tokio::test]
    async fn basic_auth_failure_is_401_with_a_challenge() {
        let res = OAuthError::invalid_client(StatusCode::UNAUTHORIZED, true).into_response();
        assert_eq!(res.status(), 401);
        assert!(res.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic"));
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        let b = body(res).await;
        assert_eq!(b["error"], "invalid_client");
        assert_eq!(b["error_description"], "Client authentication failed");
    }

    #[tokio::test]
    async fn throttling_says_when_to_retry() {
        let res = OAuthError::throttled(30).into_response();
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()[header::RETRY_AFTER], "30");
        assert_eq!(body(res).await["error"], "slow_down");
    }

    #[tokio::test]
    async fn internal_errors_are_opaque_problems() {
        let res = ApiError::from(CoreError::storage(
            "query failed",
            "password=hunter2".to_string(),
        ))
        .into_response();
        assert_eq!(res.status(), 500);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let b = body(res).await;
        assert!(!b.to_string().contains("hunter2"));
        assert_eq!(b["type"], "urn:rekey:problem:internal");
        assert_eq!(b["status"], 500);
    }

    #[tokio::test]
    async fn core_errors_map_to_problem_statuses() {
        assert_eq!(ApiError::from(CoreError::NotFound).status, 404);
        assert_eq!(ApiError::from(CoreError::Conflict("x".into())).status, 409);
        assert_eq!(ApiError::from(CoreError::Invalid("x".into())).status, 400);
    }
}
