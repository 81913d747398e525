//! API tokens: a user's long-lived credential, exchanged for short access tokens. Minted in
//! one place ([`new_api_token`]) whoever asks: a user for themselves, a new member's first
//! token, or the first owner at `rekey init`.

use secrecy::{ExposeSecret, SecretString};

use super::{Actor, Rekey};
use crate::clock::Timestamp;
use crate::crypto::KeyedHasher;
use crate::error::OpError;
use crate::model::{ApiToken, ApiTokenId, OrgId, Principal, UserId};
use crate::policy::{self, Action, Denied};
use crate::secret::{generate_api_token, hint};

/// The longest lifetime a caller may give an API token (ten years).
pub const MAX_API_TOKEN_LIFETIME_SECS: i64 = 10 * 365 * 86_400;

/// A new API token for `user` in `org`: the record to store (hash and hint only) and the
/// plain token, to be shown once.
pub fn new_api_token(
    user: UserId,
    org: OrgId,
    name: &str,
    expires_at: Option<Timestamp>,
    hasher: &KeyedHasher,
    now: Timestamp,
) -> (ApiToken, SecretString) {
    let plain = generate_api_token();
    let record = ApiToken {
        id: ApiTokenId::new(),
        user_id: user,
        org_id: org,
        name: name.to_string(),
        hash: hasher.hash(plain.expose_secret()),
        hint: hint(plain.expose_secret()),
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    (record, plain)
}

impl Rekey {
    /// Creates an API token for the calling user in `org`.
    pub async fn create_api_token(
        &self,
        actor: &Actor,
        org: OrgId,
        name: &str,
        expires_in_secs: Option<i64>,
    ) -> Result<(ApiToken, SecretString), OpError> {
        self.authorize(actor, org, Action::Read).await?;
        let Principal::User(user) = actor.principal else {
            return Err(OpError::Denied(Denied::UsersOnly));
        };
        if name.trim().is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(OpError::Invalid(
                "name must be 1 to 256 printable characters".into(),
            ));
        }
        if expires_in_secs.is_some_and(|s| !(1..=MAX_API_TOKEN_LIFETIME_SECS).contains(&s)) {
            return Err(OpError::Invalid(format!(
                "expiresInSeconds must be between 1 and {MAX_API_TOKEN_LIFETIME_SECS}"
            )));
        }
        let now = self.now();
        let expires_at = expires_in_secs.map(|s| now.plus_secs(s));
        let (token, plain) =
            new_api_token(user, org, name, expires_at, &self.api_token_hasher, now);
        let ev = actor
            .audit
            .event(now, "api_token.created")
            .org(org)
            .details(serde_json::json!({
                "tokenId": token.id.to_string(),
                "user": user.to_string(),
            }));
        self.store.create_api_token(&token, &[ev]).await?;
        Ok((token, plain))
    }

    /// The org's API tokens: all of them for those who manage others' tokens, else the
    /// caller's own (none for an app).
    pub async fn list_api_tokens(
        &self,
        actor: &Actor,
        org: OrgId,
    ) -> Result<Vec<ApiToken>, OpError> {
        let subject = self.subject(actor, org).await?;
        self.decide(actor, org, subject, Action::Read)?;
        let user = match actor.principal {
            _ if policy::authorize(subject, Action::ManageOthersApiTokens).is_ok() => None,
            Principal::User(u) => Some(u),
            Principal::App(_) => return Ok(Vec::new()),
        };
        Ok(self.store.list_api_tokens(org, user).await?)
    }

    /// Revokes an API token now: the caller's own, or anyone's for those who manage others'
    /// tokens. Revoking a revoked token changes nothing and returns it.
    pub async fn revoke_api_token(
        &self,
        actor: &Actor,
        org: OrgId,
        id: ApiTokenId,
    ) -> Result<ApiToken, OpError> {
        let subject = self.subject(actor, org).await?;
        self.decide(actor, org, subject, Action::Read)?;
        let token = match self.store.get_api_token(id).await? {
            Some(t) if t.org_id == org => t,
            _ => return Err(OpError::NotFound),
        };
        if actor.principal != Principal::User(token.user_id) {
            self.decide(actor, org, subject, Action::ManageOthersApiTokens)?;
        }
        let now = self.now();
        let ev = actor
            .audit
            .event(now, "api_token.revoked")
            .org(org)
            .details(serde_json::json!({
                "tokenId": id.to_string(),
                "user": token.user_id.to_string(),
            }));
        self.store.revoke_api_token(id, now, &[ev]).await?;
        self.store.get_api_token(id).await?.ok_or(OpError::NotFound)
    }
}
