//! Request extractors of the native API: the authenticated caller, audit metadata, and a
//! JSON body whose rejections render as problem details.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use rekey_core::model::{AuditContext, OrgId, Principal, Role};
pub use rekey_core::ops::tokens::AuthFailure;
use rekey_core::ops::Actor;
use rekey_core::policy::{Action, Denied};
use rekey_core::token::AccessClaims;
use serde::de::DeserializeOwned;

use crate::errors::ApiError;
use crate::state::SharedState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Where a caller's own `x-request-id` goes (see `startup::keep_caller_request_id_apart`).
pub const CLIENT_REQUEST_ID_HEADER: &str = "x-client-request-id";

/// The bearer token of a request: `Authorization: Bearer` or CSP's `csp-auth-token`.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, rest) = v.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim());
    }
    headers.get("csp-auth-token").and_then(|v| v.to_str().ok())
}

/// Who is calling, established from a valid access token whose minting credential (client
/// secret or API token) is still valid.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The org the token acts in (a user's API-token org, or an app's own org).
    pub org_id: OrgId,
    pub claims: AccessClaims,
    pub audit: AuditContext,
}

impl Caller {
    /// The caller as the application layer sees it.
    pub fn actor(&self) -> Actor {
        Actor {
            principal: self.principal,
            org_id: self.org_id,
            audit: self.audit.clone(),
        }
    }

    /// The caller's role in `org` (any member may read). Tokens act in one org: any other
    /// org is forbidden.
    pub async fn role_in(&self, state: &SharedState, org: OrgId) -> Result<Role, ApiError> {
        self.authorize(state, org, Action::Read).await
    }

    /// Asks the policy whether the caller may do `action` in `org`; returns its role there.
    pub async fn authorize(
        &self,
        state: &SharedState,
        org: OrgId,
        action: Action,
    ) -> Result<Role, ApiError> {
        state
            .ops
            .authorize(&self.actor(), org, action)
            .await?
            .ok_or_else(|| ApiError::forbidden(Denied::NotAMember.to_string()))
    }
}

impl From<AuthFailure> for ApiError {
    fn from(f: AuthFailure) -> Self {
        match f {
            AuthFailure::Storage(e) => e.into(),
            f => ApiError::unauthenticated(f.to_string()),
        }
    }
}

impl Caller {
    /// Authenticates the request's bearer token (`Authorization: Bearer` or
    /// `csp-auth-token`) through the use case, which checks that its minting credential is
    /// still valid now.
    pub async fn authenticate(parts: &Parts, state: &SharedState) -> Result<Self, AuthFailure> {
        let token = bearer_token(&parts.headers).ok_or(AuthFailure::Missing)?;
        let authenticated = state.ops.authenticate(token).await?;
        let meta = AuditMeta::from_parts(parts, &state.trusted_proxies);
        let actor = authenticated.actor(meta.request_id, meta.source);
        Ok(Caller {
            principal: actor.principal,
            org_id: actor.org_id,
            claims: authenticated.claims,
            audit: actor.audit,
        })
    }
}

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        Ok(Caller::authenticate(parts, state).await?)
    }
}

/// Request id and source address, for audit events.
#[derive(Debug, Clone, Default)]
pub struct AuditMeta {
    pub request_id: Option<String>,
    pub source: Option<String>,
}

impl AuditMeta {
    pub fn from_parts(parts: &Parts, trusted_proxies: &[IpNet]) -> Self {
        Self {
            request_id: parts
                .headers
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            source: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| client_address(c.0.ip(), &parts.headers, trusted_proxies).to_string()),
        }
    }
}

/// The client's address. From a trusted proxy it is the right-most address of `Forwarded`
/// (`for=`), else of `X-Forwarded-For`, that is not itself a trusted proxy (the left-most
/// entries are the client's own claims and can be forged); from any other peer, the peer.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|n| n.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = if let Some(forwarded) = header_values(headers, "forwarded") {
        forwarded
            .split(',')
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| forwarded_ip(v))?
                })
            })
            .collect()
    } else if let Some(xff) = header_values(headers, "x-forwarded-for") {
        xff.split(',')
            .filter_map(|v| v.trim().parse().ok())
            .collect()
    } else {
        return peer;
    };
    hops.into_iter()
        .rev()
        .find(|ip| !trusted(ip))
        .unwrap_or(peer)
}

/// Every value of a header joined with commas (a header may be sent several times).
fn header_values(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// The address of a `Forwarded` `for=` value: `192.0.2.1`, `"[2001:db8::1]:4711"`,
/// `"192.0.2.1:80"`; obfuscated identifiers (`_hidden`, `unknown`) name none.
fn forwarded_ip(value: &str) -> Option<IpAddr> {
    let v = value.trim().trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    v.parse()
        .ok()
        .or_else(|| v.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok()))
}

/// A JSON body; wrong content type (415), size (413) and shape (400) render as problems.
/// Error messages name fields but never echo values, which may be secret.
pub struct ApiJson<T>(pub T);

/// Why a JSON body was refused. Each dialect renders it.
#[derive(Debug)]
pub enum BodyRejection {
    UnsupportedMediaType,
    TooLarge,
    /// A message that names fields but never echoes values (they may be secret).
    Invalid(String),
}

/// Reads a JSON body: `Content-Type: application/json` (or `+json`), within `limit` bytes,
/// deserializing into `T`.
pub async fn read_json<T: DeserializeOwned>(
    req: Request<Body>,
    limit: usize,
) -> Result<T, BodyRejection> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || m.ends_with("+json")
        });
    if !is_json {
        return Err(BodyRejection::UnsupportedMediaType);
    }
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| BodyRejection::TooLarge)?;
    serde_json::from_slice(&bytes).map_err(|e| {
        let msg = e.to_string();
        BodyRejection::Invalid(
            if msg.starts_with("unknown field") || msg.starts_with("missing field") {
                msg.split(" at line").next().unwrap_or_default().to_string()
            } else if bytes.iter().all(u8::is_ascii_whitespace) {
                "The body is empty; a JSON object is required".to_string()
            } else {
                format!(
                    "The body is not valid for this request (line {}, column {})",
                    e.line(),
                    e.column()
                )
            },
        )
    })
}

impl From<BodyRejection> for ApiError {
    fn from(r: BodyRejection) -> Self {
        match r {
            BodyRejection::UnsupportedMediaType => ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "The body must be JSON (Content-Type: application/json)",
            ),
            BodyRejection::TooLarge => ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "The request body is too large",
            ),
            BodyRejection::Invalid(m) => ApiError::bad_request(m),
        }
    }
}

impl<T: DeserializeOwned> FromRequest<SharedState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, state: &SharedState) -> Result<Self, ApiError> {
        Ok(ApiJson(
            read_json(req, state.config.body_limit_bytes).await?,
        ))
    }
}
