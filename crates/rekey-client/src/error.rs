//! Errors, with what each dialect says about them.

use rekey_proto::csp::CspErrorResponse;
use rekey_proto::native::Problem;
use rekey_proto::oauth::OAuthErrorBody;
use rekey_proto::spapi::ErrorList;
use reqwest::StatusCode;

/// The error body, parsed in the dialect that produced it (with the wire types of
/// `rekey-proto`).
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorBody {
    /// RFC 6749 `{error, error_description}`.
    OAuth {
        error: String,
        description: Option<String>,
    },
    /// SP-API `ErrorList`: `(code, message, details)` per error.
    SpApi(Vec<(String, String, Option<String>)>),
    /// CSP `CspErrorResponse`.
    Csp {
        error_code: String,
        message: String,
    },
    /// RFC 9457 problem details (Rekey's native API).
    Problem {
        type_: String,
        detail: Option<String>,
    },
    /// Anything else, as text (at most 300 characters).
    Other(String),
    None,
}

impl ErrorBody {
    pub fn parse(bytes: &[u8]) -> Self {
        if bytes.is_empty() {
            return ErrorBody::None;
        }
        if let Ok(list) = serde_json::from_slice::<ErrorList>(bytes) {
            return ErrorBody::SpApi(
                list.errors
                    .into_iter()
                    .map(|e| (e.code, e.message, e.details))
                    .collect(),
            );
        }
        if let Ok(e) = serde_json::from_slice::<OAuthErrorBody>(bytes) {
            return ErrorBody::OAuth {
                error: e.error,
                description: e.error_description,
            };
        }
        if let Ok(e) = serde_json::from_slice::<CspErrorResponse>(bytes) {
            return ErrorBody::Csp {
                error_code: e.error_code,
                message: e.message,
            };
        }
        if let Ok(p) = serde_json::from_slice::<Problem>(bytes) {
            return ErrorBody::Problem {
                type_: p.type_,
                detail: p.detail,
            };
        }
        ErrorBody::Other(String::from_utf8_lossy(bytes).chars().take(300).collect())
    }

    /// A one-line summary for people.
    pub fn summary(&self) -> String {
        match self {
            ErrorBody::OAuth { error, description } => match description {
                Some(d) => format!("{error}: {d}"),
                None => error.clone(),
            },
            ErrorBody::SpApi(errors) => errors
                .iter()
                .map(|(c, m, d)| match d {
                    Some(d) => format!("{c}: {m} ({d})"),
                    None => format!("{c}: {m}"),
                })
                .collect::<Vec<_>>()
                .join("; "),
            ErrorBody::Csp {
                error_code,
                message,
            } => format!("{error_code}: {message}"),
            ErrorBody::Problem { type_, detail } => detail.clone().unwrap_or_else(|| type_.clone()),
            ErrorBody::Other(text) => text.clone(),
            ErrorBody::None => String::new(),
        }
    }
}

/// What went wrong with a call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("HTTP {status}: {}", body.summary())]
    Http {
        status: StatusCode,
        body: ErrorBody,
        request_id: Option<String>,
        rate_limit: Option<String>,
    },
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach {url}: {message}")]
    Transport { url: String, message: String },
    /// The answer was not what the API promises.
    #[error("unexpected response: {0}")]
    Decode(String),
}

impl ClientError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            ClientError::Http { body, .. } => Some(body),
            _ => None,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        match self {
            ClientError::Http { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    pub fn rate_limit(&self) -> Option<&str> {
        match self {
            ClientError::Http { rate_limit, .. } => rate_limit.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_dialect_error_body_is_recognised() {
        assert_eq!(
            ErrorBody::parse(
                br#"{"error":"invalid_client","error_description":"Client authentication failed"}"#
            ),
            ErrorBody::OAuth {
                error: "invalid_client".into(),
                description: Some("Client authentication failed".into())
            }
        );
        assert_eq!(
            ErrorBody::parse(br#"{"errors":[{"code":"QuotaExceeded","message":"m"}]}"#),
            ErrorBody::SpApi(vec![("QuotaExceeded".into(), "m".into(), None)])
        );
        assert_eq!(
            ErrorBody::parse(br#"{"cspErrorCode":"409.conflict","errorCode":"conflict","message":"x","moduleCode":1,"requestId":"r","statusCode":409}"#),
            ErrorBody::Csp { error_code: "conflict".into(), message: "x".into() }
        );
        assert!(matches!(
            ErrorBody::parse(br#"{"type":"urn:rekey:problem:x","title":"t","status":400}"#),
            ErrorBody::Problem { .. }
        ));
        assert_eq!(ErrorBody::parse(b""), ErrorBody::None);
    }
}
