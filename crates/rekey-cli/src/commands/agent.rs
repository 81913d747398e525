//! `rekey agent`: the options into a running [`rekey_agent`].

use std::process::ExitCode;
use std::sync::Arc;

use rekey_agent::apply::{Applier, Hook, PidSource, Verifier};
use rekey_agent::sink::Sink;
use rekey_agent::state::StateFile;
use rekey_agent::Source;
use rekey_server::config::LogFormat;
use secrecy::SecretString;

use crate::cli::AgentArgs;

pub(super) async fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    rekey_server::telemetry::init(if args.log_json {
        LogFormat::Json
    } else {
        LogFormat::Text
    });
    let sink = match (&args.write_file, &args.env_file) {
        (Some(p), _) => Sink::File(p.clone()),
        (None, Some(p)) => Sink::EnvFile(p.clone(), args.env_key.clone()),
        (None, None) => Sink::Stdout,
    };
    if let Sink::EnvFile(_, key) = &sink {
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            anyhow::bail!("--env-key must be letters, digits and '_'");
        }
    }
    sink.check_writable()
        .map_err(|e| anyhow::anyhow!("cannot write to {}: {e}", sink.describe()))?;
    let state_file = match (&args.state_file, &sink) {
        (Some(p), _) => p.clone(),
        (None, Sink::File(p) | Sink::EnvFile(p, _)) => {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            p.with_file_name(format!(".{name}.rekey-agent.json"))
        }
        (None, Sink::Stdout) => anyhow::bail!("--stdout needs --state-file"),
    };
    let signal = match args.signal.to_ascii_uppercase().trim_start_matches("SIG") {
        "HUP" => rustix::process::Signal::HUP,
        "USR1" => rustix::process::Signal::USR1,
        "USR2" => rustix::process::Signal::USR2,
        "TERM" => rustix::process::Signal::TERM,
        "INT" => rustix::process::Signal::INT,
        other => anyhow::bail!("--signal must be HUP, USR1, USR2, TERM or INT, not {other}"),
    };
    let pid = match (args.signal_pid, &args.signal_pid_file) {
        (Some(p), _) => Some(PidSource::Pid(p)),
        (None, Some(f)) => Some(PidSource::File(f.clone())),
        (None, None) => None,
    };
    let state = StateFile::new(state_file);
    // A state file that cannot be read stops the agent now, not at the first notification.
    let known = state.load()?;
    let health = Arc::new(rekey_agent::health::Health::default());
    if let Some(applied) = &known.applied {
        health.applied(applied);
    }
    let applier = Applier {
        client_id: args.client_id.clone(),
        verifier: Verifier::new(args.token_url.clone(), args.verify_scope.clone()),
        sink,
        hook: Hook {
            command: args.on_change.clone(),
            signal: pid.map(|p| (p, signal)),
        },
        state,
        health,
    };
    let source = match (&args.queue_url, args.webhook_listen) {
        (Some(queue_url), _) => {
            let region = rekey_dispatch::sinks::queue_region(args.region.as_deref(), queue_url);
            Source::Sqs {
                client: rekey_dispatch::sinks::sqs_client(
                    &region,
                    args.sqs_endpoint_url.as_deref(),
                )
                .await,
                queue_url: queue_url.clone(),
                visibility_timeout: args.visibility_timeout_seconds.clamp(1, 43_200),
            }
        }
        (None, Some(listen)) => {
            let path = args
                .webhook_secret_file
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("--webhook-listen needs --webhook-secret-file"))?;
            let secret = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            if !secret.trim().starts_with("whsec_") || secret.trim().len() < 30 {
                anyhow::bail!(
                    "{} does not hold a webhook signing secret (whsec_..., as `rekey destinations set` printed it)",
                    path.display()
                );
            }
            Source::Webhook {
                listen,
                signing_secret: SecretString::from(secret.trim().to_string()),
            }
        }
        (None, None) => anyhow::bail!("give --queue-url or --webhook-listen"),
    };
    rekey_agent::run(
        applier,
        source,
        args.listen,
        super::server::shutdown_signal(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
