//! RFC 7662 token introspection and RFC 7009 token revocation.
//!
//! A resource server that checks only the JWKS signature accepts a token until it expires,
//! even when the secret or API token that minted it was revoked or its rotation finished
//! since. Introspection tells it the truth now; revocation lets an app retire a token it no
//! longer needs (by its `jti`, kept until the token would have expired, in the database so
//! that every node refuses it).

use crate::clock::Timestamp;
use crate::error::{CoreError, OpError};
use crate::model::{App, AuditContext, Principal};
use crate::policy::Denied;
use crate::token::AccessClaims;

use super::tokens::AuthFailure;
use super::Rekey;

/// The scope an app needs in its allowed scopes to call the introspection endpoint.
pub const INTROSPECT_SCOPE: &str = "rekey:introspect";

/// How long a revoked `jti` is kept past the token's `exp`: a node whose clock lags still
/// sees the token as unexpired for that long, and must still find it revoked.
pub const REVOKED_TOKEN_MARGIN_SECS: i64 = 300;

/// What introspection says about a token.
#[derive(Debug)]
pub enum Introspection {
    /// Expired, revoked, minted by a credential no longer valid, not signed by this server,
    /// or of another org than the caller's: RFC 7662 says only `active: false`.
    Inactive,
    Active(Box<AccessClaims>),
}

/// Why a revocation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RevokeRefusal {
    /// RFC 7009: a client revokes only tokens issued to it.
    #[error("The token was not issued to this client")]
    NotYours,
    #[error(transparent)]
    Store(#[from] CoreError),
}

impl Rekey {
    /// `caller` (an authenticated app with [`INTROSPECT_SCOPE`]) asks about `token`. Tokens
    /// of other orgs are inactive to it: introspection tells nothing across orgs.
    pub async fn introspect(&self, caller: &App, token: &str) -> Result<Introspection, OpError> {
        if !caller.scopes.iter().any(|s| s == INTROSPECT_SCOPE) {
            return Err(Denied::NotAnIntrospector.into());
        }
        match self.verify_access_token(token).await {
            Ok(auth) if auth.org_id == caller.org_id => {
                Ok(Introspection::Active(Box::new(auth.claims)))
            }
            Ok(_) => Ok(Introspection::Inactive),
            Err(AuthFailure::Storage(e)) => Err(e.into()),
            Err(_) => Ok(Introspection::Inactive),
        }
    }

    /// `caller` revokes one of its own access tokens. A token that does not verify (expired,
    /// malformed, not ours) needs no revocation: RFC 7009 answers 200 all the same.
    pub async fn revoke_token(&self, caller: &App, token: &str) -> Result<(), RevokeRefusal> {
        let now = self.now();
        let Ok(claims) = self.keys().verify(token, now) else {
            return Ok(());
        };
        if claims.client_id.as_deref() != Some(caller.client_id.as_str()) {
            return Err(RevokeRefusal::NotYours);
        }
        let principal = Principal::App(caller.id);
        let event = AuditContext {
            actor: principal.to_string(),
            ..Default::default()
        }
        .event(now, "token.revoked")
        .org(caller.org_id)
        .app(caller.id)
        .details(serde_json::json!({ "jti": claims.jti }));
        self.store
            .revoke_token(
                &claims.jti,
                Timestamp::from_millis(
                    claims
                        .exp
                        .saturating_add(REVOKED_TOKEN_MARGIN_SECS)
                        .saturating_mul(1000),
                ),
                now,
                &[event],
            )
            .await?;
        Ok(())
    }
}
