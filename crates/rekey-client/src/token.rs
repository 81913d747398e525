//! Access tokens: fetched once, shared, refreshed before they expire.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use crate::error::ClientError;
use crate::http::{json, Http, RetryPolicy};

/// The time, in whole seconds since the epoch; a manual clock makes expiry testable.
pub trait Clock: Send + Sync {
    fn now_secs(&self) -> i64;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the client's one reading of the system time
    fn now_secs(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    }
}

/// How a token is obtained.
#[derive(Clone)]
pub enum Credentials {
    /// OAuth 2.0 client credentials sent in the form (`client_secret_post`), as the SP-API
    /// tutorial does with LWA. Works on `/auth/o2/token` and `/oauth2/token`.
    ClientCredentials {
        client_id: String,
        client_secret: SecretString,
        scope: Option<String>,
    },
    /// CSP client credentials with Basic authentication and an optional `orgId`.
    CspClientCredentials {
        client_id: String,
        client_secret: SecretString,
        org_id: Option<String>,
    },
    /// A CSP user API token, exchanged at `/csp/gateway/am/api/auth/api-tokens/authorize`.
    CspApiToken { api_token: SecretString },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::ClientCredentials { client_id, .. }
            | Credentials::CspClientCredentials { client_id, .. } => {
                write!(f, "Credentials({client_id}, <secret>)")
            }
            Credentials::CspApiToken { .. } => f.write_str("Credentials(<api token>)"),
        }
    }
}

struct Cached {
    token: SecretString,
    expires_at: i64,
}

/// Hands out a valid access token, fetching one only when none is cached or the cached one is
/// within `refresh_margin` of expiring. Concurrent callers wait for one fetch.
pub struct TokenProvider {
    http: Http,
    token_url: String,
    credentials: Credentials,
    clock: Arc<dyn Clock>,
    refresh_margin: Duration,
    cached: Mutex<Option<Cached>>,
    fetches: AtomicU64,
}

impl TokenProvider {
    /// `token_url` is the full URL of the token endpoint.
    pub fn new(token_url: impl Into<String>, credentials: Credentials) -> Self {
        Self::with_clock(token_url, credentials, Arc::new(SystemClock))
    }

    pub fn with_clock(
        token_url: impl Into<String>,
        credentials: Credentials,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            http: Http::new(RetryPolicy::default()),
            token_url: token_url.into(),
            credentials,
            clock,
            refresh_margin: Duration::from_secs(60),
            cached: Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    /// Refresh this long before expiry (default 60 s).
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// How many token requests this provider has made.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }

    /// A valid access token.
    pub async fn token(&self) -> Result<SecretString, ClientError> {
        // Holding the lock across the fetch makes concurrent callers wait for one refresh.
        let mut cached = self.cached.lock().await;
        let now = self.clock.now_secs();
        let margin = i64::try_from(self.refresh_margin.as_secs()).unwrap_or(i64::MAX);
        if let Some(c) = cached.as_ref() {
            if now < c.expires_at.saturating_sub(margin) {
                return Ok(c.token.clone());
            }
        }
        let fresh = self.fetch(now).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Forgets the cached token (e.g. after the server refused it).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn fetch(&self, now: i64) -> Result<Cached, ClientError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let url = self.token_url.clone();
        let creds = self.credentials.clone();
        // Token requests are safe to repeat.
        let res = self
            .http
            .send(
                move |c| match &creds {
                    Credentials::ClientCredentials {
                        client_id,
                        client_secret,
                        scope,
                    } => {
                        let mut form = vec![
                            ("grant_type", "client_credentials".to_string()),
                            ("client_id", client_id.clone()),
                            ("client_secret", client_secret.expose_secret().to_string()),
                        ];
                        if let Some(s) = scope {
                            form.push(("scope", s.clone()));
                        }
                        c.post(&url).form(&form)
                    }
                    Credentials::CspClientCredentials {
                        client_id,
                        client_secret,
                        org_id,
                    } => {
                        let mut form = vec![("grant_type", "client_credentials".to_string())];
                        if let Some(o) = org_id {
                            form.push(("orgId", o.clone()));
                        }
                        c.post(&url)
                            .basic_auth(client_id, Some(client_secret.expose_secret()))
                            .form(&form)
                    }
                    Credentials::CspApiToken { api_token } => c
                        .post(&url)
                        .form(&[("api_token", api_token.expose_secret())]),
                },
                true,
            )
            .await?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            access_token: String,
            expires_in: i64,
        }
        let body: TokenResponse = json(res)?.data;
        Ok(Cached {
            token: SecretString::from(body.access_token),
            expires_at: now + body.expires_in,
        })
    }
}
