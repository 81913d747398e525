//! The management API as the CLI uses it: `rekey-client`'s native API, authenticated with
//! the user's API token, addressed to one org.

use std::sync::Arc;

use anyhow::{bail, Context as _};
use rekey_client::{ClientError, Credentials, NativeApi, TokenProvider};
use reqwest::Method;
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cli::ApiArgs;

pub struct ApiClient {
    api: NativeApi,
    pub org: String,
}

impl ApiClient {
    /// Exchanges the API token for an access token and works out the org.
    pub async fn connect(args: &ApiArgs) -> anyhow::Result<Self> {
        let Some(api_token) = args.api_token.as_deref() else {
            bail!("no API token: set REKEY_API_TOKEN (or --api-token)");
        };
        let base = args.url.trim_end_matches('/').to_string();
        let tokens = Arc::new(TokenProvider::new(
            format!("{base}/csp/gateway/am/api/auth/api-tokens/authorize"),
            Credentials::CspApiToken {
                api_token: SecretString::from(api_token.to_string()),
            },
        ));
        let api = NativeApi::new(&base, tokens);
        let org = match &args.org {
            Some(o) => o.clone(),
            None => api
                .token_org()
                .await
                .map_err(explain)?
                .context("cannot tell the org from the token; pass --org")?,
        };
        Ok(Self { api, org })
    }

    /// Calls `method /api/v1{path}`; `None` for an empty answer.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<Option<T>> {
        let path = path.strip_prefix("/api/v1").unwrap_or(path);
        self.api.call(method, path, body).await.map_err(explain)
    }
}

impl ApiClient {
    /// As [`ApiClient::call`], for answers that must have a body.
    pub async fn fetch<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<T> {
        self.call(method, path, body)
            .await?
            .context("the server sent an empty answer")
    }
}

/// An error for people: the server's own words, and its request id to quote.
fn explain(e: ClientError) -> anyhow::Error {
    match &e {
        ClientError::Http {
            status,
            body,
            request_id,
            ..
        } => {
            let id = request_id
                .as_deref()
                .map(|r| format!(" (request id {r})"))
                .unwrap_or_default();
            anyhow::anyhow!("{status}: {}{id}", body.summary())
        }
        _ => anyhow::anyhow!(e),
    }
}
