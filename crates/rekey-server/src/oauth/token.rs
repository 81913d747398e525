//! Token endpoints: `POST /auth/o2/token` (LWA), `POST /oauth2/token`, the CSP client
//! credentials paths, and the CSP API-token exchange.
//!
//! The handlers parse the request (body limit, parameters, one client authentication
//! method, the grant type) and call the token use cases in `rekey_core::ops::tokens`,
//! which hold the hot path.

use std::collections::HashMap;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rekey_core::metrics::{TOKEN_REQUESTS, TOKEN_REQUEST_DURATION};
use rekey_core::ops::tokens::{ClientTokenRequest, CspContext, IssuedToken, TokenRefusal};
use rekey_proto::oauth::{IdToken, TokenResponse};

use crate::errors::OAuthError;
use crate::extract::ClientAddr;
use crate::state::{AppState, SharedState};

/// Which public API family a token request arrived through; it decides error details.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Login with Amazon (SP-API SDKs): accepts JSON bodies; `invalid_client` is always 401.
    Lwa,
    /// Plain RFC 6749.
    Generic,
    /// VMware CSP: `id_token: null`, org context and perms in the token.
    Csp,
}

impl Dialect {
    /// The `dialect` label of the token metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Lwa => "lwa",
            Dialect::Generic => "oauth2",
            Dialect::Csp => "csp",
        }
    }
}

/// `POST /auth/o2/token`
pub async fn lwa_token(
    State(state): State<SharedState>,
    Extension(client): Extension<ClientAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    client_credentials(&state, Dialect::Lwa, client, &headers, body).await
}

/// `POST /oauth2/token`
pub async fn generic_token(
    State(state): State<SharedState>,
    Extension(client): Extension<ClientAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    client_credentials(&state, Dialect::Generic, client, &headers, body).await
}

/// `POST /csp/gateway/am/api/auth/authorize` and `.../auth/token`
pub async fn csp_token(
    State(state): State<SharedState>,
    Extension(client): Extension<ClientAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    client_credentials(&state, Dialect::Csp, client, &headers, body).await
}

async fn client_credentials(
    state: &AppState,
    dialect: Dialect,
    client: ClientAddr,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let result = issue_client_token(state, dialect, client, headers, body).await;
    counted(dialect.as_str(), started, &result);
    match result {
        Ok(r) => token_response(r),
        Err(e) => e.into_response(),
    }
}

/// Counts a token request by its dialect and outcome, and times it.
fn counted(dialect: &'static str, started: Instant, result: &Result<Issued, OAuthError>) {
    let (outcome, error) = match result {
        Ok(_) => ("issued", "none"),
        Err(e) => ("refused", e.code),
    };
    metrics::counter!(TOKEN_REQUESTS, "dialect" => dialect, "outcome" => outcome, "error" => error)
        .increment(1);
    metrics::histogram!(TOKEN_REQUEST_DURATION, "dialect" => dialect)
        .record(started.elapsed().as_secs_f64());
}

/// Reads the body within the configured limit (413 in the OAuth shape above it).
pub(super) async fn read_body(state: &AppState, body: Body) -> Result<Bytes, OAuthError> {
    axum::body::to_bytes(body, state.config.body_limit_bytes)
        .await
        .map_err(|_| OAuthError::payload_too_large())
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(ct.split(';').next()?.trim().to_ascii_lowercase())
}

/// Parses the request parameters. Form bodies everywhere; JSON objects on the LWA path.
/// A parameter given twice is an error (RFC 6749 section 3.2); empty values count as absent.
pub fn parse_params(
    dialect: Dialect,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HashMap<String, String>, OAuthError> {
    let mut params = HashMap::new();
    match media_type(headers).as_deref() {
        Some("application/x-www-form-urlencoded") => {
            for (k, v) in form_urlencoded::parse(body) {
                if params.contains_key(k.as_ref()) {
                    return Err(OAuthError::invalid_request(format!(
                        "The parameter {k} is repeated"
                    )));
                }
                params.insert(k.into_owned(), v.into_owned());
            }
        }
        Some("application/json") if dialect == Dialect::Lwa => {
            let v: serde_json::Value = serde_json::from_slice(body)
                .map_err(|_| OAuthError::invalid_request("The request body is not valid JSON"))?;
            let obj = v.as_object().ok_or_else(|| {
                OAuthError::invalid_request("The request body must be a JSON object")
            })?;
            for (k, v) in obj {
                let v = v.as_str().ok_or_else(|| {
                    OAuthError::invalid_request(format!("The parameter {k} must be a string"))
                })?;
                params.insert(k.clone(), v.to_string());
            }
        }
        None if body.is_empty() => {}
        _ => {
            let expected = if dialect == Dialect::Lwa {
                "application/x-www-form-urlencoded or application/json"
            } else {
                "application/x-www-form-urlencoded"
            };
            return Err(OAuthError::invalid_request(format!(
                "The Content-Type must be {expected}"
            )));
        }
    }
    params.retain(|_, v| !v.is_empty());
    Ok(params)
}

/// Client credentials from the request: at most one method (RFC 6749 section 2.3).
#[derive(Debug)]
pub(super) struct ClientCredentials {
    pub(super) client_id: String,
    /// Candidate secrets: as decoded, then as sent (some clients do not URL-encode).
    pub(super) secrets: Vec<String>,
    pub(super) basic: bool,
}

pub(super) fn client_credentials_from(
    dialect: Dialect,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<ClientCredentials, OAuthError> {
    let auth_status = |basic: bool| {
        if basic || dialect == Dialect::Lwa {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        }
    };
    let basic = match headers.get(header::AUTHORIZATION) {
        Some(h) => Some(
            parse_basic(h)
                .ok_or_else(|| OAuthError::invalid_client(StatusCode::UNAUTHORIZED, true))?,
        ),
        None => None,
    };
    match basic {
        Some((id, secrets)) => {
            if params.contains_key("client_secret") {
                return Err(OAuthError::invalid_request(
                    "Use one client authentication method, not both Basic and client_secret",
                ));
            }
            if params.get("client_id").is_some_and(|c| *c != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the Basic credentials",
                ));
            }
            Ok(ClientCredentials {
                client_id: id,
                secrets,
                basic: true,
            })
        }
        None => {
            let (Some(id), Some(secret)) = (params.get("client_id"), params.get("client_secret"))
            else {
                return Err(OAuthError::invalid_client(auth_status(false), false));
            };
            Ok(ClientCredentials {
                client_id: id.clone(),
                secrets: vec![secret.clone()],
                basic: false,
            })
        }
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`.
pub fn parse_basic(h: &HeaderValue) -> Option<(String, Vec<String>)> {
    let s = h.to_str().ok()?;
    let (scheme, rest) = s.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let form_decode = |v: &str| -> String {
        form_urlencoded::parse(format!("v={v}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let mut secrets = vec![form_decode(secret)];
    if secrets[0] != secret {
        secrets.push(secret.to_string());
    }
    Some((form_decode(id), secrets))
}

/// The outcome of a successful token request.
pub(crate) struct Issued {
    pub body: TokenResponse,
}

/// Renders a refusal of the token use cases in RFC 6749's shape. A failed client
/// authentication is 401 with Basic (and always on the LWA path), else 400.
pub(super) fn refusal(e: TokenRefusal, dialect: Dialect, basic: bool) -> OAuthError {
    match e {
        TokenRefusal::Throttled { retry_after_secs } => OAuthError::throttled(retry_after_secs),
        TokenRefusal::InvalidClient { .. } => {
            let status = if basic || dialect == Dialect::Lwa {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            };
            OAuthError::invalid_client(status, basic)
        }
        TokenRefusal::GrantNotAllowed => {
            OAuthError::unauthorized_client("The client may not use the client_credentials grant")
        }
        TokenRefusal::ScopeNotAllowed(s) => {
            OAuthError::invalid_scope(format!("The scope {s} is not allowed for this client"))
        }
        TokenRefusal::WrongOrg => OAuthError::unauthorized_client(
            "The client does not belong to the organization in orgId",
        ),
        TokenRefusal::AudienceNotAllowed(a) => OAuthError::invalid_target(format!(
            "The client may not ask tokens for the resource {a}"
        )),
        TokenRefusal::InvalidApiToken => {
            OAuthError::invalid_grant("The API token is invalid, expired or revoked")
        }
        TokenRefusal::Store(e) => e.into(),
    }
}

async fn issue_client_token(
    state: &AppState,
    dialect: Dialect,
    client: ClientAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<Issued, OAuthError> {
    let body = read_body(state, body).await?;
    let params = parse_params(dialect, headers, &body)?;
    let creds = client_credentials_from(dialect, headers, &params)?;
    check_grant_type(&params)?;
    let audience = requested_audience(&params)?;
    let source = client.0.to_string();
    let request = ClientTokenRequest {
        client_id: &creds.client_id,
        secrets: &creds.secrets,
        scope: params.get("scope").map(String::as_str),
        audience,
        source: &source,
        csp: (dialect == Dialect::Csp).then(|| CspContext {
            org_id: params.get("orgId").map(String::as_str),
        }),
    };
    let issued = state.ops.issue_client_token(request).await.map_err(|e| {
        match e {
            TokenRefusal::InvalidClient { known_client: true } => {
                tracing::info!(client_id = %creds.client_id, source = %source, "client authentication failed");
            }
            // An unknown id may be a secret in the wrong field, or carry a forged log line.
            TokenRefusal::InvalidClient { known_client: false } => {
                let fingerprint = rekey_core::crypto::log_fingerprint(&creds.client_id);
                tracing::info!(unknown_client_id_sha256 = %fingerprint, source = %source, "client authentication failed");
            }
            _ => {}
        }
        refusal(e, dialect, creds.basic)
    })?;
    Ok(issued_body(issued, dialect, None))
}

/// The audience a token request names: RFC 8707 `resource` (an absolute URI without a
/// fragment) or `audience` (any audience string, as Auth0 and RFC 8693 spell it). One per
/// request: a repeated `resource` is refused with the other repeated parameters.
fn requested_audience(params: &HashMap<String, String>) -> Result<Option<&str>, OAuthError> {
    let resource = params.get("resource").map(String::as_str);
    let audience = params.get("audience").map(String::as_str);
    if let Some(r) = resource {
        let absolute = url::Url::parse(r).is_ok_and(|u| u.fragment().is_none());
        if !absolute || !rekey_core::apps::is_valid_audience(r) {
            return Err(OAuthError::invalid_target(
                "The resource parameter must be an absolute URI without a fragment",
            ));
        }
    }
    match (resource, audience) {
        (Some(r), Some(a)) if r != a => Err(OAuthError::invalid_request(
            "The resource and audience parameters name different audiences",
        )),
        (Some(r), _) => Ok(Some(r)),
        (None, Some(a)) if !rekey_core::apps::is_valid_audience(a) => Err(
            OAuthError::invalid_target("The audience parameter is not a valid audience"),
        ),
        (None, a) => Ok(a),
    }
}

/// Only the client-credentials grant is served.
fn check_grant_type(params: &HashMap<String, String>) -> Result<(), OAuthError> {
    match params.get("grant_type").map(String::as_str) {
        None => Err(OAuthError::invalid_request(
            "The grant_type parameter is missing",
        )),
        Some("client_credentials") => Ok(()),
        Some(_) => Err(OAuthError::unsupported_grant_type(
            "Only the client_credentials grant is supported",
        )),
    }
}

/// The token response: CSP paths carry `id_token: null` (and the API-token exchange its
/// `refresh_token`).
fn issued_body(issued: IssuedToken, dialect: Dialect, refresh_token: Option<String>) -> Issued {
    Issued {
        body: TokenResponse {
            access_token: issued.access_token,
            token_type: "bearer".into(),
            expires_in: issued.expires_in,
            scope: issued.scope,
            id_token: if dialect == Dialect::Csp {
                IdToken::Null
            } else {
                IdToken::Absent
            },
            refresh_token,
        },
    }
}

fn token_response(issued: Issued) -> Response {
    let mut res = (StatusCode::OK, Json(issued.body)).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// `POST /csp/gateway/am/api/auth/api-tokens/authorize`: a user's API token (form field
/// `api_token`, or `refresh_token` in the form or the query) for an access token in the
/// token's org. The response's `refresh_token` is the API token, as CSP answers.
pub async fn csp_api_token(
    State(state): State<SharedState>,
    Extension(client): Extension<ClientAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let result = exchange_api_token(&state, client, query.as_deref(), &headers, body).await;
    counted("csp_api_token", started, &result);
    match result {
        Ok(r) => token_response(r),
        Err(e) => e.into_response(),
    }
}

async fn exchange_api_token(
    state: &AppState,
    client: ClientAddr,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Issued, OAuthError> {
    let body = read_body(state, body).await?;
    let params = parse_params(Dialect::Csp, headers, &body)?;
    let from_query = query.and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, v)| k == "refresh_token" && !v.is_empty())
            .map(|(_, v)| v.into_owned())
    });
    let token = params
        .get("api_token")
        .or_else(|| params.get("refresh_token"))
        .cloned()
        .or(from_query)
        .ok_or_else(|| OAuthError::invalid_request("The api_token parameter is missing"))?;
    let audience = requested_audience(&params)?;
    let source = client.0.to_string();
    let issued = state
        .ops
        .exchange_api_token(&token, audience, &source)
        .await
        .map_err(|e| {
            if matches!(e, TokenRefusal::InvalidApiToken) {
                tracing::info!(source = %source, "API token exchange failed");
            }
            refusal(e, Dialect::Csp, false)
        })?;
    Ok(issued_body(issued, Dialect::Csp, Some(token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        h
    }

    #[test]
    fn unencoded_colons_in_form_values_are_kept() {
        let p = parse_params(
            Dialect::Lwa,
            &form_headers(),
            b"grant_type=client_credentials&scope=sellingpartnerapi::client_credential:rotation",
        )
        .unwrap();
        assert_eq!(p["scope"], "sellingpartnerapi::client_credential:rotation");
    }

    #[test]
    fn a_repeated_parameter_is_an_invalid_request() {
        let e = parse_params(Dialect::Generic, &form_headers(), b"a=1&a=2").unwrap_err();
        assert_eq!(e.code, "invalid_request");
        assert!(e.description.contains("repeated"));
    }

    #[test]
    fn json_bodies_are_accepted_on_the_lwa_path_only() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let body = br#"{"grant_type":"client_credentials","client_id":"x"}"#;
        assert_eq!(
            parse_params(Dialect::Lwa, &h, body).unwrap()["client_id"],
            "x"
        );
        assert!(parse_params(Dialect::Generic, &h, body).is_err());
        assert!(parse_params(Dialect::Lwa, &h, br#"{"a":1}"#).is_err());
    }

    #[test]
    fn basic_credentials_are_form_decoded_with_the_raw_value_as_fallback() {
        let v =
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode("my%2Did:a%2Bb"))).unwrap();
        let (id, secrets) = parse_basic(&v).unwrap();
        assert_eq!(id, "my-id");
        assert_eq!(secrets, vec!["a+b".to_string(), "a%2Bb".to_string()]);
        assert!(parse_basic(&HeaderValue::from_static("Bearer x")).is_none());
        assert!(parse_basic(&HeaderValue::from_static("Basic !!!")).is_none());
    }

    fn form_encode(v: &str) -> String {
        form_urlencoded::byte_serialize(v.as_bytes()).collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Whatever the client id and secret hold, RFC 6749's Basic encoding (form-encode
        /// each, then base64) comes back as they were.
        #[test]
        fn basic_credentials_round_trip(id in ".{1,40}", secret in ".{0,80}") {
            let raw = format!("{}:{}", form_encode(&id), form_encode(&secret));
            let v = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(raw))).unwrap();
            let (parsed_id, secrets) = parse_basic(&v).unwrap();
            proptest::prop_assert_eq!(parsed_id, id);
            proptest::prop_assert_eq!(&secrets[0], &secret);
        }

        /// Any bytes as a Basic header or a body, of any content type and dialect: parsed or
        /// refused with an OAuth error, never a panic; what parses has no empty value.
        #[test]
        fn arbitrary_requests_parse_or_are_refused(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            header_text in "[ -~]{0,80}",
            content_type in proptest::sample::select(vec![
                "application/x-www-form-urlencoded", "application/json", "text/plain", "",
            ]),
        ) {
            if let Ok(v) = HeaderValue::from_str(&header_text) {
                let _ = parse_basic(&v);
            }
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(content_type) {
                h.insert(header::CONTENT_TYPE, v);
            }
            for dialect in [Dialect::Lwa, Dialect::Generic, Dialect::Csp] {
                match parse_params(dialect, &h, &body) {
                    Ok(params) => proptest::prop_assert!(params.values().all(|v| !v.is_empty())),
                    Err(e) => proptest::prop_assert_eq!(e.code, "invalid_request"),
                }
            }
        }

        /// Form bodies: what a standard encoder writes is what the endpoint reads.
        #[test]
        fn form_bodies_round_trip(
            params in proptest::collection::btree_map("[a-z_]{1,12}", ".{1,40}", 0..6),
        ) {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params.iter())
                .finish();
            let parsed = parse_params(Dialect::Generic, &form_headers(), body.as_bytes()).unwrap();
            proptest::prop_assert_eq!(parsed.len(), params.len());
            for (k, v) in &params {
                proptest::prop_assert_eq!(&parsed[k], v);
            }
        }
    }
}
