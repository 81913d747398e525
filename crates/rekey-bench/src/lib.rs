//! Benchmark tools (see `bench/run.sh` and `BENCHMARKS.md`):
//! - `rekey-bench-baseline`: the bare baseline, an axum handler that parses the same form,
//!   checks one fixed secret the same way (HMAC-SHA-256, constant time) and signs the same JWT,
//!   with no store;
//! - `rekey-bench-seed`: fills a Rekey database with many apps quickly (bulk SQL), and prints
//!   the credentials of one app to load-test with.

use rekey_core::apps::AppSettings;
use rekey_core::model::GRANT_CLIENT_CREDENTIALS;

/// The settings of every benchmark app: client credentials, one scope, secrets that never
/// expire by age (so no expiry warnings interfere).
pub fn app_settings(name: &str) -> AppSettings {
    AppSettings {
        name: name.into(),
        description: String::new(),
        grant_types: vec![GRANT_CLIENT_CREDENTIALS.into()],
        scopes: vec!["read".into()],
        access_token_ttl_secs: 3600,
        secret_lifetime_secs: 0,
        rotation_grace_secs: 3600,
        owner_only_secret_rotation: false,
        audiences: Vec::new(),
        rotation_policy: Default::default(),
    }
}
