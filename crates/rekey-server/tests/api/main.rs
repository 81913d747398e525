//! End-to-end tests of the server over real HTTP on 127.0.0.1, one binary of modules.
//! Each test gets a fresh database (SQLite; the story-style tests also PostgreSQL).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

mod audiences;
mod authorization;
mod auto_rotation;
mod cross_org;
mod csp;
mod forged_tokens;
mod helpers;
mod introspection;
mod management;
mod no_leaks;
mod openapi;
mod rotation;
mod signing_keys;
mod spapi_errors;
mod spool;
mod sqs;
mod token_endpoints;
