//! The authorization matrix across both management dialects (native and CSP), with the
//! service-account ceiling: acting on the secrets, destinations or settings of an app that
//! is a service account needs a caller who may grant that app's role.
//!
//! The expected outcomes are written out here by hand, not read from the policy module, so
//! that a change of the policy shows up as a failing test.

use rekey_core::model::Role;
use serde_json::{json, Value};

use crate::helpers::{add_user, spawn_app_on, test_config, TestApp};

/// An app made by the owner, a service account with `role` when given.
async fn target_app(app: &TestApp, role: Option<Role>) -> (uuid::Uuid, String) {
    let extra = match role {
        Some(r) => json!({ "serviceAccountRole": r.as_str() }),
        None => json!({}),
    };
    let c = app.create_app(extra).await;
    (c.app.id, c.app.client_id)
}

/// What may a caller with `caller` do to an app whose service-account role is `target`?
/// Written as the product rule: owners and admins act on any app whose role they may grant
/// (owner: all; admin: all but owner, which no app has); developers only on apps that are
/// not service accounts; members on none.
fn may_act(caller: Role, target: Option<Role>) -> bool {
    match caller {
        Role::OrgOwner | Role::OrgAdmin => true,
        Role::Developer => target.is_none(),
        Role::OrgMember => false,
    }
}

/// Each acting request of both dialects, as (label, status) for one caller and one app.
async fn act_on_app(
    app: &TestApp,
    token: &str,
    app_id: uuid::Uuid,
    client_id: &str,
) -> Vec<(&'static str, u16)> {
    let native = app.url(&format!("/api/v1/orgs/{}/apps/{app_id}", app.org_id));
    let csp = app.url(&format!(
        "/csp/gateway/am/api/orgs/{}/oauth-apps/{client_id}",
        app.org_id
    ));
    let h = &app.http;
    let status = |r: reqwest::Response| r.status().as_u16();
    vec![
        (
            "native regenerate",
            status(
                h.post(format!("{native}/secrets/regenerate"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap(),
            ),
        ),
        (
            "native rotate",
            status(
                h.post(format!("{native}/secrets/rotate"))
                    .bearer_auth(token)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap(),
            ),
        ),
        (
            "native finish",
            status(
                h.post(format!("{native}/secrets/finish"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap(),
            ),
        ),
        (
            "native destination",
            status(
                h.put(format!(
                    "{native}/destinations/APPLICATION_OAUTH_CLIENT_NEW_SECRET"
                ))
                .bearer_auth(token)
                .json(&json!({"kind": "file", "directory": "out"}))
                .send()
                .await
                .unwrap(),
            ),
        ),
        (
            "native update",
            status(
                h.patch(&native)
                    .bearer_auth(token)
                    .json(&json!({"description": "changed"}))
                    .send()
                    .await
                    .unwrap(),
            ),
        ),
        (
            "csp regenerate",
            status(
                h.put(format!("{csp}/secret"))
                    .bearer_auth(token)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap(),
            ),
        ),
        (
            "csp finish",
            status(
                h.delete(format!("{csp}/secret"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap(),
            ),
        ),
        (
            "csp rotate",
            status(
                h.post(format!("{csp}/secret"))
                    .bearer_auth(token)
                    .json(&json!({"newClientSecret": "Chosen-Secret-42!"}))
                    .send()
                    .await
                    .unwrap(),
            ),
        ),
        (
            "csp patch",
            status(
                h.patch(&csp)
                    .bearer_auth(token)
                    .json(&json!({"description": "changed"}))
                    .send()
                    .await
                    .unwrap(),
            ),
        ),
        (
            "native destination test",
            status(
                h.post(format!(
                    "{native}/destinations/APPLICATION_OAUTH_CLIENT_NEW_SECRET/test"
                ))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
            ),
        ),
        (
            "native destination remove",
            status(
                h.delete(format!(
                    "{native}/destinations/APPLICATION_OAUTH_CLIENT_NEW_SECRET"
                ))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
            ),
        ),
        // Last: it ends the app.
        (
            "native delete",
            status(h.delete(&native).bearer_auth(token).send().await.unwrap()),
        ),
    ]
}

#[tokio::test]
async fn every_role_acts_on_service_accounts_only_up_to_the_roles_it_may_grant_in_both_dialects() {
    let mut config = test_config();
    config.csp_rate_burst = 10_000.0;
    let app = spawn_app_on(rekey_store::testing::TestDb::sqlite().await, config).await;
    let targets = [
        None,
        Some(Role::OrgAdmin),
        Some(Role::Developer),
        Some(Role::OrgMember),
    ];
    for caller in Role::ALL {
        let token = app.token_for_role(caller).await;
        for target in targets {
            let (app_id, client_id) = target_app(&app, target).await;
            let allowed = may_act(caller, target);
            for (label, status) in act_on_app(&app, &token, app_id, &client_id).await {
                if allowed {
                    assert!(
                        (200..300).contains(&status),
                        "{caller} on {target:?}: {label} should succeed, got {status}"
                    );
                } else {
                    assert_eq!(
                        status, 403,
                        "{caller} on {target:?}: {label} should be refused"
                    );
                }
            }
        }
    }
}

/// The escalation found from outside: a developer regenerated an `org_admin` service
/// account's secret, signed in as it, and made themselves `org_admin`.
#[tokio::test]
async fn a_developer_cannot_become_admin_through_an_admin_service_account() {
    let app = spawn_app_on(rekey_store::testing::TestDb::sqlite().await, test_config()).await;
    let (developer_id, api_token) = add_user(
        app.store(),
        &app.key,
        app.org_id,
        Role::Developer,
        app.state.now(),
    )
    .await;
    let developer = app.user_access_token(&api_token).await;
    let (app_id, client_id) = target_app(&app, Some(Role::OrgAdmin)).await;

    // Native regenerate: refused in the problem shape, and the secret is not shown.
    let res = app
        .http
        .post(app.url(&format!(
            "/api/v1/orgs/{}/apps/{app_id}/secrets/regenerate",
            app.org_id
        )))
        .bearer_auth(&developer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert!(body.get("clientSecret").is_none());

    // CSP regenerate: refused in the CSP error shape.
    let res = app
        .http
        .put(app.url(&format!(
            "/csp/gateway/am/api/orgs/{}/oauth-apps/{client_id}/secret",
            app.org_id
        )))
        .bearer_auth(&developer)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["statusCode"], 403);
    assert!(body.get("clientSecret").is_none());

    // Whatever was tried, the developer is still a developer and the app kept one secret.
    let m = app
        .store()
        .get_membership(app.org_id, rekey_core::model::Principal::User(developer_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.role, Role::Developer);
    assert_eq!(app.valid_secrets(app_id).await, 1);
    let refusals = app
        .store()
        .list_audit(
            &rekey_core::store::AuditFilter {
                action: Some("secret.regenerated".into()),
                ..rekey_core::store::AuditFilter::org(app.org_id)
            },
            rekey_core::store::Page::default(),
        )
        .await
        .unwrap();
    assert!(refusals.is_empty(), "no regeneration happened");
}

async fn owners(app: &TestApp) -> usize {
    app.store()
        .list_memberships(app.org_id)
        .await
        .unwrap()
        .iter()
        .filter(|m| m.role == Role::OrgOwner)
        .count()
}

async fn demote(app: &TestApp, token: &str, user_id: &str) -> u16 {
    app.http
        .put(app.url(&format!(
            "/api/v1/orgs/{}/members/user/{user_id}",
            app.org_id
        )))
        .bearer_auth(token)
        .json(&json!({ "role": "developer" }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn two_concurrent_demotions_of_the_last_two_owners_leave_exactly_one_owner() {
    for db in rekey_store::testing::TestDb::all().await {
        let app = spawn_app_on(db, test_config()).await;
        let backend = app.store().backend();
        for round in 0..4 {
            // Two owners: the seed owner and a new one.
            let (first_id, first) = if round == 0 {
                (
                    app.first_owner().await.to_string(),
                    app.owner_access_token().await,
                )
            } else {
                let (id, api_token) = add_user(
                    app.store(),
                    &app.key,
                    app.org_id,
                    Role::OrgOwner,
                    app.state.now(),
                )
                .await;
                (id.to_string(), app.user_access_token(&api_token).await)
            };
            let (second_id, api_token) = add_user(
                app.store(),
                &app.key,
                app.org_id,
                Role::OrgOwner,
                app.state.now(),
            )
            .await;
            let second_id = second_id.to_string();
            let second = app.user_access_token(&api_token).await;
            if round > 0 {
                // Leave exactly these two as owners: demote whoever else still is one.
                for m in app.store().list_memberships(app.org_id).await.unwrap() {
                    let id = m.principal.uuid().to_string();
                    if m.role == Role::OrgOwner && id != first_id && id != second_id {
                        assert_eq!(demote(&app, &first, &id).await, 200);
                    }
                }
            }
            assert_eq!(owners(&app).await, 2, "{backend}: set-up");
            // Even rounds: each owner steps down at once. Odd rounds: each demotes the other.
            let (a, b) = if round % 2 == 0 {
                tokio::join!(
                    demote(&app, &first, &first_id),
                    demote(&app, &second, &second_id)
                )
            } else {
                tokio::join!(
                    demote(&app, &first, &second_id),
                    demote(&app, &second, &first_id)
                )
            };
            let mut statuses = [a, b];
            statuses.sort_unstable();
            let refused = if round % 2 == 0 { 409 } else { 403 };
            assert_eq!(statuses, [200, refused], "{backend} round {round}");
            assert_eq!(owners(&app).await, 1, "{backend} round {round}");
        }
    }
}

/// An app acting on itself: CSP's owner client may rotate and finish its own secret unless
/// `ownerOnlySecretRotation` is set; the native API and CSP's regenerate are for managers.
#[tokio::test]
async fn an_app_rotates_its_own_secret_only_where_the_owner_client_rule_allows() {
    let app = spawn_app_on(rekey_store::testing::TestDb::sqlite().await, test_config()).await;
    for owner_only in [false, true] {
        let c = app
            .create_app(json!({ "ownerOnlySecretRotation": owner_only }))
            .await;
        let res = app
            .token_basic(
                "/csp/gateway/am/api/auth/token",
                &c.app.client_id,
                &c.client_secret,
                &crate::helpers::CC,
            )
            .await;
        assert_eq!(res.status(), 200);
        let token = res.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        let csp = app.url(&format!(
            "/csp/gateway/am/api/orgs/{}/oauth-apps/{}/secret",
            app.org_id, c.app.client_id
        ));
        let native = app.url(&format!(
            "/api/v1/orgs/{}/apps/{}/secrets",
            app.org_id, c.app.id
        ));
        let h = &app.http;
        // First what the app may not do (its token dies with its old secret at the finish).
        for path in ["rotate", "finish", "regenerate"] {
            let res = h
                .post(format!("{native}/{path}"))
                .bearer_auth(&token)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 403, "native {path} by the app itself");
        }
        let res = h
            .put(&csp)
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "CSP regenerate by the app itself");
        let csp_rotate = h
            .post(&csp)
            .bearer_auth(&token)
            .json(&json!({"newClientSecret": "Own-Choice-Secret-7!"}))
            .send()
            .await
            .unwrap()
            .status();
        let csp_finish = h
            .delete(&csp)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status();
        let expected = if owner_only { 403 } else { 200 };
        assert_eq!(csp_rotate, expected, "owner only: {owner_only}");
        assert_eq!(csp_finish, expected, "owner only: {owner_only}");
    }
}

#[tokio::test]
async fn a_client_id_may_not_be_a_uuid_so_that_it_never_reads_as_another_apps_id() {
    let app = spawn_app_on(rekey_store::testing::TestDb::sqlite().await, test_config()).await;
    let admin_sa = target_app(&app, Some(Role::OrgAdmin)).await.0;
    let token = app.owner_access_token().await;
    let native = app
        .http
        .post(app.url(&format!("/api/v1/orgs/{}/apps", app.org_id)))
        .bearer_auth(&token)
        .json(&json!({ "name": "look-alike", "clientId": admin_sa.to_string() }))
        .send()
        .await
        .unwrap();
    assert_eq!(native.status(), 400);
    let csp = app
        .http
        .post(app.url(&format!(
            "/csp/gateway/am/api/orgs/{}/oauth-apps",
            app.org_id
        )))
        .bearer_auth(&token)
        .json(&json!({ "id": uuid::Uuid::new_v4().to_string() }))
        .send()
        .await
        .unwrap();
    assert_eq!(csp.status(), 400);
}
