//! The four token paths: success with both client authentication methods, every RFC 6749
//! error, expiry, revocation, throttling, last use, and the published keys.

use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rekey_core::model::SecretState;
use rekey_core::store::Store as _;
use rekey_store::testing::TestDb;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_on, test_config, TestApp, CC, TOKEN_PATHS};

/// Verifies `jwt` with the JWKS the server publishes, using the `jsonwebtoken` crate's JWK
/// support (the standard path a resource server takes).
async fn verify_with_jwks(app: &TestApp, jwt: &str) -> Value {
    let jwks: JwkSet = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid is published");
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_issuer(&[app.base.as_str()]);
    v.validate_aud = false;
    jsonwebtoken::decode::<Value>(jwt, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .unwrap()
        .claims
}

async fn assert_oauth_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "expected {status} {code}");
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["error_description"].is_string());
    body
}

#[tokio::test]
async fn every_token_path_issues_a_verifiable_token_with_basic_and_form_credentials() {
    for db in TestDb::all().await {
        let app = spawn_app_on(db, test_config()).await;
        let created = app.create_app(json!({})).await;
        let (id, secret) = (
            created.app.client_id.as_str(),
            created.client_secret.as_str(),
        );
        for path in TOKEN_PATHS {
            for basic in [true, false] {
                let res = if basic {
                    app.token_basic(path, id, secret, &CC).await
                } else {
                    app.token_post(path, id, secret, &CC).await
                };
                assert_eq!(res.status(), 200, "{path} basic={basic}");
                assert_eq!(res.headers()["content-type"], "application/json");
                assert_eq!(res.headers()["cache-control"], "no-store");
                let body: Value = res.json().await.unwrap();
                assert_eq!(body["token_type"], "bearer");
                assert_eq!(body["expires_in"], 3600);
                assert_eq!(
                    body["scope"],
                    "a b sellingpartnerapi::client_credential:rotation"
                );
                let claims = verify_with_jwks(&app, body["access_token"].as_str().unwrap()).await;
                assert_eq!(claims["client_id"], id);
                assert_eq!(claims["sub"], id);
                assert_eq!(claims["sid"], created.secret.id.to_string());
                assert!(claims["jti"].is_string() && claims["iat"].is_i64());
                assert_eq!(
                    claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
                    3600
                );
                if path.starts_with("/csp") {
                    assert!(body.as_object().unwrap().contains_key("id_token"));
                    assert!(body["id_token"].is_null());
                    assert_eq!(claims["context_name"], app.org_id.to_string());
                    assert_eq!(claims["perms"], json!([]));
                } else {
                    assert!(!body.as_object().unwrap().contains_key("id_token"));
                    assert!(claims.get("context_name").is_none());
                }
            }
        }
        app.shutdown().await;
    }
}

#[tokio::test]
async fn the_lwa_path_accepts_a_json_body_and_a_subset_of_scopes() {
    let app = spawn_app().await;
    let created = app.create_app(json!({})).await;
    let res = app
        .http
        .post(app.url("/auth/o2/token"))
        .json(&json!({
            "grant_type": "client_credentials",
            "client_id": created.app.client_id,
            "client_secret": created.client_secret,
            "scope": "sellingpartnerapi::client_credential:rotation",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["scope"],
        "sellingpartnerapi::client_credential:rotation"
    );
}

#[tokio::test]
async fn an_unencoded_scope_with_colons_is_accepted_on_the_lwa_path() {
    let app = spawn_app().await;
    let c = app.create_app(json!({})).await;
    let body = format!(
        "grant_type=client_credentials&scope=sellingpartnerapi::client_credential:rotation&client_id={}&client_secret={}",
        c.app.client_id, c.client_secret
    );
    let res = app
        .http
        .post(app.url("/auth/o2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_csp_service_account_token_carries_its_org_and_perms() {
    let app = spawn_app().await;
    let c = app
        .create_app(json!({ "serviceAccountRole": "developer" }))
        .await;
    let res = app
        .token_basic(
            "/csp/gateway/am/api/auth/authorize",
            &c.app.client_id,
            &c.client_secret,
            &[
                ("grant_type", "client_credentials"),
                ("orgId", &app.org_id.to_string()),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let claims = verify_with_jwks(&app, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["perms"], json!(["csp:developer"]));
    assert_eq!(claims["context_name"], app.org_id.to_string());

    let other_org = uuid::Uuid::new_v4().to_string();
    let res = app
        .token_basic(
            "/csp/gateway/am/api/auth/token",
            &c.app.client_id,
            &c.client_secret,
            &[("grant_type", "client_credentials"), ("orgId", &other_org)],
        )
        .await;
    assert_oauth_error(res, 400, "unauthorized_client").await;
}

#[tokio::test]
async fn bad_requests_get_the_rfc_6749_error_and_status_on_every_path() {
    let app = spawn_app().await;
    let c = app.create_app(json!({})).await;
    let (id, secret) = (c.app.client_id.as_str(), c.client_secret.as_str());
    for path in TOKEN_PATHS {
        let lwa = path == "/auth/o2/token";
        let form_status = if lwa { 401 } else { 400 };
        // Wrong secret, unknown client: Basic is 401 with a challenge.
        let res = app.token_basic(path, id, "rks_wrong", &CC).await;
        assert!(res.headers().contains_key("www-authenticate"));
        assert_oauth_error(res, 401, "invalid_client").await;
        assert_oauth_error(
            app.token_post(path, id, "rks_wrong", &CC).await,
            form_status,
            "invalid_client",
        )
        .await;
        assert_oauth_error(
            app.token_basic(path, "rkc_nobody", secret, &CC).await,
            401,
            "invalid_client",
        )
        .await;
        // No credentials at all.
        let res = app.http.post(app.url(path)).form(&CC).send().await.unwrap();
        assert_oauth_error(res, form_status, "invalid_client").await;
        // Malformed Basic header.
        let res = app
            .http
            .post(app.url(path))
            .header("authorization", "Basic %%%")
            .form(&CC)
            .send()
            .await
            .unwrap();
        assert_oauth_error(res, 401, "invalid_client").await;
        // Grant types.
        assert_oauth_error(
            app.token_basic(path, id, secret, &[("grant_type", "password")])
                .await,
            400,
            "unsupported_grant_type",
        )
        .await;
        assert_oauth_error(
            app.token_basic(path, id, secret, &[]).await,
            400,
            "invalid_request",
        )
        .await;
        // Scope not allowed.
        let body = assert_oauth_error(
            app.token_basic(
                path,
                id,
                secret,
                &[("grant_type", "client_credentials"), ("scope", "a c")],
            )
            .await,
            400,
            "invalid_scope",
        )
        .await;
        assert!(body["error_description"].as_str().unwrap().contains('c'));
        // Duplicated parameter.
        let res = app
            .http
            .post(app.url(path))
            .basic_auth(id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_oauth_error(res, 400, "invalid_request").await;
        // Two authentication methods at once.
        let res = app
            .token_basic(
                path,
                id,
                secret,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_secret", secret),
                ],
            )
            .await;
        assert_oauth_error(res, 400, "invalid_request").await;
        // Wrong content type (JSON is LWA-only; XML nowhere).
        let res = app
            .http
            .post(app.url(path))
            .basic_auth(id, Some(secret))
            .header("content-type", "application/xml")
            .body("<x/>")
            .send()
            .await
            .unwrap();
        assert_oauth_error(res, 400, "invalid_request").await;
        if !lwa {
            let res = app
                .http
                .post(app.url(path))
                .basic_auth(id, Some(secret))
                .json(&json!({"grant_type": "client_credentials"}))
                .send()
                .await
                .unwrap();
            assert_oauth_error(res, 400, "invalid_request").await;
        }
        // Body over the limit.
        let big = format!(
            "grant_type=client_credentials&pad={}",
            "x".repeat(70 * 1024)
        );
        let res = app
            .http
            .post(app.url(path))
            .basic_auth(id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(big)
            .send()
            .await
            .unwrap();
        assert_oauth_error(res, 413, "invalid_request").await;
    }
}

#[tokio::test]
async fn an_app_without_the_client_credentials_grant_is_unauthorized() {
    let app = spawn_app().await;
    let c = app.create_app(json!({ "grantTypes": [] })).await;
    let res = app
        .token_basic("/oauth2/token", &c.app.client_id, &c.client_secret, &CC)
        .await;
    assert_oauth_error(res, 400, "unauthorized_client").await;
}

#[tokio::test]
async fn a_secret_past_expires_at_is_refused_on_the_very_next_request() {
    let app = spawn_app().await;
    let c = app.create_app(json!({ "secretLifetimeSeconds": 60 })).await;
    let (id, secret) = (c.app.client_id.as_str(), c.client_secret.as_str());
    app.clock.advance(Duration::from_millis(59_999));
    assert_eq!(
        app.token_basic("/oauth2/token", id, secret, &CC)
            .await
            .status(),
        200
    );
    app.clock.advance(Duration::from_millis(1));
    assert_oauth_error(
        app.token_basic("/oauth2/token", id, secret, &CC).await,
        401,
        "invalid_client",
    )
    .await;
}

#[tokio::test]
async fn a_revoked_secret_is_refused_and_its_tokens_stop_working() {
    let app = spawn_app().await;
    let c = app
        .create_app(json!({ "serviceAccountRole": "developer" }))
        .await;
    let (id, secret) = (c.app.client_id.as_str(), c.client_secret.as_str());
    let res = app
        .token_basic("/csp/gateway/am/api/auth/token", id, secret, &CC)
        .await;
    let app_token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let apps_url = app.url(&format!("/api/v1/orgs/{}/apps", app.org_id));
    assert_eq!(
        app.http
            .get(&apps_url)
            .bearer_auth(&app_token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let owner = app.owner_access_token().await;
    let res = app
        .http
        .post(app.url(&format!(
            "/api/v1/orgs/{}/apps/{}/secrets/{}/revoke",
            app.org_id, c.app.id, c.secret.id
        )))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["state"], "revoked");

    assert_oauth_error(
        app.token_basic("/oauth2/token", id, secret, &CC).await,
        401,
        "invalid_client",
    )
    .await;
    let res = app
        .http
        .get(&apps_url)
        .bearer_auth(&app_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn repeated_failures_are_throttled_per_client_and_per_address_but_a_valid_secret_passes() {
    let mut config = test_config();
    config.auth_failures_per_client = 3;
    config.auth_failures_per_address = 5;
    let app = spawn_app_on(TestDb::sqlite().await, config).await;
    let c = app.create_app(json!({})).await;
    let other = app.create_app(json!({})).await;
    let (id, secret) = (c.app.client_id.as_str(), c.client_secret.as_str());
    for _ in 0..2 {
        let res = app.token_basic("/oauth2/token", id, "rks_guess", &CC).await;
        assert_eq!(res.status(), 401);
    }
    // The third failure reaches the client's budget: failures now get 429 with Retry-After.
    let res = app.token_basic("/oauth2/token", id, "rks_guess", &CC).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_oauth_error(res, 429, "slow_down").await;
    // The real client is never locked out by failures in its name.
    let res = app.token_basic("/oauth2/token", id, secret, &CC).await;
    assert_eq!(res.status(), 200);
    // The address's budget (5) is spent by failures for other ids...
    for _ in 0..2 {
        app.token_basic("/oauth2/token", "rkc_other", "x", &CC)
            .await;
    }
    let res = app
        .token_basic("/oauth2/token", "rkc_third", "x", &CC)
        .await;
    assert_oauth_error(res, 429, "slow_down").await;
    // ...and another client with a valid secret from the same address still gets its token.
    let res = app
        .token_basic(
            "/oauth2/token",
            &other.app.client_id,
            &other.client_secret,
            &CC,
        )
        .await;
    assert_eq!(res.status(), 200);
    app.clock.advance(Duration::from_secs(60));
    let res = app.token_basic("/oauth2/token", id, "rks_guess", &CC).await;
    assert_eq!(res.status(), 401, "a new window");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_clients_and_guesses_count_per_client()
{
    let mut config = test_config();
    config.auth_failures_per_client = 10;
    config.auth_failures_per_address = 3;
    config.trusted_proxies = vec!["127.0.0.1/32".into()];
    let app = spawn_app_on(TestDb::sqlite().await, config).await;
    let c = app.create_app(json!({})).await;
    let id = c.app.client_id.as_str();
    // Guesses for one client from nine addresses, each under its own budget (3)...
    for n in 0..9 {
        let res = app
            .http
            .post(app.url("/oauth2/token"))
            .basic_auth(id, Some("rks_guess"))
            .header("x-forwarded-for", format!("203.0.113.{n}"))
            .form(&CC)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "guess {n}");
    }
    let res = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(id, Some("rks_guess"))
        .header("x-forwarded-for", "203.0.113.99")
        .form(&CC)
        .send()
        .await
        .unwrap();
    // ...and the tenth, from yet another, reaches the client's budget (10).
    assert_oauth_error(res, 429, "slow_down").await;
    // The audit trail names the client's address: the right-most untrusted hop (a client
    // cannot choose it by sending its own X-Forwarded-For through the proxy).
    let source =
        audited_source_of_a_deletion(&app, &[("x-forwarded-for", "6.6.6.6, 198.51.100.7")]).await;
    assert_eq!(source.as_deref(), Some("198.51.100.7"));
}

/// Deletes a new app with `headers` on the request; the audit event's `source`.
async fn audited_source_of_a_deletion(app: &TestApp, headers: &[(&str, &str)]) -> Option<String> {
    let c = app.create_app(json!({})).await;
    let token = app.owner_access_token().await;
    let mut req = app
        .http
        .delete(app.url(&format!("/api/v1/orgs/{}/apps/{}", app.org_id, c.app.id)))
        .bearer_auth(&token);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    assert_eq!(req.send().await.unwrap().status(), 204);
    let events = app
        .store()
        .list_audit(
            &rekey_core::store::AuditFilter {
                action: Some("app.deleted".into()),
                ..rekey_core::store::AuditFilter::org(app.org_id)
            },
            rekey_core::store::Page::default(),
        )
        .await
        .unwrap();
    events[0].source.clone()
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let app = spawn_app().await;
    let headers = [
        ("x-forwarded-for", "198.51.100.7"),
        ("forwarded", "for=198.51.100.8"),
    ];
    let source = audited_source_of_a_deletion(&app, &headers).await;
    assert_eq!(source.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn last_use_appears_after_a_flush_and_a_crash_loses_only_unflushed_last_use() {
    for db in TestDb::all().await {
        let app = spawn_app_on(db, test_config()).await;
        let c = app.create_app(json!({})).await;
        let (id, secret) = (c.app.client_id.clone(), c.client_secret.clone());
        assert_eq!(
            app.token_basic("/oauth2/token", &id, &secret, &CC)
                .await
                .status(),
            200
        );
        let first_use = app.clock.now_for_test();
        let stored = app
            .store()
            .get_secret(rekey_core::model::SecretId(c.secret.id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.last_used_at, None, "no write per token request");
        app.flush_last_use().await;
        let stored = app
            .store()
            .get_secret(rekey_core::model::SecretId(c.secret.id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.last_used_at, Some(first_use));

        // A later use that is never flushed is lost in a crash; nothing else is.
        app.clock.advance(Duration::from_secs(5));
        assert_eq!(
            app.token_basic("/oauth2/token", &id, &secret, &CC)
                .await
                .status(),
            200
        );
        let key = app.key.clone();
        let db = app.crash();
        let after = db
            .store
            .list_secrets(rekey_core::model::AppId(c.app.id))
            .await
            .unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].state, SecretState::Current);
        assert_eq!(after[0].last_used_at, Some(first_use));

        // Restarted on the same database and key, the app still authenticates.
        let app = crate::helpers::spawn_app_with_key(db, test_config(), key).await;
        assert_eq!(
            app.token_basic("/oauth2/token", &id, &secret, &CC)
                .await
                .status(),
            200
        );
        app.shutdown().await;
    }
}

#[tokio::test]
async fn graceful_shutdown_flushes_last_use() {
    let app = spawn_app().await;
    let c = app.create_app(json!({})).await;
    assert_eq!(
        app.token_basic("/oauth2/token", &c.app.client_id, &c.client_secret, &CC)
            .await
            .status(),
        200
    );
    let db = app.shutdown().await;
    let s = db
        .store
        .list_secrets(rekey_core::model::AppId(c.app.id))
        .await
        .unwrap();
    assert!(s[0].last_used_at.is_some());
}

#[tokio::test]
async fn a_user_exchanges_an_api_token_in_the_form_or_the_query() {
    let app = spawn_app().await;
    let path = "/csp/gateway/am/api/auth/api-tokens/authorize";
    let res = app
        .http
        .post(app.url(path))
        .form(&[("api_token", app.owner_api_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(body["id_token"].is_null());
    assert_eq!(body["refresh_token"], app.owner_api_token);
    assert_eq!(body["expires_in"], 1800);
    let claims = verify_with_jwks(&app, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["perms"], json!(["csp:org_owner"]));
    assert_eq!(claims["context_name"], app.org_id.to_string());

    let res = app
        .http
        .post(app.url(path))
        .form(&[("refresh_token", app.owner_api_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .http
        .post(app.url(&format!("{path}?refresh_token={}", app.owner_api_token)))
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let res = app
        .http
        .post(app.url(path))
        .form(&[("api_token", "rkt_nope")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, 400, "invalid_grant").await;
    let res = app
        .http
        .post(app.url(path))
        .form(&[("other", "x")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn metadata_jwks_and_the_csp_public_key_describe_the_signing_key() {
    let app = spawn_app().await;
    let meta: Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], app.base);
    assert_eq!(meta["token_endpoint"], app.url("/oauth2/token"));
    assert_eq!(meta["jwks_uri"], app.url("/.well-known/jwks.json"));
    let jwks: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    let csp: Value = app
        .http
        .get(app.url("/csp/gateway/am/api/auth/token-public-key"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(csp["value"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(csp["issuer"], app.base);
}

#[tokio::test]
async fn a_new_signing_key_signs_while_tokens_of_the_old_one_still_verify() {
    let app = spawn_app().await;
    let c = app
        .create_app(json!({ "serviceAccountRole": "developer" }))
        .await;
    let old = app
        .token_basic(
            "/csp/gateway/am/api/auth/token",
            &c.app.client_id,
            &c.client_secret,
            &CC,
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let old_jwt = old["access_token"].as_str().unwrap().to_string();
    // A second later (a key made in the same millisecond as the first would tie with it),
    // signing from its creation (no pre-publication): it takes over at once.
    app.clock.advance(std::time::Duration::from_secs(1));
    let now = app.clock.now_for_test();
    let new_key = rekey_core::token::generate_signing_key(&app.key.sealer("signing-keys"), now);
    app.store()
        .add_signing_key(&new_key, now.plus_secs(3600), &[])
        .await
        .unwrap();
    app.state.reload_keys().await.unwrap();

    let new = app
        .token_basic("/oauth2/token", &c.app.client_id, &c.client_secret, &CC)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(new["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new_key.kid.as_str()));
    verify_with_jwks(&app, &old_jwt).await;
    let apps_url = app.url(&format!("/api/v1/orgs/{}/apps", app.org_id));
    assert_eq!(
        app.http
            .get(&apps_url)
            .bearer_auth(&old_jwt)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

trait NowForTest {
    fn now_for_test(&self) -> rekey_core::Timestamp;
}

impl NowForTest for std::sync::Arc<rekey_core::ManualClock> {
    fn now_for_test(&self) -> rekey_core::Timestamp {
        use rekey_core::Clock as _;
        self.now()
    }
}

#[tokio::test]
async fn a_client_id_rekey_never_issues_fails_as_an_unknown_client() {
    let app = spawn_app().await;
    for id in ["abc", "has.dot", &"x".repeat(300), "nul\u{0}byte"] {
        let res = app.token_post("/oauth2/token", id, "rks_x", &CC).await;
        assert_oauth_error(res, 400, "invalid_client").await;
    }
}
