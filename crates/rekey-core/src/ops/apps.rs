//! App use cases: create (with its first secret, and its role when it is a service account),
//! update settings (and, on CSP, its role, in the same transaction), delete.

use secrecy::SecretString;

use super::members::{current_role, plan_role};
use super::{Actor, AppRef, Rekey};
use crate::apps::{new_app, secret_record, AppSettings};
use crate::error::OpError;
use crate::model::{App, Membership, OrgId, Principal, Role, Secret};
use crate::policy::Action;
use crate::store::MembershipChanges;

/// What creating an app needs beyond its settings.
pub struct NewApp {
    pub settings: AppSettings,
    /// A chosen client id; generated when `None`.
    pub client_id: Option<String>,
    /// The app's role when it is to be a service account.
    pub service_account: Option<Role>,
    /// A caller-chosen first secret (CSP), already checked for complexity.
    pub secret: Option<SecretString>,
    /// Which API asked, for the audit trail.
    pub dialect: &'static str,
}

/// A new app and its first secret, shown once.
pub struct CreatedApp {
    pub app: App,
    pub secret: Secret,
    pub plain: SecretString,
}

impl Rekey {
    pub async fn create_app(
        &self,
        actor: &Actor,
        org: OrgId,
        input: NewApp,
    ) -> Result<CreatedApp, OpError> {
        if input.service_account == Some(Role::OrgOwner) {
            return Err(OpError::Invalid(
                "A service account cannot be org_owner".into(),
            ));
        }
        self.authorize(
            actor,
            org,
            Action::CreateApp {
                service_account: input.service_account,
            },
        )
        .await?;
        let now = self.now();
        let ctx = &actor.audit;
        let (app, mut secret, mut plain) = new_app(
            org,
            input.client_id,
            input.settings,
            input.service_account.is_some(),
            &self.secret_hasher,
            &ctx.actor,
            now,
        )?;
        if let Some(chosen) = input.secret {
            secret = secret_record(&app, &chosen, &self.secret_hasher, &ctx.actor, now);
            plain = chosen;
        }
        let membership = input.service_account.map(|role| Membership {
            org_id: org,
            principal: Principal::App(app.id),
            role,
            created_at: now,
        });
        let audit = [
            ctx.event(now, "app.created")
                .org(org)
                .app(app.id)
                .details(serde_json::json!({
                    "clientId": app.client_id,
                    "name": app.name,
                    "dialect": input.dialect,
                    "serviceAccountRole": input.service_account.map(Role::as_str),
                })),
            ctx.event(now, "secret.created")
                .org(org)
                .app(app.id)
                .secret(secret.id),
        ];
        self.store
            .create_app(&app, &secret, membership.as_ref(), &audit)
            .await
            .map_err(|e| match OpError::from(e) {
                OpError::Conflict(_) => OpError::ClientIdTaken,
                e => e,
            })?;
        Ok(CreatedApp { app, secret, plain })
    }

    /// Changes an app's settings with `change`, and its service-account role when
    /// `role` is `Some` (`Some(None)`: no longer a service account). Settings and role are
    /// written in one transaction; changing the role is a membership change under the policy.
    pub async fn update_app(
        &self,
        actor: &Actor,
        org: OrgId,
        app: &AppRef,
        change: impl FnOnce(&mut AppSettings),
        role: Option<Option<Role>>,
    ) -> Result<App, OpError> {
        let mut app = self
            .authorize_app(actor, org, app, Action::ChangeApp)
            .await?;
        let mut settings = AppSettings::of(&app);
        change(&mut settings);
        let now = self.now();
        settings.apply_to(&mut app, now)?;
        let ctx = &actor.audit;
        let updated = ctx.event(now, "app.updated").org(org).app(app.id);
        let Some(new) = role else {
            if !self.store.update_app(&app, &[updated]).await? {
                return Err(OpError::NotFound);
            }
            return Ok(app);
        };
        if new == Some(Role::OrgOwner) {
            return Err(OpError::Invalid(
                "A service account cannot be org_owner".into(),
            ));
        }
        let subject = self.subject(actor, org).await?;
        let member = Principal::App(app.id);
        // Settings and role in one transaction; whether the role changes is decided over the
        // memberships as they are under the org lock.
        self.store
            .change_membership(org, &|members| {
                let old = current_role(members, member);
                let mut changes = if old == new {
                    MembershipChanges::default()
                } else {
                    let mut c = plan_role(org, subject, members, member, new, now)?;
                    c.audit.push(
                        ctx.event(now, "member.role_set")
                            .org(org)
                            .app(app.id)
                            .details(serde_json::json!({
                                "member": member.to_string(),
                                "role": new.map(Role::as_str),
                                "previous": old.map(Role::as_str),
                            })),
                    );
                    c
                };
                changes.apps.push(app.clone());
                changes.audit.insert(0, updated.clone());
                Ok(changes)
            })
            .await?;
        app.service_account = new.is_some();
        Ok(app)
    }

    /// Deletes an app with its secrets and its membership.
    pub async fn delete_app(
        &self,
        actor: &Actor,
        org: OrgId,
        app: &AppRef,
    ) -> Result<App, OpError> {
        let app = self
            .authorize_app(actor, org, app, Action::ChangeApp)
            .await?;
        let ev = actor
            .audit
            .event(self.now(), "app.deleted")
            .org(org)
            .app(app.id)
            .details(serde_json::json!({ "clientId": app.client_id }));
        if !self.store.delete_app(app.id, &[ev]).await? {
            return Err(OpError::NotFound);
        }
        Ok(app)
    }
}
