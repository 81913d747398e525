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

/// The span of one request. Its fields are worked out only when the span is enabled (the
/// `tracing` macros evaluate them only then): at `RUST_LOG=warn` a request pays for none of
/// them.
pub fn request_span<B>(req: &Request<B>) -> Span {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    tracing::info_span!(
        "request",
        method = %req.method(),
        route = %req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map_or("unmatched", |p| p.as_str()),
        request_id = %header(REQUEST_ID_HEADER),
        // A caller's own id, already checked to be short and printable.
        client_request_id = %header(CLIENT_REQUEST_ID_HEADER),
        client = %req
            .extensions()
            .get::<ClientAddr>()
            .map(|c| c.0.to_string())
            .unwrap_or_default(),
        actor = tracing::field::Empty,
    )
}

/// Names the authenticated caller (`user:<id>` or `app:<id>`) in the request's span, so the
/// access line and any refusal say who it was.
pub fn record_actor(actor: &str) {
    Span::current().record("actor", tracing::field::display(actor));
}
