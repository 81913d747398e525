//! Errors, with what each dialect says about them.

use reqwest::StatusCode;
use serde_json::Value;

/// The error body, parsed in the dialect that produced it.
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
    /// Anything else (kept as JSON when it is JSON).
    Other(Value),
    None,
}

impl ErrorBody {
    pub fn parse(bytes: &[u8]) -> Self {
        let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
            return if bytes.is_empty() {
                ErrorBody::None
            } else {
                ErrorBody::Other(Value::String(String::from_utf8_lossy(bytes).into_owned()))
            };
        };
        let s = |v: &Value| v.as_str().map(str::to_string);
        if let Some(errors) = v.get("errors").and_then(Value::as_array) {
            return ErrorBody::SpApi(
                errors
                    .iter()
                    .map(|e| {
                        (
                            s(&e["code"]).unwrap_or_default(),
                            s(&e["message"]).unwrap_or_default(),
                            s(&e["details"]),
                        )
                    })
                    .collect(),
            );
        }
        if let Some(error) = s(&v["error"]) {
            return ErrorBody::OAuth {
                error,
                description: s(&v["error_description"]),
            };
        }
        if v.get("cspErrorCode").is_some() {
            return ErrorBody::Csp {
                error_code: s(&v["errorCode"]).unwrap_or_default(),
                message: s(&v["message"]).unwrap_or_default(),
            };
        }
        if let Some(type_) = s(&v["type"]) {
            return ErrorBody::Problem {
                type_,
                detail: s(&v["detail"]),
            };
        }
        ErrorBody::Other(v)
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
            ErrorBody::Other(v) => v.to_string().chars().take(300).collect(),
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
