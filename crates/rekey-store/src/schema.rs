//! The schema's version, checked by every command that opens the database.
//!
//! Rolling upgrades (`docs/upgrading.md`) run binaries of two releases against one database,
//! migrated by the newer one. Schema changes are expand-then-contract, and each migration
//! records in `schema_compat` the oldest migration a binary must know to run against it. A
//! binary that finds migrations newer than it knows starts when every one of them lists a
//! version it knows, and refuses with what to do otherwise; a database behind the binary is
//! migrated (`auto_migrate`) or refused.

use std::borrow::Cow;

use rekey_core::error::{CoreError, CoreResult};
use sqlx::migrate::Migrator;
use sqlx::Row as _;

use crate::rows::db_err;
use crate::sql_store::{Backend, SqlStore};

pub(crate) static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
pub(crate) static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// A migration by version and description.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MigrationRef {
    pub version: i64,
    pub description: String,
}

/// A migration applied to the database that this binary does not know (a newer release ran).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NewerMigration {
    pub version: i64,
    pub description: String,
    /// The oldest migration a binary must know to run against it; `None`: not recorded, so
    /// only binaries that know this migration may run.
    pub oldest_compatible: Option<i64>,
}

/// How the database's schema compares with this binary's migrations.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SchemaStatus {
    /// The newest migration this binary knows.
    pub known: i64,
    /// The newest migration applied to the database (0: none).
    pub applied: i64,
    /// Migrations this binary has that the database has not applied.
    pub pending: Vec<MigrationRef>,
    /// Migrations the database has that this binary does not know.
    pub newer: Vec<NewerMigration>,
}

impl SchemaStatus {
    /// The newer migrations this binary cannot run against.
    pub fn incompatible(&self) -> Vec<&NewerMigration> {
        self.newer
            .iter()
            .filter(|m| m.oldest_compatible.is_none_or(|v| v > self.known))
            .collect()
    }

    /// Why this binary must not run against the database as it is (migrating aside), if
    /// it must not.
    pub fn refusal(&self) -> Option<String> {
        let incompatible = self.incompatible();
        let first = incompatible.first()?;
        Some(format!(
            "the database has migration {} ({}), which this binary cannot run against: it knows \
             migrations up to {} and the database says a binary must know at least {}. Run \
             this command with the newer release that applied it (see docs/upgrading.md); \
             nothing was changed",
            first.version,
            first.description,
            self.known,
            first
                .oldest_compatible
                .map_or_else(|| first.version.to_string(), |v| v.to_string()),
        ))
    }
}

/// The newest migration this binary knows (the same on both backends).
pub fn newest_known_migration() -> i64 {
    SQLITE_MIGRATIONS
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

impl SqlStore {
    fn migrator(&self) -> &'static Migrator {
        match self.kind() {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Compares the database's applied migrations with this binary's. Reads only.
    pub async fn schema_status(&self) -> CoreResult<SchemaStatus> {
        let migrator = self.migrator();
        let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Vec<(i64, String)> = if self.table_exists("_sqlx_migrations").await? {
            sqlx::query(
                "SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db_err)?
        } else {
            Vec::new()
        };
        let pending = migrator
            .iter()
            .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
            .map(|m| MigrationRef {
                version: m.version,
                description: m.description.to_string(),
            })
            .collect();
        let mut newer = Vec::new();
        for (version, description) in &applied {
            if migrator.version_exists(*version) {
                continue;
            }
            newer.push(NewerMigration {
                version: *version,
                description: description.clone(),
                oldest_compatible: self.oldest_compatible(*version).await?,
            });
        }
        Ok(SchemaStatus {
            known,
            applied: applied.last().map_or(0, |(v, _)| *v),
            pending,
            newer,
        })
    }

    async fn oldest_compatible(&self, version: i64) -> CoreResult<Option<i64>> {
        if !self.table_exists("schema_compat").await? {
            return Ok(None);
        }
        sqlx::query_scalar("SELECT oldest_compatible FROM schema_compat WHERE version = $1")
            .bind(version)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn table_exists(&self, name: &str) -> CoreResult<bool> {
        let sql = match self.kind() {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1"
            }
            // The first schema on the search path, as unqualified statements see it.
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_name = $1 AND table_schema = current_schema()"
            }
        };
        let n: i64 = sqlx::query_scalar(sql)
            .bind(name.to_string())
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(n > 0)
    }

    /// Makes sure this binary may run against the database: refuses migrations it cannot
    /// run against; applies its pending migrations when `auto_migrate`, else refuses them.
    /// Migrations newer than this binary that allow it are logged and left alone.
    pub async fn prepare_schema(&self, auto_migrate: bool) -> CoreResult<SchemaStatus> {
        let mut status = self.schema_status().await?;
        if let Some(refusal) = status.refusal() {
            return Err(CoreError::Invalid(refusal));
        }
        if !status.pending.is_empty() {
            if !auto_migrate {
                let list: Vec<String> = status
                    .pending
                    .iter()
                    .map(|m| format!("{} ({})", m.version, m.description))
                    .collect();
                return Err(CoreError::Invalid(format!(
                    "the database schema is behind this binary: migration(s) {} not applied, \
                     and auto_migrate is off. Run `rekey migrate` with this binary first (see \
                     docs/upgrading.md)",
                    list.join(", ")
                )));
            }
            self.run_migrations().await?;
            status = self.schema_status().await?;
        }
        if !status.newer.is_empty() {
            tracing::info!(
                known = status.known,
                applied = status.applied,
                "the database has newer migrations that this binary runs against (a rolling \
                 upgrade is under way); upgrade this node"
            );
        }
        Ok(status)
    }

    /// Applies this binary's pending migrations, leaving newer ones (already checked) alone.
    async fn run_migrations(&self) -> CoreResult<()> {
        // sqlx refuses applied migrations it does not know unless told to ignore them; the
        // caller has checked that each of them allows this binary.
        let migrator = Migrator {
            migrations: Cow::Owned(self.migrator().iter().cloned().collect()),
            ignore_missing: true,
            ..Migrator::DEFAULT
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| CoreError::storage("migration failed", e))
    }
}
