//! Signing in to the console: one-time links (`rekey console-link`), API tokens, and the
//! sessions they open. A session is a random cookie value whose keyed hash is stored, so it
//! works on every node and can be revoked; it ends after `console_session_idle_seconds`
//! without use and `console_session_max_seconds` after sign-in, whatever happens.

use secrecy::{ExposeSecret, SecretString};

use super::{Actor, Rekey, Surface};
use crate::clock::Timestamp;
use crate::crypto::KeyedHasher;
use crate::error::{CoreResult, OpError};
use crate::model::{
    ApiTokenId, AuditContext, ConsoleLink, ConsoleSession, ConsoleSessionId, Org, OrgId, Principal,
    Role, User, UserId,
};
use crate::policy::Denied;
use crate::secret::{generate_console_token, CONSOLE_TOKEN_CHARS};

/// How long a sign-in link works.
pub const LINK_TTL_SECS: i64 = 15 * 60;

/// A session's last-use time is written at most this often (not on every page).
const TOUCH_EVERY_SECS: i64 = 60;

/// Session lifetimes, from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct SessionLimits {
    pub idle_secs: i64,
    pub max_secs: i64,
}

/// A new one-time sign-in link for `user` in `org`: the record to store and the token for
/// the URL, shown once.
pub fn new_link(
    user: UserId,
    org: OrgId,
    hasher: &KeyedHasher,
    now: Timestamp,
) -> (ConsoleLink, SecretString) {
    let token = generate_console_token();
    let link = ConsoleLink {
        hash: hasher.hash(token.expose_secret()),
        user_id: user,
        org_id: org,
        created_at: now,
        expires_at: now.plus_secs(LINK_TTL_SECS),
        used_at: None,
    };
    (link, token)
}

/// A session just opened: the cookie value is shown to the browser once.
pub struct NewSession {
    pub session: ConsoleSession,
    pub cookie: SecretString,
}

/// The signed-in person behind a request.
pub struct SignedIn {
    pub session: ConsoleSession,
    pub actor: Actor,
    pub user: User,
    pub org: Org,
    pub role: Role,
}

impl Rekey {
    /// Opens a session with a one-time link; the link is used up, even if what follows
    /// fails.
    pub async fn sign_in_with_link(
        &self,
        token: &str,
        audit: AuditContext,
    ) -> Result<NewSession, OpError> {
        let now = self.now();
        let used_up = || {
            OpError::Invalid(
                "This sign-in link does not work: it was used already, it expired, or it was \
                 never made. Ask for a new one with `rekey console-link`."
                    .into(),
            )
        };
        // A token Rekey never makes costs no database write.
        if token.len() != CONSOLE_TOKEN_CHARS || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(used_up());
        }
        let hash = self.console_hasher.hash(token);
        let link = self
            .store
            .use_console_link(&hash, now)
            .await?
            .ok_or_else(used_up)?;
        self.open_session(link.user_id, link.org_id, None, audit, now)
            .await
    }

    /// Opens a session with a user's API token (in the token's org).
    pub async fn sign_in_with_api_token(
        &self,
        token: &str,
        audit: AuditContext,
    ) -> Result<NewSession, OpError> {
        let now = self.now();
        let invalid = || {
            OpError::Invalid("This API token is not valid (revoked, expired or unknown).".into())
        };
        let hash = self.api_token_hasher.hash(token.trim());
        let record = self
            .store
            .find_api_token_by_hash(&hash)
            .await?
            .ok_or_else(invalid)?;
        if !record.is_valid(now) {
            return Err(invalid());
        }
        self.open_session(record.user_id, record.org_id, Some(record.id), audit, now)
            .await
    }

    async fn open_session(
        &self,
        user: UserId,
        org: OrgId,
        api_token: Option<ApiTokenId>,
        audit: AuditContext,
        now: Timestamp,
    ) -> Result<NewSession, OpError> {
        // Only a member signs in; the role is read again on every request.
        self.store
            .get_membership(org, Principal::User(user))
            .await?
            .ok_or(OpError::Denied(Denied::NotAMember))?;
        let cookie = generate_console_token();
        let session = ConsoleSession {
            id: ConsoleSessionId::new(),
            hash: self.console_hasher.hash(cookie.expose_secret()),
            user_id: user,
            org_id: org,
            created_at: now,
            last_seen_at: now,
            expires_at: now.plus_secs(self.console_sessions.max_secs),
            revoked_at: None,
            api_token_id: api_token,
        };
        let ev = AuditContext {
            actor: Principal::User(user).to_string(),
            ..audit
        }
        .event(now, "console.signed_in")
        .org(org)
        .details(serde_json::json!({
            "session": session.id.to_string(),
            "method": if api_token.is_some() { "api_token" } else { "link" },
        }));
        self.store.create_console_session(&session, &[ev]).await?;
        Ok(NewSession { session, cookie })
    }

    /// The signed-in user of a session cookie, if the session is still open and the user
    /// still a member of its org.
    pub async fn console_session(
        &self,
        cookie: &str,
        request_id: Option<String>,
        source: Option<String>,
    ) -> CoreResult<Option<SignedIn>> {
        let now = self.now();
        let hash = self.console_hasher.hash(cookie);
        let Some(session) = self.store.find_console_session(&hash).await? else {
            return Ok(None);
        };
        let idle_end = session
            .last_seen_at
            .plus_secs(self.console_sessions.idle_secs);
        if session.revoked_at.is_some() || now >= session.expires_at || now >= idle_end {
            return Ok(None);
        }
        let principal = Principal::User(session.user_id);
        let (Some(membership), Some(user), Some(org)) = (
            self.store.get_membership(session.org_id, principal).await?,
            self.store.get_user(session.user_id).await?,
            self.store.get_org(session.org_id).await?,
        ) else {
            return Ok(None);
        };
        // A member removed and added again starts afresh: older sessions stay ended.
        if membership.created_at > session.created_at {
            return Ok(None);
        }
        // A session opened with an API token ends when the token does.
        if let Some(token) = session.api_token_id {
            let valid = self
                .store
                .get_api_token(token)
                .await?
                .is_some_and(|t| t.is_valid(now));
            if !valid {
                return Ok(None);
            }
        }
        if now.as_millis() - session.last_seen_at.as_millis() >= TOUCH_EVERY_SECS * 1000 {
            self.store.touch_console_session(session.id, now).await?;
        }
        let actor = Actor {
            principal,
            org_id: session.org_id,
            surface: Surface::Console,
            audit: AuditContext {
                actor: principal.to_string(),
                request_id,
                source,
            },
        };
        Ok(Some(SignedIn {
            session,
            actor,
            user,
            org,
            role: membership.role,
        }))
    }

    /// Ends a session now (sign-out).
    pub async fn sign_out(&self, signed_in: &SignedIn) -> CoreResult<()> {
        let now = self.now();
        let ev = signed_in
            .actor
            .audit
            .event(now, "console.signed_out")
            .org(signed_in.org.id)
            .details(serde_json::json!({ "session": signed_in.session.id.to_string() }));
        self.store
            .revoke_console_session(signed_in.session.id, now, &[ev])
            .await
    }

    /// The CSRF token of a session: derived from its cookie, so it needs no storage, and
    /// useless without the server key.
    pub fn csrf_token(&self, cookie: &str) -> String {
        let tag = self.console_hasher.hash(&format!("csrf:{cookie}"));
        crate::crypto::to_hex(&tag.0)
    }

    /// Whether `given` is the CSRF token of the session `cookie` (constant time).
    pub fn csrf_matches(&self, cookie: &str, given: &str) -> bool {
        let expected = self.csrf_token(cookie);
        expected.len() == given.len()
            && subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), given.as_bytes()).into()
    }
}
