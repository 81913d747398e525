//! Membership use cases: add a member by email, set a role, remove a member. Each is one
//! `Store::change_membership` call, so the policy's role checks and "the org keeps an
//! owner" are decided over the memberships as they are inside the transaction: two
//! concurrent demotions of the last two owners cannot both pass.

use secrecy::SecretString;

use super::api_tokens::new_api_token;
use super::{Actor, Rekey};
use crate::error::OpError;
use crate::model::{Membership, OrgId, Principal, Role, User, UserId};
use crate::policy::{self, Action, Subject};
use crate::store::MembershipChanges;

/// A member added by email.
pub struct AddedMember {
    pub user: User,
    pub role: Role,
    /// A new user's first API token, shown once.
    pub api_token: Option<SecretString>,
}

impl Rekey {
    /// Adds the user with `email` to `org` with `role` (creating the user, with a first API
    /// token, if new). An existing member's role changes under the rules of [`Self::set_role`].
    pub async fn add_member(
        &self,
        actor: &Actor,
        org: OrgId,
        email: &str,
        display_name: Option<&str>,
        role: Role,
    ) -> Result<AddedMember, OpError> {
        let subject = self.subject(actor, org).await?;
        self.decide(
            actor,
            org,
            subject,
            Action::ChangeMember {
                old: None,
                new: Some(role),
            },
        )?;
        let email = email.trim();
        if email.len() > 320 || !email.contains('@') {
            return Err(OpError::Invalid("email must be an email address".into()));
        }
        let now = self.now();
        let existing = self.store.find_user_by_email(email).await?;
        let (user, is_new) = match existing {
            Some(u) => (u, false),
            None => (
                User {
                    id: UserId::new(),
                    display_name: display_name.unwrap_or(email).to_string(),
                    email: email.to_string(),
                    created_at: now,
                },
                true,
            ),
        };
        // A new user gets a first API token, so that they can sign in.
        let (first_token, plain) = if is_new {
            let (t, p) = new_api_token(user.id, org, "initial", None, &self.api_token_hasher, now);
            (Some(t), Some(p))
        } else {
            (None, None)
        };
        let principal = Principal::User(user.id);
        let ctx = &actor.audit;
        self.store
            .change_membership(org, &|members| {
                let mut changes = plan_role(org, subject, members, principal, Some(role), now)?;
                changes
                    .audit
                    .push(
                        ctx.event(now, "member.role_set")
                            .org(org)
                            .details(serde_json::json!({
                                "member": principal.to_string(),
                                "role": role.as_str(),
                                "previous": current_role(members, principal).map(Role::as_str),
                            })),
                    );
                if let Some(token) = &first_token {
                    changes
                        .audit
                        .push(ctx.event(now, "api_token.created").org(org).details(
                            serde_json::json!({
                                "user": user.id.to_string(),
                                "tokenId": token.id.to_string(),
                            }),
                        ));
                    changes.new_users.push(user.clone());
                    changes.new_api_tokens.push(token.clone());
                }
                Ok(changes)
            })
            .await?;
        Ok(AddedMember {
            user,
            role,
            api_token: plain,
        })
    }

    /// Sets the role of a user or app (which makes the app a service account).
    pub async fn set_role(
        &self,
        actor: &Actor,
        org: OrgId,
        principal: Principal,
        role: Role,
    ) -> Result<Membership, OpError> {
        let subject = self.subject(actor, org).await?;
        // Strangers learn nothing about who exists.
        self.decide(actor, org, subject, Action::Read)?;
        match principal {
            Principal::User(u) => {
                self.store.get_user(u).await?.ok_or(OpError::NotFound)?;
            }
            Principal::App(a) => {
                self.app_in(org, &a.into()).await?;
                if role == Role::OrgOwner {
                    return Err(OpError::Invalid(
                        "A service account cannot be org_owner".into(),
                    ));
                }
            }
        }
        let now = self.now();
        let ctx = &actor.audit;
        let changes =
            self.store
                .change_membership(org, &|members| {
                    let mut changes = plan_role(org, subject, members, principal, Some(role), now)?;
                    changes
                        .audit
                        .push(ctx.event(now, "member.role_set").org(org).details(
                            serde_json::json!({
                                "member": principal.to_string(),
                                "role": role.as_str(),
                                "previous": current_role(members, principal).map(Role::as_str),
                            }),
                        ));
                    Ok(changes)
                })
                .await?;
        changes.put.into_iter().next().ok_or(OpError::NotFound)
    }

    /// Removes a member (an app stops being a service account).
    pub async fn remove_member(
        &self,
        actor: &Actor,
        org: OrgId,
        principal: Principal,
    ) -> Result<(), OpError> {
        let subject = self.subject(actor, org).await?;
        self.decide(actor, org, subject, Action::Read)?;
        let now = self.now();
        let ctx = &actor.audit;
        self.store
            .change_membership(org, &|members| {
                let old = current_role(members, principal).ok_or(OpError::NotFound)?;
                let mut changes = plan_role(org, subject, members, principal, None, now)?;
                changes
                    .audit
                    .push(
                        ctx.event(now, "member.removed")
                            .org(org)
                            .details(serde_json::json!({
                                "member": principal.to_string(),
                                "role": old.as_str(),
                            })),
                    );
                Ok(changes)
            })
            .await?;
        Ok(())
    }
}

pub(super) fn current_role(members: &[Membership], principal: Principal) -> Option<Role> {
    members
        .iter()
        .find(|m| m.principal == principal)
        .map(|m| m.role)
}

/// The pure rule: may `subject` move `principal` from its current role to `new` (`None`:
/// removal), and does the org keep an owner? Plans the membership write.
pub(super) fn plan_role(
    org: OrgId,
    subject: Subject,
    members: &[Membership],
    principal: Principal,
    new: Option<Role>,
    now: crate::clock::Timestamp,
) -> Result<MembershipChanges, OpError> {
    // The caller's role as it is now, inside the transaction.
    let subject = Subject {
        role: current_role(members, subject.principal).filter(|_| subject.role.is_some()),
        ..subject
    };
    let old = current_role(members, principal);
    policy::authorize(subject, Action::ChangeMember { old, new })?;
    let owners = members.iter().filter(|m| m.role == Role::OrgOwner).count();
    if old == Some(Role::OrgOwner) && new != Some(Role::OrgOwner) && owners <= 1 {
        return Err(OpError::LastOwner);
    }
    let mut changes = MembershipChanges::default();
    match new {
        Some(role) => changes.put.push(Membership {
            org_id: org,
            principal,
            role,
            created_at: now,
        }),
        None => changes.remove.push(principal),
    }
    Ok(changes)
}
