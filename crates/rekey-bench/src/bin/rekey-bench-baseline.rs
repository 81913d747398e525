//! The baseline token server: what Rekey's token endpoint costs without a store.
//! Usage: rekey-bench-baseline <listen address> <client id> <client secret>

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rekey_core::clock::{Clock, SystemClock};
use rekey_core::crypto::{KeyedHasher, SecretHash, ServerKey};
use rekey_core::token::{generate_signing_key, AccessClaims, KeySet};

struct Baseline {
    client_id: String,
    secret_hash: SecretHash,
    hasher: KeyedHasher,
    keys: KeySet,
}

async fn token(State(b): State<Arc<Baseline>>, headers: HeaderMap, body: Bytes) -> Response {
    // The same work as Rekey's endpoint: parse the form (refusing repeats), take Basic or
    // form credentials, one keyed hash and constant-time compare, one signature.
    let mut params = std::collections::HashMap::new();
    for (k, v) in form_urlencoded::parse(&body) {
        if params.insert(k.into_owned(), v.into_owned()).is_some() {
            return StatusCode::BAD_REQUEST.into_response();
        }
    }
    let (id, secret) = match headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(v) => {
            let decoded = v
                .strip_prefix("Basic ")
                .and_then(|b| STANDARD.decode(b).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let (i, s) = decoded.split_once(':').unwrap_or_default();
            (i.to_string(), s.to_string())
        }
        None => (
            params.get("client_id").cloned().unwrap_or_default(),
            params.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    if params.get("grant_type").map(String::as_str) != Some("client_credentials")
        || id != b.client_id
        || !b.hasher.hash(&secret).ct_eq(&b.secret_hash)
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let now = SystemClock.now();
    let claims = AccessClaims {
        iss: "http://127.0.0.1".into(),
        sub: id.clone(),
        aud: Vec::new(),
        client_id: Some(id),
        iat: now.as_secs(),
        exp: now.as_secs() + 3600,
        jti: uuid::Uuid::new_v4().to_string(),
        scope: "read".into(),
        sid: Some(uuid::Uuid::new_v4().to_string()),
        tid: None,
        context_name: None,
        perms: None,
    };
    let jwt = b.keys.sign(&claims).unwrap_or_default();
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({ "access_token": jwt, "token_type": "bearer", "expires_in": 3600, "scope": "read" })),
    )
        .into_response()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, client_id, secret] = args.as_slice() else {
        anyhow::bail!("usage: rekey-bench-baseline <listen> <client id> <client secret>");
    };
    let key = ServerKey::generate();
    let sealer = key.sealer("signing-keys");
    let now = SystemClock.now();
    let keys = KeySet::load(
        "http://127.0.0.1",
        &[generate_signing_key(&sealer, now)],
        &sealer,
        now,
    )?;
    let hasher = key.secret_hasher();
    let state = Arc::new(Baseline {
        client_id: client_id.clone(),
        secret_hash: hasher.hash(secret),
        hasher,
        keys,
    });
    let app = Router::new()
        .route("/oauth2/token", post(token))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
