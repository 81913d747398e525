//! Token use cases: the client-credentials grant (every token path), the CSP API-token
//! exchange, and the authentication of a bearer access token on the management APIs.
//!
//! The grant's hot path is one store lookup (from the client cache when it is warm), one
//! keyed hash per candidate secret, one Ed25519 signature and an in-memory last-use note;
//! nothing is written per request.

use uuid::Uuid;

use super::{Actor, Rekey, Surface};
use crate::auth::{grant_scopes, match_secret, ClientAuthError};
use crate::clock::Timestamp;
use crate::error::CoreError;
use crate::metrics::THROTTLED_REQUESTS;
use crate::model::{ApiTokenId, App, AuditContext, OrgId, Principal, SecretId, UserId};
use crate::secret::is_valid_client_id;
use crate::store::ClientRecord;
use crate::token::{AccessClaims, TokenError};

/// A client-credentials request, as the dialect parsed it.
pub struct ClientTokenRequest<'a> {
    pub client_id: &'a str,
    /// Candidate secrets: as decoded, then as sent (some clients do not URL-encode).
    pub secrets: &'a [String],
    pub scope: Option<&'a str>,
    /// RFC 8707 `resource` (or `audience`): the resource server the token is for.
    pub audience: Option<&'a str>,
    /// Where the request came from, for the failure throttle.
    pub source: &'a str,
    /// CSP's token: it carries the org context and a service account's perms.
    pub csp: Option<CspContext<'a>>,
}

/// The CSP token paths' extra input.
pub struct CspContext<'a> {
    /// `orgId`, when given, must be the app's org.
    pub org_id: Option<&'a str>,
}

/// A signed access token and what the response says about it.
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
    pub scope: String,
}

/// Why no token was issued. Each token dialect renders it (RFC 6749 shapes).
#[derive(Debug, thiserror::Error)]
pub enum TokenRefusal {
    /// Too many failures from this client and address, or from this address.
    #[error("throttled for {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    /// Wrong credentials. `known_client`: the client id names an app (so it may be logged);
    /// otherwise it may be anything, even a secret sent in the wrong field.
    #[error("client authentication failed")]
    InvalidClient { known_client: bool },
    #[error("the client may not use the client_credentials grant")]
    GrantNotAllowed,
    #[error("the scope {0} is not allowed for this client")]
    ScopeNotAllowed(String),
    #[error("the client does not belong to the organization in orgId")]
    WrongOrg,
    /// RFC 8707 `invalid_target`: the app may not ask tokens for this audience.
    #[error("the client may not ask tokens for the audience {0}")]
    AudienceNotAllowed(String),
    #[error("the API token is invalid, expired or revoked")]
    InvalidApiToken,
    #[error(transparent)]
    Store(#[from] CoreError),
}

/// Why a bearer access token does not authenticate a request. Each dialect renders it.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    #[error("A bearer access token is required")]
    Missing,
    #[error("The access token has expired")]
    Expired,
    #[error("The access token is not valid")]
    Invalid,
    /// The client secret or API token that minted the token is no longer valid.
    #[error("The credential that minted this access token is no longer valid")]
    Revoked,
    /// The token is for another resource server (`aud`), not Rekey's own APIs.
    #[error("The access token is for another audience")]
    WrongAudience,
    #[error("The server could not check the access token")]
    Storage(#[from] CoreError),
}

/// An authenticated bearer token.
pub struct Authenticated {
    pub principal: Principal,
    /// The org the token acts in (a user's API-token org, or an app's own org).
    pub org_id: OrgId,
    pub claims: AccessClaims,
    /// The app, when the token was minted with a client secret.
    pub app: Option<App>,
}

impl Authenticated {
    /// The caller as the use cases see it, with the request's audit details.
    pub fn actor(
        &self,
        surface: Surface,
        request_id: Option<String>,
        source: Option<String>,
    ) -> Actor {
        Actor {
            principal: self.principal,
            org_id: self.org_id,
            surface,
            audit: AuditContext {
                actor: self.principal.to_string(),
                request_id,
                source,
            },
        }
    }
}

impl Rekey {
    /// Records a failed authentication (for the throttle, and counted for the audit trail):
    /// `refusal`, or 429 once the client id or the address is over its failure budget.
    /// `client_id`: the id the throttle counts (only one that names an app); `presented`:
    /// the id as sent; `app`: the app it names, if any.
    fn failed_authentication(
        &self,
        client_id: Option<&str>,
        presented: Option<&str>,
        app: Option<&App>,
        source: Option<&str>,
        now: Timestamp,
        refusal: TokenRefusal,
    ) -> TokenRefusal {
        self.throttle.record_failure(client_id, source, now);
        let (actor, reason) = match (app, &refusal) {
            (Some(app), _) => (
                Principal::App(app.id).to_string(),
                "invalid client credentials",
            ),
            (None, TokenRefusal::InvalidApiToken) => ("api-token".to_string(), "invalid API token"),
            // An id that names no app may be a secret sent in the wrong field: only its
            // fingerprint is kept.
            (None, _) => (
                format!(
                    "client:{}",
                    crate::crypto::log_fingerprint(presented.unwrap_or(""))
                ),
                "unknown client id",
            ),
        };
        self.tally.record(
            crate::audit_tally::TallyKey {
                action: "auth.failed",
                org: app.map(|a| a.org_id),
                app: app.map(|a| a.id),
                actor,
                source: source.map(str::to_string),
                reason: reason.to_string(),
            },
            now,
        );
        match self.throttle.blocked_for(client_id, source, now) {
            Some(wait) => {
                metrics::counter!(THROTTLED_REQUESTS).increment(1);
                TokenRefusal::Throttled {
                    retry_after_secs: wait,
                }
            }
            None => refusal,
        }
    }

    /// Authenticates an app by its client id and secret, under the token endpoint's rules
    /// (the failure throttle included): the app's record and the id of the secret that
    /// matched. Also the client authentication of introspection and revocation.
    pub async fn authenticate_client(
        &self,
        client_id: &str,
        secrets: &[String],
        source: &str,
        now: Timestamp,
    ) -> Result<(std::sync::Arc<ClientRecord>, SecretId), TokenRefusal> {
        // The throttle turns a failed authentication into 429 once the client id or the
        // address is over its budget; a valid secret always passes (see `throttle`).
        let failed = |app: Option<&App>| {
            // Only a client id that names an app gets a window of its own: any other string
            // counts against the address alone (a flood of made-up ids adds no keys).
            self.failed_authentication(
                app.map(|_| client_id),
                Some(client_id),
                app,
                Some(source),
                now,
                TokenRefusal::InvalidClient {
                    known_client: app.is_some(),
                },
            )
        };
        // Ids Rekey never issues (wrong length or characters) fail without a lookup.
        if !is_valid_client_id(client_id) {
            return Err(failed(None));
        }
        let Some(client) = self.store.load_client(client_id).await? else {
            return Err(failed(None));
        };
        let matched = secrets.iter().find_map(|candidate| {
            match_secret(&client.secrets, &self.secret_hasher.hash(candidate), now)
        });
        match matched.map(|s| s.id) {
            Some(secret) => Ok((client, secret)),
            None => Err(failed(Some(&client.app))),
        }
    }

    /// The client-credentials grant.
    pub async fn issue_client_token(
        &self,
        req: ClientTokenRequest<'_>,
    ) -> Result<IssuedToken, TokenRefusal> {
        let now = self.now();
        let (client, secret_id) = self
            .authenticate_client(req.client_id, req.secrets, req.source, now)
            .await?;
        let app = &client.app;
        let scopes = grant_scopes(app, req.scope).map_err(|e| match e {
            ClientAuthError::GrantNotAllowed => TokenRefusal::GrantNotAllowed,
            ClientAuthError::ScopeNotAllowed(s) => TokenRefusal::ScopeNotAllowed(s),
            ClientAuthError::BadCredentials => self.failed_authentication(
                Some(req.client_id),
                Some(req.client_id),
                Some(app),
                Some(req.source),
                now,
                TokenRefusal::InvalidClient { known_client: true },
            ),
        })?;
        let aud = crate::auth::select_audience(app, req.audience, &self.issuer)
            .map_err(TokenRefusal::AudienceNotAllowed)?;
        let (context_name, perms) = match &req.csp {
            Some(csp) => {
                if csp.org_id.is_some_and(|org| org != app.org_id.to_string()) {
                    return Err(TokenRefusal::WrongOrg);
                }
                let role = self.service_account_role(app).await?;
                (
                    Some(app.org_id.to_string()),
                    Some(role.map(|r| vec![r.perm()]).unwrap_or_default()),
                )
            }
            None => (None, None),
        };
        self.last_use.record(secret_id, now);
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: app.client_id.clone(),
            aud,
            client_id: Some(app.client_id.clone()),
            iat: now.as_secs(),
            exp: now.as_secs() + app.access_token_ttl_secs,
            jti: Uuid::new_v4().to_string(),
            scope: scopes.join(" "),
            sid: Some(secret_id.to_string()),
            tid: None,
            context_name,
            perms,
        };
        self.sign(claims, app.access_token_ttl_secs)
    }

    /// The CSP API-token exchange: a user's API token for an access token in the token's org.
    /// A user's token is for Rekey's own APIs: `audience` may name only the issuer.
    pub async fn exchange_api_token(
        &self,
        api_token: &str,
        audience: Option<&str>,
        source: &str,
    ) -> Result<IssuedToken, TokenRefusal> {
        let user_token_audience = match audience {
            None => Vec::new(),
            Some(a) if a == self.issuer => vec![a.to_string()],
            Some(a) => return Err(TokenRefusal::AudienceNotAllowed(a.to_string())),
        };
        let now = self.now();
        let invalid = || {
            self.failed_authentication(
                None,
                None,
                None,
                Some(source),
                now,
                TokenRefusal::InvalidApiToken,
            )
        };
        let hash = self.api_token_hasher.hash(api_token);
        let Some(record) = self.store.find_api_token_by_hash(&hash).await? else {
            return Err(invalid());
        };
        if !record.is_valid(now) {
            return Err(invalid());
        }
        let member = Principal::User(record.user_id);
        let Some(membership) = self.store.get_membership(record.org_id, member).await? else {
            return Err(invalid());
        };
        let ttl = self.user_token_ttl_secs;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: record.user_id.to_string(),
            aud: user_token_audience,
            client_id: None,
            iat: now.as_secs(),
            exp: now.as_secs() + ttl,
            jti: Uuid::new_v4().to_string(),
            scope: membership.role.perm(),
            sid: None,
            tid: Some(record.id.to_string()),
            context_name: Some(record.org_id.to_string()),
            perms: Some(vec![membership.role.perm()]),
        };
        self.sign(claims, ttl)
    }

    fn sign(&self, claims: AccessClaims, expires_in: i64) -> Result<IssuedToken, TokenRefusal> {
        let access_token = self.keys().sign(&claims)?;
        Ok(IssuedToken {
            access_token,
            expires_in,
            scope: claims.scope,
        })
    }

    /// Authenticates a bearer access token on Rekey's own APIs: [`Self::verify_access_token`],
    /// and a token for another resource server (an `aud` other than the issuer) is refused,
    /// so that a resource server cannot replay the tokens it receives against Rekey.
    pub async fn authenticate(&self, token: &str) -> Result<Authenticated, AuthFailure> {
        let auth = self.verify_access_token(token).await?;
        let aud = &auth.claims.aud;
        if aud.is_empty() || aud.contains(&self.issuer) {
            Ok(auth)
        } else {
            Err(AuthFailure::WrongAudience)
        }
    }

    /// Verifies an access token for any audience: a valid signature and expiry, and a
    /// minting credential (client secret or API token) that is still valid now, so that
    /// revoking a secret or an API token cuts off its access tokens at once.
    pub async fn verify_access_token(&self, token: &str) -> Result<Authenticated, AuthFailure> {
        let now = self.now();
        let claims = self.keys().verify(token, now).map_err(|e| match e {
            TokenError::Expired => AuthFailure::Expired,
            _ => AuthFailure::Invalid,
        })?;
        // Revoked by its app (RFC 7009), on any node.
        if self.store.is_token_revoked(&claims.jti).await? {
            return Err(AuthFailure::Revoked);
        }
        if let Some(sid) = &claims.sid {
            let sid = SecretId::parse(sid).ok_or(AuthFailure::Revoked)?;
            let secret = self
                .store
                .get_secret(sid)
                .await?
                .ok_or(AuthFailure::Revoked)?;
            if !secret.is_valid(now) {
                return Err(AuthFailure::Revoked);
            }
            let app = self
                .store
                .get_app(secret.app_id)
                .await?
                .ok_or(AuthFailure::Revoked)?;
            if claims.client_id.as_deref() != Some(app.client_id.as_str()) {
                return Err(AuthFailure::Revoked);
            }
            Ok(Authenticated {
                principal: Principal::App(app.id),
                org_id: app.org_id,
                claims,
                app: Some(app),
            })
        } else if let Some(tid) = &claims.tid {
            let tid = ApiTokenId::parse(tid).ok_or(AuthFailure::Revoked)?;
            let t = self
                .store
                .get_api_token(tid)
                .await?
                .ok_or(AuthFailure::Revoked)?;
            if !t.is_valid(now) || UserId::parse(&claims.sub) != Some(t.user_id) {
                return Err(AuthFailure::Revoked);
            }
            Ok(Authenticated {
                principal: Principal::User(t.user_id),
                org_id: t.org_id,
                claims,
                app: None,
            })
        } else {
            Err(AuthFailure::Invalid)
        }
    }
}
