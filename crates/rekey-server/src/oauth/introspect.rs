//! `POST /oauth2/introspect` (RFC 7662) and `POST /oauth2/revoke` (RFC 7009). Callers
//! authenticate as on the token endpoint (Basic or form credentials); the use cases are in
//! `rekey_core::ops::introspection`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rekey_core::error::OpError;
use rekey_core::ops::introspection::{Introspection, RevokeRefusal};
use rekey_core::store::ClientRecord;

use super::token::{client_credentials_from, parse_params, read_body, refusal, Dialect};
use crate::errors::OAuthError;
use crate::extract::ClientAddr;
use crate::state::{AppState, SharedState};

/// The authenticated caller and the `token` parameter.
async fn caller_and_token(
    state: &AppState,
    client: ClientAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<(std::sync::Arc<ClientRecord>, String), OAuthError> {
    let body = read_body(state, body).await?;
    let params = parse_params(Dialect::Generic, headers, &body)?;
    let creds = client_credentials_from(Dialect::Generic, headers, &params)?;
    let (record, _) = state
        .ops
        .authenticate_client(
            &creds.client_id,
            &creds.secrets,
            &client.0.to_string(),
            state.now(),
        )
        .await
        .map_err(|e| refusal(e, Dialect::Generic, creds.basic))?;
    let token = params
        .get("token")
        .cloned()
        .ok_or_else(|| OAuthError::invalid_request("The token parameter is missing"))?;
    Ok((record, token))
}

/// `POST /oauth2/introspect`: `{"active": false}` for a token that is expired, revoked,
/// minted by a credential no longer valid, not Rekey's, or of another org; the token's claims
/// with `"active": true` otherwise. The caller needs the `rekey:introspect` scope.
pub async fn introspect(
    State(state): State<SharedState>,
    Extension(client): Extension<ClientAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let (caller, token) = caller_and_token(&state, client, &headers, body).await?;
        match state.ops.introspect(&caller.app, &token).await {
            Ok(Introspection::Inactive) => Ok(serde_json::json!({ "active": false })),
            Ok(Introspection::Active(c)) => Ok(serde_json::json!({
                "active": true,
                "scope": c.scope,
                "client_id": c.client_id.as_deref().unwrap_or(&c.sub),
                "sub": c.sub,
                "iss": c.iss,
                "exp": c.exp,
                "iat": c.iat,
                "jti": c.jti,
                "token_type": "Bearer",
            }))
            .map(|mut body| {
                // `aud` exactly as the token carries it (a string, an array, or absent).
                if let Some(aud) = serde_json::to_value(&*c)
                    .ok()
                    .and_then(|t| t.get("aud").cloned())
                {
                    body["aud"] = aud;
                }
                body
            }),
            Err(OpError::Denied(d)) => Err(OAuthError::unauthorized_client(d.to_string())),
            Err(OpError::Store(e)) => Err(e.into()),
            Err(e) => Err(OAuthError::invalid_request(e.to_string())),
        }
    }
    .await;
    match result {
        Ok(body) => ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /oauth2/revoke`: the caller revokes one of its own access tokens; 200 also for a
/// token that is already invalid (RFC 7009 section 2.2).
pub async fn revoke(
    State(state): State<SharedState>,
    Extension(client): Extension<ClientAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let (caller, token) = caller_and_token(&state, client, &headers, body).await?;
        state
            .ops
            .revoke_token(&caller.app, &token)
            .await
            .map_err(|e| match e {
                RevokeRefusal::NotYours => OAuthError::unauthorized_client(e.to_string()),
                RevokeRefusal::Store(e) => e.into(),
            })
    }
    .await;
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => e.into_response(),
    }
}
