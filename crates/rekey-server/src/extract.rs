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
use rekey_core::ops::{Actor, Surface};
use rekey_core::policy::{Action, Denied};
use rekey_core::token::AccessClaims;
use serde::de::DeserializeOwned;

use crate::errors::ApiError;
use crate::state::SharedState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Where a caller's own `x-request-id` goes (see `startup::request_context`).
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
    pub surface: Surface,
    pub audit: AuditContext,
}

/// The API a request path belongs to.
pub fn surface_of(path: &str) -> Surface {
    if path.starts_with("/csp/") {
        Surface::Csp
    } else if path.starts_with("/applications/") {
        Surface::SpApi
    } else {
        Surface::Native
    }
}

impl Caller {
    /// The caller as the application layer sees it.
    pub fn actor(&self) -> Actor {
        Actor {
            principal: self.principal,
            org_id: self.org_id,
            surface: self.surface,
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
        let meta = AuditMeta::from_parts(parts);
        let surface = surface_of(parts.uri.path());
        let actor = authenticated.actor(surface, meta.request_id, meta.source);
        crate::telemetry::record_actor(&actor.audit.actor);
        Ok(Caller {
            principal: actor.principal,
            org_id: actor.org_id,
            claims: authenticated.claims,
            surface,
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

/// `axum::extract::Path` for the native API: a path it cannot decode (a percent-escape that
/// is not UTF-8, a segment of the wrong type) is refused with the API's problem+json instead
/// of axum's plain-text 400.
pub struct NativePath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for NativePath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        decode_path(parts, state)
            .await
            .map(Self)
            .map_err(ApiError::bad_request)
    }
}

/// The path parameters, or why they cannot be decoded (in words safe to send back).
pub async fn decode_path<S: Send + Sync, T: DeserializeOwned + Send>(
    parts: &mut Parts,
    state: &S,
) -> Result<T, &'static str> {
    axum::extract::Path::<T>::from_request_parts(parts, state)
        .await
        .map(|p| p.0)
        .map_err(|_| {
            "The path is not valid: a segment is not UTF-8 text or not of the expected form"
        })
}

/// Request id and source address, for audit events.
#[derive(Debug, Clone, Default)]
pub struct AuditMeta {
    pub request_id: Option<String>,
    pub source: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for AuditMeta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts))
    }
}

impl AuditMeta {
    /// The audit context of an action by `actor` in this request.
    pub fn context(self, actor: String) -> AuditContext {
        AuditContext {
            actor,
            request_id: self.request_id,
            source: self.source,
        }
    }

    pub fn from_parts(parts: &Parts) -> Self {
        Self {
            request_id: parts
                .headers
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            source: parts
                .extensions
                .get::<ClientAddr>()
                .map(|c| c.0.to_string()),
        }
    }
}

/// The client's address, worked out once per request (through the trusted proxies, see
/// [`client_address`]) by the outermost middleware, for the throttle, audit and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The request's client address from its connection and headers.
    pub fn of<B>(req: &axum::http::Request<B>, trusted: &TrustedProxies) -> Option<Self> {
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| ClientAddr(client_address(c.0.ip(), req.headers(), trusted)))
    }
}

/// The forwarding header a trusted proxy writes (`forwarded_header`): only that one is read,
/// since a proxy passes the other through as the client sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, cloud load balancers).
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

/// Which proxies to believe, and what they write.
#[derive(Clone, Debug)]
pub struct TrustedProxies {
    pub nets: Vec<IpNet>,
    pub header: ForwardedHeader,
}

impl TrustedProxies {
    pub fn none() -> Self {
        Self {
            nets: Vec::new(),
            header: ForwardedHeader::XForwardedFor,
        }
    }

    fn trusts(&self, ip: &IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }
}

/// The client's address. From a trusted proxy, the hops of the configured forwarding header
/// are walked from the right (the entries a proxy appended) past every trusted proxy: the
/// first one that is not is the client. An entry that cannot be read ends the walk at the
/// last trusted hop, since whatever lies left of it was written by the client. From any other
/// peer, the peer.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    if !trusted.trusts(&peer) {
        return peer;
    }
    let name = match trusted.header {
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
        ForwardedHeader::Forwarded => "forwarded",
    };
    let Some(values) = header_values(headers, name) else {
        return peer;
    };
    let mut last_trusted = peer;
    for hop in values.split(',').rev() {
        let ip = match trusted.header {
            ForwardedHeader::XForwardedFor => hop_ip(hop),
            ForwardedHeader::Forwarded => hop.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| hop_ip(v))?
            }),
        };
        match ip {
            Some(ip) if trusted.trusts(&ip) => last_trusted = ip,
            Some(ip) => return ip,
            None => return last_trusted,
        }
    }
    last_trusted
}

/// Every value of a header joined with commas (a header may be sent several times), or
/// `None` when absent or not ASCII (then nothing in it is believed).
fn header_values(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut values = Vec::new();
    for v in headers.get_all(name) {
        values.push(v.to_str().ok()?);
    }
    (!values.is_empty()).then(|| values.join(","))
}

/// The address of one hop: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`, `[2001:db8::1]:4711`,
/// optionally quoted; obfuscated identifiers (`_hidden`, `unknown`) name none.
fn hop_ip(value: &str) -> Option<IpAddr> {
    let v = value.trim().trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    v.parse()
        .ok()
        .or_else(|| v.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok()))
}

#[cfg(test)]
mod client_address_tests {
    use super::*;

    fn proxies(header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies {
            nets: vec!["10.0.0.0/8".parse().unwrap()],
            header,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    const PROXY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.2.3")]);
        let ip = client_address(PROXY, &h, &proxies(ForwardedHeader::XForwardedFor));
        assert_eq!(ip.to_string(), "198.51.100.7");
    }

    #[test]
    fn only_the_configured_header_is_read() {
        // A client's own Forwarded, passed through by a proxy that writes X-Forwarded-For.
        let h = headers(&[
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        let xff = client_address(PROXY, &h, &proxies(ForwardedHeader::XForwardedFor));
        assert_eq!(xff.to_string(), "198.51.100.7");
        let h = headers(&[(
            "forwarded",
            "for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.2",
        )]);
        let fwd = client_address(PROXY, &h, &proxies(ForwardedHeader::Forwarded));
        assert_eq!(fwd.to_string(), "2001:db8::1");
    }

    #[test]
    fn an_unreadable_hop_ends_the_walk_at_the_last_trusted_one() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4, garbage, 10.0.0.9")]);
        let ip = client_address(PROXY, &h, &proxies(ForwardedHeader::XForwardedFor));
        assert_eq!(ip.to_string(), "10.0.0.9");
        let h = headers(&[("forwarded", "for=1.2.3.4, for=_hidden")]);
        let ip = client_address(PROXY, &h, &proxies(ForwardedHeader::Forwarded));
        assert_eq!(ip, PROXY);
    }

    #[test]
    fn ports_are_dropped_and_an_untrusted_peer_is_the_client() {
        let h = headers(&[("x-forwarded-for", "198.51.100.7:5555")]);
        let ip = client_address(PROXY, &h, &proxies(ForwardedHeader::XForwardedFor));
        assert_eq!(ip.to_string(), "198.51.100.7");
        let stranger: IpAddr = "203.0.113.5".parse().unwrap();
        let ip = client_address(stranger, &h, &proxies(ForwardedHeader::XForwardedFor));
        assert_eq!(ip, stranger);
    }
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
