//! The persistence contract. Both backends (SQLite, PostgreSQL) implement [`Store`]; the
//! domain and the HTTP layer only ever see `Arc<dyn Store>`.
//!
//! Changes to an app's secrets go through [`Store::change_secrets`]: the store locks the app,
//! hands its secrets to a pure planning function, and writes the plan (with its audit events)
//! in one transaction. That one path is what keeps "at most one current and one previous" and
//! "never zero valid secrets by accident" true under concurrent requests on several nodes.

use std::sync::Arc;

use async_trait::async_trait;

use crate::clock::Timestamp;
use crate::crypto::SecretHash;
use crate::error::{CoreResult, OpError};
use crate::model::{
    ApiToken, ApiTokenId, App, AppId, AuditEvent, ConsoleLink, ConsoleSession, ConsoleSessionId,
    DeliveryId, DestinationId, Membership, Org, OrgId, Principal, Role, Secret, SecretId,
    StoredSigningKey, User, UserId,
};
use crate::notify::{
    Delivery, DeliveryOutcome, DeliveryResult, DeliveryState, Destination, NotificationType,
};

/// A page request: skip `start`, return at most `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub start: u32,
    pub limit: u32,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            start: 0,
            limit: 100,
        }
    }
}

/// Which audit events to list; `None` fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub org: Option<OrgId>,
    pub app: Option<AppId>,
    /// An exact action, e.g. `secret.rotated`.
    pub action: Option<String>,
    /// Events at or after this time.
    pub since: Option<Timestamp>,
    /// Events before this time.
    pub until: Option<Timestamp>,
}

impl AuditFilter {
    pub fn org(org: OrgId) -> Self {
        Self {
            org: Some(org),
            ..Self::default()
        }
    }
}

/// What a secret change writes: secrets to insert, secrets to update (matched by id), and
/// the audit events that describe it.
#[derive(Clone, Debug, Default)]
pub struct SecretChanges {
    pub insert: Vec<Secret>,
    pub update: Vec<Secret>,
    pub audit: Vec<AuditEvent>,
    /// Notifications caused by the change, written to the outbox in the same transaction.
    pub deliveries: Vec<Delivery>,
}

/// An app as [`Store::change_secrets`] reads it inside its transaction, with the app row
/// locked: its role, when it is a service account, cannot change until the commit (setting an
/// app's role writes its row), so a plan may decide on it. Derefs to the [`App`].
#[derive(Clone, Debug)]
pub struct LockedApp {
    pub app: App,
    pub service_account_role: Option<Role>,
}

impl std::ops::Deref for LockedApp {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

/// Plans a change from an app and its current secrets (all states). Pure: no I/O. A refusal
/// of the rule comes back from [`Store::change_secrets`] unchanged.
pub type SecretPlan<'a> =
    &'a (dyn Fn(&LockedApp, &[Secret]) -> Result<SecretChanges, OpError> + Send + Sync);

/// What a membership change writes, in one transaction with the org locked.
#[derive(Clone, Debug, Default)]
pub struct MembershipChanges {
    /// Users to create first (a member added by email who has no account yet).
    pub new_users: Vec<User>,
    /// Memberships to add or whose role to set (an app member becomes a service account).
    pub put: Vec<Membership>,
    /// Members to remove (an app stops being a service account).
    pub remove: Vec<Principal>,
    /// API tokens to create (a new user's first token).
    pub new_api_tokens: Vec<ApiToken>,
    /// Apps whose settings change with their role (CSP's PATCH), written as `update_app`.
    pub apps: Vec<App>,
    pub audit: Vec<AuditEvent>,
}

/// Plans a membership change from the org's memberships as they are inside the
/// transaction. Pure: no I/O.
pub type MembershipPlan<'a> =
    &'a (dyn Fn(&[Membership]) -> Result<MembershipChanges, OpError> + Send + Sync);

/// An app with the secrets that can authenticate it (current and previous).
#[derive(Clone, Debug)]
pub struct ClientRecord {
    pub app: App,
    pub secrets: Vec<Secret>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Short name of the backend, for logs and metrics ("sqlite", "postgres").
    fn backend(&self) -> &'static str;

    /// Whether the store can be reached and takes writes (readiness).
    async fn ping(&self) -> CoreResult<()>;

    // Orgs, users and members.
    async fn create_org(&self, org: &Org, audit: &[AuditEvent]) -> CoreResult<()>;
    async fn get_org(&self, id: OrgId) -> CoreResult<Option<Org>>;
    async fn count_orgs(&self) -> CoreResult<u64>;
    async fn create_user(&self, user: &User) -> CoreResult<()>;
    async fn get_user(&self, id: UserId) -> CoreResult<Option<User>>;
    async fn find_user_by_email(&self, email: &str) -> CoreResult<Option<User>>;
    /// Locks the org, plans with `plan` over its memberships, applies the plan atomically:
    /// the one way to change memberships, so that checks such as "keep an owner" hold under
    /// concurrent requests on several nodes. `NotFound` if the org does not exist.
    async fn change_membership(
        &self,
        org: OrgId,
        plan: MembershipPlan<'_>,
    ) -> Result<MembershipChanges, OpError>;
    /// Adds a member or changes its role, unchecked (set-up and tests). An app member
    /// becomes a service account.
    async fn put_membership(&self, m: &Membership, audit: &[AuditEvent]) -> CoreResult<()>;
    async fn get_membership(
        &self,
        org: OrgId,
        principal: Principal,
    ) -> CoreResult<Option<Membership>>;
    async fn list_memberships(&self, org: OrgId) -> CoreResult<Vec<Membership>>;

    // API tokens.
    async fn create_api_token(&self, t: &ApiToken, audit: &[AuditEvent]) -> CoreResult<()>;
    async fn find_api_token_by_hash(&self, hash: &SecretHash) -> CoreResult<Option<ApiToken>>;
    async fn get_api_token(&self, id: ApiTokenId) -> CoreResult<Option<ApiToken>>;
    /// The org's API tokens (one user's, if given), newest first.
    async fn list_api_tokens(&self, org: OrgId, user: Option<UserId>) -> CoreResult<Vec<ApiToken>>;
    /// Revokes a token now; false if it was already revoked or does not exist.
    async fn revoke_api_token(
        &self,
        id: ApiTokenId,
        now: Timestamp,
        audit: &[AuditEvent],
    ) -> CoreResult<bool>;

    // Apps.
    /// Creates an app with its first secret (and its service-account membership, if any).
    async fn create_app(
        &self,
        app: &App,
        first_secret: &Secret,
        membership: Option<&Membership>,
        audit: &[AuditEvent],
    ) -> CoreResult<()>;
    async fn get_app(&self, id: AppId) -> CoreResult<Option<App>>;
    async fn find_app_by_client_id(&self, client_id: &str) -> CoreResult<Option<App>>;
    async fn list_apps(&self, org: OrgId, page: Page) -> CoreResult<Vec<App>>;
    /// Apps whose name or client id contains `term` (case-insensitive), one page of them, and
    /// how many match in all.
    async fn search_apps(
        &self,
        org: OrgId,
        term: Option<&str>,
        page: Page,
    ) -> CoreResult<(Vec<App>, u64)>;
    /// As [`Store::search_apps`], without the total (one query: the console pages by asking
    /// for one more than it shows).
    async fn find_apps(&self, org: OrgId, term: Option<&str>, page: Page) -> CoreResult<Vec<App>>;
    /// Replaces the app's mutable fields; false if it does not exist.
    async fn update_app(&self, app: &App, audit: &[AuditEvent]) -> CoreResult<bool>;
    /// Deletes the app, its secrets and its membership; false if it does not exist.
    async fn delete_app(&self, id: AppId, audit: &[AuditEvent]) -> CoreResult<bool>;

    // Secrets.
    /// The token endpoint's lookup: the app and its current/previous secrets, in one query,
    /// or from the store's client cache when it has one (invalidated on every change).
    async fn load_client(&self, client_id: &str) -> CoreResult<Option<Arc<ClientRecord>>>;
    async fn list_secrets(&self, app: AppId) -> CoreResult<Vec<Secret>>;
    async fn get_secret(&self, id: SecretId) -> CoreResult<Option<Secret>>;
    /// Locks the app, plans with `plan` over its secrets, applies the plan atomically.
    /// Returns what was applied. `NotFound` if the app does not exist.
    async fn change_secrets(
        &self,
        app: AppId,
        plan: SecretPlan<'_>,
    ) -> Result<SecretChanges, OpError>;
    /// Records last-use times (aggregated by the caller); never moves a time backwards.
    async fn record_last_use(&self, uses: &[(SecretId, Timestamp)]) -> CoreResult<()>;

    // Signing keys.
    async fn list_signing_keys(&self) -> CoreResult<Vec<StoredSigningKey>>;
    /// Adds `key` as the signing key; the keys it replaces stay published until
    /// `retire_others_at`.
    async fn add_signing_key(
        &self,
        key: &StoredSigningKey,
        retire_others_at: Timestamp,
        audit: &[AuditEvent],
    ) -> CoreResult<()>;

    // Audit.
    async fn append_audit(&self, events: &[AuditEvent]) -> CoreResult<()>;
    /// Newest first.
    async fn list_audit(&self, filter: &AuditFilter, page: Page) -> CoreResult<Vec<AuditEvent>>;

    // Destinations (notification preferences).
    /// Sets the app's destination for its notification type (replacing any).
    async fn put_destination(&self, d: &Destination, audit: &[AuditEvent]) -> CoreResult<()>;
    async fn get_destination(
        &self,
        app: AppId,
        notification_type: NotificationType,
    ) -> CoreResult<Option<Destination>>;
    async fn get_destination_by_id(&self, id: DestinationId) -> CoreResult<Option<Destination>>;
    /// The destinations with these ids that exist (in no particular order).
    async fn get_destinations_by_ids(&self, ids: &[DestinationId]) -> CoreResult<Vec<Destination>>;
    async fn list_destinations(&self, app: AppId) -> CoreResult<Vec<Destination>>;
    /// Destinations of every app, at most `limit` (for `rekey doctor`).
    async fn list_all_destinations(&self, limit: u32) -> CoreResult<Vec<Destination>>;
    /// False if there was none.
    async fn delete_destination(
        &self,
        app: AppId,
        notification_type: NotificationType,
        audit: &[AuditEvent],
    ) -> CoreResult<bool>;

    // The outbox.
    /// Adds deliveries not caused by a secret change (expiry warnings, test notifications).
    /// A delivery whose `dedupe_key` exists already is skipped. Returns how many were added.
    async fn enqueue_deliveries(&self, d: &[Delivery], audit: &[AuditEvent]) -> CoreResult<usize>;
    /// Leases up to `limit` due pending deliveries to `owner` until `lease_until`, the
    /// earliest due first; returned in that order.
    async fn claim_deliveries(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> CoreResult<Vec<Delivery>>;
    /// Records what became of leased deliveries, in one transaction. Each outcome is a no-op
    /// unless `owner` still holds that row's lease (another dispatcher took it over); its
    /// audit events are written only when it applied. Returns how many applied.
    async fn record_delivery_outcomes(
        &self,
        owner: &str,
        outcomes: &[DeliveryOutcome],
    ) -> CoreResult<usize>;
    /// Marks a delivery delivered and wipes its payload (one [`DeliveryResult::Delivered`]).
    async fn complete_delivery(
        &self,
        id: DeliveryId,
        owner: &str,
        now: Timestamp,
        audit: &[AuditEvent],
    ) -> CoreResult<()> {
        let outcome = DeliveryOutcome {
            id,
            result: DeliveryResult::Delivered { at: now },
            audit: audit.to_vec(),
        };
        self.record_delivery_outcomes(owner, &[outcome])
            .await
            .map(|_| ())
    }
    /// Records a failed attempt by the lease holder `owner`: retry at `retry_at`, or dead
    /// when `None` (one [`DeliveryResult::Failed`]).
    async fn fail_delivery(
        &self,
        id: DeliveryId,
        owner: &str,
        error: &str,
        retry_at: Option<Timestamp>,
        audit: &[AuditEvent],
    ) -> CoreResult<()> {
        let outcome = DeliveryOutcome {
            id,
            result: DeliveryResult::Failed {
                error: error.to_string(),
                retry_at,
            },
            audit: audit.to_vec(),
        };
        self.record_delivery_outcomes(owner, &[outcome])
            .await
            .map(|_| ())
    }
    async fn get_delivery(&self, id: DeliveryId) -> CoreResult<Option<Delivery>>;
    /// Newest first, optionally one app's and one state's.
    async fn list_deliveries(
        &self,
        org: OrgId,
        app: Option<AppId>,
        state: Option<DeliveryState>,
        page: Page,
    ) -> CoreResult<Vec<Delivery>>;
    /// Puts a dead delivery back to pending with a fresh retry budget. False if not dead.
    async fn retry_delivery(
        &self,
        id: DeliveryId,
        now: Timestamp,
        audit: &[AuditEvent],
    ) -> CoreResult<bool>;

    // Shared limits and sweeps.
    /// Takes one token from the bucket `key` (rate per second, burst), shared by all nodes.
    async fn take_rate_token(
        &self,
        key: &str,
        rate_per_sec: f64,
        burst: f64,
        now: Timestamp,
    ) -> CoreResult<bool>;
    /// Current and previous secrets whose `expires_at` is before `before`, ordered by
    /// (`expires_at`, id), starting after the cursor `after` (the last one of the previous
    /// page), at most `limit`.
    async fn secrets_expiring_before(
        &self,
        before: Timestamp,
        after: Option<(Timestamp, SecretId)>,
        limit: u32,
    ) -> CoreResult<Vec<Secret>>;

    // Rotation policies.
    /// An org's default rotation policy (all `None` when it has none).
    async fn get_org_rotation_policy(
        &self,
        org: OrgId,
    ) -> CoreResult<crate::rotation_policy::RotationPolicy>;
    /// Sets an org's default rotation policy. False if there is no such org.
    async fn set_org_rotation_policy(
        &self,
        org: OrgId,
        policy: crate::rotation_policy::RotationPolicy,
        audit: &[AuditEvent],
    ) -> CoreResult<bool>;
    /// Apps a rotation policy may have work for at `now`, by id after `after`, at most
    /// `limit`: a current secret inside its rotation window, or a valid previous secret
    /// with retirement on (the app's own setting or its org's).
    async fn rotation_policy_candidates(
        &self,
        now: Timestamp,
        after: Option<AppId>,
        limit: u32,
    ) -> CoreResult<Vec<AppId>>;

    /// Rotations in progress whose previous secret a policy waits to retire, by why (the
    /// rule's waits that need no look at deliveries), with `min_quiet_secs` as the shortest
    /// quiet period.
    async fn rotation_policy_waiting(
        &self,
        now: Timestamp,
        min_quiet_secs: i64,
    ) -> CoreResult<crate::rotation_policy::WaitingCounts>;

    // The console.
    async fn create_console_link(&self, link: &ConsoleLink, audit: &[AuditEvent])
        -> CoreResult<()>;
    /// Marks the link with this hash used, if it is unused and unexpired at `now`, and
    /// returns it; `None` otherwise. Single use, however many requests race.
    async fn use_console_link(
        &self,
        hash: &SecretHash,
        now: Timestamp,
    ) -> CoreResult<Option<ConsoleLink>>;
    async fn create_console_session(
        &self,
        session: &ConsoleSession,
        audit: &[AuditEvent],
    ) -> CoreResult<()>;
    async fn find_console_session(&self, hash: &SecretHash) -> CoreResult<Option<ConsoleSession>>;
    async fn touch_console_session(&self, id: ConsoleSessionId, now: Timestamp) -> CoreResult<()>;
    async fn revoke_console_session(
        &self,
        id: ConsoleSessionId,
        now: Timestamp,
        audit: &[AuditEvent],
    ) -> CoreResult<()>;
    /// Current secrets of `org`'s apps that are valid at `now` and expire by `before`,
    /// soonest first, at most `limit` (a previous secret expiring is a rotation ending).
    async fn secrets_expiring_in_org(
        &self,
        org: OrgId,
        now: Timestamp,
        before: Timestamp,
        limit: u32,
    ) -> CoreResult<Vec<Secret>>;
    /// Previous secrets of `org`'s apps still valid at `now` (rotations in progress), newest
    /// first, at most `limit`.
    async fn previous_secrets_in_org(
        &self,
        org: OrgId,
        now: Timestamp,
        limit: u32,
    ) -> CoreResult<Vec<Secret>>;
    /// Deletes console links that expired, and sessions that expired or were revoked, before
    /// `before`; returns how many rows went.
    async fn prune_console(&self, before: Timestamp) -> CoreResult<u64>;
    /// The orgs `principal` is a member of.
    async fn list_memberships_of(&self, principal: Principal) -> CoreResult<Vec<Membership>>;

    /// Adds the first signing key, unless another one signs already (another node made it
    /// at the same moment): then `CoreError::Conflict`, and the caller uses that one.
    async fn add_first_signing_key(
        &self,
        key: &StoredSigningKey,
        audit: &[AuditEvent],
    ) -> CoreResult<()>;
    /// The server key's check value (see `ServerKey::key_check`), if one was recorded.
    async fn key_check(&self) -> CoreResult<Option<String>>;
    /// Records the key check, unless one is recorded already; returns the one in force.
    async fn record_key_check(&self, check: &str, now: Timestamp) -> CoreResult<String>;

    /// Records `node`'s heartbeat: its row, `last_seen_at` by the database's clock and
    /// `clock_skew_ms` from `node_now`.
    async fn record_node(
        &self,
        node: &crate::model::NodeInfo,
        node_now: Timestamp,
    ) -> CoreResult<()>;
    /// The nodes seen at or after `since` (by the database's clock), newest first.
    async fn list_nodes(&self, since: Timestamp) -> CoreResult<Vec<crate::model::NodeInfo>>;
    /// The database's clock.
    async fn database_now(&self) -> CoreResult<Timestamp>;
    /// Whether `user` is a server administrator (may rotate the signing keys).
    async fn is_server_admin(&self, user: UserId) -> CoreResult<bool>;
    /// Records that the access token `jti` is revoked until `expires_at` (when it would have
    /// expired anyway), with `audit`. Revoking it again changes nothing.
    async fn revoke_token(
        &self,
        jti: &str,
        expires_at: Timestamp,
        now: Timestamp,
        audit: &[AuditEvent],
    ) -> CoreResult<()>;
    /// Whether the access token `jti` was revoked.
    async fn is_token_revoked(&self, jti: &str) -> CoreResult<bool>;
    /// Forgets revocations of tokens that expired before `before`; returns how many.
    async fn prune_revoked_tokens(&self, before: Timestamp) -> CoreResult<u64>;
    /// The key of the audit hash chains: set once, by whatever opened the store with the
    /// server key (later calls change nothing); writing an audit event fails without it.
    fn set_audit_key(&self, key: crate::crypto::KeyedHasher);
    /// Walks the audit chain `chain` (an org id, or `audit_chain::SERVER_CHAIN`) and its head.
    async fn verify_audit_chain(&self, chain: &str) -> CoreResult<crate::audit_chain::ChainReport>;
    /// Every audit chain that has a head.
    async fn list_audit_chains(&self) -> CoreResult<Vec<String>>;
    /// The server administrators, by email.
    async fn list_server_admins(&self) -> CoreResult<Vec<User>>;
    /// Makes `user` a server administrator or not; `NotFound` if there is no such user.
    async fn set_server_admin(&self, user: UserId, admin: bool) -> CoreResult<()>;

    /// Outbox, delivery and secret counts for the metrics, as of `now`.
    async fn gauges(&self, now: Timestamp) -> CoreResult<crate::metrics::StoreGauges>;
}
