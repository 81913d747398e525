//! The native management API: apps, secrets metadata, members, roles and error shapes.

use rekey_core::model::Role;
use rekey_store::testing::TestDb;
use serde_json::{json, Value};

use crate::helpers::{add_user, spawn_app, spawn_app_on, test_config};

async fn assert_problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["type"]
        .as_str()
        .unwrap()
        .starts_with("urn:rekey:problem:"));
    assert!(body["title"].is_string());
    assert_eq!(body["requestId"], request_id);
    body
}

#[tokio::test]
async fn an_owner_creates_lists_reads_updates_and_deletes_apps() {
    for db in TestDb::all().await {
        let app = spawn_app_on(db, test_config()).await;
        let token = app.owner_access_token().await;
        let base = app.url(&format!("/api/v1/orgs/{}/apps", app.org_id));
        let created = app
            .create_app(json!({ "name": "one", "clientId": "my-client-1", "description": "first" }))
            .await;
        assert_eq!(created.app.client_id, "my-client-1");
        assert_eq!(created.secret.state, "current");
        assert!(created.client_secret.starts_with("rks_"));
        assert_eq!(
            created.secret.hint,
            created.client_secret[created.client_secret.len() - 4..]
        );
        app.clock.advance(std::time::Duration::from_millis(1));
        app.create_app(json!({ "name": "two" })).await;

        let list: Value = app
            .http
            .get(format!("{base}?pageStart=1&pageLimit=1"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        assert_eq!(list["items"][0]["name"], "two");

        let one = format!("{base}/{}", created.app.id);
        let got: Value = app
            .http
            .get(&one)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got["clientId"], "my-client-1");
        assert!(!got.to_string().contains(&created.client_secret));

        let res = app
            .http
            .patch(&one)
            .bearer_auth(&token)
            .json(&json!({ "name": "renamed", "scopes": ["x"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let patched: Value = res.json().await.unwrap();
        assert_eq!(patched["name"], "renamed");
        assert_eq!(patched["scopes"], json!(["x"]));
        assert_eq!(patched["description"], "first");

        let secrets: Value = app
            .http
            .get(format!("{one}/secrets"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(secrets["items"].as_array().unwrap().len(), 1);
        assert!(!secrets.to_string().contains(&created.client_secret));

        // The same client id again is a conflict.
        let res = app
            .http
            .post(&base)
            .bearer_auth(&token)
            .json(&json!({ "name": "dup", "clientId": "my-client-1" }))
            .send()
            .await
            .unwrap();
        assert_problem(res, 409).await;

        assert_eq!(
            app.http
                .delete(&one)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status(),
            204
        );
        assert_problem(
            app.http.get(&one).bearer_auth(&token).send().await.unwrap(),
            404,
        )
        .await;
        let res = app
            .token_basic(
                "/oauth2/token",
                "my-client-1",
                &created.client_secret,
                &crate::helpers::CC,
            )
            .await;
        assert_eq!(res.status(), 401);

        let audit: Value = app
            .http
            .get(app.url(&format!("/api/v1/orgs/{}/audit-events", app.org_id)))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let actions: Vec<&str> = audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions[0], "app.deleted");
        assert!(
            actions.contains(&"app.created")
                && actions.contains(&"app.updated")
                && actions.contains(&"secret.created")
        );
        app.shutdown().await;
    }
}

#[tokio::test]
async fn roles_decide_who_may_read_and_who_may_change() {
    let app = spawn_app().await;
    let existing = app.create_app(json!({})).await;
    let base = app.url(&format!("/api/v1/orgs/{}/apps", app.org_id));
    for (role, may_change) in [
        (Role::OrgOwner, true),
        (Role::OrgAdmin, true),
        (Role::Developer, true),
        (Role::OrgMember, false),
    ] {
        let token = app.token_for_role(role).await;
        assert_eq!(
            app.http
                .get(&base)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{role} reads"
        );
        let res = app
            .http
            .post(&base)
            .bearer_auth(&token)
            .json(&json!({ "name": "x" }))
            .send()
            .await
            .unwrap();
        if may_change {
            assert_eq!(res.status(), 201, "{role} creates");
        } else {
            assert_problem(res, 403).await;
            let res = app
                .http
                .delete(format!("{base}/{}", existing.app.id))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_problem(res, 403).await;
        }
    }
}

#[tokio::test]
async fn another_org_is_forbidden_and_an_app_of_another_org_is_not_found() {
    let app = spawn_app().await;
    let token = app.owner_access_token().await;
    // A second org with an app, in the same database.
    let other_org = rekey_core::model::Org {
        id: rekey_core::model::OrgId::new(),
        name: "other".into(),
        created_at: app.state.now(),
    };
    app.store().create_org(&other_org, &[]).await.unwrap();
    let res = app
        .http
        .get(app.url(&format!("/api/v1/orgs/{}/apps", other_org.id)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(res, 403).await;
    let res = app
        .http
        .get(app.url(&format!(
            "/api/v1/orgs/{}/apps/{}",
            app.org_id,
            uuid::Uuid::new_v4()
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404).await;
}

#[tokio::test]
async fn bad_input_gets_a_problem_never_a_500() {
    let app = spawn_app().await;
    let token = app.owner_access_token().await;
    let base = app.url(&format!("/api/v1/orgs/{}/apps", app.org_id));
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (
            app.http
                .get(app.url("/api/v1/orgs/not-a-uuid/apps"))
                .bearer_auth(&token),
            400,
        ),
        // Not a UUID: taken as a client id, which no app has.
        (
            app.http
                .get(format!("{base}/not-a-uuid"))
                .bearer_auth(&token),
            404,
        ),
        // Percent-escapes that are not UTF-8 used to get axum's text/plain 400.
        (
            app.http.get(format!("{base}/%C0%AE")).bearer_auth(&token),
            400,
        ),
        (
            app.http
                .post(format!("{base}/%FF/secrets/rotate"))
                .bearer_auth(&token),
            400,
        ),
        (
            app.http
                .get(format!("{base}?pageLimit=0"))
                .bearer_auth(&token),
            400,
        ),
        (
            app.http
                .get(format!("{base}?pageLimit=abc"))
                .bearer_auth(&token),
            400,
        ),
        (
            app.http
                .post(&base)
                .bearer_auth(&token)
                .body("{")
                .header("content-type", "application/json"),
            400,
        ),
        (
            app.http
                .post(&base)
                .bearer_auth(&token)
                .json(&json!({ "name": 5 })),
            400,
        ),
        (
            app.http
                .post(&base)
                .bearer_auth(&token)
                .json(&json!({ "name": "x", "bogus": 1 })),
            400,
        ),
        (
            app.http.post(&base).bearer_auth(&token).json(&json!({})),
            400,
        ),
        (
            app.http
                .post(&base)
                .bearer_auth(&token)
                .json(&json!({ "name": "x", "clientId": "no spaces!" })),
            400,
        ),
        (
            app.http
                .post(&base)
                .bearer_auth(&token)
                .json(&json!({ "name": "x", "accessTokenTtlSeconds": -1 })),
            400,
        ),
        (
            app.http
                .post(&base)
                .bearer_auth(&token)
                .json(&json!({ "name": "x", "serviceAccountRole": "king" })),
            400,
        ),
        (app.http.post(&base).bearer_auth(&token).body("name=x"), 415),
        (
            app.http
                .post(&base)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(format!("{{\"name\":\"{}\"}}", "x".repeat(70_000))),
            413,
        ),
        (app.http.get(&base), 401),
        (app.http.get(&base).bearer_auth("not.a.jwt"), 401),
        (
            app.http.get(&base).header("authorization", "Basic abc"),
            401,
        ),
        (app.http.get(app.url("/api/v1/nothing-here")), 404),
    ];
    for (req, status) in cases {
        let body = assert_problem(req.send().await.unwrap(), status).await;
        assert!(body["detail"].is_string());
    }
}

#[tokio::test]
async fn an_expired_access_token_is_refused() {
    let app = spawn_app().await;
    let token = app.owner_access_token().await;
    let base = app.url(&format!("/api/v1/orgs/{}/apps", app.org_id));
    app.clock.advance(std::time::Duration::from_secs(1800));
    let body = assert_problem(
        app.http
            .get(&base)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn an_admin_adds_members_and_only_an_owner_grants_owner() {
    let app = spawn_app().await;
    let admin = app.token_for_role(Role::OrgAdmin).await;
    let members = app.url(&format!("/api/v1/orgs/{}/members", app.org_id));
    let res = app
        .http
        .post(&members)
        .bearer_auth(&admin)
        .json(&json!({ "email": "dev@example.com", "role": "developer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let added: Value = res.json().await.unwrap();
    let dev_token = app
        .user_access_token(added["apiToken"].as_str().unwrap())
        .await;
    assert_eq!(
        app.http
            .get(app.url(&format!("/api/v1/orgs/{}", app.org_id)))
            .bearer_auth(&dev_token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let res = app
        .http
        .post(&members)
        .bearer_auth(&admin)
        .json(&json!({ "email": "boss@example.com", "role": "org_owner" }))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403).await;
    let res = app
        .http
        .post(&members)
        .bearer_auth(&dev_token)
        .json(&json!({ "email": "x@example.com", "role": "org_member" }))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403).await;
    let list: Value = app
        .http
        .get(&members)
        .bearer_auth(&dev_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn roles_of_users_and_service_accounts_are_set_and_removed_and_an_owner_remains() {
    let app = spawn_app().await;
    let owner = app.owner_access_token().await;
    let members = app.url(&format!("/api/v1/orgs/{}/members", app.org_id));
    let c = app.create_app(json!({})).await;
    assert!(!c.app.service_account);

    // An app given a role becomes a service account; its CSP token carries the perm.
    let res = app
        .http
        .put(format!("{members}/app/{}", c.app.id))
        .bearer_auth(&owner)
        .json(&json!({ "role": "developer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let got: Value = app
        .http
        .get(app.url(&format!("/api/v1/orgs/{}/apps/{}", app.org_id, c.app.id)))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["serviceAccount"], true);
    let t: Value = app
        .token_basic(
            "/csp/gateway/am/api/auth/token",
            &c.app.client_id,
            &c.client_secret,
            &crate::helpers::CC,
        )
        .await
        .json()
        .await
        .unwrap();
    let claims = app
        .state
        .keys()
        .verify(t["access_token"].as_str().unwrap(), app.state.now())
        .unwrap();
    assert_eq!(claims.perms, Some(vec!["csp:developer".to_string()]));
    let res = app
        .http
        .put(format!("{members}/app/{}", c.app.id))
        .bearer_auth(&owner)
        .json(&json!({ "role": "org_owner" }))
        .send()
        .await
        .unwrap();
    assert_problem(res, 400).await;
    assert_eq!(
        app.http
            .delete(format!("{members}/app/{}", c.app.id))
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let got: Value = app
        .http
        .get(app.url(&format!("/api/v1/orgs/{}/apps/{}", app.org_id, c.app.id)))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["serviceAccount"], false);

    // The only owner cannot leave or step down; with a second owner it can.
    let list: Value = app
        .http
        .get(&members)
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let owner_id = list[0]["id"].as_str().unwrap().to_string();
    assert_problem(
        app.http
            .delete(format!("{members}/user/{owner_id}"))
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    let res = app
        .http
        .put(format!("{members}/user/{owner_id}"))
        .bearer_auth(&owner)
        .json(&json!({ "role": "org_admin" }))
        .send()
        .await
        .unwrap();
    assert_problem(res, 409).await;
    let (second, second_token) = add_user(
        app.store(),
        &app.key,
        app.org_id,
        Role::OrgAdmin,
        app.state.now(),
    )
    .await;
    let admin = app.user_access_token(&second_token).await;
    let res = app
        .http
        .put(format!("{members}/user/{second}"))
        .bearer_auth(&admin)
        .json(&json!({ "role": "org_owner" }))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403).await;
    let res = app
        .http
        .put(format!("{members}/user/{second}"))
        .bearer_auth(&owner)
        .json(&json!({ "role": "org_owner" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.http
            .delete(format!("{members}/user/{owner_id}"))
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    // The removed owner's token no longer opens the org.
    assert_problem(
        app.http
            .get(&members)
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    assert_problem(
        app.http
            .put(format!("{members}/robot/{second}"))
            .bearer_auth(&admin)
            .json(&json!({ "role": "developer" }))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
}

#[tokio::test]
async fn no_one_gives_an_app_or_a_member_a_role_above_their_own() {
    let app = spawn_app().await;
    let developer = app.token_for_role(Role::Developer).await;
    let admin = app.token_for_role(Role::OrgAdmin).await;
    let apps = app.url(&format!("/api/v1/orgs/{}/apps", app.org_id));
    // A developer creates apps, but cannot make one a service account with any role.
    for role in ["org_admin", "developer", "org_member"] {
        let res = app
            .http
            .post(&apps)
            .bearer_auth(&developer)
            .json(&json!({ "name": "x", "serviceAccountRole": role }))
            .send()
            .await
            .unwrap();
        assert_problem(res, 403).await;
    }
    assert_eq!(
        app.http
            .post(&apps)
            .bearer_auth(&developer)
            .json(&json!({ "name": "x" }))
            .send()
            .await
            .unwrap()
            .status(),
        201
    );
    let res = app
        .http
        .post(&apps)
        .bearer_auth(&admin)
        .json(&json!({ "name": "y", "serviceAccountRole": "org_admin" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // The CSP route holds the same rule.
    let csp = app.url(&format!(
        "/csp/gateway/am/api/orgs/{}/oauth-apps",
        app.org_id
    ));
    let res = app.http.post(&csp).bearer_auth(&developer).json(&json!({ "allowedScopes": { "organizationScopes": { "roles": [{ "name": "csp:org_admin" }] } } })).send().await.unwrap();
    assert_eq!(res.status(), 403);
    // An admin cannot demote the owner by re-adding the owner's email.
    let owner_id = app.first_owner().await.to_string();
    let owner_email = app
        .store()
        .get_user(rekey_core::model::UserId::parse(&owner_id).unwrap())
        .await
        .unwrap()
        .unwrap()
        .email;
    let res = app
        .http
        .post(app.url(&format!("/api/v1/orgs/{}/members", app.org_id)))
        .bearer_auth(&admin)
        .json(&json!({ "email": owner_email, "role": "org_member" }))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403).await;
    let still = app
        .store()
        .get_membership(
            app.org_id,
            rekey_core::model::Principal::User(
                rekey_core::model::UserId::parse(&owner_id).unwrap(),
            ),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.role, Role::OrgOwner);
}

#[tokio::test]
async fn finishing_a_rotation_never_ends_the_last_valid_secret() {
    let app = spawn_app().await;
    let c = app.create_app(json!({})).await;
    let owner = app.owner_access_token().await;
    let base = app.url(&format!(
        "/api/v1/orgs/{}/apps/{}/secrets",
        app.org_id, c.app.id
    ));
    let rotated: Value = app
        .http
        .post(format!("{base}/rotate"))
        .bearer_auth(&owner)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_id = rotated["secret"]["id"].as_str().unwrap();
    assert_eq!(
        app.http
            .post(format!("{base}/{new_id}/revoke"))
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.valid_secrets(c.app.id).await,
        1,
        "only the previous secret is left"
    );
    assert_problem(
        app.http
            .post(format!("{base}/finish"))
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
    assert_eq!(app.status_of(&c.app.client_id, &c.client_secret).await, 200);
}

#[tokio::test]
async fn api_tokens_are_created_listed_and_revoked_with_their_access_tokens() {
    let app = spawn_app().await;
    let (_, dev_api_token) = add_user(
        app.store(),
        &app.key,
        app.org_id,
        Role::Developer,
        app.state.now(),
    )
    .await;
    let dev = app.user_access_token(&dev_api_token).await;
    let tokens = app.url(&format!("/api/v1/orgs/{}/api-tokens", app.org_id));
    let res = app
        .http
        .post(&tokens)
        .bearer_auth(&dev)
        .json(&json!({ "name": "ci", "expiresInSeconds": 3600 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let new_token = created["apiToken"].as_str().unwrap().to_string();
    assert!(new_token.starts_with("rkt_"));
    let minted = app.user_access_token(&new_token).await;
    let listed: Value = app
        .http
        .get(&tokens)
        .bearer_auth(&dev)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        2,
        "the developer sees their own two"
    );
    assert!(!listed.to_string().contains(&new_token));
    let owner = app.owner_access_token().await;
    let all: Value = app
        .http
        .get(&tokens)
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        3,
        "the owner sees every token"
    );

    // Another developer may not revoke it; the owner may; then it and its tokens are dead.
    let other = app.token_for_role(Role::Developer).await;
    let id = created["token"]["id"].as_str().unwrap();
    assert_problem(
        app.http
            .post(format!("{tokens}/{id}/revoke"))
            .bearer_auth(&other)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    let res = app
        .http
        .post(format!("{tokens}/{id}/revoke"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.json::<Value>().await.unwrap()["revokedAt"].is_string());
    let res = app
        .http
        .post(app.url("/csp/gateway/am/api/auth/api-tokens/authorize"))
        .form(&[("api_token", new_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_problem(
        app.http
            .get(&tokens)
            .bearer_auth(&minted)
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    // A lifetime must be positive, and an expired token is refused at once.
    let res = app
        .http
        .post(&tokens)
        .bearer_auth(&owner)
        .json(&json!({ "name": "short", "expiresInSeconds": 0 }))
        .send()
        .await
        .unwrap();
    assert_problem(res, 400).await;
    let short: Value = app
        .http
        .post(&tokens)
        .bearer_auth(&owner)
        .json(&json!({ "name": "short", "expiresInSeconds": 60 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let short = short["apiToken"].as_str().unwrap().to_string();
    app.user_access_token(&short).await;
    app.clock.advance(std::time::Duration::from_secs(60));
    let res = app
        .http
        .post(app.url("/csp/gateway/am/api/auth/api-tokens/authorize"))
        .form(&[("api_token", short.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn the_audit_trail_is_filtered_by_app_action_and_time_and_signing_keys_are_listed() {
    let app = spawn_app().await;
    let owner = app.owner_access_token().await;
    let a = app.create_app(json!({ "name": "a" })).await;
    app.clock.advance(std::time::Duration::from_secs(10));
    let t_mid = app.state.now();
    app.create_app(json!({ "name": "b" })).await;
    let audit = |q: String| {
        let url = app.url(&format!("/api/v1/orgs/{}/audit-events?{q}", app.org_id));
        let req = app.http.get(url).bearer_auth(&owner);
        async move {
            req.send().await.unwrap().json::<Value>().await.unwrap()["items"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let by_app = audit(format!("appId={}", a.app.id)).await;
    assert_eq!(
        by_app.len(),
        2,
        "app.created and secret.created of the first app"
    );
    assert!(by_app.iter().all(|e| e["appId"] == a.app.id.to_string()));
    let created = audit("action=app.created".into()).await;
    assert_eq!(created.len(), 2);
    let since = form_urlencoded::byte_serialize(t_mid.to_rfc3339().as_bytes()).collect::<String>();
    let later = audit(format!("action=app.created&since={since}")).await;
    assert_eq!(later.len(), 1);
    let res = app
        .http
        .get(app.url(&format!(
            "/api/v1/orgs/{}/audit-events?since=yesterday",
            app.org_id
        )))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_problem(res, 400).await;

    let keys: Value = app
        .http
        .get(app.url("/api/v1/signing-keys"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = keys["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["signing"], true);
    assert_eq!(items[0]["algorithm"], "EdDSA");
    assert_problem(
        app.http
            .get(app.url("/api/v1/signing-keys"))
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
}

#[tokio::test]
async fn a_wrong_method_is_a_405_in_the_dialect_of_the_path() {
    let app = spawn_app().await;
    let res = app
        .http
        .put(app.url(&format!("/api/v1/orgs/{}/apps", app.org_id)))
        .send()
        .await
        .unwrap();
    assert_problem(res, 405).await;
    let res = app.http.get(app.url("/oauth2/token")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
}

#[tokio::test]
async fn an_app_is_named_by_its_id_or_its_client_id_in_every_native_path() {
    let app = spawn_app().await;
    let token = app.owner_access_token().await;
    let c = app.create_app(json!({})).await;
    let base = app.url(&format!("/api/v1/orgs/{}/apps", app.org_id));
    for name in [c.app.id.to_string(), c.app.client_id.clone()] {
        let res = app
            .http
            .get(format!("{base}/{name}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{name}");
        assert_eq!(
            res.json::<Value>().await.unwrap()["id"],
            c.app.id.to_string()
        );
    }
    let res = app
        .http
        .post(format!("{base}/{}/secrets/regenerate", c.app.client_id))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["clientId"], c.app.client_id);
    assert_eq!(app.status_of(&c.app.client_id, &c.client_secret).await, 400);
    assert_eq!(
        app.status_of(&c.app.client_id, body["clientSecret"].as_str().unwrap())
            .await,
        200
    );
}

#[tokio::test]
async fn readiness_says_no_when_the_database_refuses_writes() {
    use std::sync::Arc;

    use rekey_core::clock::SystemClock;
    use rekey_core::crypto::ServerKey;
    use rekey_server::Application;

    let db = TestDb::sqlite().await;
    let key = ServerKey::generate();
    let clock = Arc::new(SystemClock);
    // A first start on the writable database makes the signing key, so that a start on a
    // read-only handle needs no write.
    let writable = Application::build_with(
        test_config(),
        Arc::new(db.store.clone()),
        clock.clone(),
        &key,
    )
    .await
    .unwrap();
    let path = db.sqlite_path.clone().unwrap();
    let read_only =
        rekey_store::SqlStore::connect(&format!("sqlite://{}?mode=ro", path.display()), 2)
            .await
            .unwrap();
    let refusing = Application::build_with(test_config(), Arc::new(read_only), clock, &key)
        .await
        .unwrap();
    let mut answers = Vec::new();
    for app in [writable, refusing] {
        let url = format!("http://{}/readyz", app.local_addr());
        let server = tokio::spawn(app.run_until(std::future::pending()));
        let res = reqwest::get(&url).await.unwrap();
        answers.push((res.status().as_u16(), res.text().await.unwrap()));
        server.abort();
    }
    assert_eq!(answers[0].0, 200);
    assert_eq!(answers[1].0, 503);
    assert!(
        answers[1].1.contains("does not take writes"),
        "{}",
        answers[1].1
    );
}
