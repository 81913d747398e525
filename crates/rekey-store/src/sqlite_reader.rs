//! The client read of a token request on SQLite, without sqlx's worker thread (issue 16,
//! the cold path).
//!
//! sqlx runs each SQLite statement on a thread of its connection's own and hands the rows
//! back over a channel. For the one indexed read of a token request whose client is not in
//! the cache, those thread switches cost more than the read itself (BENCHMARKS.md, "The cold
//! path on SQLite"). This reader runs that read on the caller's thread with rusqlite (the
//! same SQLite library, linked once), on connections of its own that cannot write
//! (`query_only`). WAL lets them read beside the writer. SQLite may still answer "busy"
//! (while another connection recovers or truncates the log): the reader never waits for a
//! lock, since the caller is a runtime thread, and on that or any other SQLite error the
//! caller reads through sqlx as before. (A page not in the operating system's cache is still
//! read from disk on the caller's thread, as sqlx's worker would.)

use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rekey_core::error::CoreError;
use rekey_core::store::ClientRecord;
use rusqlite::{Connection, OpenFlags};

use crate::rows::{self, Columns};

pub(crate) struct SqliteReader {
    path: PathBuf,
    /// The client query ([`crate::sql_store::client_query`]).
    sql: String,
    idle: Mutex<Vec<Connection>>,
    /// Connections kept for the next read: one per runtime worker thread (a read runs
    /// synchronously on its caller's thread, so no more run at once).
    keep: usize,
    /// Set by [`SqliteReader::close`]: every read then goes to sqlx (whose pool is closed).
    closed: AtomicBool,
}

impl SqliteReader {
    /// A reader of the database file that `url` names. Call it once the pool has connected.
    /// `None` for an in-memory database, and for any URL setting other than `mode=rw`,
    /// `rwc` or `ro` (`mode=memory`, `vfs`, `immutable`, `cache`...): sqlx opens such a
    /// database differently, and this reader must read exactly what sqlx reads.
    pub(crate) fn for_url(url: &str, sql: String) -> Option<Self> {
        let plain = url.split_once('?').is_none_or(|(_, query)| {
            query
                .split('&')
                .all(|pair| matches!(pair, "mode=rw" | "mode=rwc" | "mode=ro"))
        });
        if !plain {
            return None;
        }
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
        let path = options.get_filename();
        // The pool has opened (and created) the file by now; an in-memory database has none.
        if !path.is_file() {
            return None;
        }
        Some(Self {
            path: path.to_path_buf(),
            sql,
            idle: Mutex::default(),
            keep: std::thread::available_parallelism().map_or(1, usize::from),
            closed: AtomicBool::new(false),
        })
    }

    /// Closes the idle connections; later reads go to sqlx.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.lock().clear();
    }

    /// The client's record, or `None` when SQLite could not answer at once: the caller then
    /// reads it through sqlx (which reports any lasting error).
    pub(crate) fn read_client(
        &self,
        client_id: &str,
    ) -> Option<Result<Option<ClientRecord>, CoreError>> {
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        let taken = self.lock().pop();
        let conn = match taken {
            Some(conn) => conn,
            None => match self.open() {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!(error = %e, "direct SQLite read unavailable; reading through sqlx");
                    return None;
                }
            },
        };
        match read(&conn, &self.sql, client_id) {
            Ok(record) => {
                let mut idle = self.lock();
                if idle.len() < self.keep && !self.closed.load(Ordering::SeqCst) {
                    idle.push(conn);
                }
                Some(record)
            }
            // The connection is dropped: whatever went wrong stays with it.
            Err(e) => {
                tracing::debug!(error = %e, "direct SQLite read failed; reading through sqlx");
                None
            }
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // rusqlite waits up to 5 s for a lock by default; a runtime thread must not.
        conn.busy_timeout(Duration::ZERO)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // A panic cannot leave the list half-changed; a poisoned lock is still usable.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// SQLite's errors end the direct read (the caller falls back); a stored value that does
/// not parse is the record's error, as it would be through sqlx.
fn read(
    conn: &Connection,
    sql: &str,
    client_id: &str,
) -> rusqlite::Result<Result<Option<ClientRecord>, CoreError>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut result = statement.query([client_id])?;
    let mut app = None;
    let mut secrets = Vec::with_capacity(2);
    while let Some(row) = result.next()? {
        let parsed = (|| -> Result<(), CoreError> {
            if app.is_none() {
                app = Some(rows::app(row)?);
            }
            if row.text("s_id")?.is_some() {
                secrets.push(rows::secret(row)?);
            }
            Ok(())
        })();
        if let Err(e) = parsed {
            return Ok(Err(e));
        }
    }
    Ok(Ok(app.map(|app| ClientRecord { app, secrets })))
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, col: &str) -> Result<Option<String>, CoreError> {
        self.get(col).map_err(column_err)
    }
    fn integer(&self, col: &str) -> Result<Option<i64>, CoreError> {
        self.get(col).map_err(column_err)
    }
    fn bytes(&self, col: &str) -> Result<Option<Vec<u8>>, CoreError> {
        self.get(col).map_err(column_err)
    }
}

fn column_err(e: rusqlite::Error) -> CoreError {
    CoreError::storage("database query failed", e)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

    use super::*;
    use rekey_core::store::Store as _;

    /// A migrated store on a new SQLite file in `dir`, with its URL.
    async fn migrated_store(dir: &tempfile::TempDir) -> (PathBuf, String, crate::SqlStore) {
        let path = dir.path().join("rekey.db");
        let url = crate::SqlStore::sqlite_url(&path);
        let store = crate::SqlStore::connect(&url, 1).await.unwrap();
        store.migrate().await.unwrap();
        (path, url, store)
    }

    /// A writer that holds the database (an exclusive transaction in rollback-journal
    /// mode) makes every other reader busy. The direct read must give way at once and leave
    /// the read to sqlx, not hold a runtime thread for rusqlite's default 5 s.
    #[tokio::test]
    async fn gives_way_at_once_to_a_writer_that_holds_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let (path, url, store) = migrated_store(&dir).await;
        store.close().await;
        // In WAL mode (the store's) readers never wait for a writer; the old journal makes
        // the lock that a WAL reader meets only in rare moments (recovery) easy to hold.
        let holder = Connection::open(&path).unwrap();
        let mode: String = holder
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete");
        let reader = SqliteReader::for_url(&url, crate::sql_store::client_query()).unwrap();
        assert!(matches!(reader.read_client("rkc_nobody"), Some(Ok(None))));

        holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let started = std::time::Instant::now();
        assert!(
            reader.read_client("rkc_nobody").is_none(),
            "a busy database is left to sqlx"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the direct read waited for the lock: {:?}",
            started.elapsed()
        );

        holder.execute_batch("COMMIT").unwrap();
        assert!(matches!(reader.read_client("rkc_nobody"), Some(Ok(None))));
    }

    #[test]
    fn an_in_memory_database_has_no_direct_reader() {
        assert!(SqliteReader::for_url("sqlite::memory:", String::new()).is_none());
    }

    /// sqlx honours `mode=memory`, `vfs` and the like: with those the reader could read
    /// another database (a file of the same name) or lock it differently, so there is none.
    #[test]
    fn only_a_plain_file_url_gets_a_direct_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rekey.db");
        std::fs::write(&path, b"").unwrap();
        let url = crate::SqlStore::sqlite_url(&path);
        assert!(url.ends_with("?mode=rwc"));
        assert!(SqliteReader::for_url(&url, String::new()).is_some());
        let bare = format!("sqlite://{}", path.display());
        assert!(SqliteReader::for_url(&bare, String::new()).is_some());
        for query in [
            "mode=memory",
            "vfs=unix-dotfile",
            "immutable=true",
            "mode=rwc&cache=shared",
        ] {
            let url = format!("sqlite://{}?{query}", path.display());
            assert!(
                SqliteReader::for_url(&url, String::new()).is_none(),
                "{query}"
            );
        }
    }

    /// After `close` the store answers nothing, the direct read included (its idle
    /// connection would still read the file).
    #[tokio::test]
    async fn a_closed_store_reads_no_client() {
        let dir = tempfile::tempdir().unwrap();
        let (_, _, store) = migrated_store(&dir).await;
        assert!(store.load_client("rkc_nobody").await.unwrap().is_none());
        store.close().await;
        assert!(store.load_client("rkc_nobody").await.is_err());
    }
}
