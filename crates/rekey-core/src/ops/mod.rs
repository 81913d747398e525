//! The application layer: one function per use case, between the dialects' handlers and
//! the pure rules. A use case reads the clock once, asks [`crate::policy`], runs a rule inside
//! one store transaction, and returns a typed outcome or an [`OpError`] whose refusals are
//! variants. Handlers (and the console, and background tasks) extract, convert, call one of
//! these, and render.
//!
//! - [`secrets`]: rotate, regenerate, finish, revoke;
//! - [`members`]: add a member, set a role, remove a member (atomic, an owner always remains).

pub mod members;
pub mod secrets;

use std::sync::Arc;

use crate::clock::{Clock, Timestamp};
use crate::crypto::{KeyedHasher, Sealer};
use crate::error::OpError;
use crate::model::{App, AppId, AuditContext, OrgId, Principal, Role};
use crate::policy::{self, Action, AppTarget, Subject};
use crate::store::Store;

/// Who is acting: an authenticated user or app, in the org its credential acts in.
#[derive(Clone, Debug)]
pub struct Actor {
    pub principal: Principal,
    /// The org the caller's token acts in; every other org treats it as a stranger.
    pub org_id: OrgId,
    pub audit: AuditContext,
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

/// The use cases, over the store, the clock and the keys they need.
pub struct Rekey {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub secret_hasher: KeyedHasher,
    pub api_token_hasher: KeyedHasher,
    /// Seals outbox payloads (they may hold a new secret).
    pub outbox_sealer: Sealer,
    /// Wakes this node's dispatcher after a notification was committed.
    wake_dispatcher: Arc<dyn Fn() + Send + Sync>,
}

impl Rekey {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        secret_hasher: KeyedHasher,
        api_token_hasher: KeyedHasher,
        outbox_sealer: Sealer,
        wake_dispatcher: Arc<dyn Fn() + Send + Sync>,
    ) -> Self {
        Self {
            store,
            clock,
            secret_hasher,
            api_token_hasher,
            outbox_sealer,
            wake_dispatcher,
        }
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
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
        policy::authorize(subject, action)?;
        Ok(subject.role)
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
                policy::authorize(subject, action(unknown))?;
                return Err(e);
            }
        };
        let target = self.app_target(&app).await?;
        policy::authorize(subject, action(target))?;
        Ok(app)
    }

    /// The app `app` if it belongs to `org`.
    pub async fn app_in(&self, org: OrgId, app: &AppRef) -> Result<App, OpError> {
        let found = match app {
            AppRef::Id(id) => self.store.get_app(*id).await?,
            AppRef::ClientId(c) => self.store.find_app_by_client_id(c).await?,
        };
        match found {
            Some(a) if a.org_id == org => Ok(a),
            _ => Err(OpError::NotFound),
        }
    }

    /// What the policy needs to know about `app`: its service-account role, if any.
    pub async fn app_target(&self, app: &App) -> Result<AppTarget, OpError> {
        let service_account = if app.service_account {
            self.store
                .get_membership(app.org_id, Principal::App(app.id))
                .await?
                .map(|m| m.role)
        } else {
            None
        };
        Ok(AppTarget {
            id: app.id,
            service_account,
            owner_only_secret_rotation: app.owner_only_secret_rotation,
        })
    }
}
