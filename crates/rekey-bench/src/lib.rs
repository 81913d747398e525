//! Benchmark tools (see `bench/run.sh` and `BENCHMARKS.md`):
//! - `rekey-bench-baseline`: the bare baseline, an axum handler that parses the same form,
//!   checks one fixed secret the same way (HMAC-SHA-256, constant time) and signs the same JWT,
//!   with no store;
//! - `rekey-bench-seed`: fills a Rekey database with many apps quickly (bulk SQL), and prints
//!   the credentials of one app to load-test with.
