//! The management API as the CLI uses it: `rekey-client`'s native API, authenticated with
//! the user's API token, addressed to one org.

use std::sync::Arc;

use anyhow::{bail, Context as _};
use rekey_client::{ClientError, Credentials, NativeApi, TokenProvider};
use secrecy::SecretString;

use crate::cli::ApiArgs;

pub(crate) struct ApiClient {
    pub api: NativeApi,
    pub org: String,
}

impl ApiClient {
    /// Exchanges the API token for an access token and works out the org.
    pub(crate) async fn connect(args: &ApiArgs) -> anyhow::Result<Self> {
        let Some(api_token) = args.api_token.as_deref() else {
            bail!("no API token: set REKEY_API_TOKEN (or --api-token)");
        };
        let base = args.base_url()?;
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
                .explain()?
                .context("cannot tell the org from the token; pass --org")?,
        };
        Ok(Self { api, org })
    }
}

/// Turns a client error into one for people (see [`explain`]).
pub(crate) trait Explain<T> {
    fn explain(self) -> anyhow::Result<T>;
}

impl<T> Explain<T> for Result<T, ClientError> {
    fn explain(self) -> anyhow::Result<T> {
        self.map_err(explain)
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
        ClientError::Transport { url, message } => anyhow::anyhow!(
            "cannot reach {url}: {message}\nIs the server running there? Give its address with --url or REKEY_URL."
        ),
        _ => anyhow::anyhow!(e),
    }
}
