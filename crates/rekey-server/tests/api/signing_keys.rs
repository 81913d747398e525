//! Signing keys across nodes that share a database.

use std::sync::Arc;

use rekey_core::clock::SystemClock;
use rekey_core::crypto::ServerKey;
use rekey_core::store::Store;
use rekey_server::Application;
use rekey_store::testing::TestDb;

use crate::helpers::test_config;

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
