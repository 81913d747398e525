//! The application layer: one function per use case, between the dialects' handlers and
//! the pure rules. A use case reads the clock once, asks [`crate::policy`], runs a rule inside
//! one store transaction, and returns a typed outcome or an [`OpError`] whose refusals are
//! variants. Handlers (and the console, and background tasks) extract, convert, call one of
//! these, and render.
//!
//! - [`tokens`]: the client-credentials grant, the API-token exchange, bearer authentication;
//! - [`apps`]: create, update (settings and role together), delete;
//! - [`destinations`]: set, remove, test a destination; retry a dead delivery;
//! - [`secrets`]: rotate, regenerate, finish, revoke;
//! - [`introspection`]: RFC 7662 introspection and RFC 7009 revocation;
//! - [`members`]: add a member, set a role, remove a member (atomic, an owner always remains);
//! - [`api_tokens`]: create, list, revoke;
//! - [`signing_keys`]: signing-key rotation (on request and on schedule);
//! - [`sweep`]: expiry of secrets and expiry warnings (a worker's periodic task).

pub mod api_tokens;
pub mod apps;
pub mod auto_rotation;
pub mod console;
pub mod destinations;
pub mod introspection;
pub mod members;
pub mod secrets;
pub mod signing_keys;
pub mod sweep;
pub mod tokens;

use std::sync::{Arc, RwLock};

use crate::audit_tally::TallyKey;
use crate::clock::{Clock, Timestamp};
use crate::crypto::{KeyedHasher, Sealer, ServerKey};
use crate::error::{CoreResult, OpError};
use crate::last_use::LastUseRecorder;
use crate::model::{App, AppId, AuditContext, OrgId, Principal, Role};
use crate::policy::{self, Action, AppTarget, Subject};
use crate::store::Store;
use crate::throttle::FailureThrottle;
use crate::token::KeySet;

/// Who is acting: an authenticated user or app, in the org its credential acts in.
#[derive(Clone, Debug)]
pub struct Actor {
    pub principal: Principal,
    /// The org the caller's token acts in; every other org treats it as a stranger.
    pub org_id: OrgId,
    /// The API the request came through (metrics and logs).
    pub surface: Surface,
    pub audit: AuditContext,
}

/// The API a request came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// The native management API (and the `rekey` CLI, which speaks it).
    Native,
    /// VMware CSP's OAuth-app API.
    Csp,
    /// Amazon's Application Management API.
    SpApi,
    /// The browser console.
    Console,
}

impl Surface {
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Native => "native",
            Surface::Csp => "csp",
            Surface::SpApi => "spapi",
            Surface::Console => "console",
        }
    }
}

/// How a request names an app: by its id (UUID) or its client id. A string that parses as a
/// UUID is an id; anything else is a client id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppRef {
    Id(AppId),
    ClientId(String),
}

impl AppRef {
    pub fn parse(s: &str) -> Self {
        match AppId::parse(s) {
            Some(id) => AppRef::Id(id),
            None => AppRef::ClientId(s.to_string()),
        }
    }
}

impl From<AppId> for AppRef {
    fn from(id: AppId) -> Self {
        AppRef::Id(id)
    }
}

/// Settings of the use cases, from the server's configuration.
pub struct Settings {
    /// `iss` of every access token.
    pub issuer: String,
    /// Lifetime of a user's access token (API-token exchange).
    pub user_token_ttl_secs: i64,
    /// The failure throttle of the token endpoints.
    pub throttle: FailureThrottle,
    /// Plain-http destinations and SQS endpoint overrides (local development only).
    pub allow_insecure_destinations: bool,
    /// Refuses destinations whose addresses are internal (resolving names).
    pub destination_check: Arc<dyn crate::notify::DestinationCheck>,
    /// How long console sessions last.
    pub console_sessions: console::SessionLimits,
    /// When new signing keys sign, how long old ones stay published, the schedule.
    pub signing_keys: signing_keys::SigningKeyTiming,
    /// How rotation policies run.
    pub rotation_policy: crate::rotation_policy::Settings,
}

/// The use cases, over the store, the clock and the keys they need.
pub struct Rekey {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub secret_hasher: KeyedHasher,
    pub api_token_hasher: KeyedHasher,
    /// Hashes console sign-in links and session cookies.
    console_hasher: KeyedHasher,
    console_sessions: console::SessionLimits,
    /// Seals outbox payloads (they may hold a new secret).
    pub outbox_sealer: Sealer,
    /// Seals webhook signing keys.
    pub webhook_key_sealer: Sealer,
    /// Opens the signing keys stored in the database.
    signing_key_sealer: Sealer,
    signing_key_timing: signing_keys::SigningKeyTiming,
    rotation_policy: crate::rotation_policy::Settings,
    /// The token signing keys, replaced whole on reload (another node may add one).
    keys: RwLock<Arc<KeySet>>,
    issuer: String,
    user_token_ttl_secs: i64,
    allow_insecure_destinations: bool,
    destination_check: Arc<dyn crate::notify::DestinationCheck>,
    pub throttle: FailureThrottle,
    pub last_use: LastUseRecorder,
    /// Failed authentications and refused actions, until the next flush to the audit trail.
    pub tally: crate::audit_tally::AuditTally,
    /// Wakes this node's dispatcher after a notification was committed.
    wake_dispatcher: Arc<dyn Fn() + Send + Sync>,
}

impl Rekey {
    /// The use cases over `store`, with the keys derived from `server_key` and the signing
    /// keys `keys` (already loaded from the store).
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        server_key: &ServerKey,
        keys: KeySet,
        settings: Settings,
        wake_dispatcher: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
        Self {
            store,
            clock,
            secret_hasher: server_key.secret_hasher(),
            api_token_hasher: server_key.api_token_hasher(),
            console_hasher: server_key.console_hasher(),
            console_sessions: settings.console_sessions,
            outbox_sealer: server_key.sealer("outbox"),
            webhook_key_sealer: server_key.sealer("webhook-keys"),
            signing_key_sealer: server_key.sealer("signing-keys"),
            signing_key_timing: settings.signing_keys,
            rotation_policy: settings.rotation_policy,
            keys: RwLock::new(Arc::new(keys)),
            issuer: settings.issuer,
            user_token_ttl_secs: settings.user_token_ttl_secs,
            allow_insecure_destinations: settings.allow_insecure_destinations,
            destination_check: settings.destination_check,
            throttle: settings.throttle,
            last_use: LastUseRecorder::default(),
            tally: Default::default(),
            wake_dispatcher,
        }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The current signing keys.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Re-reads the signing keys (another node may have added one).
    pub async fn reload_keys(&self) -> CoreResult<()> {
        let stored = self.store.list_signing_keys().await?;
        let keys = KeySet::load(&self.issuer, &stored, &self.signing_key_sealer, self.now())?;
        let old = self.keys();
        for kid in keys.kids().filter(|k| !old.kids().any(|o| o == *k)) {
            match keys.next_signing() {
                Some((next, from)) if next == kid => tracing::info!(
                    kid,
                    signs_from = %from.to_rfc3339(),
                    "picked up a new signing key: published now, signing later"
                ),
                _ => tracing::info!(kid, "picked up a new signing key"),
            }
        }
        for kid in old.kids().filter(|o| !keys.kids().any(|k| k == *o)) {
            tracing::info!(kid, "a retired signing key is no longer published");
        }
        if keys.signing_kid() != old.signing_kid() {
            tracing::info!(kid = keys.signing_kid(), "signing with a new key");
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(())
    }

    /// Spends one token of the rate bucket `bucket` (shared by every node): false when the
    /// bucket is empty. A dialect's own rate limit (SP-API's rotation limit, CSP's per org).
    pub async fn spend_rate_token(
        &self,
        bucket: &str,
        rate_per_sec: f64,
        burst: f64,
    ) -> CoreResult<bool> {
        self.store
            .take_rate_token(bucket, rate_per_sec, burst, self.now())
            .await
    }

    /// The caller as the policy sees it in `org`: a token acting in another org is a
    /// stranger there, whatever it holds elsewhere.
    pub async fn subject(&self, actor: &Actor, org: OrgId) -> Result<Subject, OpError> {
        let role = if actor.org_id == org {
            self.store
                .get_membership(org, actor.principal)
                .await?
                .map(|m| m.role)
        } else {
            None
        };
        Ok(Subject {
            principal: actor.principal,
            role,
        })
    }

    /// Asks the policy about an action on the org itself; returns the caller's role.
    pub async fn authorize(
        &self,
        actor: &Actor,
        org: OrgId,
        action: Action,
    ) -> Result<Option<Role>, OpError> {
        let subject = self.subject(actor, org).await?;
        self.decide(actor, org, subject, action)?;
        Ok(subject.role)
    }

    /// Asks the policy about `action` by `actor` in `org`; a refusal is also counted for the
    /// audit trail (an `action.refused` event per caller, source and reason at each flush).
    pub(crate) fn decide(
        &self,
        actor: &Actor,
        org: OrgId,
        subject: Subject,
        action: Action,
    ) -> Result<(), policy::Denied> {
        policy::authorize(subject, action).inspect_err(|denied| {
            let app = match action {
                Action::ChangeApp(t)
                | Action::RotateSecret(t)
                | Action::RotateOwnSecretWithScope(t) => Some(t.id).filter(|id| !id.0.is_nil()),
                _ => None,
            };
            // In the org acted in when the caller belongs to it; a stranger's attempt goes to
            // the caller's own org (naming the target), so that nobody can write into the
            // trail of an org, or make chains for ids, that are not theirs.
            let (org, app, reason) = if actor.org_id == org {
                (org, app, denied.to_string())
            } else {
                (actor.org_id, None, format!("{denied} (in org {org})"))
            };
            self.tally.record(
                TallyKey {
                    action: "action.refused",
                    org: Some(org),
                    app,
                    actor: actor.audit.actor.clone(),
                    source: actor.audit.source.clone(),
                    reason,
                },
                self.now(),
            );
        })
    }

    /// Writes the counted failed authentications and refused actions to the audit trail
    /// (the server's periodic flush, and at shutdown). Returns how many events.
    pub async fn flush_audit_tally(&self) -> CoreResult<usize> {
        let events = self.tally.drain(self.now());
        if !events.is_empty() {
            self.store.append_audit(&events).await?;
        }
        Ok(events.len())
    }

    /// Loads the app `app` of `org` and asks the policy about `action` on it. A stranger
    /// to the org is denied before it can learn whether the app exists.
    pub async fn authorize_app(
        &self,
        actor: &Actor,
        org: OrgId,
        app: &AppRef,
        action: fn(AppTarget) -> Action,
    ) -> Result<App, OpError> {
        Ok(self.authorize_app_as(actor, org, app, action).await?.1)
    }

    /// As [`Self::authorize_app`], with the caller as the policy saw it (for a use case that
    /// asks again inside its transaction).
    pub(crate) async fn authorize_app_as(
        &self,
        actor: &Actor,
        org: OrgId,
        app: &AppRef,
        action: fn(AppTarget) -> Action,
    ) -> Result<(Subject, App), OpError> {
        let subject = self.subject(actor, org).await?;
        let app = self.app_in(org, app).await;
        let app = match app {
            Ok(app) => app,
            // Not found only to a caller who could have acted on a plain app: others learn
            // nothing about which apps exist.
            Err(e) => {
                let unknown = AppTarget {
                    id: AppId(uuid::Uuid::nil()),
                    service_account: None,
                    owner_only_secret_rotation: false,
                };
                self.decide(actor, org, subject, action(unknown))?;
                return Err(e);
            }
        };
        let target = self.app_target(&app).await?;
        self.decide(actor, org, subject, action(target))?;
        Ok((subject, app))
    }

    /// The app `app` if it belongs to `org`.
    pub async fn app_in(&self, org: OrgId, app: &AppRef) -> Result<App, OpError> {
        let found = match app {
            // An app made before client ids could not be UUIDs may still have one.
            AppRef::Id(id) => match self.store.get_app(*id).await? {
                Some(a) => Some(a),
                None => self.store.find_app_by_client_id(&id.to_string()).await?,
            },
            AppRef::ClientId(c) => self.store.find_app_by_client_id(c).await?,
        };
        match found {
            Some(a) if a.org_id == org => Ok(a),
            _ => Err(OpError::NotFound),
        }
    }

    /// What the policy needs to know about `app`: its service-account role, if any.
    pub async fn app_target(&self, app: &App) -> Result<AppTarget, OpError> {
        Ok(AppTarget {
            id: app.id,
            service_account: self.service_account_role(app).await?,
            owner_only_secret_rotation: app.owner_only_secret_rotation,
        })
    }

    /// The app's role in its org when it is a service account (one read, only then).
    pub async fn service_account_role(&self, app: &App) -> CoreResult<Option<Role>> {
        if !app.service_account {
            return Ok(None);
        }
        Ok(self
            .store
            .get_membership(app.org_id, Principal::App(app.id))
            .await?
            .map(|m| m.role))
    }
}
