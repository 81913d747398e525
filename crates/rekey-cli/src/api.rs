//! A small client for the management API, used by the CLI commands.
//! (The full typed client library is `rekey-client`, a later crate.)

use anyhow::{bail, Context as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cli::ApiArgs;

pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    access_token: String,
    pub org: String,
}

impl ApiClient {
    /// Exchanges the API token for an access token and works out the org.
    pub async fn connect(args: &ApiArgs) -> anyhow::Result<Self> {
        let Some(api_token) = args.api_token.as_deref() else {
            bail!("no API token: set REKEY_API_TOKEN (or --api-token)");
        };
        let base = args.url.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .user_agent(concat!("rekey-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let res = http
            .post(format!(
                "{base}/csp/gateway/am/api/auth/api-tokens/authorize"
            ))
            .form(&[("api_token", api_token)])
            .send()
            .await
            .with_context(|| format!("cannot reach {base}"))?;
        if !res.status().is_success() {
            bail!(
                "the API token was refused ({}): is it valid and not revoked?",
                res.status()
            );
        }
        let body: serde_json::Value = res.json().await?;
        let access_token = body["access_token"]
            .as_str()
            .context("the token response has no access_token")?
            .to_string();
        let org = match &args.org {
            Some(o) => o.clone(),
            None => token_org(&access_token)
                .context("cannot tell the org from the token; pass --org")?,
        };
        Ok(Self {
            http,
            base,
            access_token,
            org,
        })
    }

    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> anyhow::Result<Option<T>> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.access_token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = res.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let text = res.text().await?;
        if !status.is_success() {
            let detail = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["detail"].as_str().map(str::to_string))
                .unwrap_or(text);
            bail!("{status}: {detail}");
        }
        Ok(Some(
            serde_json::from_str(&text).context("unexpected response body")?,
        ))
    }
}

/// The org (`context_name`) of a Rekey access token. Reads the payload without verifying:
/// the server verifies; the CLI only needs to know which org to address.
fn token_org(jwt: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims["context_name"].as_str().map(str::to_string)
}
