//! Rekey's native management API (`/api/v1`).

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ClientError;
use crate::http::{json, Http, RetryPolicy};
use crate::token::TokenProvider;

/// A client of `/api/v1`, authenticated by a token provider (a user's API token exchange, or a
/// service account's client credentials).
pub struct NativeApi {
    http: Http,
    base_url: String,
    tokens: Arc<TokenProvider>,
}

impl NativeApi {
    pub fn new(base_url: impl Into<String>, tokens: Arc<TokenProvider>) -> Self {
        Self {
            http: Http::new(RetryPolicy::default()),
            base_url: base_url.into().trim_end_matches('/').to_string(),
            tokens,
        }
    }

    /// The org of the current access token (its `context_name` claim), read without
    /// verification: the server verifies; this only tells which org to address.
    pub async fn token_org(&self) -> Result<Option<String>, ClientError> {
        let token = self.tokens.token().await?;
        let payload = token
            .expose_secret()
            .split('.')
            .nth(1)
            .unwrap_or_default()
            .to_string();
        let bytes = URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| ClientError::Decode("the access token is not a JWT".into()))?;
        let claims: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(claims["context_name"].as_str().map(str::to_string))
    }

    /// Calls `method path` (under `/api/v1`) with an optional JSON body; `None` for 204.
    /// GET is retried on 429/5xx; other methods only on 429.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Option<T>, ClientError> {
        let token = self.tokens.token().await?;
        let url = format!("{}/api/v1{path}", self.base_url);
        let safe = method == Method::GET;
        let body = body
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let res = self
            .http
            .send(
                |c| {
                    let r = c
                        .request(method.clone(), &url)
                        .bearer_auth(token.expose_secret());
                    match &body {
                        Some(b) => r.json(b),
                        None => r,
                    }
                },
                safe,
            )
            .await?;
        if res.status == reqwest::StatusCode::NO_CONTENT || res.data.is_empty() {
            return Ok(None);
        }
        Ok(Some(json(res)?.data))
    }
}
