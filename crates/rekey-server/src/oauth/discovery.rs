//! Published keys and server metadata.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rekey_proto::oauth::ServerMetadata;

use crate::state::SharedState;

/// `GET /.well-known/jwks.json`
pub async fn jwks(State(state): State<SharedState>) -> impl IntoResponse {
    (
        [(
            header::CACHE_CONTROL,
            format!("public, max-age={}", state.config.jwks_max_age_seconds),
        )],
        Json(state.keys().jwks().clone()),
    )
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414)
pub async fn metadata(State(state): State<SharedState>) -> Json<ServerMetadata> {
    let iss = state.issuer();
    let client_auth = || vec!["client_secret_basic".into(), "client_secret_post".into()];
    Json(ServerMetadata {
        issuer: iss.to_string(),
        token_endpoint: format!("{iss}/oauth2/token"),
        jwks_uri: format!("{iss}/.well-known/jwks.json"),
        grant_types_supported: vec!["client_credentials".into()],
        token_endpoint_auth_methods_supported: client_auth(),
        token_endpoint_auth_signing_alg_values_supported: vec!["EdDSA".into()],
        response_types_supported: vec!["token".into()],
        scopes_supported: vec![
            "sellingpartnerapi::client_credential:rotation".into(),
            "sellingpartnerapi::notifications".into(),
            rekey_core::ops::introspection::INTROSPECT_SCOPE.into(),
        ],
        introspection_endpoint: Some(format!("{iss}/oauth2/introspect")),
        introspection_endpoint_auth_methods_supported: client_auth(),
        revocation_endpoint: Some(format!("{iss}/oauth2/revoke")),
        revocation_endpoint_auth_methods_supported: client_auth(),
    })
}

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before the 32 key bytes.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// `GET /csp/gateway/am/api/auth/token-public-key`: the signing key as PEM (`value`), as CSP
/// publishes it, plus the JWKS for clients that prefer it.
pub async fn csp_public_key(State(state): State<SharedState>) -> impl IntoResponse {
    let keys = state.keys();
    let jwks = keys.jwks();
    let signing_kid = keys.signing_kid_at(state.now());
    let signing = jwks.keys.iter().find(|k| k.kid == signing_kid);
    let pem = signing
        .and_then(|k| URL_SAFE_NO_PAD.decode(&k.x).ok())
        .map(|raw| {
            let mut der = ED25519_SPKI_PREFIX.to_vec();
            der.extend_from_slice(&raw);
            format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
                STANDARD.encode(der)
            )
        })
        .unwrap_or_default();
    Json(serde_json::json!({
        "alg": "EdDSA",
        "value": pem,
        "issuer": state.issuer(),
        "keys": jwks.keys,
    }))
}
