//! RFC 7662 introspection and RFC 7009 revocation across orgs and nodes (the outside-client
//! proof is `tests/external/test_introspection.py`).

use std::sync::Arc;
use std::time::Duration;

use rekey_core::ops::tokens::AuthFailure;
use rekey_server::Application;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, test_config, TestApp};

const ROTATION_SCOPE: &str = "sellingpartnerapi::client_credential:rotation";

async fn form(app: &TestApp, path: &str, id: &str, secret: &str, token: &str) -> (u16, Value) {
    let res = app
        .http
        .post(app.url(path))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A token revoked by its app is refused by every node's own APIs (the revocation is in the
/// database), introspection in its org says inactive, introspection from another org never
/// says anything about it, and the sweeper forgets the revocation once the token expired.
#[tokio::test]
async fn a_revoked_token_is_refused_on_every_node_and_introspection_stays_in_its_org() {
    let app = spawn_app().await;
    let rs = app
        .create_app(json!({ "scopes": ["rekey:introspect"] }))
        .await;
    let c = app.create_app(json!({})).await;
    app.set_destination(
        c.app.id,
        "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
        json!({"kind": "file", "directory": "x"}),
    )
    .await;
    let token = app
        .lwa_token(&c.app.client_id, &c.client_secret, Some(ROTATION_SCOPE))
        .await;
    let (status, active) = form(
        &app,
        "/oauth2/introspect",
        &rs.app.client_id,
        &rs.client_secret,
        &token,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(active["active"], true);
    assert_eq!(active["client_id"], c.app.client_id.as_str());
    assert_eq!(active["scope"], ROTATION_SCOPE);

    // A resource server of another org learns nothing about this org's tokens.
    let (org_b, _, b_owner) = app.other_org().await;
    let res = app
        .http
        .post(app.url(&format!("/api/v1/orgs/{org_b}/apps")))
        .bearer_auth(b_owner)
        .json(&json!({"name": "b-rs", "scopes": ["rekey:introspect"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let b_rs: Value = res.json().await.unwrap();
    let (b_id, b_secret) = (
        b_rs["app"]["clientId"].as_str().unwrap(),
        b_rs["clientSecret"].as_str().unwrap(),
    );
    let (_, other) = form(&app, "/oauth2/introspect", b_id, b_secret, &token).await;
    assert_eq!(other, json!({"active": false}));

    let (status, _) = form(
        &app,
        "/oauth2/revoke",
        &c.app.client_id,
        &c.client_secret,
        &token,
    )
    .await;
    assert_eq!(status, 200);
    let (_, inactive) = form(
        &app,
        "/oauth2/introspect",
        &rs.app.client_id,
        &rs.client_secret,
        &token,
    )
    .await;
    assert_eq!(inactive, json!({"active": false}));
    assert_eq!(app.spapi_rotate(&token).await.status(), 403);
    // Same issuer as the first node (a cluster shares its public_url).
    let mut config = test_config();
    config.public_url = app.base.clone();
    let other_node = Application::build_with(
        config,
        Arc::new(app.db.store.clone()),
        app.clock.clone(),
        &app.key,
    )
    .await
    .unwrap();
    assert!(matches!(
        other_node.state().ops.authenticate(&token).await,
        Err(AuthFailure::Revoked)
    ));

    // Kept until the token would have expired, then forgotten.
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    let jti = claims["jti"].as_str().unwrap().to_string();
    assert!(app.store().is_token_revoked(&jti).await.unwrap());
    app.state.ops.sweep_expiry().await.unwrap();
    assert!(app.store().is_token_revoked(&jti).await.unwrap());
    app.clock.advance(Duration::from_secs(3601));
    let report = app.state.ops.sweep_expiry().await.unwrap();
    assert_eq!(report.revocations_pruned, 1);
    assert!(!app.store().is_token_revoked(&jti).await.unwrap());
    app.shutdown().await;
}
