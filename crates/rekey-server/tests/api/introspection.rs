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

    // Kept until the token would have expired plus a margin for lagging clocks, then
    // forgotten.
    let claims = crate::helpers::jwt_claims(&token);
    let jti = claims["jti"].as_str().unwrap().to_string();
    assert!(app.store().is_token_revoked(&jti).await.unwrap());
    app.state.ops.sweep_expiry().await.unwrap();
    assert!(app.store().is_token_revoked(&jti).await.unwrap());
    app.clock.advance(Duration::from_secs(3601));
    let report = app.state.ops.sweep_expiry().await.unwrap();
    assert_eq!(report.revocations_pruned, 0);
    assert!(app.store().is_token_revoked(&jti).await.unwrap());
    app.clock.advance(Duration::from_secs(
        rekey_core::ops::introspection::REVOKED_TOKEN_MARGIN_SECS as u64,
    ));
    let report = app.state.ops.sweep_expiry().await.unwrap();
    assert_eq!(report.revocations_pruned, 1);
    assert!(!app.store().is_token_revoked(&jti).await.unwrap());
    app.shutdown().await;
}

/// Failed authentications and refused actions reach the audit trail, counted (one event per
/// caller, source and reason at each flush, not one row per request); an id that names no
/// app is kept only as a fingerprint; SP-API events carry the caller's address.
#[tokio::test]
async fn failures_and_refusals_are_audited_as_counts_with_their_source() {
    let app = spawn_app().await;
    let c = app.create_app(json!({})).await;
    for _ in 0..5 {
        assert_eq!(app.status_of(&c.app.client_id, "rks_wrong").await, 400);
    }
    let unknown = "rkc_NoSuchClientAtAllForThisTest";
    for _ in 0..3 {
        assert_eq!(app.status_of(unknown, "rks_wrong").await, 400);
    }
    let developer = app.token_for_role(rekey_core::model::Role::Developer).await;
    let res = app
        .http
        .get(app.url(&format!("/api/v1/orgs/{}/audit-events", app.org_id)))
        .bearer_auth(&developer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(app.state.ops.flush_audit_tally().await.unwrap() >= 3);

    let all = app
        .store()
        .list_audit(&Default::default(), rekey_core::store::Page::default())
        .await
        .unwrap();
    let failed: Vec<_> = all.iter().filter(|e| e.action == "auth.failed").collect();
    let known = failed
        .iter()
        .find(|e| e.app_id.map(|a| a.0) == Some(c.app.id))
        .expect("the app's failures");
    assert_eq!(known.details["count"], 5);
    assert_eq!(known.org_id, Some(app.org_id));
    assert_eq!(known.source.as_deref(), Some("127.0.0.1"));
    let stranger = failed
        .iter()
        .find(|e| e.org_id.is_none())
        .expect("the unknown id's failures");
    assert_eq!(stranger.details["count"], 3);
    assert!(stranger.actor.starts_with("client:"));
    assert!(all
        .iter()
        .all(|e| !e.actor.contains(unknown) && !e.details.to_string().contains(unknown)));
    let refused = all
        .iter()
        .find(|e| e.action == "action.refused")
        .expect("the refusal");
    assert_eq!(refused.org_id, Some(app.org_id));
    assert!(refused.details["reason"]
        .as_str()
        .unwrap()
        .contains("org_owner or org_admin"));

    app.set_destination(
        c.app.id,
        "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
        json!({"kind": "file", "directory": "audited"}),
    )
    .await;
    let token = app
        .lwa_token(&c.app.client_id, &c.client_secret, Some(ROTATION_SCOPE))
        .await;
    assert_eq!(app.spapi_rotate(&token).await.status(), 204);
    let rotated = app
        .store()
        .list_audit(
            &rekey_core::store::AuditFilter {
                action: Some("secret.rotated".into()),
                ..Default::default()
            },
            rekey_core::store::Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(rotated[0].source.as_deref(), Some("127.0.0.1"));
    let chain = app
        .store()
        .verify_audit_chain(&app.org_id.to_string())
        .await
        .unwrap();
    assert_eq!(chain.broken, None);
    app.shutdown().await;
}
