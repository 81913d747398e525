//! What the agent has applied, kept in a small JSON file (mode 0600) so that a restart (or
//! `kill -9`) neither applies a secret twice nor forgets one: the fingerprint of the last
//! secret written (never the secret), its notification's time, and how far its reload hook
//! got.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sink::write_private;

/// How far the reload hook of the applied secret got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookState {
    /// Written, the hook not started yet.
    #[default]
    Pending,
    /// The hook was started. If the agent stopped before it ended, it is not run again: a
    /// second reload could be worse than a missed one, which the old secret (still valid,
    /// and never retired while it is used) covers.
    Started,
    Done,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedSecret {
    /// SHA-256 of the secret, hex.
    pub fingerprint: String,
    /// The last four characters, as Rekey shows secrets.
    pub hint: String,
    /// The notification's `eventTime` (RFC 3339).
    pub event_time: String,
    pub notification_id: String,
    /// When the agent wrote it (RFC 3339).
    pub applied_at: String,
    pub hook: HookState,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentState {
    pub applied: Option<AppliedSecret>,
}

/// The state file: read at start, written after every step.
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved state; empty when there is no file yet.
    pub fn load(&self) -> anyhow::Result<AgentState> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!("the state file {} is not valid: {e}", self.path.display())
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AgentState::default()),
            Err(e) => Err(anyhow::anyhow!(
                "cannot read the state file {}: {e}",
                self.path.display()
            )),
        }
    }

    /// Saves `state` atomically (fsynced before it replaces the old file).
    pub fn save(&self, state: &AgentState) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(state)?;
        write_private(&self.path, &json).map_err(|e| {
            anyhow::anyhow!("cannot write the state file {}: {e}", self.path.display())
        })
    }
}

/// SHA-256 of `secret`, hex: how the state file recognises a secret without holding it.
pub fn fingerprint(secret: &str) -> String {
    rekey_core::crypto::sha256_hex(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_round_trips_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("state.json"));
        assert_eq!(file.load().unwrap(), AgentState::default());
        let state = AgentState {
            applied: Some(AppliedSecret {
                fingerprint: fingerprint("rks_x"),
                hint: "...x".into(),
                event_time: "2026-12-01T00:00:00.000Z".into(),
                notification_id: "n".into(),
                applied_at: "2026-12-01T00:00:01.000Z".into(),
                hook: HookState::Started,
            }),
        };
        file.save(&state).unwrap();
        assert_eq!(file.load().unwrap(), state);
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert!(!text.contains("rks_x"), "the secret itself is never kept");
    }

    #[test]
    fn fingerprints_tell_secrets_apart() {
        assert_eq!(fingerprint("a"), fingerprint("a"));
        assert_ne!(fingerprint("a"), fingerprint("b"));
        assert_eq!(fingerprint("a").len(), 64);
    }
}
