//! Where notifications go: AWS SQS (official SDK), Standard Webhooks, a spool directory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rekey_core::clock::Clock;
use rekey_core::crypto::Sealer;
use rekey_core::model::OrgId;
use rekey_core::notify::{
    signing_key_context, url_host_port, Delivery, Destination, Target, ADDRESS_NOT_ALLOWED,
};

use crate::guard::DestinationGuard;
use ring::hmac;
use tokio::sync::Mutex;

/// Why a send failed, in words safe to store and show (never the payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError(pub String);

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Sends one notification body to one destination.
#[async_trait]
pub trait Sink: Send + Sync {
    async fn send(
        &self,
        dest: &Destination,
        delivery: &Delivery,
        body: &[u8],
    ) -> Result<(), SendError>;
}

/// The real sinks, chosen by the destination's kind.
pub struct DestinationSinks {
    sqs: SqsSink,
    secrets_manager: SecretsManagerSink,
    webhook: WebhookSink,
    spool_root: std::path::PathBuf,
    guard: DestinationGuard,
}

impl DestinationSinks {
    /// `webhook_keys` opens the sealed webhook signing keys; `clock` stamps webhooks;
    /// `spool_root` is where `file` destinations live.
    /// `guard` decides which addresses webhooks and SQS endpoint overrides may reach.
    pub fn new(
        webhook_keys: Sealer,
        clock: Arc<dyn Clock>,
        timeout: Duration,
        spool_root: std::path::PathBuf,
        guard: DestinationGuard,
    ) -> Self {
        Self {
            sqs: SqsSink::default(),
            secrets_manager: SecretsManagerSink::default(),
            webhook: WebhookSink::new(webhook_keys, clock, timeout, &guard),
            spool_root,
            guard,
        }
    }
}

#[async_trait]
impl Sink for DestinationSinks {
    async fn send(
        &self,
        dest: &Destination,
        delivery: &Delivery,
        body: &[u8],
    ) -> Result<(), SendError> {
        if let Some(endpoint) = dest.target.aws_endpoint_override() {
            // The AWS SDK resolves for itself: checked just before (a DNS answer that changes
            // in between is the one gap; overrides are for development).
            self.guard
                .check_url(endpoint)
                .await
                .map_err(|e| SendError(format!("could not deliver: {e}")))?;
        }
        match &dest.target {
            Target::Sqs {
                queue_url,
                region,
                endpoint_url,
            } => {
                self.sqs
                    .send(queue_url, region, endpoint_url.as_deref(), delivery, body)
                    .await
            }
            Target::Webhook { url } => self.webhook.send(dest, url, delivery, body).await,
            Target::File { directory } => {
                // Validated as relative, safe segments when the destination was set; each org
                // writes only below its own directory.
                write_spool_file(&self.spool_root, delivery, directory, body).await
            }
            Target::SecretsManager {
                secret_id,
                region,
                endpoint_url,
            } => {
                self.secrets_manager
                    .send(secret_id, region, endpoint_url.as_deref(), delivery, body)
                    .await
            }
        }
    }
}

/// Whether a destination answers, without sending it anything (`rekey doctor`): the SQS
/// queue's attributes, any HTTP answer to a `HEAD` of the webhook URL, a spool directory (or
/// the root it will be made in) that is a writable directory. `Ok` says what answered.
pub async fn probe(
    target: &Target,
    org: OrgId,
    spool_root: &Path,
    timeout: Duration,
) -> Result<String, SendError> {
    match target {
        Target::Sqs {
            queue_url,
            region,
            endpoint_url,
        } => {
            let client = sqs_client(region, endpoint_url.as_deref()).await;
            let call = client
                .get_queue_attributes()
                .queue_url(queue_url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .send();
            match tokio::time::timeout(timeout, call).await {
                Ok(Ok(_)) => Ok("the SQS queue answers".into()),
                Ok(Err(e)) => Err(SendError(format!(
                    "SQS GetQueueAttributes failed: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                ))),
                Err(_) => Err(SendError("SQS did not answer in time".into())),
            }
        }
        Target::Webhook { url } => {
            let http = reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| SendError(format!("no HTTP client: {e}")))?;
            match http.head(url).send().await {
                Ok(res) => Ok(format!(
                    "the webhook answers (HTTP {})",
                    res.status().as_u16()
                )),
                Err(e) => Err(SendError(format!(
                    "the webhook does not answer: {}",
                    e.without_url()
                ))),
            }
        }
        Target::SecretsManager {
            secret_id,
            region,
            endpoint_url,
        } => {
            let client = secrets_manager_client(region, endpoint_url.as_deref()).await;
            let call = client.describe_secret().secret_id(secret_id).send();
            match tokio::time::timeout(timeout, call).await {
                Ok(Ok(_)) => Ok("the Secrets Manager secret answers".into()),
                Ok(Err(e)) => Err(SendError(format!(
                    "Secrets Manager DescribeSecret failed: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                ))),
                Err(_) => Err(SendError("Secrets Manager did not answer in time".into())),
            }
        }
        Target::File { directory } => {
            let dir = spool_dir(spool_root, org, directory);
            let existing = if dir.exists() {
                dir.as_path()
            } else {
                spool_root
            };
            match std::fs::metadata(existing) {
                Ok(m) if m.is_dir() && !m.permissions().readonly() => {
                    Ok(format!("{} is a writable directory", existing.display()))
                }
                Ok(_) => Err(SendError(format!(
                    "{} is not a writable directory",
                    existing.display()
                ))),
                Err(e) => Err(SendError(format!("{}: {e}", existing.display()))),
            }
        }
    }
}

/// An SQS client for `region` (and an optional endpoint override), with credentials from the
/// standard AWS chain and rustls with ring, the crypto the rest of Rekey uses.
pub async fn sqs_client(region: &str, endpoint: Option<&str>) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&aws_config(region, endpoint).await)
}

/// An AWS SDK error for people: each cause's message, without the SDK's debug dump.
pub fn aws_error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// The region of an SQS queue: the one given, else the one its URL names, else `AWS_REGION`,
/// else us-east-1 (a local SQS-compatible server's URL names none).
pub fn queue_region(given: Option<&str>, queue_url: &str) -> String {
    given
        .map(str::to_string)
        .or_else(|| rekey_core::notify::sqs_region_from_url(queue_url))
        .or_else(|| std::env::var("AWS_REGION").ok())
        .unwrap_or_else(|| "us-east-1".into())
}

/// The AWS SDK configuration for `region` (and an optional endpoint override): credentials
/// from the standard AWS chain, rustls with ring (the crypto the rest of Rekey uses).
async fn aws_config(region: &str, endpoint: Option<&str>) -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(region.to_string()));
    if let Some(ep) = endpoint {
        loader = loader.endpoint_url(ep);
    }
    loader.load().await
}

/// A Secrets Manager client for `region` (and an optional endpoint override).
pub async fn secrets_manager_client(
    region: &str,
    endpoint: Option<&str>,
) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&aws_config(region, endpoint).await)
}

/// AWS Secrets Manager through the official SDK: each new client secret becomes a new version
/// of the secret (`PutSecretValue` moves `AWSCURRENT` to it and `AWSPREVIOUS` to the one before),
/// with the notification id as the idempotency token, so a redelivery adds no second version.
/// A test notification checks the secret is there (`DescribeSecret`) and writes nothing.
#[derive(Default)]
pub struct SecretsManagerSink {
    clients: AwsClients<aws_sdk_secretsmanager::Client>,
}

/// AWS SDK clients by region and endpoint override, each made once (a client holds its
/// connection pool and credentials cache).
struct AwsClients<C>(Mutex<HashMap<(String, Option<String>), C>>);

impl<C> Default for AwsClients<C> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<C: Clone> AwsClients<C> {
    async fn get<F: std::future::Future<Output = C>>(
        &self,
        region: &str,
        endpoint: Option<&str>,
        make: impl FnOnce() -> F,
    ) -> C {
        let key = (region.to_string(), endpoint.map(str::to_string));
        let mut clients = self.0.lock().await;
        if let Some(c) = clients.get(&key) {
            return c.clone();
        }
        let client = make().await;
        clients.insert(key, client.clone());
        client
    }
}

impl SecretsManagerSink {
    async fn send(
        &self,
        secret_id: &str,
        region: &str,
        endpoint: Option<&str>,
        delivery: &Delivery,
        body: &[u8],
    ) -> Result<(), SendError> {
        let client = self
            .clients
            .get(region, endpoint, || {
                secrets_manager_client(region, endpoint)
            })
            .await;
        let envelope: serde_json::Value = serde_json::from_slice(body)
            .map_err(|_| SendError("the notification does not parse".into()))?;
        let Some(secret) =
            envelope["payload"]["applicationOAuthClientNewSecret"]["newClientSecret"].as_str()
        else {
            // A test notification (or any without a new secret): check access, write nothing.
            return client
                .describe_secret()
                .secret_id(secret_id)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    SendError(format!(
                        "Secrets Manager DescribeSecret failed: {}",
                        aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                    ))
                });
        };
        client
            .put_secret_value()
            .secret_id(secret_id)
            .secret_string(secret)
            .client_request_token(delivery.notification_id.to_string())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                SendError(format!(
                    "Secrets Manager PutSecretValue failed: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                ))
            })
    }
}

/// SQS through the official AWS SDK; one client per region and endpoint.
#[derive(Default)]
pub struct SqsSink {
    clients: AwsClients<aws_sdk_sqs::Client>,
}

impl SqsSink {
    async fn send(
        &self,
        queue_url: &str,
        region: &str,
        endpoint: Option<&str>,
        delivery: &Delivery,
        body: &[u8],
    ) -> Result<(), SendError> {
        let client = self
            .clients
            .get(region, endpoint, || sqs_client(region, endpoint))
            .await;
        let body = String::from_utf8(body.to_vec())
            .map_err(|_| SendError("the payload is not UTF-8".into()))?;
        let mut req = client
            .send_message()
            .queue_url(queue_url)
            .message_body(body);
        if queue_url.ends_with(".fifo") {
            // FIFO queues drop a duplicate send of the same notification themselves.
            req = req
                .message_group_id(delivery.app_id.to_string())
                .message_deduplication_id(delivery.notification_id.to_string());
        }
        req.send().await.map(|_| ()).map_err(|e| {
            SendError(format!(
                "SQS SendMessage failed: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            ))
        })
    }
}

/// Standard Webhooks: `webhook-id`, `webhook-timestamp`, and `webhook-signature` =
/// `v1,` + base64(HMAC-SHA-256(key, "{id}.{timestamp}.{body}")).
pub struct WebhookSink {
    http: reqwest::Client,
    keys: Sealer,
    clock: Arc<dyn Clock>,
    /// For IP-literal URLs, which the client's resolver never sees.
    policy: rekey_core::notify::AddressPolicy,
}

impl WebhookSink {
    #[allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "the builder fails only without a TLS backend; an OS RNG failure leaves nothing safe to do"
    )]
    pub fn new(
        keys: Sealer,
        clock: Arc<dyn Clock>,
        timeout: Duration,
        guard: &DestinationGuard,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the target itself, past the guard.
            .no_proxy()
            .dns_resolver(Arc::new(guard.resolver()))
            .user_agent(concat!("rekey-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds");
        Self {
            http,
            keys,
            clock,
            policy: guard.policy().clone(),
        }
    }

    async fn send(
        &self,
        dest: &Destination,
        url: &str,
        delivery: &Delivery,
        body: &[u8],
    ) -> Result<(), SendError> {
        let sealed = dest
            .sealed_signing_key
            .as_ref()
            .ok_or_else(|| SendError("the webhook has no signing key".into()))?;
        let secret = self
            .keys
            .open(sealed, &signing_key_context(dest.id))
            .map_err(|_| SendError("the webhook signing key does not open".into()))?;
        let secret =
            String::from_utf8(secret).map_err(|_| SendError("bad webhook signing key".into()))?;
        let refused = || SendError(format!("could not deliver: {ADDRESS_NOT_ALLOWED}"));
        let Some((host, _)) = url_host_port(url) else {
            return Err(refused());
        };
        if host
            .parse::<IpAddr>()
            .is_ok_and(|ip| !self.policy.permits(ip))
        {
            return Err(refused());
        }
        let id = delivery.notification_id.to_string();
        let timestamp = self.clock.now().as_secs().to_string();
        let signature = sign_webhook(&secret, &id, &timestamp, body)
            .ok_or_else(|| SendError("bad webhook signing key".into()))?;
        let res = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", &timestamp)
            .header("webhook-signature", signature)
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| {
                let reason = coarse_reason(&e);
                tracing::debug!(error = %e.without_url(), "webhook request failed");
                SendError(format!("could not deliver: {reason}"))
            })?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(SendError(format!(
                "could not deliver: the receiver answered HTTP {}",
                res.status().as_u16()
            )))
        }
    }
}

/// Why a webhook request failed, coarsely: members read it (`lastError`), and the details of
/// a refused connection would tell them about hosts they cannot see.
fn coarse_reason(e: &reqwest::Error) -> String {
    if crate::guard::is_not_allowed(e) {
        ADDRESS_NOT_ALLOWED.to_string()
    } else if e.is_timeout() {
        "the receiver did not answer in time".into()
    } else if e.is_connect() {
        "no connection to the receiver".into()
    } else {
        "the request failed".into()
    }
}

pub use rekey_core::secret::generate_webhook_secret;

/// Whether a `webhook-signature` header (space-separated `v1,<base64>` signatures, as
/// Standard Webhooks sends during a key rotation) holds a valid signature of the message by
/// `secret`. Compared in constant time.
pub fn verify_webhook(secret: &str, id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let Ok(key) = STANDARD.decode(secret.strip_prefix("whsec_").unwrap_or(secret)) else {
        return false;
    };
    // An empty key is one anybody can sign with.
    if key.len() < 16 {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let message = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body].concat();
    // A handful of signatures (a sender mid key rotation), not thousands to hash for.
    header.split(' ').take(5).any(|candidate| {
        candidate
            .strip_prefix("v1,")
            .and_then(|sig| STANDARD.decode(sig).ok())
            .is_some_and(|tag| hmac::verify(&key, &message, &tag).is_ok())
    })
}

/// The `webhook-signature` header value for a message, or `None` for a malformed secret.
pub fn sign_webhook(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> Option<String> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.as_bytes());
    ctx.update(b".");
    ctx.update(body);
    Some(format!("v1,{}", STANDARD.encode(ctx.sign().as_ref())))
}

/// Writes `<dir>/<notificationId>.json` (0600) atomically: temp file, fsync, rename. A
/// duplicate delivery rewrites the same file.
/// Where an org's `file` destination `directory` lives: `<root>/<org id>/<directory>`, so
/// that no org can name another org's directory (the directory is validated as relative,
/// ASCII segments without `.` or `..` when it is set).
pub fn spool_dir(root: &Path, org: OrgId, directory: &str) -> std::path::PathBuf {
    root.join(org.to_string()).join(Path::new(directory))
}

/// Writes one notification as `<notificationId>.json` (0600) into the org's spool directory,
/// atomically (a temporary file renamed into place). Directories below the root are made 0700
/// and walked by handle (`openat` with `O_NOFOLLOW`), one segment at a time, so a symbolic
/// link anywhere below the root (made by someone on the host, even between two deliveries or
/// in the middle of one) is refused, never followed into another org's directory.
async fn write_spool_file(
    root: &Path,
    delivery: &Delivery,
    directory: &str,
    body: &[u8],
) -> Result<(), SendError> {
    let root = root.to_path_buf();
    let below: Vec<String> = std::iter::once(delivery.org_id.to_string())
        .chain(directory.split('/').map(str::to_string))
        .collect();
    let name = format!("{}.json", delivery.notification_id);
    let body = body.to_vec();
    tokio::task::spawn_blocking(move || spool_write(&root, &below, &name, &body))
        .await
        .map_err(|_| SendError("the spool writer stopped".into()))?
}

#[cfg(unix)]
fn spool_write(root: &Path, below: &[String], name: &str, body: &[u8]) -> Result<(), SendError> {
    use rustix::fs::{fsync, mkdirat, openat, renameat, unlinkat, AtFlags, Mode, OFlags, CWD};
    use rustix::io::Errno;
    use std::io::Write as _;

    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let io = |e: Errno| spool_error(std::io::Error::from(e));
    let refused = || {
        SendError(
            "cannot write to the spool directory: a path below the spool root is not a \
             directory (a symbolic link?)"
                .into(),
        )
    };
    // The root is the operator's (it may itself be a link); only what is below it is walked.
    std::fs::create_dir_all(root).map_err(spool_error)?;
    let mut dir = openat(CWD, root, dir_flags, Mode::empty()).map_err(io)?;
    for part in below {
        match mkdirat(&dir, part.as_str(), Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(io(e)),
        }
        dir = match openat(
            &dir,
            part.as_str(),
            dir_flags | OFlags::NOFOLLOW,
            Mode::empty(),
        ) {
            Ok(d) => d,
            Err(Errno::LOOP | Errno::NOTDIR) => return Err(refused()),
            Err(e) => return Err(io(e)),
        };
    }
    // Unique per write: two deliveries of one notification (a lease that ran out mid-write)
    // never write into the same temporary file. Consumers read `*.json` only.
    let tmp = format!(".{name}.{}.tmp", rekey_core::crypto::random_hex(8));
    let file = openat(
        &dir,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(io)?;
    let mut file = std::fs::File::from(file);
    file.write_all(body).map_err(spool_error)?;
    file.sync_all().map_err(spool_error)?;
    // rename replaces a link named like the file; it never writes through it.
    if let Err(e) = renameat(&dir, tmp.as_str(), &dir, name) {
        let _ = unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        return Err(io(e));
    }
    fsync(&dir).map_err(io)
}

#[cfg(not(unix))]
fn spool_write(_: &Path, _: &[String], _: &str, _: &[u8]) -> Result<(), SendError> {
    Err(SendError(
        "file destinations need a Unix host (directories are walked with openat)".into(),
    ))
}

fn spool_error(e: std::io::Error) -> SendError {
    SendError(format!("cannot write to the spool directory: {}", e.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_signatures_match_the_standard_webhooks_reference_vector() {
        // From the Standard Webhooks specification's test vector.
        let sig = sign_webhook(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn the_reference_signature_verifies_and_any_change_does_not() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let (id, ts, body) = (
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#.as_slice(),
        );
        let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert!(verify_webhook(secret, id, ts, body, good));
        // One of several signatures (a key rotation on the sender's side).
        assert!(verify_webhook(
            secret,
            id,
            ts,
            body,
            &format!("v1,AAAA {good}")
        ));
        assert!(!verify_webhook(secret, id, "1614265331", body, good));
        assert!(!verify_webhook(secret, "msg_other", ts, body, good));
        assert!(!verify_webhook(secret, id, ts, b"{\"test\": 1}", good));
        assert!(!verify_webhook(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx",
            id,
            ts,
            body,
            good
        ));
        assert!(!verify_webhook(secret, id, ts, body, "v2,g0hM9SsE"));
        assert!(!verify_webhook(secret, id, ts, body, ""));
    }

    #[test]
    fn generated_webhook_secrets_sign() {
        let s = generate_webhook_secret();
        assert!(s.starts_with("whsec_"));
        assert!(sign_webhook(&s, "i", "1", b"{}").is_some());
    }
}
