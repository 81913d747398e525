//! Who may do what: the one authorization policy every dialect and surface asks.
//!
//! A decision is a pure function of the caller (its principal and its role in the org the
//! request is about, `None` when it is not a member) and the action (with what the action
//! needs to know about its target). The table, by the caller's role:
//!
//! | action                                   | owner | admin | developer | member | the app itself |
//! |------------------------------------------|-------|-------|-----------|--------|----------------|
//! | read org, apps, secrets' metadata, ...   | yes   | yes   | yes       | yes    | as its role    |
//! | CSP oauth-apps, reads included          | yes   | yes   | yes       | no     | as its role    |
//! | read the audit trail                     | yes   | yes   | no        | no     | as its role    |
//! | create an app (no service account)       | yes   | yes   | yes       | no     | as its role    |
//! | create an app with a role                | grant | grant | no        | no     | as its role    |
//! | change an app: settings, secrets,        | yes   | yes   | not a     | no     | as its role    |
//! | destinations, delete (*ceiling*)         |       |       | service account |  |                |
//! | rotate or finish its own secret (CSP)    |       |       |           |        | unless owner-only |
//! | rotate its own secret (SP-API, scoped)   |       |       |           |        | yes            |
//! | retry a delivery                         | yes   | yes   | yes       | no     | as its role    |
//! | change a membership                      | grant | grant | no        | no     | as its role    |
//! | manage others' API tokens                | yes   | yes   | no        | no     | as its role    |
//!
//! *grant*: only roles the caller may grant ([`Role::may_grant`]: owners and admins, never a
//! role above their own; only an owner grants or takes `org_owner`).
//!
//! *ceiling*: acting on an app that is a service account needs a caller who may grant that
//! app's role. Without it, a developer could regenerate an `org_admin` service account's
//! secret, sign in as it and promote themselves.

use crate::model::{AppId, Principal, Role};

/// The caller as the policy sees it: who, and which role it holds in the org at hand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subject {
    pub principal: Principal,
    /// `None`: not a member of the org (or a token that acts in another org).
    pub role: Option<Role>,
}

/// What the policy needs to know about an app that is acted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppTarget {
    pub id: AppId,
    /// The app's role when it is a service account.
    pub service_account: Option<Role>,
    pub owner_only_secret_rotation: bool,
}

/// An action on an org, as far as authorization is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read the org, its members, apps, secrets' metadata, destinations and deliveries.
    Read,
    /// Use an app-management surface that is closed to read-only members (CSP's
    /// oauth-apps, reads included).
    ManageApps,
    ReadAudit,
    CreateApp {
        service_account: Option<Role>,
    },
    /// Change an app's settings, secrets (regenerate, rotate, finish, revoke) or
    /// destinations, or delete it.
    ChangeApp(AppTarget),
    /// Rotate or finish the rotation of a secret: an app may do it to itself (CSP owner
    /// client) unless its `ownerOnlySecretRotation` is set; anyone else as [`Action::ChangeApp`].
    RotateSecret(AppTarget),
    /// The SP-API rotation, whose caller is the app itself with the rotation scope (the
    /// dialect checks the scope, in the token and in the app's settings now).
    RotateOwnSecretWithScope(AppTarget),
    RetryDelivery,
    /// Change a membership from `old` to `new` (`None`: absent).
    ChangeMember {
        old: Option<Role>,
        new: Option<Role>,
    },
    ManageOthersApiTokens,
    /// Change the org's own settings (its default rotation policy).
    ChangeOrgSettings,
}

/// Why the policy said no. Each dialect renders it as its own 403.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("The caller is not a member of this organization")]
    NotAMember,
    #[error("This action needs the org_owner, org_admin or developer role")]
    NeedsAppManager,
    #[error("This action needs the org_owner or org_admin role")]
    NeedsMemberManager,
    #[error(
        "Giving an app a role needs the org_owner or org_admin role, and no role above your own"
    )]
    GrantAboveCaller,
    #[error("Only an org_owner may grant or take the org_owner role")]
    OwnerOnly,
    #[error("This app is a service account with the {0} role: acting on it needs a role that may grant {0}")]
    ServiceAccountAboveCaller(Role),
    #[error(
        "Only the org owner or an admin may rotate this app's secret (ownerOnlySecretRotation)"
    )]
    OwnerOnlySecretRotation,
    #[error("Only the app itself may rotate its secret here")]
    NotTheApp,
    #[error("Only users have API tokens; service accounts use their client credentials")]
    UsersOnly,
    #[error("This action needs a server administrator (rekey server-admins add)")]
    NotServerAdmin,
    #[error("Introspection needs an app with the rekey:introspect scope")]
    NotAnIntrospector,
}

/// The decision: `Ok` when `subject` may do `action`.
pub fn authorize(subject: Subject, action: Action) -> Result<(), Denied> {
    match action {
        Action::RotateOwnSecretWithScope(app) => {
            if subject.principal == Principal::App(app.id) {
                rotate_itself(subject, app)
            } else {
                Err(Denied::NotTheApp)
            }
        }
        Action::RotateSecret(app) if subject.principal == Principal::App(app.id) => {
            rotate_itself(subject, app)
        }
        action => {
            let role = subject.role.ok_or(Denied::NotAMember)?;
            by_role(role, action)
        }
    }
}

/// An app rotating its own secret, in any dialect: allowed unless the app is
/// `ownerOnlySecretRotation`, and then only through a role that may change it (a service
/// account of an owner or admin).
fn rotate_itself(subject: Subject, app: AppTarget) -> Result<(), Denied> {
    if !app.owner_only_secret_rotation {
        return Ok(());
    }
    let role = subject.role.ok_or(Denied::OwnerOnlySecretRotation)?;
    change_app(role, app).map_err(|_| Denied::OwnerOnlySecretRotation)
}

fn by_role(role: Role, action: Action) -> Result<(), Denied> {
    match action {
        Action::Read => Ok(()),
        Action::ReadAudit | Action::ManageOthersApiTokens | Action::ChangeOrgSettings => {
            member_manager(role)
        }
        Action::CreateApp { service_account } => {
            app_manager(role)?;
            match service_account {
                Some(r) if !role.may_grant(r) => Err(Denied::GrantAboveCaller),
                _ => Ok(()),
            }
        }
        Action::ChangeApp(app) | Action::RotateSecret(app) => change_app(role, app),
        Action::RotateOwnSecretWithScope(_) => Err(Denied::NotTheApp),
        Action::RetryDelivery | Action::ManageApps => app_manager(role),
        Action::ChangeMember { old, new } => {
            member_manager(role)?;
            let touches_owner = old == Some(Role::OrgOwner) || new == Some(Role::OrgOwner);
            if touches_owner && role != Role::OrgOwner {
                return Err(Denied::OwnerOnly);
            }
            if [old, new].into_iter().flatten().all(|r| role.may_grant(r)) {
                Ok(())
            } else {
                Err(Denied::GrantAboveCaller)
            }
        }
    }
}

fn app_manager(role: Role) -> Result<(), Denied> {
    if role.can_manage_apps() {
        Ok(())
    } else {
        Err(Denied::NeedsAppManager)
    }
}

fn member_manager(role: Role) -> Result<(), Denied> {
    if role.can_manage_members() {
        Ok(())
    } else {
        Err(Denied::NeedsMemberManager)
    }
}

/// The service-account ceiling on top of "may manage apps".
fn change_app(role: Role, app: AppTarget) -> Result<(), Denied> {
    app_manager(role)?;
    match app.service_account {
        Some(sa) if !role.may_grant(sa) => Err(Denied::ServiceAccountAboveCaller(sa)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UserId;

    fn user(role: Option<Role>) -> Subject {
        Subject {
            principal: Principal::User(UserId::new()),
            role,
        }
    }

    fn target(service_account: Option<Role>, owner_only: bool) -> AppTarget {
        AppTarget {
            id: AppId::new(),
            service_account,
            owner_only_secret_rotation: owner_only,
        }
    }

    #[test]
    fn a_developer_changes_plain_apps_but_no_service_account() {
        let dev = user(Some(Role::Developer));
        assert_eq!(
            authorize(dev, Action::ChangeApp(target(None, false))),
            Ok(())
        );
        for sa in [Role::OrgAdmin, Role::Developer, Role::OrgMember] {
            assert_eq!(
                authorize(dev, Action::ChangeApp(target(Some(sa), false))),
                Err(Denied::ServiceAccountAboveCaller(sa))
            );
            assert_eq!(
                authorize(dev, Action::RotateSecret(target(Some(sa), false))),
                Err(Denied::ServiceAccountAboveCaller(sa))
            );
        }
    }

    #[test]
    fn admins_and_owners_change_service_accounts_they_may_grant() {
        for caller in [Role::OrgOwner, Role::OrgAdmin] {
            for sa in [
                None,
                Some(Role::OrgAdmin),
                Some(Role::Developer),
                Some(Role::OrgMember),
            ] {
                assert_eq!(
                    authorize(user(Some(caller)), Action::ChangeApp(target(sa, false))),
                    Ok(()),
                    "{caller} on {sa:?}"
                );
            }
        }
        assert_eq!(
            authorize(
                user(Some(Role::OrgAdmin)),
                Action::ChangeApp(target(Some(Role::OrgOwner), false))
            ),
            Err(Denied::ServiceAccountAboveCaller(Role::OrgOwner))
        );
    }

    #[test]
    fn members_and_strangers_only_read_or_nothing() {
        let member = user(Some(Role::OrgMember));
        assert_eq!(authorize(member, Action::Read), Ok(()));
        assert_eq!(
            authorize(member, Action::ChangeApp(target(None, false))),
            Err(Denied::NeedsAppManager)
        );
        assert_eq!(authorize(user(None), Action::Read), Err(Denied::NotAMember));
    }

    #[test]
    fn an_app_rotates_itself_unless_owner_only_and_never_another_app() {
        let t = target(None, false);
        let me = Subject {
            principal: Principal::App(t.id),
            role: None,
        };
        assert_eq!(authorize(me, Action::RotateSecret(t)), Ok(()));
        assert_eq!(authorize(me, Action::RotateOwnSecretWithScope(t)), Ok(()));
        assert_eq!(authorize(me, Action::ChangeApp(t)), Err(Denied::NotAMember));
        let owner_only = AppTarget {
            owner_only_secret_rotation: true,
            ..t
        };
        assert_eq!(
            authorize(me, Action::RotateSecret(owner_only)),
            Err(Denied::OwnerOnlySecretRotation)
        );
        // The SP-API path too: an owner-only app does not rotate itself there either.
        assert_eq!(
            authorize(me, Action::RotateOwnSecretWithScope(owner_only)),
            Err(Denied::OwnerOnlySecretRotation)
        );
        let other = target(None, false);
        assert_eq!(
            authorize(me, Action::RotateOwnSecretWithScope(other)),
            Err(Denied::NotTheApp)
        );
    }

    #[test]
    fn roles_are_granted_only_up_to_the_callers_own() {
        let change =
            |caller, old, new| authorize(user(Some(caller)), Action::ChangeMember { old, new });
        assert_eq!(
            change(Role::OrgOwner, Some(Role::OrgOwner), Some(Role::OrgMember)),
            Ok(())
        );
        assert_eq!(
            change(Role::OrgAdmin, Some(Role::OrgOwner), Some(Role::OrgMember)),
            Err(Denied::OwnerOnly)
        );
        assert_eq!(change(Role::OrgAdmin, None, Some(Role::OrgAdmin)), Ok(()));
        assert_eq!(
            change(Role::Developer, None, Some(Role::OrgMember)),
            Err(Denied::NeedsMemberManager)
        );
        assert_eq!(
            authorize(
                user(Some(Role::OrgAdmin)),
                Action::CreateApp {
                    service_account: Some(Role::OrgAdmin)
                }
            ),
            Ok(())
        );
        assert_eq!(
            authorize(
                user(Some(Role::Developer)),
                Action::CreateApp {
                    service_account: Some(Role::OrgMember)
                }
            ),
            Err(Denied::GrantAboveCaller)
        );
    }
}
