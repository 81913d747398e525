//! The OAuth 2.0 side: token endpoints of every dialect, and key/metadata discovery.

pub mod discovery;
pub mod introspect;
pub mod token;

use axum::routing::{get, post};
use axum::Router;

use crate::state::SharedState;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/auth/o2/token", post(token::lwa_token))
        .route("/oauth2/token", post(token::generic_token))
        .route("/oauth2/introspect", post(introspect::introspect))
        .route("/oauth2/revoke", post(introspect::revoke))
        .route("/csp/gateway/am/api/auth/authorize", post(token::csp_token))
        .route("/csp/gateway/am/api/auth/token", post(token::csp_token))
        .route(
            "/csp/gateway/am/api/auth/api-tokens/authorize",
            post(token::csp_api_token),
        )
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route(
            "/csp/gateway/am/api/auth/token-public-key",
            get(discovery::csp_public_key),
        )
}
