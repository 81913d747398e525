//! Objects of one org reached for through another org's paths. Org B has an app (with a
//! secret, a destination and a delivery) and an API token; org A's owner names them through
//! org A's paths, native and CSP, by every method: every one is 404 (never 200, never a change
//! to B's objects), and B's objects are intact afterwards.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

const NEW_SECRET: &str = "APPLICATION_OAUTH_CLIENT_NEW_SECRET";

async fn call(app: &TestApp, token: &str, method: Method, path: &str, body: Value) -> (u16, Value) {
    let mut req = app.http.request(method, app.url(path)).bearer_auth(token);
    if !body.is_null() {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn another_orgs_apps_secrets_destinations_deliveries_and_tokens_are_never_reached() {
    let app = spawn_app().await;
    let a = app.org_id;
    let a_owner = app.owner_access_token().await;

    let (b_id, b_api_token, b_owner) = app.other_org().await;
    let (status, created) = call(
        &app,
        &b_owner,
        Method::POST,
        &format!("/api/v1/orgs/{b_id}/apps"),
        json!({"name": "b-app", "scopes": ["read"]}),
    )
    .await;
    assert_eq!(status, 201);
    let b_app = created["app"]["id"].as_str().unwrap().to_string();
    let b_client = created["app"]["clientId"].as_str().unwrap().to_string();
    let b_secret = created["clientSecret"].as_str().unwrap().to_string();
    let (status, _) = call(
        &app,
        &b_owner,
        Method::PUT,
        &format!("/api/v1/orgs/{b_id}/apps/{b_app}/destinations/{NEW_SECRET}"),
        json!({"kind": "file", "directory": "b"}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, test) = call(
        &app,
        &b_owner,
        Method::POST,
        &format!("/api/v1/orgs/{b_id}/apps/{b_app}/destinations/{NEW_SECRET}/test"),
        Value::Null,
    )
    .await;
    let (_, deliveries) = call(
        &app,
        &b_owner,
        Method::GET,
        &format!("/api/v1/orgs/{b_id}/deliveries"),
        Value::Null,
    )
    .await;
    let b_delivery = deliveries["items"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{test} {deliveries}"))
        .to_string();
    let (_, secrets) = call(
        &app,
        &b_owner,
        Method::GET,
        &format!("/api/v1/orgs/{b_id}/apps/{b_app}/secrets"),
        Value::Null,
    )
    .await;
    let b_secret_id = secrets["items"][0]["id"].as_str().unwrap().to_string();
    let (status, token) = call(
        &app,
        &b_owner,
        Method::POST,
        &format!("/api/v1/orgs/{b_id}/api-tokens"),
        json!({"name": "b-token"}),
    )
    .await;
    assert_eq!(status, 201, "{token}");
    let b_token_id = token["token"]["id"]
        .as_str()
        .or(token["id"].as_str())
        .unwrap()
        .to_string();
    let a_app = app.create_app(json!({})).await.app.id;

    let apps = format!("/api/v1/orgs/{a}/apps");
    let csp = format!("/csp/gateway/am/api/orgs/{a}/oauth-apps");
    let cases: Vec<(Method, String, Value)> = vec![
        (Method::GET, format!("{apps}/{b_app}"), Value::Null),
        (Method::GET, format!("{apps}/{b_client}"), Value::Null),
        (
            Method::PATCH,
            format!("{apps}/{b_app}"),
            json!({"name": "taken"}),
        ),
        (Method::DELETE, format!("{apps}/{b_app}"), Value::Null),
        (Method::GET, format!("{apps}/{b_app}/secrets"), Value::Null),
        (
            Method::POST,
            format!("{apps}/{b_app}/secrets/rotate"),
            json!({}),
        ),
        (
            Method::POST,
            format!("{apps}/{b_client}/secrets/regenerate"),
            json!({}),
        ),
        (
            Method::POST,
            format!("{apps}/{b_app}/secrets/finish"),
            json!({}),
        ),
        (
            Method::POST,
            format!("{apps}/{b_app}/secrets/{b_secret_id}/revoke"),
            json!({}),
        ),
        // B's secret through A's own app.
        (
            Method::POST,
            format!("{apps}/{a_app}/secrets/{b_secret_id}/revoke"),
            json!({}),
        ),
        (
            Method::GET,
            format!("{apps}/{b_app}/destinations"),
            Value::Null,
        ),
        (
            Method::GET,
            format!("{apps}/{b_app}/destinations/{NEW_SECRET}"),
            Value::Null,
        ),
        (
            Method::PUT,
            format!("{apps}/{b_app}/destinations/{NEW_SECRET}"),
            json!({"kind": "file", "directory": "stolen"}),
        ),
        (
            Method::DELETE,
            format!("{apps}/{b_app}/destinations/{NEW_SECRET}"),
            Value::Null,
        ),
        (
            Method::POST,
            format!("{apps}/{b_app}/destinations/{NEW_SECRET}/test"),
            Value::Null,
        ),
        (
            Method::GET,
            format!("/api/v1/orgs/{a}/deliveries/{b_delivery}"),
            Value::Null,
        ),
        (
            Method::POST,
            format!("/api/v1/orgs/{a}/deliveries/{b_delivery}/retry"),
            Value::Null,
        ),
        (
            Method::POST,
            format!("/api/v1/orgs/{a}/api-tokens/{b_token_id}/revoke"),
            Value::Null,
        ),
        (Method::GET, format!("{csp}/{b_client}"), Value::Null),
        (
            Method::PATCH,
            format!("{csp}/{b_client}"),
            json!({"displayName": "taken"}),
        ),
        (Method::PUT, format!("{csp}/{b_client}/secret"), json!({})),
        (
            Method::POST,
            format!("{csp}/{b_client}/secret"),
            json!({"newClientSecret": "Stolen-Secret-123!"}),
        ),
        (
            Method::DELETE,
            format!("{csp}/{b_client}/secret"),
            Value::Null,
        ),
    ];
    for (method, path, body) in cases {
        let (status, res) = call(&app, &a_owner, method.clone(), &path, body).await;
        assert_eq!(status, 404, "{method} {path}: {res}");
    }
    let (status, _) = call(
        &app,
        &a_owner,
        Method::DELETE,
        &csp,
        json!({"clientIdsToDelete": [b_client]}),
    )
    .await;
    assert!(status == 200 || status == 404, "{status}");

    // B's app, secret, destination and token are as they were.
    let (status, b_view) = call(
        &app,
        &b_owner,
        Method::GET,
        &format!("/api/v1/orgs/{b_id}/apps/{b_app}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        b_view["name"].as_str().or(b_view["app"]["name"].as_str()),
        Some("b-app")
    );
    assert_eq!(app.status_of(&b_client, &b_secret).await, 200);
    let (_, dest) = call(
        &app,
        &b_owner,
        Method::GET,
        &format!("/api/v1/orgs/{b_id}/apps/{b_app}/destinations/{NEW_SECRET}"),
        Value::Null,
    )
    .await;
    assert_eq!(dest["directory"], "b", "{dest}");
    // B's owner still signs in with the API token.
    app.user_access_token(&b_api_token).await;
    let (_, tokens) = call(
        &app,
        &b_owner,
        Method::GET,
        &format!("/api/v1/orgs/{b_id}/api-tokens"),
        Value::Null,
    )
    .await;
    assert!(
        tokens["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["revokedAt"].is_null()),
        "{tokens}"
    );
    app.shutdown().await;
}
