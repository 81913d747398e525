//! `rekey rotate`: the SP-API rotation tutorial as one safe command.
//!
//! Order of work, and why: every check that can fail without consequences (credentials,
//! scope, queue, sink) runs before the rotation; a notification already waiting in the queue
//! (from an earlier run that stopped half-way) is used instead of rotating again; the queue
//! message is deleted only after the new secret has been verified and written. So a failure
//! at any step leaves the old secret working, and running the command again finishes the job.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client as Sqs;
use rekey_client::{
    ApplicationsApi, ClientError, Credentials, ErrorBody, RetryPolicy, TokenProvider,
    ROTATION_SCOPE,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use rekey_agent::sink::{write_sink, Sink};

use crate::cli::{OutputFormat, RotateArgs};

const NEW_SECRET: &str = "APPLICATION_OAUTH_CLIENT_NEW_SECRET";

/// A failure: what to say, and the exit code (see `RotateArgs`).
struct Failure {
    code: u8,
    message: String,
    /// When the next attempt can be made (a rate-limited rotation call).
    retry_after_secs: Option<u64>,
}

fn fail(code: u8, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
        retry_after_secs: None,
    }
}

impl Failure {
    /// The stable name of the failure in `--output json` (the exit code's meaning).
    fn error_code(&self) -> &'static str {
        match self.code {
            USAGE => "usage",
            CREDENTIALS => "credentials",
            NOT_ENROLLED => "not_enrolled",
            RATE_LIMITED => "rate_limited",
            TIMEOUT => "timeout",
            QUEUE => "queue",
            SINK => "sink",
            VERIFY => "verify",
            IN_PROGRESS => "rotation_in_progress",
            UNKNOWN_OUTCOME => "unknown_outcome",
            _ => "failed",
        }
    }
}

const CREDENTIALS: u8 = 3;
const NOT_ENROLLED: u8 = 4;
const RATE_LIMITED: u8 = 5;
const TIMEOUT: u8 = 6;
const QUEUE: u8 = 7;
const SINK: u8 = 8;
const VERIFY: u8 = 9;
const IN_PROGRESS: u8 = 10;
const UNKNOWN_OUTCOME: u8 = 11;
const USAGE: u8 = 2;

pub(crate) async fn run(args: RotateArgs) -> ExitCode {
    match rotate(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            match args.output {
                // One JSON object on standard output, as success prints one.
                OutputFormat::Json => println!(
                    "{}",
                    json!({
                        "error": f.error_code(),
                        "message": f.message,
                        "exitCode": f.code,
                        "retryAfterSeconds": f.retry_after_secs,
                    })
                ),
                OutputFormat::Human => eprintln!("error: {}", f.message),
            }
            ExitCode::from(f.code)
        }
    }
}

/// Progress on a terminal, nothing otherwise.
fn progress(msg: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("{msg}");
    }
}

async fn rotate(args: &RotateArgs) -> Result<(), Failure> {
    let secret = current_secret(args)?;
    let sink = match (&args.write_file, &args.env_file, args.output) {
        (Some(p), _, _) => Sink::File(p.clone()),
        (None, Some(p), _) => Sink::EnvFile(p.clone(), args.env_key.clone()),
        (None, None, OutputFormat::Json) => Sink::Stdout,
        (None, None, OutputFormat::Human) => {
            return Err(fail(
                USAGE,
                "choose where the new secret goes: --write-file, --env-file, or --output json",
            ))
        }
    };
    if let Sink::EnvFile(_, key) = &sink {
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(fail(USAGE, "--env-key must be letters, digits and '_'"));
        }
    }

    // 1. Credentials and scope.
    progress("getting an LWA token with the rotation scope...");
    let tokens = Arc::new(TokenProvider::new(
        &args.token_url,
        Credentials::ClientCredentials {
            client_id: args.client_id.clone(),
            client_secret: secret.clone(),
            scope: Some(ROTATION_SCOPE.into()),
        },
    ));
    tokens
        .token()
        .await
        .map_err(|e| token_failure(&e, "the current client secret"))?;

    // 2. Queue and sink, before anything changes.
    let region = rekey_dispatch::sinks::queue_region(args.region.as_deref(), &args.queue_url);
    let sqs = rekey_dispatch::sinks::sqs_client(&region, args.sqs_endpoint_url.as_deref()).await;
    sqs.get_queue_attributes()
        .queue_url(&args.queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| {
            fail(QUEUE, format!(
                "cannot read the queue {} (region {region}): {}. Check the URL, region and AWS credentials; nothing was rotated",
                args.queue_url,
                rekey_dispatch::sinks::aws_error_text(&e)
            ))
        })?;
    check_sink(&sink)?;
    if args.dry_run {
        report(args, json!({ "dryRun": true, "clientId": args.client_id, "queueUrl": args.queue_url, "sink": sink.describe() }),
            &format!("dry run: credentials, rotation scope, queue and sink ({}) are ready; nothing was rotated", sink.describe()));
        return Ok(());
    }

    // 3. A notification left by an earlier run, or a new rotation.
    let mut rotated = false;
    let mut found = receive(
        &sqs,
        &args.queue_url,
        &args.client_id,
        Duration::from_secs(1),
    )
    .await?;
    let mut pending_error = None;
    if found.is_none() {
        progress("rotating...");
        let api = ApplicationsApi::new(&args.api_url, tokens).retry_policy(RetryPolicy::none());
        match api.rotate_application_client_secret_with_http_info().await {
            Ok(_) => rotated = true,
            // A rotation from an earlier run may be on its way: look for its notification.
            Err(e) => pending_error = Some(rotate_failure(&e)),
        }
        if rotated
            || pending_error
                .as_ref()
                .is_some_and(|f| f.code == RATE_LIMITED || f.code == IN_PROGRESS)
        {
            found = receive(
                &sqs,
                &args.queue_url,
                &args.client_id,
                Duration::from_secs(args.timeout_seconds),
            )
            .await?;
        }
    }
    let Some(found) = found else {
        if let Some(f) = pending_error {
            return Err(f);
        }
        return Err(fail(TIMEOUT, format!(
            "the rotation was accepted but no {NEW_SECRET} notification arrived within {} s. The old secret still works \
             (for 7 days); run this command again later to pick the notification up, and check the server's deliveries",
            args.timeout_seconds
        )));
    };

    // 4. The new secret must work before anything is written or deleted.
    let payload = &found.body["payload"]["applicationOAuthClientNewSecret"];
    let new_secret = SecretString::from(
        payload["newClientSecret"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    );
    progress("checking the new secret...");
    TokenProvider::new(
        &args.token_url,
        Credentials::ClientCredentials { client_id: args.client_id.clone(), client_secret: new_secret.clone(), scope: None },
    )
    .token()
    .await
    .map_err(|e| fail(VERIFY, format!(
        "the new secret from the queue was refused ({e}); it stays in the queue and the old secret still works"
    )))?;

    // 5. Sink, then the message.
    write_sink(&sink, &new_secret).map_err(|e| fail(SINK, format!(
        "could not write the new secret to {}: {e}. The notification stays in the queue and the old secret still works; \
         fix the sink and run again",
        sink.describe()
    )))?;
    for receipt in &found.receipts {
        if let Err(e) = sqs
            .delete_message()
            .queue_url(&args.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
        {
            eprintln!(
                "warning: the new secret is saved, but the queue message could not be deleted: {}",
                rekey_dispatch::sinks::aws_error_text(&e)
            );
        }
    }
    let mut result = json!({
        "clientId": args.client_id,
        "rotated": rotated,
        "notificationId": found.body["notificationMetadata"]["notificationId"],
        "newClientSecretExpiryTime": payload["newClientSecretExpiryTime"],
        "oldClientSecretExpiryTime": payload["oldClientSecretExpiryTime"],
        "sink": sink.describe(),
    });
    if matches!(sink, Sink::Stdout) {
        result["clientSecret"] = new_secret.expose_secret().into();
    }
    let old_until = payload["oldClientSecretExpiryTime"]
        .as_str()
        .unwrap_or("its expiry");
    report(
        args,
        result,
        &format!(
            "{} the new secret is in {}; the old one works until {old_until}",
            if rotated {
                "rotated:"
            } else {
                "picked up an earlier rotation:"
            },
            sink.describe()
        ),
    );
    Ok(())
}

fn report(args: &RotateArgs, json_result: Value, human: &str) {
    match args.output {
        OutputFormat::Json => println!("{json_result}"),
        OutputFormat::Human => println!("{human}"),
    }
}

fn current_secret(args: &RotateArgs) -> Result<SecretString, Failure> {
    if let Some(path) = &args.client_secret_file {
        let s = std::fs::read_to_string(path)
            .map_err(|e| fail(USAGE, format!("cannot read {}: {e}", path.display())))?;
        return Ok(SecretString::from(s.trim().to_string()));
    }
    args.client_secret
        .clone()
        .map(SecretString::from)
        .ok_or_else(|| {
            fail(
                USAGE,
                "give the current secret with --client-secret-file or REKEY_CLIENT_SECRET",
            )
        })
}

fn token_failure(e: &ClientError, what: &str) -> Failure {
    match e.body() {
        Some(ErrorBody::OAuth { error, .. }) if error == "invalid_scope" => fail(
            CREDENTIALS,
            "the application may not use the scope sellingpartnerapi::client_credential:rotation",
        ),
        Some(ErrorBody::OAuth { .. }) => fail(
            CREDENTIALS,
            format!("{what} was refused by the token endpoint: {e}"),
        ),
        _ => fail(CREDENTIALS, format!("could not get a token: {e}")),
    }
}

fn rotate_failure(e: &ClientError) -> Failure {
    let status = e.status().map(|s| s.as_u16());
    let text = e
        .body()
        .map(|b| b.summary())
        .unwrap_or_else(|| e.to_string());
    // Every rotation call spends a token of the rate limit, refused ones too (as SP-API
    // throttles): say when the next one can be made.
    let wait = next_attempt_in(e.rate_limit());
    let when = wait.map_or_else(String::new, |s| {
        format!("; the next attempt can be made in about {s} s")
    });
    let mut failure = match status {
        Some(429) => fail(RATE_LIMITED, format!(
            "the rotation is rate limited ({} per second); the old secret still works{when}",
            e.rate_limit().unwrap_or("?")
        )),
        Some(400) if text.contains("not enrolled") => fail(NOT_ENROLLED, format!(
            "{text}. Register the queue for {NEW_SECRET} (with Rekey: rekey destinations set <app> --sqs-queue-url ...), then run again{when}"
        )),
        Some(400) => fail(IN_PROGRESS, format!(
            "{text}. No notification for it is in the queue: finish the rotation with the new secret you have, or wait for the old one to expire"
        )),
        Some(403) => fail(CREDENTIALS, format!("the rotation was refused: {text}")),
        _ => fail(UNKNOWN_OUTCOME, format!(
            "the rotation request failed ({e}); it may or may not have happened. The old secret still works; run again: \
             if it happened, its notification is picked up from the queue"
        )),
    };
    if matches!(failure.code, RATE_LIMITED | NOT_ENROLLED) {
        failure.retry_after_secs = wait;
    }
    failure
}

/// Seconds until the rate limit (`x-amzn-RateLimit-Limit`, requests per second) grants the
/// next request: one token's refill time, rounded up.
fn next_attempt_in(rate_limit: Option<&str>) -> Option<u64> {
    let rate: f64 = rate_limit?.trim().parse().ok()?;
    (rate.is_finite() && rate > 0.0).then(|| {
        let secs = (1.0 / rate).ceil();
        if (1.0..86_400.0).contains(&secs) {
            secs as u64
        } else {
            1
        }
    })
}

/// A notification for this client: its body and the receipt handles of every copy.
struct Found {
    body: Value,
    receipts: Vec<String>,
}

/// Long-polls the queue for `wait` for this client's newest new-secret notification.
/// Messages for others are made visible again at once; this client's test notifications are
/// deleted.
async fn receive(
    sqs: &Sqs,
    queue_url: &str,
    client_id: &str,
    wait: Duration,
) -> Result<Option<Found>, Failure> {
    let deadline = Instant::now() + wait;
    let started = Instant::now();
    let mut found: Option<Found> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let res = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(i32::try_from(left.as_secs().clamp(0, 20)).unwrap_or(20))
            .visibility_timeout(120)
            .send()
            .await
            .map_err(|e| {
                fail(
                    QUEUE,
                    format!(
                        "cannot receive from the queue: {}; the old secret still works",
                        rekey_dispatch::sinks::aws_error_text(&e)
                    ),
                )
            })?;
        for m in res.messages() {
            let (Some(body), Some(receipt)) = (m.body(), m.receipt_handle()) else {
                continue;
            };
            let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let ours = |k: &str| v["payload"][k]["clientId"].as_str() == Some(client_id);
            if v["notificationType"] == NEW_SECRET && ours("applicationOAuthClientNewSecret") {
                match &mut found {
                    Some(f) if f.body["eventTime"].as_str() >= v["eventTime"].as_str() => {
                        f.receipts.push(receipt.to_string())
                    }
                    Some(f) => {
                        f.receipts.push(receipt.to_string());
                        f.body = v;
                    }
                    None => {
                        found = Some(Found {
                            body: v,
                            receipts: vec![receipt.to_string()],
                        })
                    }
                }
            } else if ours("testNotification") {
                let _ = sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(receipt)
                    .send()
                    .await;
            } else {
                let _ = sqs
                    .change_message_visibility()
                    .queue_url(queue_url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await;
            }
        }
        if found.is_some() || Instant::now() >= deadline {
            return Ok(found);
        }
        if std::io::stderr().is_terminal() {
            eprint!(
                "\rwaiting for the new secret... {} s",
                started.elapsed().as_secs()
            );
            let _ = std::io::stderr().flush();
        }
    }
}

/// Fails early if the sink cannot be written.
fn check_sink(sink: &Sink) -> Result<(), Failure> {
    sink.check_writable().map_err(|e| {
        fail(
            SINK,
            format!(
                "cannot write to {}: {e}; nothing was rotated",
                sink.describe()
            ),
        )
    })
}
