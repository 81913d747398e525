//! Tokens altered after signing are refused by every API, each in its own error shape: a
//! known `kid` is not enough.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

const ROTATION_SCOPE: &str = "sellingpartnerapi::client_credential:rotation";

/// `jwt` with `changes` merged into its claims, and its original signature.
fn altered(jwt: &str, changes: Value) -> String {
    let parts: Vec<&str> = jwt.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    for (k, v) in changes.as_object().unwrap() {
        claims[k] = v.clone();
    }
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

#[tokio::test]
async fn altered_claims_are_refused_by_the_native_csp_and_sp_api_paths() {
    let app = spawn_app().await;
    let owner = app.owner_access_token().await;
    let org = app.org_id;
    let native = app.url(&format!("/api/v1/orgs/{org}/apps"));
    let csp = app.url(&format!("/csp/gateway/am/api/orgs/{org}/oauth-apps"));
    assert_eq!(
        app.http
            .get(&native)
            .bearer_auth(&owner)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A developer's token made to say org_owner, or to act in another org.
    let developer = app.token_for_role(rekey_core::model::Role::Developer).await;
    for change in [
        json!({ "perms": ["csp:org_owner"] }),
        json!({ "context_name": uuid::Uuid::new_v4().to_string() }),
        json!({ "exp": 4_000_000_000_i64 }),
        json!({ "iss": "https://evil.example" }),
    ] {
        let forged = altered(&developer, change.clone());
        let res = app
            .http
            .get(&native)
            .bearer_auth(&forged)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "native {change}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let res = app
            .http
            .get(&csp)
            .bearer_auth(&forged)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "csp {change}");
        let body: Value = res.json().await.unwrap();
        assert!(body["cspErrorCode"].is_string(), "{body}");
    }

    // An app's token without the rotation scope, made to carry it.
    let c = app.create_app(json!({})).await;
    app.set_destination(
        c.app.id,
        "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
        json!({"kind": "file", "directory": "forged"}),
    )
    .await;
    let narrow = app
        .lwa_token(&c.app.client_id, &c.client_secret, Some("a"))
        .await;
    let forged = altered(&narrow, json!({ "scope": ROTATION_SCOPE }));
    let res = app.spapi_rotate(&forged).await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "Unauthorized");
    assert_eq!(app.valid_secrets(c.app.id).await, 1);
    app.shutdown().await;
}
