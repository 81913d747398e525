//! The agent's metrics, served at `/metrics` on `--listen` (Prometheus text).

/// New secrets verified, written and handed to the hook.
pub const APPLIED: &str = "rekey_agent_secrets_applied_total";
/// Notifications handled, by `outcome` (`applied`, `already_applied`, `stale`, `test`,
/// `not_ours`).
pub const NOTIFICATIONS: &str = "rekey_agent_notifications_total";
/// Failed steps, by `stage` (`receive`, `parse`, `verify`, `write`, `hook`, `state`,
/// `acknowledge`).
pub const FAILURES: &str = "rekey_agent_failures_total";
/// When the last secret was applied (Unix seconds).
pub const LAST_APPLIED: &str = "rekey_agent_last_applied_timestamp_seconds";
