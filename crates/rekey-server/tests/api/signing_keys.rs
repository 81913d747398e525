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
        let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", a.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == new.kid));

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
