//! Signing keys across nodes that share a database.

use std::sync::Arc;

use base64::Engine as _;
use rekey_core::clock::{Clock as _, SystemClock};
use rekey_core::crypto::ServerKey;
use rekey_core::store::Store;
use rekey_core::token::generate_signing_key;
use rekey_server::Application;
use rekey_store::testing::TestDb;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_on, test_config};

/// Two nodes starting together on an empty database used to make a signing key each, and
/// the second retired the first at once: tokens of the first node failed everywhere. Now the
/// database allows one signing key, and every node signs with it.
#[tokio::test]
async fn nodes_starting_together_on_an_empty_database_sign_with_one_key() {
    for db in TestDb::all().await {
        let key = ServerKey::generate();
        let store: Arc<dyn Store> = Arc::new(db.store.clone());
        let starts: Vec<_> = (0..4)
            .map(|_| {
                let (store, key) = (store.clone(), key.clone());
                tokio::spawn(async move {
                    let app =
                        Application::build_with(test_config(), store, Arc::new(SystemClock), &key)
                            .await
                            .expect("node starts");
                    app.state().keys().signing_kid().to_string()
                })
            })
            .collect();
        let mut kids = Vec::new();
        for s in starts {
            kids.push(s.await.unwrap());
        }
        let stored = store.list_signing_keys().await.unwrap();
        assert_eq!(stored.len(), 1, "{}: {stored:?}", db.url);
        assert_eq!(stored[0].publish_until, None);
        assert!(kids.iter().all(|k| *k == stored[0].kid), "{kids:?}");
    }
}

/// A rotation as `rekey signing-keys rotate` makes it: the new key is published at once and
/// signs only `signing_key_prepublish_seconds` later. Node A reloads at once, node B has not
/// yet: A's tokens still verify on B. When the new key takes over, A signs with it without a
/// reload, and B, which reloaded within its interval, verifies those tokens too.
#[tokio::test]
async fn a_signing_key_rotation_never_makes_a_token_another_node_refuses() {
    for db in TestDb::all().await {
        let mut config = test_config();
        config.public_url = "http://rekey.test".into();
        let a = spawn_app_on(db, config.clone()).await;
        let b = Application::build_with(
            config.clone(),
            Arc::new(a.db.store.clone()),
            a.clock.clone(),
            &a.key,
        )
        .await
        .unwrap();
        let b_url = format!("http://{}", b.local_addr());
        let b_state = b.state();
        let b_server = tokio::spawn(b.run_until(std::future::pending()));
        let created = a.create_app(json!({})).await;
        let (id, secret) = (created.app.client_id.clone(), created.client_secret.clone());
        let token_from_a = || async {
            let res = a
                .token_basic(
                    "/oauth2/token",
                    &id,
                    &secret,
                    &[("grant_type", "client_credentials")],
                )
                .await;
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let status_on_b = |token: String| {
            let url = format!("{b_url}/api/v1/signing-keys");
            async move {
                reqwest::Client::new()
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        let kid_of = |jwt: &str| jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap();

        let now = a.clock.now();
        let mut new = generate_signing_key(&a.key.sealer("signing-keys"), now);
        let from = now.plus_secs(config.signing_key_prepublish_seconds);
        new.signs_from = Some(from);
        a.store()
            .add_signing_key(
                &new,
                from.plus_secs(config.signing_key_overlap_seconds),
                &[],
            )
            .await
            .unwrap();
        a.state.reload_keys().await.unwrap();
        let before = token_from_a().await;
        assert_ne!(
            kid_of(&before),
            new.kid,
            "the new key signs only from its time"
        );
        assert_eq!(status_on_b(before).await, 200, "{}", db_name(&a));
        assert!(published_kids(&a.base).await.contains(&new.kid));

        b_state.reload_keys().await.unwrap();
        // Tokens carry whole seconds: the first one issued at or after the key's time.
        a.clock.advance(std::time::Duration::from_secs(
            config.signing_key_prepublish_seconds as u64 + 1,
        ));
        let after = token_from_a().await;
        assert_eq!(
            kid_of(&after),
            new.kid,
            "the new key signs from its time, without a reload"
        );
        assert_eq!(status_on_b(after).await, 200);
        // CSP clients verify with the one key this endpoint names: the new one from its time
        // on, on a node that has not reloaded since either.
        let url = format!("{b_url}/csp/gateway/am/api/auth/token-public-key");
        let pem: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(&new.public_key);
        let expected = base64::engine::general_purpose::STANDARD.encode(der);
        assert!(pem["value"].as_str().unwrap().contains(&expected), "{pem}");
        b_server.abort();
        a.shutdown().await;
    }
}

fn db_name(app: &crate::helpers::TestApp) -> &str {
    &app.db.url
}

/// Rotation through the native API is for server administrators only (an org owner runs
/// one org, not the server); it publishes the key before it signs, like the CLI, and refuses a
/// second rotation while the first key waits.
#[tokio::test]
async fn only_a_server_administrator_rotates_the_signing_key_through_the_api() {
    let app = crate::helpers::spawn_app().await;
    let owner = app.owner_access_token().await;
    let rotate = |token: String| {
        let url = app.url("/api/v1/signing-keys");
        let http = app.http.clone();
        async move { http.post(url).bearer_auth(token).send().await.unwrap() }
    };
    let refused = rotate(owner.clone()).await;
    assert_eq!(refused.status(), 403);
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("server administrator"),
        "{problem}"
    );
    assert_eq!(app.store().list_signing_keys().await.unwrap().len(), 1);

    app.store()
        .set_server_admin(app.first_owner().await, true)
        .await
        .unwrap();
    let created = rotate(owner.clone()).await;
    assert_eq!(created.status(), 201);
    let key: Value = created.json().await.unwrap();
    let prepublish = app.state.config.signing_key_prepublish_seconds;
    let signs_from = app.clock.now().plus_secs(prepublish).to_rfc3339();
    assert_eq!(key["signsFrom"], signs_from.as_str(), "{key}");
    assert_eq!(key["signing"], false);
    // This node knows it at once (published in its JWKS), and still signs with the old key.
    assert!(published_kids(&app.base)
        .await
        .contains(&key["kid"].as_str().unwrap().to_string()));
    assert_ne!(app.state.keys().signing_kid(), key["kid"].as_str().unwrap());

    let again = rotate(owner).await;
    assert_eq!(again.status(), 409);
    let audit = app
        .store()
        .list_audit(
            &rekey_core::store::AuditFilter {
                action: Some("signing_key.rotated".into()),
                ..Default::default()
            },
            rekey_core::store::Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert!(audit[0].actor.starts_with("user:"), "{:?}", audit[0].actor);
    app.shutdown().await;
}

/// `signing_key_rotation_days`: the sweeper publishes the successor its pre-publication
/// before the current key's time is up, once; it signs from then, and the cycle repeats.
#[tokio::test]
async fn scheduled_rotation_publishes_each_successor_before_it_signs() {
    let mut config = test_config();
    config.signing_key_rotation_days = 2;
    let app = spawn_app_on(TestDb::sqlite().await, config.clone()).await;
    let first = app.store().list_signing_keys().await.unwrap()[0].clone();
    let prepublish = config.signing_key_prepublish_seconds;
    assert!(app
        .state
        .ops
        .rotate_signing_key_if_due()
        .await
        .unwrap()
        .is_none());

    let period = 2 * 86_400;
    let due = first.signs_from().plus_secs(period - prepublish);
    app.clock.advance(std::time::Duration::from_millis(
        (due.as_millis() - app.clock.now().as_millis() - 1000) as u64,
    ));
    assert!(
        app.state
            .ops
            .rotate_signing_key_if_due()
            .await
            .unwrap()
            .is_none(),
        "a second early"
    );
    app.clock.advance(std::time::Duration::from_secs(1));
    let second = app
        .state
        .ops
        .rotate_signing_key_if_due()
        .await
        .unwrap()
        .expect("due now");
    assert_eq!(second.signs_from(), first.signs_from().plus_secs(period));
    assert!(
        app.state
            .ops
            .rotate_signing_key_if_due()
            .await
            .unwrap()
            .is_none(),
        "one successor at a time"
    );
    assert_eq!(app.state.keys().signing_kid_at(app.clock.now()), first.kid);
    app.clock
        .advance(std::time::Duration::from_secs(prepublish as u64 + 1));
    assert_eq!(app.state.keys().signing_kid_at(app.clock.now()), second.kid);
    // The old key stays published for the overlap after the switch.
    assert_eq!(
        published_kids(&app.base).await,
        vec![first.kid.clone(), second.kid.clone()]
    );

    // Its successor is due its pre-publication before its own time is up.
    app.clock.advance(std::time::Duration::from_secs(
        (period - prepublish - 1) as u64,
    ));
    let third = app
        .state
        .ops
        .rotate_signing_key_if_due()
        .await
        .unwrap()
        .expect("the next one");
    assert_eq!(third.signs_from(), second.signs_from().plus_secs(period));
    app.shutdown().await;
}

/// The kids a node's JWKS publishes.
async fn published_kids(base: &str) -> Vec<String> {
    let jwks: Value = reqwest::get(format!("{base}/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}
