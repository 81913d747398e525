//! VMware CSP organization OAuth apps.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::error::ClientError;
use crate::http::{json, ApiResponse, Http, RetryPolicy};
use crate::token::TokenProvider;

/// VMware Cloud Services' console host.
pub const CSP_DEFAULT_BASE_URL: &str = "https://console.cloud.vmware.com";

/// `/csp/gateway/am/api/orgs/{orgId}/oauth-apps`. App ids are client ids.
pub struct OauthAppsApi {
    http: Http,
    base: String,
    tokens: Arc<TokenProvider>,
}

impl OauthAppsApi {
    pub fn new(base_url: impl Into<String>, org_id: &str, tokens: Arc<TokenProvider>) -> Self {
        Self {
            http: Http::new(RetryPolicy::default()),
            base: format!(
                "{}/csp/gateway/am/api/orgs/{org_id}/oauth-apps",
                base_url.into().trim_end_matches('/')
            ),
            tokens,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        safe_to_repeat: bool,
    ) -> Result<ApiResponse<Vec<u8>>, ClientError> {
        let token = self.tokens.token().await?;
        let url = format!("{}{path}", self.base);
        self.http
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
                safe_to_repeat,
            )
            .await
    }

    /// Creates an app (`request` is an `OrgOauthAppRequest`); returns `{clientId, clientSecret}`.
    pub async fn create(&self, request: Value) -> Result<Value, ClientError> {
        Ok(json(
            self.call(reqwest::Method::POST, "", Some(request), false)
                .await?,
        )?
        .data)
    }

    pub async fn list(
        &self,
        page_start: u32,
        page_limit: u32,
        search_term: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut q = format!("?pageStart={page_start}&pageLimit={page_limit}");
        if let Some(t) = search_term {
            q.push_str("&searchTerm=");
            q.push_str(&form_encode(t));
        }
        Ok(json(self.call(reqwest::Method::GET, &q, None, true).await?)?.data)
    }

    pub async fn get(&self, client_id: &str) -> Result<Value, ClientError> {
        Ok(json(
            self.call(reqwest::Method::GET, &format!("/{client_id}"), None, true)
                .await?,
        )?
        .data)
    }

    pub async fn patch(&self, client_id: &str, changes: Value) -> Result<Value, ClientError> {
        Ok(json(
            self.call(
                reqwest::Method::PATCH,
                &format!("/{client_id}"),
                Some(changes),
                false,
            )
            .await?,
        )?
        .data)
    }

    /// Deletes up to 15 apps; returns `{succeeded, failed}`.
    pub async fn delete(&self, client_ids: &[&str]) -> Result<Value, ClientError> {
        let body = json!({ "clientIdsToDelete": client_ids });
        Ok(json(
            self.call(reqwest::Method::DELETE, "", Some(body), false)
                .await?,
        )?
        .data)
    }

    /// Regenerates the secret (every other secret ends now); returns the new one.
    pub async fn regenerate_secret(&self, client_id: &str) -> Result<SecretString, ClientError> {
        let res = json::<Value>(
            self.call(
                reqwest::Method::PUT,
                &format!("/{client_id}/secret"),
                Some(json!({})),
                false,
            )
            .await?,
        )?;
        res.data["clientSecret"]
            .as_str()
            .map(|s| SecretString::from(s.to_string()))
            .ok_or_else(|| ClientError::Decode("no clientSecret in the answer".into()))
    }

    /// Starts a rotation to `new_secret`; the old one stays valid for `expiration_secs`
    /// (server default 48 h).
    pub async fn rotate_secret(
        &self,
        client_id: &str,
        new_secret: &SecretString,
        expiration_secs: Option<i64>,
    ) -> Result<(), ClientError> {
        let mut body = json!({ "newClientSecret": new_secret.expose_secret() });
        if let Some(s) = expiration_secs {
            body["secretRotationExpirationInSeconds"] = s.into();
        }
        self.call(
            reqwest::Method::POST,
            &format!("/{client_id}/secret"),
            Some(body),
            false,
        )
        .await?;
        Ok(())
    }

    /// Finishes a rotation: the old secret ends now. Idempotent, so safe to retry.
    pub async fn finish_rotation(&self, client_id: &str) -> Result<(), ClientError> {
        self.call(
            reqwest::Method::DELETE,
            &format!("/{client_id}/secret"),
            None,
            true,
        )
        .await?;
        Ok(())
    }
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
