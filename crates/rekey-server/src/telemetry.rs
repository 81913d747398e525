//! Logging set-up. Request spans carry the method, the route template and the request id:
//! never the query string or headers, which may carry tokens.

use axum::http::Request;
use tracing::Span;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::extract::{ClientAddr, CLIENT_REQUEST_ID_HEADER, REQUEST_ID_HEADER};

/// Installs the global subscriber (once per process; later calls are ignored).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The span of one request.
pub fn request_span<B>(req: &Request<B>) -> Span {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let client = req
        .extensions()
        .get::<ClientAddr>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    // A caller's own id, already checked to be short and printable.
    let client_request_id = req
        .headers()
        .get(CLIENT_REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %req.method(),
        route = %route,
        request_id = %request_id,
        client_request_id = %client_request_id,
        client = %client,
        actor = tracing::field::Empty,
    )
}

/// Names the authenticated caller (`user:<id>` or `app:<id>`) in the request's span, so the
/// access line and any refusal say who it was.
pub fn record_actor(actor: &str) {
    Span::current().record("actor", tracing::field::display(actor));
}
