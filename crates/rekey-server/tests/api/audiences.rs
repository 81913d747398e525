//! RFC 8707 audiences: the `resource` and `audience` parameters on every token path, the
//! `aud` claim, `invalid_target`, and Rekey's own APIs refusing tokens for other resource
//! servers (the outside-library proof is `tests/external/test_audiences.py`).

use serde_json::{json, Value};

use crate::helpers::{jwt_claims as claims, spawn_app, TestApp, CC, TOKEN_PATHS};

const ORDERS: &str = "https://orders.example/api";
const BILLING: &str = "urn:example:billing";

async fn issuer(app: &TestApp) -> String {
    let meta: Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    meta["issuer"].as_str().unwrap().to_string()
}

/// Every token path: no parameter gets the first audience and Rekey; `resource` or
/// `audience` picks one the app may use, alone; anything else is `invalid_target` in RFC
/// 6749's error shape.
#[tokio::test]
async fn every_token_path_selects_an_allowed_audience_or_refuses_the_target() {
    let app = spawn_app().await;
    let c = app
        .create_app(json!({ "audiences": [ORDERS, BILLING] }))
        .await;
    let (id, secret) = (c.app.client_id.as_str(), c.client_secret.as_str());
    assert_eq!(
        c.app.audiences,
        vec![ORDERS.to_string(), BILLING.to_string()]
    );
    let iss = issuer(&app).await;
    for path in TOKEN_PATHS {
        let token = |extra: &'static [(&'static str, &'static str)]| {
            let mut form = CC.to_vec();
            form.extend_from_slice(extra);
            let app = &app;
            async move { app.token_basic(path, id, secret, &form).await }
        };
        let res = token(&[]).await;
        assert_eq!(res.status(), 200, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            claims(body["access_token"].as_str().unwrap())["aud"],
            json!([ORDERS, iss]),
            "{path}"
        );

        let res = token(&[("resource", ORDERS)]).await;
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            claims(body["access_token"].as_str().unwrap())["aud"],
            ORDERS
        );
        let res = token(&[("audience", BILLING)]).await;
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            claims(body["access_token"].as_str().unwrap())["aud"],
            BILLING
        );

        for (param, value) in [
            ("resource", "https://payroll.example/"),
            ("audience", "https://orders.example/api/"),
            // RFC 8707: a resource is an absolute URI without a fragment.
            ("resource", "orders"),
            ("resource", "https://orders.example/api#x"),
        ] {
            let mut form = CC.to_vec();
            form.push((param, value));
            let res = app.token_basic(path, id, secret, &form).await;
            assert_eq!(res.status(), 400, "{path} {param}={value}");
            let body: Value = res.json().await.unwrap();
            assert_eq!(
                body["error"], "invalid_target",
                "{path} {param}={value}: {body}"
            );
        }
        let mut form = CC.to_vec();
        form.extend_from_slice(&[("resource", ORDERS), ("audience", BILLING)]);
        let res = app.token_basic(path, id, secret, &form).await;
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{path}");
    }
}

/// An app without audiences gets tokens without `aud`, as before audiences existed (SP-API
/// and CSP clients never send one), and may name only Rekey itself.
#[tokio::test]
async fn apps_without_audiences_get_tokens_without_aud() {
    let app = spawn_app().await;
    let c = app.create_app(json!({})).await;
    let token = app
        .lwa_token(&c.app.client_id, &c.client_secret, None)
        .await;
    assert!(claims(&token).get("aud").is_none());
    let iss = issuer(&app).await;
    let mut form = CC.to_vec();
    form.push(("resource", iss.as_str()));
    let res = app
        .token_basic("/oauth2/token", &c.app.client_id, &c.client_secret, &form)
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(claims(body["access_token"].as_str().unwrap())["aud"], iss);
    let form = [CC[0], ("resource", ORDERS)];
    let res = app
        .token_basic("/oauth2/token", &c.app.client_id, &c.client_secret, &form)
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_target"
    );
}

/// A user's token (the CSP API-token exchange) is for Rekey alone: it may name the issuer,
/// nothing else.
#[tokio::test]
async fn a_users_token_may_name_only_rekey() {
    let app = spawn_app().await;
    let iss = issuer(&app).await;
    let exchange = |extra: Option<(&'static str, String)>| {
        let mut form = vec![("api_token", app.owner_api_token.clone())];
        form.extend(extra);
        let app = &app;
        async move {
            app.http
                .post(app.url("/csp/gateway/am/api/auth/api-tokens/authorize"))
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let res = exchange(Some(("resource", iss.clone()))).await;
    assert_eq!(res.status(), 200);
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(claims(&token)["aud"], iss.as_str());
    let res = exchange(Some(("resource", ORDERS.to_string()))).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_target"
    );
    let res = exchange(None).await;
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(claims(&token).get("aud").is_none());
}

/// A token asked for another resource server is refused by Rekey's own APIs (native, CSP,
/// SP-API), so that resource server cannot replay the tokens it receives against Rekey; a
/// token for Rekey itself, or one that named no audience (SP-API clients name none), works.
/// Introspection still answers for any audience, and tells it.
#[tokio::test]
async fn rekey_refuses_tokens_for_other_audiences_and_introspection_tells_the_audience() {
    let app = spawn_app().await;
    let iss = issuer(&app).await;
    let c = app
        .create_app(json!({ "audiences": [ORDERS], "serviceAccountRole": "org_member" }))
        .await;
    app.set_destination(
        c.app.id,
        "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
        json!({"kind": "file", "directory": "aud"}),
    )
    .await;
    let (id, secret) = (c.app.client_id.as_str(), c.client_secret.as_str());
    let scope = "sellingpartnerapi::client_credential:rotation";
    let form = [CC[0], ("scope", scope), ("resource", ORDERS)];
    let res = app.token_basic("/auth/o2/token", id, secret, &form).await;
    let for_orders = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(claims(&for_orders)["aud"], ORDERS);

    let res = app.spapi_rotate(&for_orders).await;
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "Unauthorized", "{body}");
    assert!(body.to_string().contains("another audience"), "{body}");
    let res = app
        .http
        .get(app.url(&format!("/api/v1/orgs/{}/apps", app.org_id)))
        .bearer_auth(&for_orders)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .get(app.url(&format!(
            "/csp/gateway/am/api/orgs/{}/oauth-apps",
            app.org_id
        )))
        .bearer_auth(&for_orders)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["statusCode"], 401, "CSP's error shape: {body}");

    let form = [CC[0], ("scope", scope), ("resource", iss.as_str())];
    let res = app.token_basic("/auth/o2/token", id, secret, &form).await;
    let for_rekey = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .http
        .get(app.url(&format!("/api/v1/orgs/{}/apps", app.org_id)))
        .bearer_auth(&for_rekey)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Named nothing (as the SP-API SDKs do): for the default audience and for Rekey.
    let unnamed = app.lwa_token(id, secret, Some(scope)).await;
    assert_eq!(claims(&unnamed)["aud"], json!([ORDERS, iss]));
    assert_eq!(app.spapi_rotate(&unnamed).await.status(), 204);

    let rs = app
        .create_app(json!({ "scopes": ["rekey:introspect"] }))
        .await;
    let res = app
        .http
        .post(app.url("/oauth2/introspect"))
        .basic_auth(&rs.app.client_id, Some(&rs.client_secret))
        .form(&[("token", for_orders.as_str())])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["aud"], ORDERS);
}

/// Audiences are settings: validated, replaced by an update, removed with `[]`.
#[tokio::test]
async fn audiences_are_validated_and_updated() {
    let app = spawn_app().await;
    let owner = app.owner_access_token().await;
    let apps = app.url(&format!("/api/v1/orgs/{}/apps", app.org_id));
    for bad in [json!(["a b"]), json!([""]), json!([ORDERS, ORDERS])] {
        let res = app
            .http
            .post(&apps)
            .bearer_auth(&owner)
            .json(&json!({"name": "x", "audiences": bad}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["detail"].as_str().unwrap().contains("audiences"),
            "{body}"
        );
    }
    let c = app.create_app(json!({ "audiences": [ORDERS] })).await;
    let one = format!("{apps}/{}", c.app.id);
    let res = app
        .http
        .patch(&one)
        .bearer_auth(&owner)
        .json(&json!({"audiences": [BILLING, ORDERS]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token = app
        .lwa_token(&c.app.client_id, &c.client_secret, None)
        .await;
    assert_eq!(claims(&token)["aud"][0], BILLING);
    let res = app
        .http
        .patch(&one)
        .bearer_auth(&owner)
        .json(&json!({"audiences": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["audiences"], json!([]));
    let token = app
        .lwa_token(&c.app.client_id, &c.client_secret, None)
        .await;
    assert!(claims(&token).get("aud").is_none());
}
