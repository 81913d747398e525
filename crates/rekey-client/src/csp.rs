//! VMware CSP organization OAuth apps.

use std::sync::Arc;

use rekey_proto::csp::{
    BulkDeleteRequest, BulkDeleteResult, ClientCredentials, EmptyBody, OauthApp, OauthAppList,
    OauthAppPatch, OauthAppRequest, OwnerRotationRequest,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;

use crate::error::ClientError;
use crate::http::{encode_component, json, ApiResponse, Http, RetryPolicy};
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

    /// Creates an app; its first secret is in the answer, shown once.
    pub async fn create(&self, request: &OauthAppRequest) -> Result<NewAppSecret, ClientError> {
        let created: ClientCredentials = json(
            self.call(reqwest::Method::POST, "", Some(to_body(request)?), false)
                .await?,
        )?
        .data;
        Ok(NewAppSecret {
            client_id: created.client_id,
            client_secret: SecretString::from(created.client_secret),
        })
    }

    /// One page of the org's apps (`page_start` is 1-based), optionally matching a term.
    pub async fn list(
        &self,
        page_start: u32,
        page_limit: u32,
        search_term: Option<&str>,
    ) -> Result<OauthAppList, ClientError> {
        let mut q = format!("?pageStart={page_start}&pageLimit={page_limit}");
        if let Some(t) = search_term {
            q.push_str("&searchTerm=");
            q.push_str(&encode_component(t));
        }
        Ok(json(self.call(reqwest::Method::GET, &q, None, true).await?)?.data)
    }

    pub async fn get(&self, client_id: &str) -> Result<OauthApp, ClientError> {
        Ok(json(
            self.call(reqwest::Method::GET, &format!("/{client_id}"), None, true)
                .await?,
        )?
        .data)
    }

    /// Changes the fields set in `changes`.
    pub async fn patch(
        &self,
        client_id: &str,
        changes: &OauthAppPatch,
    ) -> Result<OauthApp, ClientError> {
        Ok(json(
            self.call(
                reqwest::Method::PATCH,
                &format!("/{client_id}"),
                Some(to_body(changes)?),
                false,
            )
            .await?,
        )?
        .data)
    }

    /// Deletes 1 to 15 apps; says which were and which were not.
    pub async fn delete(&self, client_ids: &[&str]) -> Result<BulkDeleteResult, ClientError> {
        let body = BulkDeleteRequest {
            client_ids_to_delete: client_ids.iter().map(|c| c.to_string()).collect(),
        };
        Ok(json(
            self.call(reqwest::Method::DELETE, "", Some(to_body(&body)?), false)
                .await?,
        )?
        .data)
    }

    pub async fn regenerate_secret(&self, client_id: &str) -> Result<SecretString, ClientError> {
        let res = json::<ClientCredentials>(
            self.call(
                reqwest::Method::PUT,
                &format!("/{client_id}/secret"),
                Some(to_body(&EmptyBody {})?),
                false,
            )
            .await?,
        )?;
        Ok(SecretString::from(res.data.client_secret))
    }

    /// Starts a rotation to `new_secret`; the old one stays valid for `expiration_secs`
    /// (server default 48 h).
    pub async fn rotate_secret(
        &self,
        client_id: &str,
        new_secret: &SecretString,
        expiration_secs: Option<i64>,
    ) -> Result<(), ClientError> {
        let body = to_body(&OwnerRotationRequest {
            new_client_secret: new_secret.expose_secret().to_string(),
            secret_rotation_expiration_in_seconds: expiration_secs,
        })?;
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

/// A new app's client id and first secret.
pub struct NewAppSecret {
    pub client_id: String,
    pub client_secret: SecretString,
}

fn to_body(v: &impl Serialize) -> Result<Value, ClientError> {
    serde_json::to_value(v).map_err(|e| ClientError::Decode(e.to_string()))
}
