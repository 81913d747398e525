//! Every error of `POST /applications/2023-11-30/clientSecret`, in the ErrorList shape.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

const ROTATION_SCOPE: &str = "sellingpartnerapi::client_credential:rotation";
const PATH: &str = "/applications/2023-11-30/clientSecret";

/// Asserts status, `x-amzn-RequestId`, the rate-limit header where the model has it, and a
/// valid ErrorList; returns the first error.
async fn assert_error_list(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "expected {status} {code}");
    assert!(!res.headers()["x-amzn-requestid"].is_empty());
    assert_eq!(
        res.headers().contains_key("x-amzn-ratelimit-limit"),
        matches!(status, 400 | 404 | 429)
    );
    let body: Value = res.json().await.unwrap();
    let errors = body["errors"].as_array().expect("an ErrorList");
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert_eq!(e["code"], code);
    assert!(e["message"].is_string());
    assert!(e
        .as_object()
        .unwrap()
        .keys()
        .all(|k| ["code", "message", "details"].contains(&k.as_str())));
    e.clone()
}

async fn enrolled_app(app: &TestApp) -> (String, String, uuid::Uuid) {
    let c = app.create_app(json!({})).await;
    app.set_destination(
        c.app.id,
        "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
        json!({"kind": "file", "directory": "spapi"}),
    )
    .await;
    (c.app.client_id, c.client_secret, c.app.id)
}

#[tokio::test]
async fn an_app_without_a_destination_is_not_enrolled() {
    let app = spawn_app().await;
    let c = app.create_app(json!({})).await;
    let token = app
        .lwa_token(&c.app.client_id, &c.client_secret, Some(ROTATION_SCOPE))
        .await;
    let e = assert_error_list(app.spapi_rotate(&token).await, 400, "InvalidInput").await;
    assert_eq!(
        e["message"],
        "Application is not enrolled for rotation notification. Please update application notification preference in Developer console."
    );
    assert_eq!(app.valid_secrets(c.app.id).await, 1);
}

#[tokio::test]
async fn a_second_rotation_within_a_minute_is_throttled_and_one_during_grace_is_refused() {
    let app = spawn_app().await;
    let (id, secret, app_id) = enrolled_app(&app).await;
    let token = app.lwa_token(&id, &secret, Some(ROTATION_SCOPE)).await;
    assert_eq!(app.spapi_rotate(&token).await.status(), 204);
    let res = app.spapi_rotate(&token).await;
    assert_eq!(res.headers()["x-amzn-ratelimit-limit"], "0.0167");
    let e = assert_error_list(res, 429, "QuotaExceeded").await;
    assert_eq!(
        e["message"],
        "You exceeded your quota for the requested resource."
    );
    app.clock.advance(Duration::from_secs(60));
    // The old secret's token still works (it is valid for 7 days), but a rotation is in progress.
    let e = assert_error_list(app.spapi_rotate(&token).await, 400, "InvalidInput").await;
    assert!(e["message"].as_str().unwrap().contains("in progress"));
    assert!(e["details"].is_string());
    assert_eq!(app.valid_secrets(app_id).await, 2);
}

#[tokio::test]
async fn bad_expired_revoked_and_wrong_scope_tokens_are_forbidden() {
    let app = spawn_app().await;
    let (id, secret, app_id) = enrolled_app(&app).await;
    let no_token = app.http.post(app.url(PATH)).send().await.unwrap();
    assert_error_list(no_token, 403, "Unauthorized").await;
    assert_error_list(app.spapi_rotate("not-a-token").await, 403, "Unauthorized").await;
    let bearer = app
        .http
        .post(app.url(PATH))
        .bearer_auth("garbage.garbage.garbage")
        .send()
        .await
        .unwrap();
    assert_error_list(bearer, 403, "Unauthorized").await;

    // The app has the scope, but this token was not granted it.
    let c2 = app
        .create_app(json!({ "scopes": ["other", ROTATION_SCOPE] }))
        .await;
    let narrow = app
        .lwa_token(&c2.app.client_id, &c2.client_secret, Some("other"))
        .await;
    let e = assert_error_list(app.spapi_rotate(&narrow).await, 403, "Unauthorized").await;
    assert!(e["details"].as_str().unwrap().contains("scope"));

    // A user's token is not an application's.
    let user = app.owner_access_token().await;
    assert_error_list(app.spapi_rotate(&user).await, 403, "Unauthorized").await;

    let token = app.lwa_token(&id, &secret, Some(ROTATION_SCOPE)).await;
    app.clock.advance(Duration::from_secs(3600));
    let e = assert_error_list(app.spapi_rotate(&token).await, 403, "Unauthorized").await;
    assert_eq!(e["message"], "Access to requested resource is denied.");
    assert!(e["details"].as_str().unwrap().contains("expired"));

    // A token whose secret was revoked.
    let token = app.lwa_token(&id, &secret, Some(ROTATION_SCOPE)).await;
    let secrets = app
        .store()
        .list_secrets(rekey_core::model::AppId(app_id))
        .await
        .unwrap();
    let owner = app.owner_access_token().await;
    let res = app
        .http
        .post(app.url(&format!(
            "/api/v1/orgs/{}/apps/{app_id}/secrets/{}/revoke",
            app.org_id, secrets[0].id
        )))
        .bearer_auth(owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let e = assert_error_list(app.spapi_rotate(&token).await, 403, "Unauthorized").await;
    assert!(e["details"].as_str().unwrap().contains("revoked"));
}

#[tokio::test]
async fn bodies_are_ignored_if_json_refused_if_not_and_limited_in_size() {
    let app = spawn_app().await;
    let (id, secret, _) = enrolled_app(&app).await;
    let token = app.lwa_token(&id, &secret, Some(ROTATION_SCOPE)).await;
    let res = app
        .http
        .post(app.url(PATH))
        .header("x-amz-access-token", &token)
        .header("content-type", "text/plain")
        .body("rotate please")
        .send()
        .await
        .unwrap();
    assert_error_list(res, 415, "UnsupportedMediaType").await;
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    let res = app
        .http
        .post(app.url(PATH))
        .header("x-amz-access-token", &token)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_error_list(res, 413, "RequestEntityTooLarge").await;
    // Some SDKs send marketplaceIds: accepted, ignored. No Host or User-Agent requirements.
    let res = app
        .http
        .post(app.url(PATH))
        .header("x-amz-access-token", &token)
        .json(&json!({"marketplaceIds": ["ATVPDKIKX0DER"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn unknown_sp_api_resources_are_404_error_lists() {
    let app = spawn_app().await;
    let res = app
        .http
        .post(app.url("/applications/2023-11-30/nothing"))
        .send()
        .await
        .unwrap();
    assert_error_list(res, 404, "NotFound").await;
    let res = app.http.get(app.url(PATH)).send().await.unwrap();
    assert_error_list(res, 404, "NotFound").await;
}

/// A token's claims say what the app could do when it was issued; a rotation checks what the
/// app may do now. Before, a token kept rotating after the app lost the rotation scope, and
/// SP-API ignored `ownerOnlySecretRotation` (which CSP enforces).
#[tokio::test]
async fn rotation_checks_the_apps_settings_now_not_the_tokens_claims() {
    let app = spawn_app().await;
    let owner = app.owner_access_token().await;
    let patch = |app_id: uuid::Uuid, body: Value| {
        let url = app.url(&format!("/api/v1/orgs/{}/apps/{app_id}", app.org_id));
        let req = app.http.patch(url).bearer_auth(owner.clone()).json(&body);
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        }
    };

    let (id, secret, app_id) = enrolled_app(&app).await;
    let token = app.lwa_token(&id, &secret, Some(ROTATION_SCOPE)).await;
    patch(app_id, json!({ "scopes": ["other"] })).await;
    let e = assert_error_list(app.spapi_rotate(&token).await, 403, "Unauthorized").await;
    assert!(
        e["details"]
            .as_str()
            .unwrap()
            .contains("no longer has the scope"),
        "{e}"
    );
    assert_eq!(app.valid_secrets(app_id).await, 1);

    let (id, secret, app_id) = enrolled_app(&app).await;
    let token = app.lwa_token(&id, &secret, Some(ROTATION_SCOPE)).await;
    patch(app_id, json!({ "ownerOnlySecretRotation": true })).await;
    assert_error_list(app.spapi_rotate(&token).await, 403, "Unauthorized").await;
    assert_eq!(app.valid_secrets(app_id).await, 1);
    // And back: the same token rotates once the flag is off again (after the rate limit's
    // minute: the refused attempt counted).
    patch(app_id, json!({ "ownerOnlySecretRotation": false })).await;
    app.clock.advance(Duration::from_secs(61));
    assert_eq!(app.spapi_rotate(&token).await.status(), 204);
    assert_eq!(app.valid_secrets(app_id).await, 2);
}
