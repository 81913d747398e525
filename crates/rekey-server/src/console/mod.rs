//! The developer console under `/console`: server-rendered pages (askama templates in
//! `templates/console/`, compiled into the binary) over the same use cases as the APIs.
//!
//! Security, on every response: a strict Content-Security-Policy (no inline script, no
//! other origin), `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`, `nosniff`, and
//! `Cache-Control: no-store` on pages (they may show a secret once). Sessions are an
//! HttpOnly, SameSite=Strict cookie (Secure, with the `__Host-` prefix, when `public_url` is
//! https) whose keyed hash is stored server-side. Every state-changing form carries the
//! session's CSRF token, and a POST whose `Origin` or `Sec-Fetch-Site` says it came from
//! another site is refused before any handler runs.

mod apps;
mod destinations;
mod org;
mod overview;

use std::sync::OnceLock;

use askama::Template;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use rekey_core::error::OpError;
use rekey_core::ops::console::{NewSession, SignedIn};
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::extract::AuditMeta;
use crate::state::SharedState;

const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// The console's routes, nested at `/console` by the server.
pub fn router(state: SharedState) -> Router<SharedState> {
    Router::new()
        .route("/", get(overview::overview))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/link", get(link_page).post(sign_in_with_link))
        .route("/sign-out", post(sign_out))
        .route("/assets/{version}/{file}", get(asset))
        .merge(apps::routes())
        .merge(destinations::routes())
        .merge(org::routes())
        // Console pages for what matches nothing, so they carry the headers below too.
        .fallback(|| async {
            error_page(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such page in the console.".into(),
            )
        })
        .method_not_allowed_fallback(|| async {
            error_page(
                StatusCode::METHOD_NOT_ALLOWED,
                "Not here",
                "This page does not take that kind of request.".into(),
            )
        })
        .layer(middleware::from_fn_with_state(state, same_origin_posts))
        .layer(middleware::from_fn(security_headers))
}

/// Where the assets are served: the path names their content, so they can be cached for
/// good and a new build is fetched at once.
fn assets_path() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        // FNV-1a: stable across builds of the same content (std's hasher need not be).
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in CSS.bytes().chain(JS.bytes()) {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("/console/assets/{hash:016x}")
    })
}

async fn asset(
    axum::extract::Path((version, file)): axum::extract::Path<(String, String)>,
) -> Response {
    let current = assets_path().rsplit('/').next().unwrap_or_default();
    let (body, content_type) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    if version != current {
        return StatusCode::NOT_FOUND.into_response();
    }
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::CACHE_CONTROL, "no-store");
    res
}

/// Refuses a POST that a browser says came from another site (login CSRF included). When
/// the browser sends `Sec-Fetch-Site`, it decides (same-origin, or none: typed by the
/// user). Otherwise an `Origin` must be this server's public origin, or `null`: under the
/// console's `Referrer-Policy: no-referrer` browsers send `null` on its own form posts, and
/// over plain http to a non-local host they send no `Sec-Fetch-Site`. (The session forms
/// also need their CSRF token, and the session cookie is SameSite=Strict.)
async fn same_origin_posts(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    if req.method() == Method::POST {
        let headers = req.headers();
        let allowed = match headers.get("sec-fetch-site").map(|v| v.to_str()) {
            Some(site) => matches!(site, Ok("same-origin" | "none")),
            None => headers.get(header::ORIGIN).is_none_or(|o| {
                o.to_str()
                    .is_ok_and(|o| o == "null" || o == public_origin(&state))
            }),
        };
        if !allowed {
            return refused_page(
                "This form was sent from another site, so it was refused. Open the console at its own address and try again.",
            );
        }
    }
    next.run(req).await
}

/// `scheme://host[:port]` of `public_url`.
fn public_origin(state: &SharedState) -> String {
    let issuer = state.config.issuer();
    let after_scheme = issuer.find("://").map_or(0, |i| i + 3);
    match issuer[after_scheme..].find('/') {
        Some(i) => issuer[..after_scheme + i].to_string(),
        None => issuer,
    }
}

fn secure_cookies(state: &SharedState) -> bool {
    state.config.issuer().starts_with("https://")
}

fn cookie_name(state: &SharedState) -> &'static str {
    if secure_cookies(state) {
        "__Host-rekey_session"
    } else {
        "rekey_session"
    }
}

/// The session cookie; none when there are several (one may have been planted by a
/// neighbouring site over http, and the browser's order says nothing about which is ours).
fn session_cookie(req_headers: &HeaderMap, name: &str) -> Option<String> {
    let mut found = req_headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string());
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// What every page's frame shows.
pub(crate) struct Chrome {
    pub assets: &'static str,
    pub signed_in: Option<Who>,
    pub section: &'static str,
    pub notice: Option<&'static str>,
}

pub(crate) struct Who {
    pub email: String,
    pub org_name: String,
    pub role: &'static str,
    pub csrf: String,
}

impl Chrome {
    fn signed_out() -> Self {
        Self {
            assets: assets_path(),
            signed_in: None,
            section: "",
            notice: None,
        }
    }
}

/// A signed-in request: the session, the caller as the use cases see it, and its CSRF
/// token. Without a valid session the request is sent to the sign-in page.
pub(crate) struct Session {
    pub signed_in: SignedIn,
    pub csrf: String,
    cookie: String,
}

impl Session {
    pub(crate) fn chrome(&self, section: &'static str, notice: Option<&'static str>) -> Chrome {
        Chrome {
            assets: assets_path(),
            signed_in: Some(Who {
                email: self.signed_in.user.email.clone(),
                org_name: self.signed_in.org.name.clone(),
                role: self.signed_in.role.as_str(),
                csrf: self.csrf.clone(),
            }),
            section,
            notice,
        }
    }

    /// Checks a form's CSRF token.
    pub(crate) fn check_csrf(&self, state: &SharedState, given: &str) -> Result<(), Refused> {
        if state.ops.csrf_matches(&self.cookie, given) {
            Ok(())
        } else {
            Err(Refused::Csrf)
        }
    }
}

/// Why a console request was refused before its use case ran.
pub(crate) enum Refused {
    Csrf,
    Unconfirmed,
    NotFound,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Csrf => refused_page(
                "This form has expired or did not come from this console. Reload the page and try again.",
            ),
            Refused::Unconfirmed => op_error_page(OpError::Invalid(
                "Tick the box to confirm, then press the button again.".into(),
            )),
            Refused::NotFound => op_error_page(OpError::NotFound),
        }
    }
}

impl FromRequestParts<SharedState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Response> {
        let to_sign_in = || Redirect::to("/console/sign-in").into_response();
        let cookie = session_cookie(&parts.headers, cookie_name(state)).ok_or_else(to_sign_in)?;
        let meta = AuditMeta::from_parts(parts);
        match state
            .ops
            .console_session(&cookie, meta.request_id, meta.source)
            .await
        {
            Ok(Some(signed_in)) => {
                crate::telemetry::record_actor(&signed_in.actor.audit.actor);
                Ok(Session {
                    csrf: state.ops.csrf_token(&cookie),
                    signed_in,
                    cookie,
                })
            }
            Ok(None) => Err(to_sign_in()),
            Err(e) => Err(op_error_page(OpError::Store(e))),
        }
    }
}

/// Renders a template, or a plain error when it cannot be (never a half page).
pub(crate) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be drawn.",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    chrome: Chrome,
    title: &'static str,
    message: String,
    back: &'static str,
}

fn error_page(status: StatusCode, title: &'static str, message: String) -> Response {
    render(
        status,
        &ErrorPage {
            chrome: Chrome::signed_out(),
            title,
            message,
            back: "/console",
        },
    )
}

fn refused_page(message: &str) -> Response {
    error_page(StatusCode::FORBIDDEN, "Refused", message.to_string())
}

/// A use case's refusal in plain words, with its status.
pub(crate) fn op_error_page(e: OpError) -> Response {
    match e {
        OpError::Denied(d) => {
            crate::errors::report_refusal(rekey_core::ops::Surface::Console, d);
            error_page(StatusCode::FORBIDDEN, "Not allowed", format!("{d}."))
        }
        OpError::NotFound => error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such app or secret in this organization.".into(),
        ),
        OpError::Store(e) => {
            tracing::error!(
                error = &e as &dyn std::error::Error,
                "console request failed"
            );
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server could not do this; its log has the details.".into(),
            )
        }
        OpError::Invalid(message) => error_page(StatusCode::BAD_REQUEST, "Not done", message),
        other => error_page(StatusCode::CONFLICT, "Not done", other.to_string()),
    }
}

/// A refusal's message without the error kind in front (for the sign-in pages).
fn plain_message(e: OpError) -> String {
    match e {
        OpError::Invalid(message) => message,
        OpError::Denied(d) => format!("{d}."),
        other => other.to_string(),
    }
}

fn with_session_cookie(state: &SharedState, new: &NewSession, mut res: Response) -> Response {
    let secure = if secure_cookies(state) {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        cookie_name(state),
        new.cookie.expose_secret(),
        state.config.console_session_max_seconds,
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    chrome: Chrome,
    error: Option<String>,
}

async fn sign_in_page() -> Response {
    render(
        StatusCode::OK,
        &SignInPage {
            chrome: Chrome::signed_out(),
            error: None,
        },
    )
}

#[derive(Deserialize)]
struct SignInForm {
    api_token: String,
}

async fn sign_in(
    State(state): State<SharedState>,
    meta: AuditMeta,
    Form(form): Form<SignInForm>,
) -> Response {
    // The use case names the actor once it knows who signed in.
    let audit = meta.context(String::new());
    match state
        .ops
        .sign_in_with_api_token(&form.api_token, audit)
        .await
    {
        Ok(new) => with_session_cookie(&state, &new, Redirect::to("/console").into_response()),
        Err(OpError::Store(e)) => op_error_page(OpError::Store(e)),
        Err(e) => render(
            StatusCode::UNAUTHORIZED,
            &SignInPage {
                chrome: Chrome::signed_out(),
                error: Some(plain_message(e)),
            },
        ),
    }
}

#[derive(Template)]
#[template(path = "console/link.html")]
struct LinkPage {
    chrome: Chrome,
    token: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct LinkQuery {
    token: Option<String>,
}

/// The one-time link shows a button rather than signing in at once: a mail scanner or a
/// link preview that fetches the URL must not use it up.
async fn link_page(Query(q): Query<LinkQuery>) -> Response {
    let token = q.token.unwrap_or_default();
    let valid_shape =
        !token.is_empty() && token.len() <= 64 && token.bytes().all(|b| b.is_ascii_alphanumeric());
    render(
        if valid_shape {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        },
        &LinkPage {
            chrome: Chrome::signed_out(),
            error: (!valid_shape).then(|| "This sign-in link is incomplete.".to_string()),
            token,
        },
    )
}

#[derive(Deserialize)]
struct LinkForm {
    token: String,
}

async fn sign_in_with_link(
    State(state): State<SharedState>,
    meta: AuditMeta,
    Form(form): Form<LinkForm>,
) -> Response {
    // The use case names the actor once it knows who signed in.
    let audit = meta.context(String::new());
    match state.ops.sign_in_with_link(&form.token, audit).await {
        Ok(new) => with_session_cookie(&state, &new, Redirect::to("/console").into_response()),
        Err(OpError::Store(e)) => op_error_page(OpError::Store(e)),
        Err(e) => render(
            StatusCode::UNAUTHORIZED,
            &LinkPage {
                chrome: Chrome::signed_out(),
                token: String::new(),
                error: Some(plain_message(e)),
            },
        ),
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    pub csrf: String,
}

async fn sign_out(
    State(state): State<SharedState>,
    session: Session,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refused) = session.check_csrf(&state, &form.csrf) {
        return refused.into_response();
    }
    if let Err(e) = state.ops.sign_out(&session.signed_in).await {
        return op_error_page(OpError::Store(e));
    }
    let mut res = Redirect::to("/console/sign-in").into_response();
    let secure = if secure_cookies(&state) {
        "; Secure"
    } else {
        ""
    };
    let clear = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}",
        cookie_name(&state)
    );
    if let Ok(v) = HeaderValue::from_str(&clear) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}
