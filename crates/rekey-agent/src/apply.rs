//! Applying one new-secret notification: recognise it, verify the secret by getting a token
//! with it, write it, run the reload hook, and only then say it is done (the caller then
//! deletes the SQS message or answers the webhook 2xx). Each step is recorded in the state
//! file first, so a notification seen again after a restart finishes the job without
//! repeating what was done.

use std::time::Duration;

use rekey_core::clock::Clock as _;

use rekey_proto::spapi::{NewSecretPayload, Notification};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::health::Health;
use crate::sink::{write_sink, Sink};
use crate::state::{fingerprint, AppliedSecret, HookState, StateFile};

const NEW_SECRET: &str = "APPLICATION_OAUTH_CLIENT_NEW_SECRET";

/// What became of a notification. Every outcome but [`Outcome::NotOurs`] is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Verified, written, and the hook ran.
    Applied,
    /// This secret was applied before (a redelivery, or a restart after the write).
    AlreadyApplied,
    /// Older than the secret applied already.
    Stale,
    /// A test notification for this client.
    Test,
    /// Another client's, or not a notification at all.
    NotOurs,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::AlreadyApplied => "already_applied",
            Outcome::Stale => "stale",
            Outcome::Test => "test",
            Outcome::NotOurs => "not_ours",
        }
    }
}

/// A step that failed: the notification is left for another try.
#[derive(Debug, thiserror::Error)]
#[error("{stage}: {message}")]
pub struct Failure {
    /// `verify`, `write`, `hook`, `state`.
    pub stage: &'static str,
    pub message: String,
}

fn failure(stage: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        stage,
        message: message.into(),
    }
}

/// How the service learns of a new secret.
#[derive(Clone, Debug, Default)]
pub struct Hook {
    /// Run with `sh -c` (the secret is not in its environment or arguments).
    pub command: Option<String>,
    /// Sent to a process (e.g. `SIGHUP` to a server that rereads its credentials).
    pub signal: Option<(PidSource, rustix::process::Signal)>,
}

/// Which process to signal.
#[derive(Clone, Debug)]
pub enum PidSource {
    Pid(i32),
    /// Read when the signal is sent (the service may have restarted since the agent did).
    File(std::path::PathBuf),
}

impl PidSource {
    fn pid(&self) -> Result<i32, Failure> {
        match self {
            PidSource::Pid(p) => Ok(*p),
            PidSource::File(path) => std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| {
                    failure(
                        "hook",
                        format!("{} does not hold a process id", path.display()),
                    )
                }),
        }
    }
}

/// Checks a secret the way the service will use it: a client-credentials token request.
pub struct Verifier {
    pub token_url: String,
    /// Some token endpoints need a scope for this grant (Login with Amazon does).
    pub scope: Option<String>,
    pub http: reqwest::Client,
}

impl Verifier {
    pub fn new(token_url: String, scope: Option<String>) -> Self {
        Self {
            token_url,
            scope,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        }
    }

    async fn verify(&self, client_id: &str, secret: &SecretString) -> Result<(), Failure> {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret.expose_secret()),
        ];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        let res = self
            .http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| failure("verify", format!("cannot reach the token endpoint: {e}")))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if status.is_success() && body["access_token"].is_string() {
            Ok(())
        } else {
            Err(failure(
                "verify",
                format!(
                    "the token endpoint did not accept the new secret (HTTP {}, {})",
                    status.as_u16(),
                    body["error"].as_str().unwrap_or("no error code")
                ),
            ))
        }
    }
}

/// Applies notifications for one client.
pub struct Applier {
    pub client_id: String,
    pub verifier: Verifier,
    pub sink: Sink,
    pub hook: Hook,
    pub state: StateFile,
    pub health: std::sync::Arc<Health>,
}

impl Applier {
    /// Handles one message body (a notification as SP-API and Rekey send it), one at a time:
    /// two deliveries of the same secret (two dispatching nodes, a lease that ran out) must
    /// not both run the hook, nor an older one finish after a newer one.
    pub async fn handle(&self, body: &[u8]) -> Result<Outcome, Failure> {
        static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _turn = ONE_AT_A_TIME.lock().await;
        let result = self.apply(body).await;
        match &result {
            Ok(outcome) => {
                metrics::counter!(crate::metric_names::NOTIFICATIONS, "outcome" => outcome.as_str())
                    .increment(1);
            }
            Err(f) => {
                metrics::counter!(crate::metric_names::FAILURES, "stage" => f.stage).increment(1);
                self.health.failed(f);
                tracing::warn!(stage = f.stage, error = %f.message, "could not apply the new secret; will try again");
            }
        }
        result
    }

    async fn apply(&self, body: &[u8]) -> Result<Outcome, Failure> {
        let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let ours = |key: &str| value["payload"][key]["clientId"].as_str() == Some(&self.client_id);
        if value["notificationType"] != NEW_SECRET || !ours("applicationOAuthClientNewSecret") {
            return Ok(if ours("testNotification") {
                Outcome::Test
            } else {
                Outcome::NotOurs
            });
        }
        let notification: Notification<NewSecretPayload> = serde_json::from_value(value)
            .map_err(|e| failure("parse", format!("the notification does not parse: {e}")))?;
        let secret = SecretString::from(notification.payload.new_secret.new_client_secret.clone());
        let print = fingerprint(secret.expose_secret());
        let mut state = self
            .state
            .load()
            .map_err(|e| failure("state", e.to_string()))?;
        if let Some(applied) = &state.applied {
            if applied.fingerprint == print {
                return match applied.hook {
                    HookState::Done => Ok(Outcome::AlreadyApplied),
                    HookState::Started => {
                        tracing::warn!("the agent stopped while the reload hook ran for this secret; not running it again");
                        self.finish_hook(&mut state)?;
                        Ok(Outcome::AlreadyApplied)
                    }
                    // Written before a restart: the hook is what is left.
                    HookState::Pending => {
                        self.run_hook(&mut state).await?;
                        Ok(Outcome::Applied)
                    }
                };
            }
            if applied.event_time.as_str() > notification.event_time.as_str() {
                tracing::info!(notification_id = %notification.notification_metadata.notification_id, "an older new-secret notification; a newer secret is applied already");
                return Ok(Outcome::Stale);
            }
        }
        self.verifier.verify(&self.client_id, &secret).await?;
        write_sink(&self.sink, &secret).map_err(|e| {
            failure(
                "write",
                format!("cannot write {}: {e}", self.sink.describe()),
            )
        })?;
        if matches!(self.sink, Sink::Stdout) {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", secret.expose_secret())
                .and_then(|()| out.flush())
                .map_err(|e| failure("write", format!("cannot write to standard output: {e}")))?;
        }
        state.applied = Some(AppliedSecret {
            fingerprint: print,
            hint: rekey_core::secret::hint(secret.expose_secret()),
            event_time: notification.event_time.clone(),
            notification_id: notification.notification_metadata.notification_id.clone(),
            applied_at: rekey_core::clock::SystemClock.now().to_rfc3339(),
            hook: HookState::Pending,
        });
        self.save(&state)?;
        tracing::info!(notification_id = %notification.notification_metadata.notification_id, secret_hint = %rekey_core::secret::hint(secret.expose_secret()), sink = %self.sink.describe(), "new secret verified and written");
        self.run_hook(&mut state).await?;
        Ok(Outcome::Applied)
    }

    fn save(&self, state: &crate::state::AgentState) -> Result<(), Failure> {
        self.state
            .save(state)
            .map_err(|e| failure("state", e.to_string()))
    }

    /// Runs the hook once: `Started` is saved before it runs, `Done` after it succeeds; a
    /// hook that fails goes back to `Pending` (tried again with the notification).
    async fn run_hook(&self, state: &mut crate::state::AgentState) -> Result<(), Failure> {
        let Some(applied) = state.applied.as_mut() else {
            return Ok(());
        };
        applied.hook = HookState::Started;
        self.save(state)?;
        let result = self.call_hook().await;
        let Some(applied) = state.applied.as_mut() else {
            return Ok(());
        };
        match result {
            Ok(()) => self.finish_hook(state),
            Err(f) => {
                applied.hook = HookState::Pending;
                self.save(state)?;
                Err(f)
            }
        }
    }

    fn finish_hook(&self, state: &mut crate::state::AgentState) -> Result<(), Failure> {
        if let Some(applied) = state.applied.as_mut() {
            applied.hook = HookState::Done;
            self.health.applied(applied);
        }
        self.save(state)?;
        metrics::counter!(crate::metric_names::APPLIED).increment(1);
        Ok(())
    }

    async fn call_hook(&self) -> Result<(), Failure> {
        if let Some(command) = &self.hook.command {
            let status = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .env("REKEY_CLIENT_ID", &self.client_id)
                .kill_on_drop(false)
                .status()
                .await
                .map_err(|e| failure("hook", format!("cannot run the hook: {e}")))?;
            if !status.success() {
                return Err(failure("hook", format!("the hook failed ({status})")));
            }
        }
        if let Some((source, signal)) = &self.hook.signal {
            let pid = source.pid()?;
            let signal = *signal;
            let pid = rustix::process::Pid::from_raw(pid)
                .ok_or_else(|| failure("hook", format!("{pid} is not a process id")))?;
            rustix::process::kill_process(pid, signal)
                .map_err(|e| failure("hook", format!("cannot signal process {pid:?}: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applier(dir: &std::path::Path, hook: Hook) -> Applier {
        Applier {
            client_id: "rkc_test".into(),
            verifier: Verifier::new("http://127.0.0.1:9/oauth2/token".into(), None),
            sink: Sink::File(dir.join("secret")),
            hook,
            state: StateFile::new(dir.join("state.json")),
            health: Default::default(),
        }
    }

    #[tokio::test]
    async fn the_signal_hook_reaches_the_process_named_by_a_pid_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid_file = dir.path().join("app.pid");
        std::fs::write(&pid_file, format!("{}\n", child.id())).unwrap();
        let a = applier(
            dir.path(),
            Hook {
                command: None,
                signal: Some((PidSource::File(pid_file), rustix::process::Signal::TERM)),
            },
        );
        a.call_hook().await.unwrap();
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(child.wait().unwrap().signal(), Some(15));
    }

    #[tokio::test]
    async fn a_failing_hook_command_is_a_failure_of_the_hook_stage() {
        let dir = tempfile::tempdir().unwrap();
        let a = applier(
            dir.path(),
            Hook {
                command: Some("exit 3".into()),
                signal: None,
            },
        );
        let err = a.call_hook().await.unwrap_err();
        assert_eq!(err.stage, "hook");
    }

    #[tokio::test]
    async fn other_clients_notifications_are_not_ours_and_tests_are_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let a = applier(dir.path(), Hook::default());
        let other = serde_json::json!({
            "notificationType": NEW_SECRET,
            "payload": {"applicationOAuthClientNewSecret": {"clientId": "rkc_other", "newClientSecret": "x"}},
        });
        assert_eq!(
            a.handle(other.to_string().as_bytes()).await.unwrap(),
            Outcome::NotOurs
        );
        let test = serde_json::json!({"payload": {"testNotification": {"clientId": "rkc_test"}}});
        assert_eq!(
            a.handle(test.to_string().as_bytes()).await.unwrap(),
            Outcome::Test
        );
        assert_eq!(a.handle(b"not json").await.unwrap(), Outcome::NotOurs);
        assert!(!dir.path().join("secret").exists());
    }
}
