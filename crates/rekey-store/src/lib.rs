//! SQLite and PostgreSQL implementations of [`rekey_core::store::Store`].
//!
//! One implementation, [`SqlStore`], runs the same SQL on both backends through sqlx's `Any`
//! driver: every statement is written in the common subset (`$n` parameters, `ON CONFLICT`,
//! partial unique indexes), times are integer milliseconds and flags are 0/1 integers, so
//! the only per-backend parts are the migration folders and the connection set-up, and one
//! read: the token endpoint's client lookup on SQLite runs on the calling thread with
//! rusqlite (`sqlite_reader.rs`), without sqlx's worker-thread hop.
//!
//! Locking: a change to an app's secrets starts its transaction with an `UPDATE` of the app
//! row. PostgreSQL takes a row lock there; SQLite takes its database write lock. Either way
//! the next change to the same app waits, then sees the committed secrets.
//!
//! Caching: [`SqlStore::with_client_cache`] keeps the token endpoint's client records in
//! memory; every write that touches an app row or its secrets invalidates them on every node
//! (see [`ClientCache`]).

mod client_cache;
mod copy;
mod rows;
mod schema;
mod sql_store;
mod sqlite_reader;

pub use client_cache::ClientCache;
pub use copy::CopiedTable;
pub use schema::{newest_known_migration, MigrationRef, NewerMigration, SchemaStatus};
pub use sql_store::{Backend, SqlStore};

#[cfg(feature = "testing")]
pub mod testing;
