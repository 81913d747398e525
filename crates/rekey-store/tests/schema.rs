//! The schema check every command runs when it opens the database (docs/upgrading.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use rekey_store::testing::TestDb;
use rekey_store::{Backend, SqlStore};

/// Records a migration as a newer release would have applied it: its table, its row in
/// `_sqlx_migrations` and, when given, the oldest migration a binary must know.
async fn apply_newer_migration(store: &SqlStore, version: i64, oldest_compatible: Option<i64>) {
    let checksum = match store.kind() {
        Backend::Sqlite => "zeroblob(48)",
        Backend::Postgres => "'\\x00'::bytea",
    };
    store
        .execute_raw(&format!(
            "CREATE TABLE future_{version} (id TEXT PRIMARY KEY)"
        ))
        .await
        .unwrap();
    store
        .execute_raw(&format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES ({version}, 'future {version}', TRUE, {checksum}, 1)"
        ))
        .await
        .unwrap();
    if let Some(v) = oldest_compatible {
        store
            .execute_raw(&format!(
                "INSERT INTO schema_compat (version, oldest_compatible) VALUES ({version}, {v})"
            ))
            .await
            .unwrap();
    }
}

/// A rolling upgrade: a newer release migrated the database while this one still runs. An
/// additive migration that says this release may run against it is accepted (this binary
/// migrates and starts); one that does not say so is refused, naming it and what to do.
/// Before, sqlx refused any migration it did not know: "previously applied but is missing".
#[tokio::test]
async fn newer_migrations_are_run_against_when_marked_compatible_and_refused_otherwise() {
    for db in TestDb::all().await {
        let known = rekey_store::newest_known_migration();
        apply_newer_migration(&db.store, 9001, Some(known)).await;
        let status = db.store.prepare_schema(true).await.expect("compatible");
        assert_eq!(status.applied, 9001, "{}", db.url);
        assert_eq!(status.known, known);
        assert!(status.pending.is_empty());
        assert_eq!(status.newer.len(), 1);
        assert!(db.store.prepare_schema(false).await.is_ok());

        // Needs a binary that knows migration 9002 itself (a contract step).
        apply_newer_migration(&db.store, 9002, Some(9002)).await;
        let refused = db.store.prepare_schema(true).await.unwrap_err().to_string();
        assert!(refused.contains("migration 9002"), "{refused}");
        assert!(refused.contains("cannot run against"), "{refused}");
        assert!(refused.contains("docs/upgrading.md"), "{refused}");
        assert_eq!(
            db.store.schema_status().await.unwrap().incompatible().len(),
            1
        );
    }
}

/// Not marked at all (a migration from before the marks, or a mistake): refused too.
#[tokio::test]
async fn a_newer_migration_without_a_compatibility_mark_is_refused() {
    let db = TestDb::sqlite().await;
    apply_newer_migration(&db.store, 9003, None).await;
    let refused = db.store.prepare_schema(true).await.unwrap_err().to_string();
    assert!(refused.contains("migration 9003"), "{refused}");
}

/// With `auto_migrate = false` a database behind the binary used to be served with no check
/// at all; now it is refused with the command to run.
#[tokio::test]
async fn a_database_behind_the_binary_is_refused_without_auto_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let url = SqlStore::sqlite_url(&dir.path().join("rekey.db"));
    let store = SqlStore::connect(&url, 2).await.unwrap();
    let refused = store.prepare_schema(false).await.unwrap_err().to_string();
    assert!(refused.contains("behind this binary"), "{refused}");
    assert!(refused.contains("rekey migrate"), "{refused}");
    let status = store.prepare_schema(true).await.unwrap();
    assert_eq!(status.applied, rekey_store::newest_known_migration());
    assert!(store.prepare_schema(false).await.is_ok());
}
