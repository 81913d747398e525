//! The domain's records: organizations, users, members and roles, applications, secrets,
//! API tokens and audit events. Plain data; rules live in [`crate::auth`] and friends.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::Timestamp;
use crate::crypto::SecretHash;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            /// Parses the canonical hyphenated form.
            pub fn parse(s: &str) -> Option<Self> {
                if s.len() != 36 {
                    return None;
                }
                Uuid::parse_str(s).ok().map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// An organization: the tenant boundary.
    OrgId
);
id_type!(
    /// A person.
    UserId
);
id_type!(
    /// An application (OAuth client).
    AppId
);
id_type!(
    /// One client secret of an application.
    SecretId
);
id_type!(
    /// One API token of a user.
    ApiTokenId
);
id_type!(
    /// One audit event.
    AuditId
);
id_type!(
    /// One notification destination of an app.
    DestinationId
);
id_type!(
    /// One outbox row (the delivery of one notification).
    DeliveryId
);
id_type!(
    /// The `notificationId` consumers deduplicate on.
    NotificationId
);
id_type!(
    /// One console session.
    ConsoleSessionId
);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    pub created_at: Timestamp,
}

/// A role in an org. Ordered from most to least privileged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    OrgOwner,
    OrgAdmin,
    Developer,
    OrgMember,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::OrgOwner,
        Role::OrgAdmin,
        Role::Developer,
        Role::OrgMember,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::OrgOwner => "org_owner",
            Role::OrgAdmin => "org_admin",
            Role::Developer => "developer",
            Role::OrgMember => "org_member",
        }
    }

    /// The CSP-style permission carried in access tokens, e.g. `csp:org_owner`.
    pub fn perm(self) -> String {
        format!("csp:{}", self.as_str())
    }

    /// May create, change and delete apps and act on their secrets.
    pub fn can_manage_apps(self) -> bool {
        matches!(self, Role::OrgOwner | Role::OrgAdmin | Role::Developer)
    }

    /// May add and remove members and change roles.
    pub fn can_manage_members(self) -> bool {
        matches!(self, Role::OrgOwner | Role::OrgAdmin)
    }

    /// 0 for the most privileged role.
    fn rank(self) -> usize {
        Role::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(usize::MAX)
    }

    /// Whether a member with this role may give `role` to someone (or to an app): only
    /// owners and admins give roles, and never one above their own.
    pub fn may_grant(self, role: Role) -> bool {
        self.can_manage_members() && role.rank() >= self.rank()
    }
}

impl FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or(())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a membership is for: a person, or an application acting as a service account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    User(UserId),
    App(AppId),
}

impl Principal {
    pub fn kind(self) -> &'static str {
        match self {
            Principal::User(_) => "user",
            Principal::App(_) => "app",
        }
    }

    pub fn uuid(self) -> Uuid {
        match self {
            Principal::User(u) => u.0,
            Principal::App(a) => a.0,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.uuid())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    pub org_id: OrgId,
    pub principal: Principal,
    pub role: Role,
    pub created_at: Timestamp,
}

/// A one-time console sign-in link (`rekey console-link`); only its keyed hash is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleLink {
    pub hash: SecretHash,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
}

/// A signed-in console user: the cookie's keyed hash, kept server-side so that every node
/// knows it and it can be revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleSession {
    pub id: ConsoleSessionId,
    pub hash: SecretHash,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// The absolute end, however active the session is.
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    /// The API token it was opened with (none for a link): revoking it ends the session.
    pub api_token_id: Option<ApiTokenId>,
}

/// A user's long-lived API token; only its keyed hash is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    pub id: ApiTokenId,
    pub user_id: UserId,
    pub org_id: OrgId,
    pub name: String,
    pub hash: SecretHash,
    pub hint: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl ApiToken {
    pub fn is_valid(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// Grant types an app may use. Only the client credentials grant is issued by Rekey.
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";

/// An OAuth client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    pub id: AppId,
    pub org_id: OrgId,
    pub client_id: String,
    pub name: String,
    pub description: String,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub access_token_ttl_secs: i64,
    /// Lifetime of each new secret; 0 means secrets do not expire by age.
    pub secret_lifetime_secs: i64,
    /// Default overlap for a rotation, when the request does not say.
    pub rotation_grace_secs: i64,
    pub owner_only_secret_rotation: bool,
    /// Whether the app is also a member of its org (a service account).
    pub service_account: bool,
    /// RFC 8707: the resource servers the app may ask tokens for (`aud`). The first is the
    /// audience of a token whose request names none; empty: tokens carry no `aud`.
    pub audiences: Vec<String>,
    /// Automatic rotation and retirement; unset fields inherit the org's default.
    pub rotation_policy: crate::rotation_policy::RotationPolicy,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Where a secret is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretState {
    Current,
    Previous,
    Revoked,
    Expired,
}

impl SecretState {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretState::Current => "current",
            SecretState::Previous => "previous",
            SecretState::Revoked => "revoked",
            SecretState::Expired => "expired",
        }
    }
}

impl FromStr for SecretState {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [
            SecretState::Current,
            SecretState::Previous,
            SecretState::Revoked,
            SecretState::Expired,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or(())
    }
}

/// One client secret; only its keyed hash and a four-character hint are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    pub id: SecretId,
    pub app_id: AppId,
    pub state: SecretState,
    pub hash: SecretHash,
    pub hint: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub created_by: String,
    pub revoked_at: Option<Timestamp>,
    pub revoked_reason: Option<String>,
}

impl Secret {
    /// Valid while current or previous, not revoked, and before `expires_at`.
    pub fn is_valid(&self, now: Timestamp) -> bool {
        matches!(self.state, SecretState::Current | SecretState::Previous)
            && self.revoked_at.is_none()
            && self.expires_at.is_none_or(|e| now < e)
    }
}

/// Outcome of an audited action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

/// An append-only record of a security-relevant action. Never holds secret material.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEvent {
    pub id: AuditId,
    pub time: Timestamp,
    pub action: String,
    pub actor: String,
    pub org_id: Option<OrgId>,
    pub app_id: Option<AppId>,
    pub secret_id: Option<SecretId>,
    pub request_id: Option<String>,
    pub source: Option<String>,
    pub outcome: Outcome,
    pub details: serde_json::Value,
}

/// Who did something and from where, for audit events.
#[derive(Clone, Debug, Default)]
pub struct AuditContext {
    pub actor: String,
    pub request_id: Option<String>,
    pub source: Option<String>,
}

impl AuditContext {
    pub fn event(&self, time: Timestamp, action: &str) -> AuditEvent {
        AuditEvent {
            id: AuditId::new(),
            time,
            action: action.to_string(),
            actor: self.actor.clone(),
            org_id: None,
            app_id: None,
            secret_id: None,
            request_id: self.request_id.clone(),
            source: self.source.clone(),
            outcome: Outcome::Success,
            details: serde_json::Value::Null,
        }
    }
}

impl AuditEvent {
    pub fn org(mut self, id: OrgId) -> Self {
        self.org_id = Some(id);
        self
    }
    pub fn app(mut self, id: AppId) -> Self {
        self.app_id = Some(id);
        self
    }
    pub fn secret(mut self, id: SecretId) -> Self {
        self.secret_id = Some(id);
        self
    }
    pub fn failed(mut self) -> Self {
        self.outcome = Outcome::Failure;
        self
    }
    pub fn details(mut self, v: serde_json::Value) -> Self {
        self.details = v;
        self
    }
}

/// A serving node as it last reported itself (every 30 s), for `rekey doctor`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NodeInfo {
    /// Random per process start.
    pub id: String,
    pub hostname: String,
    /// The node's issuer: every node of a cluster must report the same one.
    pub public_url: String,
    /// The binary's version.
    pub version: String,
    /// The newest migration the binary knows.
    pub schema_version: i64,
    pub started_at: Timestamp,
    /// By the database's clock (set by the store).
    pub last_seen_at: Timestamp,
    /// The node's clock minus the database's when it last reported (set by the store).
    pub clock_skew_ms: i64,
}

/// A signing key as stored: the private half sealed with the server key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub kid: String,
    pub algorithm: String,
    pub public_key: Vec<u8>,
    pub sealed_private_key: Vec<u8>,
    pub created_at: Timestamp,
    /// Set when a newer key took over; the key stays published until then.
    pub publish_until: Option<Timestamp>,
    /// When it starts signing (published before that); `None`: from its creation.
    pub signs_from: Option<Timestamp>,
}

impl StoredSigningKey {
    /// When the key signs from.
    pub fn signs_from(&self) -> Timestamp {
        self.signs_from.unwrap_or(self.created_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(state: SecretState, expires_at: Option<i64>) -> Secret {
        Secret {
            id: SecretId::new(),
            app_id: AppId::new(),
            state,
            hash: SecretHash([0; 32]),
            hint: "abcd".into(),
            created_at: Timestamp::from_millis(0),
            expires_at: expires_at.map(Timestamp::from_millis),
            last_used_at: None,
            created_by: "test".into(),
            revoked_at: None,
            revoked_reason: None,
        }
    }

    #[test]
    fn a_secret_is_valid_strictly_before_expires_at() {
        let s = secret(SecretState::Current, Some(1000));
        assert!(s.is_valid(Timestamp::from_millis(999)));
        assert!(!s.is_valid(Timestamp::from_millis(1000)));
    }

    #[test]
    fn a_secret_without_expiry_is_valid_until_revoked() {
        let mut s = secret(SecretState::Previous, None);
        assert!(s.is_valid(Timestamp::from_millis(i64::MAX)));
        s.revoked_at = Some(Timestamp::from_millis(1));
        assert!(!s.is_valid(Timestamp::from_millis(2)));
    }

    #[test]
    fn revoked_and_expired_states_are_never_valid() {
        assert!(!secret(SecretState::Revoked, None).is_valid(Timestamp::from_millis(0)));
        assert!(!secret(SecretState::Expired, None).is_valid(Timestamp::from_millis(0)));
    }

    #[test]
    fn roles_parse_and_map_to_csp_perms() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert_eq!(Role::OrgOwner.perm(), "csp:org_owner");
        assert!(!Role::OrgMember.can_manage_apps());
        assert!(Role::Developer.can_manage_apps());
        assert!(!Role::Developer.can_manage_members());
        assert!(Role::OrgOwner.may_grant(Role::OrgOwner));
        assert!(Role::OrgAdmin.may_grant(Role::OrgAdmin));
        assert!(!Role::OrgAdmin.may_grant(Role::OrgOwner));
        assert!(
            !Role::Developer.may_grant(Role::OrgMember),
            "a developer gives no roles"
        );
    }

    #[test]
    fn ids_parse_only_the_canonical_form() {
        let id = OrgId::new();
        assert_eq!(OrgId::parse(&id.to_string()), Some(id));
        assert_eq!(OrgId::parse("not-a-uuid"), None);
        assert_eq!(OrgId::parse(&id.0.simple().to_string()), None);
    }
}

/// Records for the rule tests of this crate.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// A secret of an app, in `state`, made at `created`, expiring at `expires`.
    pub(crate) fn secret(
        state: SecretState,
        created: Timestamp,
        expires: Option<Timestamp>,
    ) -> Secret {
        Secret {
            id: SecretId::new(),
            app_id: AppId(uuid::Uuid::nil()),
            state,
            hash: crate::crypto::SecretHash([7; 32]),
            hint: "abcd".into(),
            created_at: created,
            expires_at: expires,
            last_used_at: None,
            created_by: "t".into(),
            revoked_at: None,
            revoked_reason: None,
        }
    }
}
