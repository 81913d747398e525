//! Configuration: defaults, then a TOML file, then `REKEY_*` environment variables (with
//! `_FILE` variants for secrets), then command-line overrides. See `rekey.example.toml`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The commented example config, also printed by `rekey default-config`.
pub const EXAMPLE_CONFIG: &str = include_str!("../../../rekey.example.toml");

/// Keys that may hold secrets and so may also be read from `REKEY_<KEY>_FILE`.
const SECRET_KEYS: &[&str] = &["server_key", "database_url"];

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub database_max_connections: u32,
    pub client_cache_capacity: usize,
    pub client_cache_max_age_seconds: u64,
    pub auto_migrate: bool,
    pub server_key: String,
    pub role: NodeRole,
    pub log_format: LogFormat,
    pub body_limit_bytes: usize,
    pub request_timeout_seconds: u64,
    /// A connection must send a request's whole header within this many seconds.
    pub header_read_timeout_seconds: u64,
    /// Open connections at most; more are closed at once (a slow-client flood cannot exhaust
    /// the process).
    pub max_connections: usize,
    /// After SIGTERM: how long `/readyz` answers 503 while requests are still served, so that
    /// a load balancer stops sending before the listener closes.
    pub shutdown_drain_seconds: u64,
    /// Where Prometheus scrapes `/metrics` (e.g. `127.0.0.1:9464`), a listener of its own so
    /// that the public one never serves it. Empty: no metrics.
    pub metrics_listen: String,
    /// A console session ends after this long without a request.
    pub console_session_idle_seconds: i64,
    /// ... and this long after sign-in, however active.
    pub console_session_max_seconds: i64,
    pub user_token_ttl_seconds: i64,
    pub default_access_token_ttl_seconds: i64,
    pub default_secret_lifetime_seconds: i64,
    pub default_rotation_grace_seconds: i64,
    pub last_use_flush_seconds: u64,
    pub signing_key_reload_seconds: u64,
    pub signing_key_overlap_seconds: i64,
    /// A new signing key is published this long before any node signs with it.
    pub signing_key_prepublish_seconds: i64,
    /// Scheduled signing-key rotation: each key signs this many days. 0: on request only.
    pub signing_key_rotation_days: u32,
    /// The JWKS's `Cache-Control: max-age`.
    pub jwks_max_age_seconds: u64,
    pub auth_failure_window_seconds: u64,
    pub auth_failures_per_client: u32,
    pub auth_failures_per_address: u32,
    /// Proxies (CIDRs, e.g. `10.0.0.0/8`) whose `Forwarded` / `X-Forwarded-For` name the
    /// client's address; from any other peer these headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// The header those proxies write: `x-forwarded-for` or `forwarded`. Only that one is
    /// read: a proxy passes the other one through as the client sent it.
    pub forwarded_header: crate::extract::ForwardedHeader,
    pub file_destination_root: PathBuf,
    pub allow_insecure_destinations: bool,
    /// Networks (CIDRs) of internal addresses that webhooks and SQS endpoint overrides may
    /// reach (on-premises receivers, tests on loopback). Public addresses need no entry.
    pub allowed_destination_networks: Vec<String>,
    pub delivery_max_attempts: u32,
    pub delivery_backoff_base_ms: u64,
    pub delivery_backoff_max_seconds: u64,
    pub delivery_lease_seconds: u64,
    pub delivery_timeout_seconds: u64,
    pub dispatcher_poll_ms: u64,
    pub sweep_interval_seconds: u64,
    pub spapi_rotation_rate: f64,
    pub spapi_rotation_burst: f64,
    pub csp_rate_per_second: f64,
    pub csp_rate_burst: f64,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    Api,
    Worker,
    All,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: String::new(),
            data_dir: PathBuf::from("./data"),
            database_url: String::new(),
            database_max_connections: 16,
            client_cache_capacity: 100_000,
            client_cache_max_age_seconds: 60,
            auto_migrate: true,
            server_key: String::new(),
            role: NodeRole::All,
            log_format: LogFormat::Text,
            body_limit_bytes: 64 * 1024,
            request_timeout_seconds: 30,
            shutdown_drain_seconds: 5,
            metrics_listen: String::new(),
            console_session_idle_seconds: 1800,
            console_session_max_seconds: 12 * 3600,
            header_read_timeout_seconds: 10,
            max_connections: 10_000,
            user_token_ttl_seconds: 1800,
            default_access_token_ttl_seconds: 3600,
            default_secret_lifetime_seconds: 180 * 86400,
            default_rotation_grace_seconds: 48 * 3600,
            last_use_flush_seconds: 10,
            signing_key_reload_seconds: 30,
            signing_key_overlap_seconds: 86400,
            // The JWKS max-age (300 s) and the default reload interval (30 s).
            signing_key_prepublish_seconds: 330,
            signing_key_rotation_days: 0,
            jwks_max_age_seconds: 300,
            auth_failure_window_seconds: 60,
            auth_failures_per_client: 10,
            auth_failures_per_address: 50,
            trusted_proxies: Vec::new(),
            forwarded_header: crate::extract::ForwardedHeader::XForwardedFor,
            file_destination_root: PathBuf::new(),
            allow_insecure_destinations: false,
            allowed_destination_networks: Vec::new(),
            delivery_max_attempts: 12,
            delivery_backoff_base_ms: 1000,
            delivery_backoff_max_seconds: 600,
            delivery_lease_seconds: 60,
            delivery_timeout_seconds: 10,
            dispatcher_poll_ms: 500,
            sweep_interval_seconds: 60,
            spapi_rotation_rate: 0.0167,
            spapi_rotation_burst: 1.0,
            csp_rate_per_second: 20.0,
            csp_rate_burst: 100.0,
        }
    }
}

// Secrets never reach a log through Debug.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("data_dir", &self.data_dir)
            .field("database_url", &redacted(&self.database_url))
            .field("server_key", &redacted(&self.server_key))
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Everything wrong with a configuration, for the operator.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads the layered configuration. `file` is optional; `overrides` are CLI flags as a
    /// partial table (only the keys the user gave).
    pub fn load(
        file: Option<&Path>,
        overrides: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, ConfigError> {
        Self::load_from_env(file, overrides, std::env::vars())
    }

    /// As [`Config::load`], with the environment given explicitly (for tests).
    pub fn load_from_env(
        file: Option<&Path>,
        overrides: &serde_json::Map<String, serde_json::Value>,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        let env: Vec<(String, String)> = env.collect();
        let known = known_keys();
        let mut from_env = serde_json::Map::new();
        for (name, value) in &env {
            let Some(key) = name.strip_prefix("REKEY_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if let Some(base) = key.strip_suffix("_file") {
                if SECRET_KEYS.contains(&base) {
                    let direct = format!("REKEY_{}", base.to_ascii_uppercase());
                    if env.iter().any(|(n, v)| *n == direct && !v.is_empty()) {
                        return Err(ConfigError(format!(
                            "{direct} and {name} are both set: give the value one way"
                        )));
                    }
                    let content = std::fs::read_to_string(value)
                        .map_err(|e| ConfigError(format!("cannot read {name} ({value}): {e}")))?;
                    from_env.insert(base.to_string(), content.trim_end().to_string().into());
                }
            }
        }
        // Plain variables parse as figment values so numbers and booleans work as in TOML.
        // Only known keys are read: other REKEY_* variables (the CLI's own, tests') are not
        // config; `unknown_env_warnings` names the likely typos.
        let mut plain = figment::value::Dict::new();
        for (name, value) in &env {
            let Some(key) = name.strip_prefix("REKEY_") else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            if known.contains(&key) {
                let parsed: figment::value::Value = value
                    .parse()
                    .unwrap_or_else(|_| figment::value::Value::from(value.clone()));
                plain.insert(key, parsed);
            }
        }
        // Where each key's value came from, to name it in errors (later layers win).
        let source_of = |key: &str| -> String {
            if overrides.contains_key(key) {
                format!("the command-line flag for {key}")
            } else if from_env.contains_key(key) {
                format!("REKEY_{}_FILE", key.to_ascii_uppercase())
            } else if plain.contains_key(key) {
                format!("REKEY_{}", key.to_ascii_uppercase())
            } else if let Some(path) = file {
                format!("{key} in {}", path.display())
            } else {
                key.to_string()
            }
        };
        fig = fig.merge(Serialized::defaults(plain.clone()));
        fig = fig.merge(Serialized::defaults(from_env.clone()));
        fig = fig.merge(Serialized::defaults(overrides.clone()));
        let config: Config = fig.extract().map_err(|errors| {
            ConfigError(
                errors
                    .into_iter()
                    .map(|e| match e.path.last() {
                        // The key's source and what is wrong with the value: no internal
                        // paths or types.
                        Some(key) => format!("{}: {}", source_of(key), e.kind),
                        None => e.kind.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            (
                "database_max_connections",
                self.database_max_connections as i64,
            ),
            ("body_limit_bytes", self.body_limit_bytes as i64),
            (
                "request_timeout_seconds",
                self.request_timeout_seconds as i64,
            ),
            (
                "header_read_timeout_seconds",
                self.header_read_timeout_seconds as i64,
            ),
            ("max_connections", self.max_connections as i64),
            ("user_token_ttl_seconds", self.user_token_ttl_seconds),
            (
                "default_access_token_ttl_seconds",
                self.default_access_token_ttl_seconds,
            ),
            ("last_use_flush_seconds", self.last_use_flush_seconds as i64),
            (
                "signing_key_reload_seconds",
                self.signing_key_reload_seconds as i64,
            ),
            (
                "auth_failure_window_seconds",
                self.auth_failure_window_seconds as i64,
            ),
            ("delivery_max_attempts", self.delivery_max_attempts as i64),
            (
                "delivery_backoff_base_ms",
                self.delivery_backoff_base_ms as i64,
            ),
            (
                "delivery_backoff_max_seconds",
                self.delivery_backoff_max_seconds as i64,
            ),
            (
                "delivery_timeout_seconds",
                self.delivery_timeout_seconds as i64,
            ),
            ("dispatcher_poll_ms", self.dispatcher_poll_ms as i64),
            ("sweep_interval_seconds", self.sweep_interval_seconds as i64),
            (
                "console_session_idle_seconds",
                self.console_session_idle_seconds,
            ),
            (
                "console_session_max_seconds",
                self.console_session_max_seconds,
            ),
        ];
        if self.delivery_lease_seconds <= self.delivery_timeout_seconds {
            return Err(ConfigError(
                "delivery_lease_seconds must be longer than delivery_timeout_seconds".into(),
            ));
        }
        if !(self.csp_rate_per_second > 0.0 && self.csp_rate_burst >= 1.0) {
            return Err(ConfigError(
                "csp_rate_per_second must be > 0 and csp_rate_burst >= 1".into(),
            ));
        }
        if !(self.spapi_rotation_rate > 0.0 && self.spapi_rotation_burst >= 1.0) {
            return Err(ConfigError(
                "spapi_rotation_rate must be > 0 and spapi_rotation_burst >= 1".into(),
            ));
        }
        for (k, v) in positive {
            if v <= 0 {
                return Err(ConfigError(format!("{k} must be greater than 0")));
            }
        }
        if self.default_secret_lifetime_seconds < 0 || self.default_rotation_grace_seconds < 0 {
            return Err(ConfigError(
                "secret lifetime and rotation grace must not be negative".into(),
            ));
        }
        self.trusted_proxy_nets()?;
        self.allowed_destination_nets()?;
        self.metrics_addr()?;
        // Any app may ask for tokens up to the largest lifetime an app may have.
        let longest_ttl = rekey_core::apps::MAX_TOKEN_TTL_SECS
            .max(self.default_access_token_ttl_seconds)
            .max(self.user_token_ttl_seconds);
        if self.signing_key_overlap_seconds < longest_ttl {
            return Err(ConfigError(format!(
                "signing_key_overlap_seconds ({}) must be at least the longest access-token \
                 lifetime ({longest_ttl} s), or tokens signed with a retired key stop verifying \
                 before they expire",
                self.signing_key_overlap_seconds
            )));
        }
        // Before a new key signs, every node must have reloaded it, and every verifier's
        // cached JWKS must have expired.
        let needed = i64::try_from(self.signing_key_reload_seconds)
            .unwrap_or(i64::MAX)
            .saturating_add(i64::try_from(self.jwks_max_age_seconds).unwrap_or(i64::MAX));
        if self.signing_key_prepublish_seconds < needed {
            return Err(ConfigError(format!(
                "signing_key_prepublish_seconds ({}) must be at least signing_key_reload_seconds \
                 plus jwks_max_age_seconds ({needed} s), or a new key signs tokens that other \
                 nodes and verifiers cannot check yet",
                self.signing_key_prepublish_seconds
            )));
        }
        if self.signing_key_rotation_days > 0
            && i64::from(self.signing_key_rotation_days) * 86_400
                <= self.signing_key_prepublish_seconds
        {
            return Err(ConfigError(
                "signing_key_rotation_days must be longer than signing_key_prepublish_seconds"
                    .into(),
            ));
        }
        if !self.public_url.is_empty() && !is_absolute_http_url(&self.public_url) {
            return Err(ConfigError(format!(
                "public_url must be an absolute http(s) URL such as https://auth.example.com \
                 (got {:?})",
                self.public_url
            )));
        }
        Ok(())
    }

    /// `metrics_listen` parsed; `None` when metrics are off.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        if self.metrics_listen.is_empty() {
            return Ok(None);
        }
        self.metrics_listen.parse().map(Some).map_err(|_| {
            ConfigError(format!(
                "metrics_listen must be an address and port such as 127.0.0.1:9464 (got {:?})",
                self.metrics_listen
            ))
        })
    }

    /// `trusted_proxies` parsed: CIDRs, or single addresses (a /32 or /128).
    pub fn trusted_proxy_nets(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        parse_nets("trusted_proxies", &self.trusted_proxies)
    }

    pub fn allowed_destination_nets(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        parse_nets(
            "allowed_destination_networks",
            &self.allowed_destination_networks,
        )
    }

    /// When signing keys sign and stay published, and the rotation schedule.
    pub fn signing_key_timing(&self) -> rekey_core::ops::signing_keys::SigningKeyTiming {
        rekey_core::ops::signing_keys::SigningKeyTiming {
            prepublish_secs: self.signing_key_prepublish_seconds,
            overlap_secs: self.signing_key_overlap_seconds,
            rotate_every_secs: (self.signing_key_rotation_days > 0)
                .then(|| i64::from(self.signing_key_rotation_days) * 86_400),
        }
    }

    /// How rotation policies run: a quiet period covers at least three last-use flushes, so
    /// a use still in some node's memory is never missed.
    pub fn rotation_policy_settings(&self) -> rekey_core::rotation_policy::Settings {
        rekey_core::rotation_policy::Settings {
            min_quiet_secs: i64::try_from(self.last_use_flush_seconds.saturating_mul(3))
                .unwrap_or(i64::MAX),
        }
    }

    /// The token issuer and base URL of published endpoints, without a trailing slash.
    pub fn issuer(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }

    /// The root of `file` destinations in effect.
    pub fn spool_root(&self) -> PathBuf {
        if self.file_destination_root.as_os_str().is_empty() {
            self.data_dir.join("spool")
        } else {
            self.file_destination_root.clone()
        }
    }

    /// The database URL in effect (SQLite in the data directory by default).
    pub fn effective_database_url(&self) -> String {
        if self.database_url.is_empty() {
            rekey_store::SqlStore::sqlite_url(&self.data_dir.join("rekey.db"))
        } else {
            self.database_url.clone()
        }
    }
}

/// `https://host[:port][/path]`: what an issuer and a base URL for links must be.
fn is_absolute_http_url(s: &str) -> bool {
    match s.parse::<axum::http::Uri>() {
        Ok(uri) => {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.host().is_some_and(|h| !h.is_empty())
                && uri.query().is_none()
        }
        Err(_) => false,
    }
}

/// `REKEY_*` variables the CLI reads itself (not server configuration).
const CLI_VARIABLES: &[&str] = &[
    "url",
    "api_token",
    "org",
    "client_id",
    "client_secret",
    "bin",
];

/// Warnings for `REKEY_*` variables that are neither configuration nor the CLI's own: most
/// are typos (`REKEY_LISTN`), which would otherwise be ignored without a word. Each names the
/// nearest known key.
pub fn unknown_env_warnings(env: impl Iterator<Item = (String, String)>) -> Vec<String> {
    let known = known_keys();
    env.filter_map(|(name, _)| {
        let key = name.strip_prefix("REKEY_")?.to_ascii_lowercase();
        let is_secret_file = key
            .strip_suffix("_file")
            .is_some_and(|base| SECRET_KEYS.contains(&base));
        if known.contains(&key)
            || is_secret_file
            || CLI_VARIABLES.contains(&key.as_str())
            || key.starts_with("test_")
            || key.starts_with("bench_")
        {
            return None;
        }
        let nearest = known
            .iter()
            .min_by_key(|k| strsim::levenshtein(k, &key))
            .map(|k| format!("; did you mean REKEY_{}?", k.to_ascii_uppercase()))
            .unwrap_or_default();
        Some(format!(
            "{name} is not a configuration key and is ignored{nearest}"
        ))
    })
    .collect()
}

/// The names of every config key, from the struct itself.
pub fn known_keys() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// CIDRs (or single addresses) of the setting `key`.
fn parse_nets(key: &str, values: &[String]) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    values
        .iter()
        .map(|p| {
            p.parse::<ipnet::IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError(format!(
                        "{key}: {p:?} is not an IP address or CIDR (e.g. 10.0.0.0/8)"
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> std::vec::IntoIter<(String, String)> {
        Vec::new().into_iter()
    }

    #[test]
    fn the_example_config_parses_to_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, EXAMPLE_CONFIG).unwrap();
        let c = Config::load_from_env(Some(&p), &Default::default(), no_env()).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn every_config_key_is_documented_in_the_example_and_the_other_way_round() {
        let documented: std::collections::BTreeSet<String> = EXAMPLE_CONFIG
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
            .map(|l| l.split('=').next().unwrap().trim().to_string())
            .collect();
        let known: std::collections::BTreeSet<String> = known_keys().into_iter().collect();
        assert_eq!(documented, known);
    }

    #[test]
    fn unknown_keys_in_the_file_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "listen = \"127.0.0.1:1\"\nlisten_port = 3\n").unwrap();
        let e = Config::load_from_env(Some(&p), &Default::default(), no_env()).unwrap_err();
        assert!(e.0.contains("listen_port"), "{}", e.0);
    }

    #[test]
    fn env_overrides_the_file_and_flags_override_env() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "auth_failures_per_client = 3\nlog_format = \"json\"\n").unwrap();
        let env = vec![
            (
                "REKEY_AUTH_FAILURES_PER_CLIENT".to_string(),
                "4".to_string(),
            ),
            ("REKEY_LISTEN".to_string(), "127.0.0.1:9000".to_string()),
            ("REKEY_TEST_SOMETHING".to_string(), "ignored".to_string()),
        ];
        let mut flags = serde_json::Map::new();
        flags.insert("listen".into(), "127.0.0.1:9001".into());
        let c = Config::load_from_env(Some(&p), &flags, env.into_iter()).unwrap();
        assert_eq!(c.auth_failures_per_client, 4);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.listen, "127.0.0.1:9001".parse().unwrap());
    }

    #[test]
    fn secrets_can_come_from_files_and_are_redacted_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, "c2VjcmV0\n").unwrap();
        let env = vec![(
            "REKEY_SERVER_KEY_FILE".to_string(),
            key_file.display().to_string(),
        )];
        let c = Config::load_from_env(None, &Default::default(), env.into_iter()).unwrap();
        assert_eq!(c.server_key, "c2VjcmV0");
        assert!(!format!("{c:?}").contains("c2VjcmV0"));
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        let mut flags = serde_json::Map::new();
        flags.insert("request_timeout_seconds".into(), 0.into());
        assert!(Config::load_from_env(None, &flags, no_env()).is_err());
    }

    #[test]
    fn a_bad_value_names_the_variable_it_came_from_without_internals() {
        let env = vec![("REKEY_AUTO_MIGRATE".to_string(), "yes".to_string())];
        let e = Config::load_from_env(None, &Default::default(), env.into_iter()).unwrap_err();
        assert!(e.0.contains("REKEY_AUTO_MIGRATE"), "{}", e.0);
        assert!(
            !e.0.contains("config.rs") && !e.0.contains("BTreeMap"),
            "{}",
            e.0
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "body_limit_bytes = \"big\"\n").unwrap();
        let e = Config::load_from_env(Some(&p), &Default::default(), no_env()).unwrap_err();
        assert!(
            e.0.contains("body_limit_bytes in") && e.0.contains("c.toml"),
            "{}",
            e.0
        );
    }

    #[test]
    fn a_secret_given_directly_and_through_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, "c2VjcmV0\n").unwrap();
        let env = vec![
            ("REKEY_SERVER_KEY".to_string(), "b3RoZXI=".to_string()),
            (
                "REKEY_SERVER_KEY_FILE".to_string(),
                key_file.display().to_string(),
            ),
        ];
        let e = Config::load_from_env(None, &Default::default(), env.into_iter()).unwrap_err();
        assert!(e.0.contains("both set"), "{}", e.0);
    }

    #[test]
    fn fields_that_depend_on_each_other_are_checked_together() {
        let mut flags = serde_json::Map::new();
        flags.insert("signing_key_overlap_seconds".into(), 10.into());
        let e = Config::load_from_env(None, &flags, no_env()).unwrap_err();
        assert!(e.0.contains("signing_key_overlap_seconds"), "{}", e.0);
        for bad in [
            "auth example",
            "ftp://auth.example",
            "/relative",
            "https://",
        ] {
            let mut flags = serde_json::Map::new();
            flags.insert("public_url".into(), bad.into());
            let e = Config::load_from_env(None, &flags, no_env()).unwrap_err();
            assert!(e.0.contains("public_url"), "{bad}: {}", e.0);
        }
        let mut flags = serde_json::Map::new();
        flags.insert("public_url".into(), "https://auth.example.com/rekey".into());
        assert!(Config::load_from_env(None, &flags, no_env()).is_ok());
    }

    #[test]
    fn metrics_listen_is_off_when_empty_and_must_be_an_address() {
        let c = Config::load_from_env(None, &Default::default(), no_env()).unwrap();
        assert_eq!(c.metrics_addr().unwrap(), None);
        let env = vec![(
            "REKEY_METRICS_LISTEN".to_string(),
            "127.0.0.1:9464".to_string(),
        )];
        let c = Config::load_from_env(None, &Default::default(), env.into_iter()).unwrap();
        assert_eq!(
            c.metrics_addr().unwrap(),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        for (bad, named) in [
            ("9464", "REKEY_METRICS_LISTEN"),
            ("localhost", "metrics_listen"),
        ] {
            let env = vec![("REKEY_METRICS_LISTEN".to_string(), bad.to_string())];
            let e = Config::load_from_env(None, &Default::default(), env.into_iter()).unwrap_err();
            assert!(e.0.contains(named), "{}", e.0);
        }
    }

    #[test]
    fn unknown_rekey_variables_are_named_with_the_nearest_key() {
        let env = [
            ("REKEY_LISTN", "x"),
            ("REKEY_LISTEN_FILE", "x"),
            ("REKEY_LISTEN", "x"),
            ("REKEY_URL", "x"),
            ("REKEY_API_TOKEN", "x"),
            ("REKEY_SERVER_KEY_FILE", "x"),
            ("HOME", "x"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let warnings = unknown_env_warnings(env.into_iter());
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("REKEY_LISTN ") && warnings[0].contains("REKEY_LISTEN?"));
        assert!(warnings[1].starts_with("REKEY_LISTEN_FILE "));
    }
}
