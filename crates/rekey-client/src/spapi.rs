//! The SP-API Application Management API v2023-11-30.

use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::error::ClientError;
use crate::http::{ApiResponse, Http, RetryPolicy};
use crate::token::TokenProvider;

/// Amazon's Login with Amazon token endpoint.
pub const LWA_TOKEN_URL: &str = "https://api.amazon.com/auth/o2/token";
/// The grantless scope `rotateApplicationClientSecret` needs.
pub const ROTATION_SCOPE: &str = "sellingpartnerapi::client_credential:rotation";

/// Amazon's SP-API endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpApiRegion {
    NorthAmerica,
    Europe,
    FarEast,
}

impl SpApiRegion {
    pub fn base_url(self) -> &'static str {
        match self {
            SpApiRegion::NorthAmerica => "https://sellingpartnerapi-na.amazon.com",
            SpApiRegion::Europe => "https://sellingpartnerapi-eu.amazon.com",
            SpApiRegion::FarEast => "https://sellingpartnerapi-fe.amazon.com",
        }
    }
}

/// `ApplicationsApi`, as in the official SP-API SDKs.
pub struct ApplicationsApi {
    http: Http,
    base_url: String,
    tokens: Arc<TokenProvider>,
}

impl ApplicationsApi {
    /// `base_url`: an SP-API host ([`SpApiRegion::base_url`]) or a Rekey server.
    pub fn new(base_url: impl Into<String>, tokens: Arc<TokenProvider>) -> Self {
        Self {
            http: Http::new(RetryPolicy::default()),
            base_url: base_url.into().trim_end_matches('/').to_string(),
            tokens,
        }
    }

    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.http.retry = retry;
        self
    }

    /// `POST /applications/2023-11-30/clientSecret`. Rotates the calling application's
    /// secret; the new one arrives on its registered queue. Not retried on 5xx or lost
    /// connections: the rotation may have happened.
    pub async fn rotate_application_client_secret(&self) -> Result<(), ClientError> {
        self.rotate_application_client_secret_with_http_info()
            .await
            .map(|_| ())
    }

    /// As [`Self::rotate_application_client_secret`], with status and headers.
    pub async fn rotate_application_client_secret_with_http_info(
        &self,
    ) -> Result<ApiResponse<()>, ClientError> {
        let token = self.tokens.token().await?;
        let url = format!("{}/applications/2023-11-30/clientSecret", self.base_url);
        let res = self
            .http
            .send(
                |c| {
                    c.post(&url)
                        .header("x-amz-access-token", token.expose_secret())
                        .header("accept", "application/json")
                },
                false,
            )
            .await?;
        Ok(ApiResponse {
            status: res.status,
            headers: res.headers,
            data: (),
        })
    }
}
