//! `rekey store copy`: every record of one database into a new, empty one (SQLite to
//! PostgreSQL as a deployment grows), read from one snapshot of the source and written in one
//! transaction on the target, then the counts compared. Rows are copied as they are: secret hashes, sealed keys and the key check stay
//! valid under the same server key.

use rekey_core::error::{CoreError, CoreResult};
use sqlx::any::AnyRow;
use sqlx::Row as _;

use crate::rows::db_err;
use crate::sql_store::{Backend, SqlStore};

/// The tables copied, parents first (foreign keys), with the columns that order them. Not
/// copied: `nodes` (each node reports itself), `rate_limits` (buckets refill),
/// `schema_compat` and `_sqlx_migrations` (the target's own migrations write them).
const TABLES: &[(&str, &str)] = &[
    ("orgs", "id"),
    ("users", "id"),
    ("memberships", "org_id, principal_kind, principal_id"),
    ("api_tokens", "id"),
    ("apps", "id"),
    ("secrets", "id"),
    ("signing_keys", "kid"),
    ("server_key_check", "id"),
    ("destinations", "id"),
    ("deliveries", "id"),
    ("audit_events", "seq"),
    ("audit_chain_heads", "chain"),
    ("audit_chain_start", "id"),
    ("revoked_tokens", "jti"),
    ("console_links", "hash"),
    ("console_sessions", "id"),
];

/// Rows read (and written) per statement.
const PAGE: i64 = 500;

/// How a column's values are carried across.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Int,
    Float,
    Bytes,
}

/// One table's count in the source and in the target after the copy.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CopiedTable {
    pub table: &'static str,
    pub source: i64,
    pub target: i64,
}

impl SqlStore {
    /// Copies every record of `self` into `target`, which must be migrated and empty.
    pub async fn copy_into(&self, target: &SqlStore) -> CoreResult<Vec<CopiedTable>> {
        for (table, _) in TABLES {
            // Written by the target's own migration; replaced by the source's below.
            if *table == "audit_chain_start" {
                continue;
            }
            if target.count(table).await? > 0 {
                return Err(CoreError::Invalid(format!(
                    "the target database is not empty (table {table} has rows): copy only into \
                     a new database; nothing was copied"
                )));
            }
        }
        // One snapshot of the source for every table and count: a node that was left running
        // cannot make the copy inconsistent (an app without its secrets, a chain without its
        // head), though what it writes after the snapshot is not copied.
        let mut source = self.pool.begin().await.map_err(db_err)?;
        if self.kind() == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *source)
                .await
                .map_err(db_err)?;
        }
        let mut source_counts = Vec::new();
        for (table, _) in TABLES {
            source_counts.push(count_in(&mut source, table).await?);
        }
        let mut tx = target.pool.begin().await.map_err(db_err)?;
        sqlx::query("DELETE FROM audit_chain_start")
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        for (table, order) in TABLES {
            let columns = target.columns(table).await?;
            let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
            let select = format!(
                "SELECT {} FROM {table} ORDER BY {order} LIMIT $1 OFFSET $2",
                names.join(", ")
            );
            let mut offset = 0;
            loop {
                let rows = sqlx::query(&select)
                    .bind(PAGE)
                    .bind(offset)
                    .fetch_all(&mut *source)
                    .await
                    .map_err(db_err)?;
                if rows.is_empty() {
                    break;
                }
                insert_rows(&mut tx, table, &columns, &rows).await?;
                offset += PAGE;
            }
        }
        if target.kind() == Backend::Postgres {
            // Explicit seq values leave the sequence behind: new events would collide.
            sqlx::query(
                "SELECT setval(pg_get_serial_sequence('audit_events', 'seq'), \
                 COALESCE((SELECT MAX(seq) FROM audit_events), 0) + 1, false)",
            )
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        source.rollback().await.map_err(db_err)?;
        let mut counts = Vec::new();
        for ((table, _), source) in TABLES.iter().zip(source_counts) {
            let copied = CopiedTable {
                table,
                source,
                target: target.count(table).await?,
            };
            if copied.source != copied.target {
                return Err(CoreError::Invalid(format!(
                    "table {table}: {} rows in the source's snapshot but {} in the target",
                    copied.source, copied.target
                )));
            }
            counts.push(copied);
        }
        Ok(counts)
    }

    async fn count(&self, table: &str) -> CoreResult<i64> {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }

    /// The table's columns and how to carry them, from this database's catalogue.
    async fn columns(&self, table: &str) -> CoreResult<Vec<(String, Kind)>> {
        let rows = match self.kind() {
            Backend::Sqlite => {
                sqlx::query("SELECT name, type FROM pragma_table_info($1) ORDER BY cid")
            }
            Backend::Postgres => sqlx::query(
                "SELECT column_name::TEXT, data_type::TEXT FROM information_schema.columns \
                 WHERE table_name = $1 AND table_schema = current_schema() \
                 ORDER BY ordinal_position",
            ),
        }
        .bind(table.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let name: String = r.try_get(0).map_err(db_err)?;
                let declared: String = r.try_get(1).map_err(db_err)?;
                let declared = declared.to_ascii_lowercase();
                let kind = if declared.contains("int") {
                    Kind::Int
                } else if declared.contains("double") || declared.contains("real") {
                    Kind::Float
                } else if declared.contains("bytea") || declared.contains("blob") {
                    Kind::Bytes
                } else if declared.contains("text") || declared.contains("char") {
                    Kind::Text
                } else {
                    return Err(CoreError::Invalid(format!(
                        "column {table}.{name} has a type the copy does not know: {declared}"
                    )));
                };
                Ok((name, kind))
            })
            .collect()
    }
}

async fn count_in(tx: &mut sqlx::Transaction<'static, sqlx::Any>, table: &str) -> CoreResult<i64> {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(&mut **tx)
        .await
        .map_err(db_err)
}

async fn insert_rows(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    table: &str,
    columns: &[(String, Kind)],
    rows: &[AnyRow],
) -> CoreResult<()> {
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let mut values = Vec::with_capacity(rows.len());
    let mut n = 0;
    for _ in rows {
        let params: Vec<String> = columns
            .iter()
            .map(|_| {
                n += 1;
                format!("${n}")
            })
            .collect();
        values.push(format!("({})", params.join(", ")));
    }
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES {}",
        names.join(", "),
        values.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for row in rows {
        for (i, (name, kind)) in columns.iter().enumerate() {
            let corrupt =
                |e: sqlx::Error| CoreError::Invalid(format!("cannot read {table}.{name}: {e}"));
            query = match kind {
                Kind::Text => query.bind(row.try_get::<Option<String>, _>(i).map_err(corrupt)?),
                Kind::Int => query.bind(read_int(row, i).map_err(corrupt)?),
                Kind::Float => query.bind(row.try_get::<Option<f64>, _>(i).map_err(corrupt)?),
                Kind::Bytes => query.bind(row.try_get::<Option<Vec<u8>>, _>(i).map_err(corrupt)?),
            };
        }
    }
    query.execute(&mut **tx).await.map_err(db_err)?;
    Ok(())
}

/// An integer column, whichever width the source declared it with.
fn read_int(row: &AnyRow, i: usize) -> Result<Option<i64>, sqlx::Error> {
    match row.try_get::<Option<i64>, _>(i) {
        Ok(v) => Ok(v),
        Err(_) => row.try_get::<Option<i32>, _>(i).map(|v| v.map(i64::from)),
    }
}
