//! The CSP dialect: the authorization matrix, regenerate, owner-client rotation, listing and
//! bad input, all in `CspErrorResponse` where it is an error.

use std::time::Duration;

use rekey_core::model::Role;
use rekey_store::testing::TestDb;
use serde_json::{json, Value};

use crate::helpers::{add_user, spawn_app, spawn_app_on, test_config, TestApp, CC};

fn base(app: &TestApp) -> String {
    app.url(&format!(
        "/csp/gateway/am/api/orgs/{}/oauth-apps",
        app.org_id
    ))
}

/// Asserts a `CspErrorResponse` with `status` whose `requestId` is the response header's.
async fn assert_csp_error(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status);
    let header = res.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = res.json().await.unwrap();
    let obj = body.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "cspErrorCode",
            "errorCode",
            "message",
            "moduleCode",
            "requestId",
            "statusCode"
        ]
    );
    assert_eq!(body["statusCode"], status);
    assert_eq!(body["requestId"], header);
    assert!(body["moduleCode"].is_i64() && body["message"].is_string());
    body
}

/// A CSP token for an app (client credentials on the CSP path).
async fn app_token(app: &TestApp, client_id: &str, secret: &str) -> String {
    let res = app
        .token_basic("/csp/gateway/am/api/auth/token", client_id, secret, &CC)
        .await;
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A target app created through the CSP API as the owner: (client id, secret).
async fn csp_app(app: &TestApp, owner: &str, body: Value) -> (String, String) {
    let res = app
        .http
        .post(base(app))
        .bearer_auth(owner)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "create: {}", res.text().await.unwrap());
    let v: Value = res.json().await.unwrap();
    (
        v["clientId"].as_str().unwrap().to_string(),
        v["clientSecret"].as_str().unwrap().to_string(),
    )
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Endpoint {
    List,
    Create,
    Get,
    Patch,
    BulkDelete,
    Regenerate,
    Rotate,
    Finish,
}

const ENDPOINTS: [Endpoint; 8] = [
    Endpoint::List,
    Endpoint::Create,
    Endpoint::Get,
    Endpoint::Patch,
    Endpoint::BulkDelete,
    Endpoint::Regenerate,
    Endpoint::Rotate,
    Endpoint::Finish,
];

async fn call(app: &TestApp, token: Option<&str>, e: Endpoint, target: &str) -> reqwest::Response {
    let b = base(app);
    let req = match e {
        Endpoint::List => app.http.get(&b),
        Endpoint::Create => app
            .http
            .post(&b)
            .json(&json!({ "displayName": "made in matrix" })),
        Endpoint::Get => app.http.get(format!("{b}/{target}")),
        Endpoint::Patch => app
            .http
            .patch(format!("{b}/{target}"))
            .json(&json!({ "description": "patched" })),
        Endpoint::BulkDelete => app
            .http
            .delete(&b)
            .json(&json!({ "clientIdsToDelete": [target] })),
        Endpoint::Regenerate => app
            .http
            .put(format!("{b}/{target}/secret"))
            .json(&json!({})),
        Endpoint::Rotate => app
            .http
            .post(format!("{b}/{target}/secret"))
            .json(&json!({ "newClientSecret": "Matrix-Secret-123!" })),
        Endpoint::Finish => app.http.delete(format!("{b}/{target}/secret")),
    };
    let req = match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    };
    req.send().await.unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Actor {
    Owner,
    Admin,
    Developer,
    Member,
    ServiceAccountDeveloper,
    NonMemberApp,
    TheAppItself,
    TheAppItselfOwnerOnly,
    UserOfAnotherOrg,
    NoToken,
    ExpiredToken,
    RevokedSecretToken,
}

#[tokio::test]
async fn the_authorization_matrix_holds_for_every_role_and_endpoint() {
    let mut config = test_config();
    config.csp_rate_burst = 10_000.0;
    let app = spawn_app_on(TestDb::sqlite().await, config).await;
    let owner = app.owner_access_token().await;
    let now = app.state.now();
    let admin = app
        .user_access_token(
            &add_user(app.store(), &app.key, app.org_id, Role::OrgAdmin, now)
                .await
                .1,
        )
        .await;
    let developer = app
        .user_access_token(
            &add_user(app.store(), &app.key, app.org_id, Role::Developer, now)
                .await
                .1,
        )
        .await;
    let member = app
        .user_access_token(
            &add_user(app.store(), &app.key, app.org_id, Role::OrgMember, now)
                .await
                .1,
        )
        .await;
    let other_org = rekey_core::model::Org {
        id: rekey_core::model::OrgId::new(),
        name: "other".into(),
        created_at: now,
    };
    app.store().create_org(&other_org, &[]).await.unwrap();
    let stranger = app
        .user_access_token(
            &add_user(app.store(), &app.key, other_org.id, Role::OrgOwner, now)
                .await
                .1,
        )
        .await;
    let (sa_id, sa_secret) = csp_app(&app, &owner, json!({ "allowedScopes": { "organizationScopes": { "roles": [{ "name": "csp:developer" }] } } })).await;
    let sa = app_token(&app, &sa_id, &sa_secret).await;
    let (plain_id, plain_secret) = csp_app(&app, &owner, json!({})).await;
    let non_member_app = app_token(&app, &plain_id, &plain_secret).await;

    for actor in [
        Actor::Owner,
        Actor::Admin,
        Actor::Developer,
        Actor::Member,
        Actor::ServiceAccountDeveloper,
        Actor::NonMemberApp,
        Actor::TheAppItself,
        Actor::TheAppItselfOwnerOnly,
        Actor::UserOfAnotherOrg,
        Actor::NoToken,
        Actor::ExpiredToken,
        Actor::RevokedSecretToken,
    ] {
        for endpoint in ENDPOINTS {
            let owner_only = matches!(actor, Actor::TheAppItselfOwnerOnly);
            let (target, target_secret) = csp_app(
                &app,
                &owner,
                json!({ "ownerOnlySecretRotation": owner_only }),
            )
            .await;
            let token: Option<String> = match actor {
                Actor::Owner => Some(owner.clone()),
                Actor::Admin => Some(admin.clone()),
                Actor::Developer => Some(developer.clone()),
                Actor::Member => Some(member.clone()),
                Actor::ServiceAccountDeveloper => Some(sa.clone()),
                Actor::NonMemberApp => Some(non_member_app.clone()),
                Actor::TheAppItself | Actor::TheAppItselfOwnerOnly => {
                    Some(app_token(&app, &target, &target_secret).await)
                }
                Actor::UserOfAnotherOrg => Some(stranger.clone()),
                Actor::NoToken => None,
                Actor::ExpiredToken => Some({
                    // The owner's token, re-signed with an expiry in the past.
                    let mut claims = app.state.keys().verify(&owner, app.state.now()).unwrap();
                    claims.exp = app.state.now().as_secs() - 1;
                    app.state.keys().sign(&claims).unwrap()
                }),
                Actor::RevokedSecretToken => Some({
                    let (id, secret) = csp_app(&app, &owner, json!({ "allowedScopes": { "organizationScopes": { "roles": [{ "name": "org_admin" }] } } })).await;
                    let t = app_token(&app, &id, &secret).await;
                    let res = app
                        .http
                        .put(format!("{}/{id}/secret", base(&app)))
                        .bearer_auth(&owner)
                        .json(&json!({}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 200);
                    t
                }),
            };
            let res = call(&app, token.as_deref(), endpoint, &target).await;
            let expected: u16 = match actor {
                Actor::Owner | Actor::Admin | Actor::Developer | Actor::ServiceAccountDeveloper => {
                    200
                }
                Actor::TheAppItself if matches!(endpoint, Endpoint::Rotate | Endpoint::Finish) => {
                    200
                }
                Actor::NoToken | Actor::ExpiredToken | Actor::RevokedSecretToken => 401,
                _ => 403,
            };
            let status = res.status().as_u16();
            if expected == 200 {
                assert_eq!(
                    status,
                    200,
                    "{actor:?} {endpoint:?}: {}",
                    res.text().await.unwrap()
                );
            } else {
                let body = assert_csp_error(res, expected).await;
                assert_eq!(status, expected, "{actor:?} {endpoint:?}: {body}");
            }
        }
    }
}

#[tokio::test]
async fn a_token_whose_minting_secret_was_regenerated_is_refused_everywhere() {
    let app = spawn_app().await;
    let owner = app.owner_access_token().await;
    let (id, secret) = csp_app(&app, &owner, json!({ "allowedScopes": { "organizationScopes": { "roles": [{ "name": "org_admin" }] } } })).await;
    let t = app_token(&app, &id, &secret).await;
    assert_eq!(
        call(&app, Some(&t), Endpoint::List, &id).await.status(),
        200
    );
    let res = app
        .http
        .put(format!("{}/{id}/secret", base(&app)))
        .bearer_auth(&owner)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for e in ENDPOINTS {
        assert_csp_error(call(&app, Some(&t), e, &id).await, 401).await;
    }
}

#[tokio::test]
async fn regenerate_ends_old_secrets_at_once_and_get_never_shows_the_secret() {
    for db in TestDb::all().await {
        let app = spawn_app_on(db, test_config()).await;
        let owner = app.owner_access_token().await;
        let (id, first) = csp_app(&app, &owner, json!({ "displayName": "regen" })).await;
        // Start a rotation so that two secrets are valid, then regenerate.
        let res = app
            .http
            .post(format!("{}/{id}/secret", base(&app)))
            .bearer_auth(&owner)
            .json(&json!({ "newClientSecret": "Second-Secret-1!" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.bytes().await.unwrap().is_empty());
        let res = app
            .http
            .put(format!("{}/{id}/secret", base(&app)))
            .bearer_auth(&owner)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["clientId"], id.as_str());
        let new = body["clientSecret"].as_str().unwrap().to_string();
        assert_eq!(app.status_of(&id, &first).await, 400);
        assert_eq!(app.status_of(&id, "Second-Secret-1!").await, 400);
        assert_eq!(app.status_of(&id, &new).await, 200);
        app.flush_last_use().await;
        let got = app
            .http
            .get(format!("{}/{id}", base(&app)))
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!got.contains(&new) && !got.contains(&first));
        let got: Value = serde_json::from_str(&got).unwrap();
        assert_eq!(got["id"], id.as_str());
        assert!(
            got["lastUsedAt"].is_i64(),
            "the token requests above were recorded"
        );
        assert!(got["secretAge"].is_u64());
        app.shutdown().await;
    }
}

#[tokio::test]
async fn owner_rotation_keeps_both_secrets_until_the_expiry_then_only_the_new_one() {
    let app = spawn_app().await;
    let owner = app.owner_access_token().await;
    let (id, old) = csp_app(&app, &owner, json!({})).await;
    let url = format!("{}/{id}/secret", base(&app));
    // Default overlap: 48 hours.
    let res = app
        .http
        .post(&url)
        .bearer_auth(&owner)
        .json(&json!({ "newClientSecret": "New-Secret-42!" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.status_of(&id, &old).await, 200);
    assert_eq!(app.status_of(&id, "New-Secret-42!").await, 200);
    let res = app
        .http
        .post(&url)
        .bearer_auth(&owner)
        .json(&json!({ "newClientSecret": "Third-Secret-42!" }))
        .send()
        .await
        .unwrap();
    let e = assert_csp_error(res, 409).await;
    assert!(e["message"].as_str().unwrap().contains("in progress"));
    app.clock.advance(Duration::from_secs(48 * 3600 - 1));
    assert_eq!(app.status_of(&id, &old).await, 200);
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(app.status_of(&id, &old).await, 400);
    assert_eq!(app.status_of(&id, "New-Secret-42!").await, 200);

    // With an explicit overlap, and finished early by DELETE.
    let owner = app.owner_access_token().await;
    let res = app.http.post(&url).bearer_auth(&owner).json(&json!({ "newClientSecret": "Fourth-Secret-42!", "secretRotationExpirationInSeconds": 600 })).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.status_of(&id, "New-Secret-42!").await, 200);
    let res = app
        .http
        .delete(&url)
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        app.status_of(&id, "New-Secret-42!").await,
        400,
        "DELETE ends the old secret at once"
    );
    assert_eq!(app.status_of(&id, "Fourth-Secret-42!").await, 200);
    assert_eq!(
        app.http
            .delete(&url)
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "idempotent"
    );

    for (weak, rule) in [
        ("short1!", "8 characters"),
        ("alllower1!", "upper-case"),
        ("NoDigits!!", "digit"),
        ("NoSpecial123", "special"),
    ] {
        let res = app
            .http
            .post(&url)
            .bearer_auth(&owner)
            .json(&json!({ "newClientSecret": weak }))
            .send()
            .await
            .unwrap();
        let e = assert_csp_error(res, 400).await;
        assert!(e["message"].as_str().unwrap().contains(rule), "{weak}: {e}");
    }
}

#[tokio::test]
async fn a_csp_token_works_on_csp_endpoints_and_the_app_also_uses_oauth2_token() {
    let app = spawn_app().await;
    let owner = app.owner_access_token().await;
    let (id, secret) = csp_app(&app, &owner, json!({ "allowedScopes": { "generalScopes": ["read"], "organizationScopes": { "roles": [{ "name": "developer" }] } } })).await;
    let token = app_token(&app, &id, &secret).await;
    let res = app
        .http
        .get(base(&app))
        .header("csp-auth-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app.token_basic("/oauth2/token", &id, &secret, &CC).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["scope"], "read");
}

#[tokio::test]
async fn apps_are_listed_with_paging_and_search_and_deleted_in_bulk() {
    let app = spawn_app().await;
    let owner = app.owner_access_token().await;
    for n in 0..5 {
        csp_app(
            &app,
            &owner,
            json!({ "id": format!("svc-alpha-{n}"), "displayName": format!("Alpha {n}") }),
        )
        .await;
        app.clock.advance(Duration::from_millis(1));
    }
    csp_app(
        &app,
        &owner,
        json!({ "id": "svc-beta", "displayName": "Beta_1" }),
    )
    .await;
    let list: Value = app
        .http
        .get(format!(
            "{}?pageStart=2&pageLimit=2&searchTerm=ALPHA",
            base(&app)
        ))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["totalResults"], 5);
    let ids: Vec<&str> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["svc-alpha-1", "svc-alpha-2"]);
    let list: Value = app
        .http
        .get(format!("{}?searchTerm=a_1", base(&app)))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["totalResults"], 1, "'_' is matched literally");
    let res = app
        .http
        .delete(base(&app))
        .bearer_auth(&owner)
        .json(&json!({ "clientIdsToDelete": ["svc-alpha-0", "svc-beta", "missing-app"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "succeeded": ["svc-alpha-0", "svc-beta"], "failed": ["missing-app"] })
    );
    let res = app
        .http
        .get(format!("{}/svc-beta", base(&app)))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_csp_error(res, 404).await;
}

#[tokio::test]
async fn bad_input_is_a_400_csp_error_never_a_500() {
    let app = spawn_app().await;
    let owner = app.owner_access_token().await;
    let (id, _) = csp_app(&app, &owner, json!({})).await;
    let b = base(&app);
    let long_id = "a".repeat(257);
    let sixteen: Vec<String> = (0..16).map(|n| format!("app-{n:02}")).collect();
    let cases: Vec<reqwest::RequestBuilder> = vec![
        app.http.get(app.url("/csp/gateway/am/api/orgs/not-a-guid/oauth-apps")),
        app.http.get(format!("{b}/{long_id}")),
        app.http.get(format!("{b}/bad!id")),
        // Percent-escapes that are not UTF-8 used to get axum's text/plain 400.
        app.http.get(format!("{b}/%C0%AE")),
        app.http.put(format!("{b}/%FF%FE/secret")).json(&json!({})),
        app.http.get(format!("{b}?pageLimit=0")),
        app.http.get(format!("{b}?pageStart=x")),
        app.http.post(&b).json(&json!({ "displayName": "x", "unknownField": 1 })),
        app.http.post(&b).json(&json!({ "displayName": 5 })),
        app.http.post(&b).json(&json!({ "accessTokenTTL": "long" })),
        app.http.post(&b).json(&json!({ "id": "no spaces allowed" })),
        app.http.post(&b).json(&json!({ "secret": "weak" })),
        app.http.post(&b).json(&json!({ "allowedScopes": { "organizationScopes": { "roles": [{ "name": "csp:org_owner" }] } } })),
        app.http.post(&b).header("content-type", "application/json").body("{not json"),
        app.http.put(format!("{b}/{id}/secret")),
        app.http.put(format!("{b}/{id}/secret")).header("content-type", "application/json").body(""),
        app.http.put(format!("{b}/{id}/secret")).json(&json!({ "extra": true })),
        app.http.post(format!("{b}/{id}/secret")).json(&json!({})),
        app.http.post(format!("{b}/{id}/secret")).json(&json!({ "newClientSecret": "Good-Secret-1!", "secretRotationExpirationInSeconds": -5 })),
        app.http.patch(format!("{b}/{id}")).json(&json!({ "secret": "Cannot-Patch-1!" })),
        app.http.delete(&b).json(&json!({ "clientIdsToDelete": sixteen })),
        app.http.delete(&b).json(&json!({ "clientIdsToDelete": [] })),
        app.http.delete(&b).json(&json!({ "clientIdsToDelete": "svc" })),
    ];
    for req in cases {
        let res = req.bearer_auth(&owner).send().await.unwrap();
        assert_csp_error(res, 400).await;
    }
    let res = app
        .http
        .get(app.url("/csp/gateway/am/api/orgs/x/nothing/here"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_csp_error(res, 404).await;
}

#[tokio::test]
async fn an_org_over_its_rate_limit_gets_a_429_csp_error() {
    let mut config = test_config();
    config.csp_rate_burst = 3.0;
    config.csp_rate_per_second = 0.001;
    let app = spawn_app_on(TestDb::sqlite().await, config).await;
    let owner = app.owner_access_token().await;
    for _ in 0..3 {
        assert_eq!(
            app.http
                .get(base(&app))
                .bearer_auth(&owner)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_csp_error(
        app.http
            .get(base(&app))
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap(),
        429,
    )
    .await;
}
