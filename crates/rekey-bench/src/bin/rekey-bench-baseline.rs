//! The lean reference token server: the least a correct server must do for Rekey's token
//! request, and nothing more. It is what the token endpoint is measured against
//! (BENCHMARKS.md, issue 16).
//!
//! Per request it parses the form body (refusing repeated parameters) and the Basic header
//! (form-decoding both halves), checks one fixed secret with the same keyed hash as Rekey
//! (HMAC-SHA-256, constant-time compare), builds the same claims (`iss`, `sub`,
//! `client_id`, `iat`, `exp`, `jti`, `scope`, `sid`) and signs the JWT with Ed25519 by
//! `ed25519-dalek` (the faster implementation here: BENCHMARKS.md, "The lean reference").
//! hyper's HTTP/1 server straight, no router, no middleware, no store.
//!
//! Usage: rekey-bench-baseline <listen address> <client id> <client secret>

use std::convert::Infallible;
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use ed25519_dalek::Signer as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use rekey_core::crypto::{KeyedHasher, SecretHash, ServerKey};
use serde::Serialize;

struct Reference {
    issuer: String,
    client_id: String,
    secret_hash: SecretHash,
    secret_id: String,
    hasher: KeyedHasher,
    key: ed25519_dalek::SigningKey,
    header_b64: String,
}

/// The claims of a Rekey client token (the same names and order).
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    client_id: &'a str,
    iat: u64,
    exp: u64,
    jti: uuid::Uuid,
    scope: &'a str,
    sid: &'a str,
}

#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    token_type: &'a str,
    expires_in: u64,
    scope: &'a str,
}

fn refuse(status: StatusCode) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(
        br#"{"error":"invalid_request"}"#,
    )));
    *res.status_mut() = status;
    res
}

fn form_decode(v: &str) -> String {
    form_urlencoded::parse(format!("v={v}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn token(
    r: Arc<Reference>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::POST || req.uri().path() != "/oauth2/token" {
        return Ok(refuse(StatusCode::NOT_FOUND));
    }
    let basic = req.headers().get(header::AUTHORIZATION).cloned();
    let Ok(body) = req.into_body().collect().await else {
        return Ok(refuse(StatusCode::BAD_REQUEST));
    };
    let body = body.to_bytes();
    let (mut grant_type, mut form_id, mut form_secret) = (None, None, None);
    let mut seen: Vec<std::borrow::Cow<'_, str>> = Vec::with_capacity(4);
    for (k, v) in form_urlencoded::parse(&body) {
        if seen.contains(&k) {
            return Ok(refuse(StatusCode::BAD_REQUEST));
        }
        match k.as_ref() {
            "grant_type" => grant_type = Some(v),
            "client_id" => form_id = Some(v),
            "client_secret" => form_secret = Some(v),
            _ => {}
        }
        seen.push(k);
    }
    let (id, secret) = match basic.as_ref().and_then(|v| v.to_str().ok()) {
        Some(v) => {
            let decoded = v
                .strip_prefix("Basic ")
                .and_then(|b| STANDARD.decode(b).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let (i, s) = decoded.split_once(':').unwrap_or_default();
            (form_decode(i), form_decode(s))
        }
        None => (
            form_id.unwrap_or_default().into_owned(),
            form_secret.unwrap_or_default().into_owned(),
        ),
    };
    if grant_type.as_deref() != Some("client_credentials")
        || id != r.client_id
        || !r.hasher.hash(&secret).ct_eq(&r.secret_hash)
    {
        return Ok(refuse(StatusCode::UNAUTHORIZED));
    }
    // The reference has no Clock abstraction: it reads the time as a lean server would.
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let claims = Claims {
        iss: &r.issuer,
        sub: &id,
        client_id: &id,
        iat: now,
        exp: now + 3600,
        jti: uuid::Uuid::new_v4(),
        scope: "read",
        sid: &r.secret_id,
    };
    let Ok(payload) = serde_json::to_vec(&claims) else {
        return Ok(refuse(StatusCode::INTERNAL_SERVER_ERROR));
    };
    let mut jwt = String::with_capacity(r.header_b64.len() + payload.len() * 4 / 3 + 90);
    jwt.push_str(&r.header_b64);
    jwt.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut jwt);
    let signature = r.key.sign(jwt.as_bytes());
    jwt.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut jwt);
    let body = TokenBody {
        access_token: &jwt,
        token_type: "bearer",
        expires_in: 3600,
        scope: "read",
    };
    let Ok(body) = serde_json::to_vec(&body) else {
        return Ok(refuse(StatusCode::INTERNAL_SERVER_ERROR));
    };
    let mut res = Response::new(Full::new(Bytes::from(body)));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(res)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, client_id, secret] = args.as_slice() else {
        anyhow::bail!("usage: rekey-bench-baseline <listen> <client id> <client secret>");
    };
    let hasher = ServerKey::generate().secret_hasher();
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let header = serde_json::json!({ "typ": "JWT", "alg": "EdDSA", "kid": "reference" });
    let reference = Arc::new(Reference {
        issuer: "http://127.0.0.1".into(),
        client_id: client_id.clone(),
        secret_hash: hasher.hash(secret),
        secret_id: uuid::Uuid::new_v4().to_string(),
        hasher,
        key,
        header_b64: URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
    });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let r = reference.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| token(r.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}
