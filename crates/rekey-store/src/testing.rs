//! Fresh databases for tests: an SQLite file in a temporary directory, or a new schema in the
//! PostgreSQL database named by `REKEY_TEST_POSTGRES_URL`, so runs never see each other's data.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

use rekey_core::error::CoreError;

use rekey_core::store::Store as _;

use crate::SqlStore;

/// The environment variable that names the PostgreSQL server for tests.
pub const POSTGRES_URL_VAR: &str = "REKEY_TEST_POSTGRES_URL";

/// A migrated, empty store that lives as long as this value.
pub struct TestDb {
    pub store: SqlStore,
    /// The URL the store was opened with (includes the schema for PostgreSQL).
    pub url: String,
    /// For SQLite, the database file (tests search it for leaked secrets).
    pub sqlite_path: Option<std::path::PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("rekey.db");
        let url = SqlStore::sqlite_url(&path);
        let store = SqlStore::connect(&url, 4).await.expect("open sqlite");
        store.migrate().await.expect("migrate sqlite");
        store.set_audit_key(test_audit_key());
        Self {
            store,
            url,
            sqlite_path: Some(path),
            _dir: Some(dir),
        }
    }

    /// A fresh schema on the test PostgreSQL server, or `None` when none is configured.
    /// Panics when `CI=true` and PostgreSQL is missing or unreachable: CI must not skip.
    pub async fn postgres() -> Option<Self> {
        let Ok(base) = std::env::var(POSTGRES_URL_VAR) else {
            if in_ci() {
                panic!("{POSTGRES_URL_VAR} must be set in CI");
            }
            eprintln!("skipping PostgreSQL: {POSTGRES_URL_VAR} is not set");
            return None;
        };
        match Self::postgres_at(&base).await {
            Ok(db) => Some(db),
            Err(e) => panic!("PostgreSQL at {POSTGRES_URL_VAR} is unreachable: {e}"),
        }
    }

    async fn postgres_at(base: &str) -> Result<Self, CoreError> {
        use rekey_core::clock::{Clock as _, SystemClock};
        let secs = u64::try_from(SystemClock.now().as_secs()).unwrap_or(0);
        let schema = format!("rekey_test_{secs}_{}", uuid::Uuid::new_v4().simple());
        let admin = SqlStore::connect(base, 1).await?;
        admin
            .drop_stale_test_schemas(secs.saturating_sub(6 * 3600))
            .await?;
        admin
            .execute_raw(&format!("CREATE SCHEMA {schema}"))
            .await?;
        admin.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options[search_path]={schema}");
        let store = SqlStore::connect(&url, 4).await?;
        store.migrate().await?;
        store.set_audit_key(test_audit_key());
        Ok(Self {
            store,
            url,
            sqlite_path: None,
            _dir: None,
        })
    }

    /// Every backend to run a story on: SQLite always, PostgreSQL when configured.
    pub async fn all() -> Vec<Self> {
        let mut dbs = vec![Self::sqlite().await];
        dbs.extend(Self::postgres().await);
        dbs
    }
}

/// Whether the tests run in CI: `CI` set to anything but empty, `false` or `0`. There,
/// nothing may be skipped for want of a service.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The audit chains' key of test databases (a server started on one keeps it: the first
/// key set wins).
pub fn test_audit_key() -> rekey_core::crypto::KeyedHasher {
    rekey_core::crypto::KeyedHasher::new(&[7; 32])
}

impl SqlStore {
    /// Runs one statement with no parameters (test set-up only).
    pub async fn execute_raw(&self, sql: &str) -> Result<(), CoreError> {
        sqlx::query(sql)
            .execute(&self.pool)
            .await
            .map_err(crate::rows::db_err)?;
        Ok(())
    }

    /// The rows of one query with no parameters, every column read as text (cast them in
    /// the query); test inspection only.
    pub async fn query_texts(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, CoreError> {
        let rows = sqlx::query(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(crate::rows::db_err)?;
        rows.iter()
            .map(|r| {
                (0..sqlx::Row::len(r))
                    .map(|i| sqlx::Row::try_get(r, i).map_err(crate::rows::db_err))
                    .collect()
            })
            .collect()
    }

    /// Terminates the PostgreSQL backends matching a `pg_stat_activity` condition (tests
    /// that cut connections); one `true` per backend terminated.
    pub async fn terminate_backends(&self, condition: &str) -> Result<Vec<bool>, CoreError> {
        sqlx::query_scalar(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {condition}"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(crate::rows::db_err)
    }

    /// Drops test schemas made before `older_than` (seconds since the epoch).
    async fn drop_stale_test_schemas(&self, older_than: u64) -> Result<(), CoreError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'rekey_test_%'",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(crate::rows::db_err)?;
        for name in names {
            let made: Option<u64> = name
                .strip_prefix("rekey_test_")
                .and_then(|r| r.split('_').next())
                .and_then(|s| s.parse().ok());
            if made.is_some_and(|m| m < older_than) {
                self.execute_raw(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await?;
            }
        }
        Ok(())
    }
}
