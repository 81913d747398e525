//! Notifications: the SP-API envelope and payloads, destinations (the "Notification
//! Preferences"), and deliveries (rows of the transactional outbox).

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::crypto::Sealer;
use crate::error::CoreError;
use crate::model::{AppId, DeliveryId, DestinationId, NotificationId, OrgId};
use rekey_proto::spapi::{
    ClientSecretExpiry, NewClientSecret, NewSecretPayload, Notification, NotificationMetadata,
    SecretExpiryPayload,
};

/// The two notification types Rekey sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotificationType {
    #[serde(rename = "APPLICATION_OAUTH_CLIENT_NEW_SECRET")]
    NewSecret,
    #[serde(rename = "APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY")]
    SecretExpiry,
}

impl NotificationType {
    pub const ALL: [NotificationType; 2] =
        [NotificationType::NewSecret, NotificationType::SecretExpiry];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationType::NewSecret => "APPLICATION_OAUTH_CLIENT_NEW_SECRET",
            NotificationType::SecretExpiry => "APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Where notifications of one type go. Holds no secret (a webhook's signing key is sealed
/// beside it in [`Destination::sealed_signing_key`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// An AWS SQS queue (or any SQS-compatible server through `endpoint_url`). Credentials
    /// come from the standard AWS chain of the node that delivers.
    Sqs {
        queue_url: String,
        region: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint_url: Option<String>,
    },
    /// An HTTPS endpoint, signed with Standard Webhooks headers.
    Webhook { url: String },
    /// A spool directory under the server's `file_destination_root`; each notification is a
    /// 0600 file `<notificationId>.json`.
    File { directory: String },
    /// An AWS Secrets Manager secret (new secrets only): each new client secret becomes its
    /// new version, labelled `AWSCURRENT` (the one before it becomes `AWSPREVIOUS`), so that
    /// services reading their credentials from Secrets Manager need no agent.
    SecretsManager {
        /// The secret's name or ARN.
        secret_id: String,
        region: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint_url: Option<String>,
    },
}

/// A destination as a form or a request gives it: a kind and the fields that kind needs.
#[derive(Clone, Debug, Default)]
pub struct TargetFields {
    pub queue_url: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub url: Option<String>,
    pub directory: Option<String>,
    pub secret_id: Option<String>,
}

impl Target {
    /// The target of `kind` (`sqs`, `webhook`, `file`) from its fields; blank fields count
    /// as absent. An SQS queue's region defaults to the one its URL names. The message
    /// names the missing field in the API's spelling.
    pub fn from_fields(kind: &str, fields: TargetFields) -> Result<Target, String> {
        let given = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let missing = |f: &str| format!("{f} is required for this kind");
        Ok(match kind {
            "sqs" => {
                let queue_url = given(fields.queue_url).ok_or_else(|| missing("queueUrl"))?;
                Target::Sqs {
                    region: match given(fields.region) {
                        Some(r) => r,
                        None => sqs_region_from_url(&queue_url)
                            .ok_or_else(|| missing("region (or a queueUrl that names it)"))?,
                    },
                    queue_url,
                    endpoint_url: given(fields.endpoint_url),
                }
            }
            "webhook" => Target::Webhook {
                url: given(fields.url).ok_or_else(|| missing("url"))?,
            },
            "file" => Target::File {
                directory: given(fields.directory).ok_or_else(|| missing("directory"))?,
            },
            "secrets_manager" => {
                let secret_id = given(fields.secret_id).ok_or_else(|| missing("secretId"))?;
                Target::SecretsManager {
                    region: match given(fields.region) {
                        Some(r) => r,
                        None => arn_region(&secret_id)
                            .ok_or_else(|| missing("region (or a secretId ARN that names it)"))?,
                    },
                    secret_id,
                    endpoint_url: given(fields.endpoint_url),
                }
            }
            _ => return Err("kind must be sqs, webhook, file or secrets_manager".into()),
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Target::Sqs { .. } => "sqs",
            Target::Webhook { .. } => "webhook",
            Target::File { .. } => "file",
            Target::SecretsManager { .. } => "secrets_manager",
        }
    }

    /// The endpoint override of an AWS target, if any.
    pub fn aws_endpoint_override(&self) -> Option<&str> {
        match self {
            Target::Sqs { endpoint_url, .. } | Target::SecretsManager { endpoint_url, .. } => {
                endpoint_url.as_deref()
            }
            _ => None,
        }
    }

    /// Checks the settings' shape (not reachability).
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |m: &str| Err(CoreError::Invalid(m.to_string()));
        let bad_region = |region: &str| {
            region.is_empty()
                || region.len() > 64
                || !region
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        let bad_endpoint = |e: &Option<String>| {
            e.as_ref()
                .is_some_and(|e| !(e.starts_with("https://") || e.starts_with("http://")))
        };
        match self {
            Target::Sqs {
                queue_url,
                region,
                endpoint_url,
            } => {
                if !(queue_url.starts_with("https://") || queue_url.starts_with("http://"))
                    || queue_url.len() > 2048
                {
                    return bad("queueUrl must be an http(s) URL");
                }
                if bad_region(region) {
                    return bad("region must be an AWS region name such as us-east-1");
                }
                if bad_endpoint(endpoint_url) {
                    return bad("endpointUrl must be an http(s) URL");
                }
            }
            Target::SecretsManager {
                secret_id,
                region,
                endpoint_url,
            } => {
                // AWS: names of 1 to 512 of A-Z a-z 0-9 /_+=.@- (ARNs add ':').
                if secret_id.is_empty()
                    || secret_id.len() > 2048
                    || !secret_id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-:".contains(&b))
                {
                    return bad("secretId must be a Secrets Manager secret name or ARN");
                }
                if bad_region(region) {
                    return bad("region must be an AWS region name such as us-east-1");
                }
                if bad_endpoint(endpoint_url) {
                    return bad("endpointUrl must be an http(s) URL");
                }
            }
            Target::Webhook { url } => {
                let parsed = url::Url::parse(url).ok();
                let http = parsed
                    .as_ref()
                    .is_some_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
                if !(url.starts_with("https://") || url.starts_with("http://"))
                    || url.len() > 2048
                    || !http
                {
                    return bad("url must be an http(s) URL");
                }
            }
            Target::File { directory } => {
                let safe_segment = |seg: &str| {
                    !seg.is_empty()
                        && seg != "."
                        && seg != ".."
                        && seg
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                };
                if directory.len() > 255 || !directory.split('/').all(safe_segment) {
                    return bad("directory must be a relative path under the server's spool root: segments of A-Z, a-z, 0-9, '.', '_', '-'");
                }
            }
        }
        Ok(())
    }
}

/// One notification preference of an app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub id: DestinationId,
    pub app_id: AppId,
    pub notification_type: NotificationType,
    pub target: Target,
    pub sealed_signing_key: Option<Vec<u8>>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Sealing context of a webhook signing key.
pub fn signing_key_context(id: DestinationId) -> Vec<u8> {
    format!("webhook-signing-key/{id}").into_bytes()
}

/// Sealing context of a delivery payload: a payload copied to another row does not open.
pub fn payload_context(id: DeliveryId) -> Vec<u8> {
    format!("delivery/{id}").into_bytes()
}

/// What became of one leased delivery; a batch of them is recorded at once
/// (`Store::record_delivery_outcomes`).
#[derive(Clone, Debug)]
pub struct DeliveryOutcome {
    pub id: DeliveryId,
    pub result: DeliveryResult,
    /// Written with the outcome, only if the row was still this dispatcher's.
    pub audit: Vec<crate::model::AuditEvent>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryResult {
    /// Sent; the payload is wiped.
    Delivered { at: Timestamp },
    /// A failed attempt: tried again at `retry_at`, or dead when `None`.
    Failed {
        error: String,
        retry_at: Option<Timestamp>,
    },
    /// Not attempted (no time left within the lease): back to pending at once, the attempt
    /// not counted.
    Released,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Dead,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// A row of the outbox: one notification on its way to one destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub notification_id: NotificationId,
    pub app_id: AppId,
    pub org_id: OrgId,
    pub notification_type: NotificationType,
    pub destination_id: DestinationId,
    /// The envelope JSON, sealed; `None` once delivered.
    pub sealed_payload: Option<Vec<u8>>,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Timestamp>,
    pub last_error: Option<String>,
    /// Makes a notification unique (e.g. one expiry warning per secret and threshold).
    pub dedupe_key: Option<String>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

impl Delivery {
    /// A pending delivery of `envelope` (see [`envelope`]), sealed with `sealer`.
    #[allow(clippy::too_many_arguments)]
    #[allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "the notification wire types always serialize"
    )]
    pub fn new(
        sealer: &Sealer,
        notification_id: NotificationId,
        app_id: AppId,
        org_id: OrgId,
        notification_type: NotificationType,
        destination_id: DestinationId,
        envelope: &impl Serialize,
        dedupe_key: Option<String>,
        now: Timestamp,
    ) -> Self {
        let id = DeliveryId::new();
        let body = serde_json::to_vec(envelope).expect("a notification serializes");
        Self {
            sealed_payload: Some(sealer.seal(&body, &payload_context(id))),
            id,
            notification_id,
            app_id,
            org_id,
            notification_type,
            destination_id,
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: now,
            lease_owner: None,
            lease_until: None,
            last_error: None,
            dedupe_key,
            created_at: now,
            delivered_at: None,
        }
    }
}

/// The SP-API notification envelope (camelCase, times ISO 8601 UTC).
pub fn envelope<P: Serialize>(
    notification_type: NotificationType,
    notification_id: NotificationId,
    application_id: &str,
    subscription_id: DestinationId,
    payload: P,
    now: Timestamp,
) -> Notification<P> {
    Notification {
        notification_version: "1.0".into(),
        notification_type: notification_type.as_str().into(),
        payload_version: "2023-11-30".into(),
        event_time: now.to_rfc3339(),
        payload,
        notification_metadata: NotificationMetadata {
            application_id: application_id.into(),
            subscription_id: subscription_id.to_string(),
            publish_time: now.to_rfc3339(),
            notification_id: notification_id.to_string(),
        },
    }
}

/// `APPLICATION_OAUTH_CLIENT_NEW_SECRET` payload. Holds the new secret: only ever sealed.
pub fn new_secret_payload(
    client_id: &str,
    new_secret: &str,
    new_expires_at: Option<Timestamp>,
    old_expires_at: Option<Timestamp>,
) -> NewSecretPayload {
    NewSecretPayload {
        new_secret: NewClientSecret {
            client_id: client_id.into(),
            new_client_secret: new_secret.into(),
            new_client_secret_expiry_time: new_expires_at.map(Timestamp::to_rfc3339),
            old_client_secret_expiry_time: old_expires_at.map(Timestamp::to_rfc3339),
        },
    }
}

/// `APPLICATION_OAUTH_CLIENT_SECRET_EXPIRY` payload.
pub fn secret_expiry_payload(
    client_id: &str,
    expires_at: Timestamp,
    automatic_rotation_at: Option<Timestamp>,
) -> SecretExpiryPayload {
    SecretExpiryPayload {
        expiry: ClientSecretExpiry {
            client_id: client_id.into(),
            client_secret_expiry_time: expires_at.to_rfc3339(),
            client_secret_expiry_reason: "PERIODIC_ROTATION".into(),
            automatic_rotation_time: automatic_rotation_at.map(Timestamp::to_rfc3339),
        },
    }
}

/// The region an AWS ARN names (`arn:aws:secretsmanager:<region>:<account>:secret:<name>`).
pub fn arn_region(arn: &str) -> Option<String> {
    let mut parts = arn.split(':');
    (parts.next()? == "arn").then_some(())?;
    let region = parts.nth(2)?;
    (!region.is_empty()).then(|| region.to_string())
}

/// The AWS region an SQS queue URL names (`https://sqs.<region>.amazonaws.com/<account>/<queue>`),
/// if it names one; a local SQS-compatible server's URL names none.
pub fn sqs_region_from_url(queue_url: &str) -> Option<String> {
    let host = queue_url.split("://").nth(1)?.split('/').next()?;
    let region = host.strip_prefix("sqs.")?.split('.').next()?;
    (!region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-'))
    .then(|| region.to_string())
}

/// Days before expiry at which the current secret's owner is warned.
pub const EXPIRY_WARNING_DAYS: [i64; 6] = [90, 60, 30, 15, 7, 1];

/// The most urgent warning threshold (in days) that `expires_at` has crossed at `now`, if
/// any. One warning per threshold is sent; thresholds skipped while Rekey was not running
/// are not sent late.
pub fn expiry_warning_due(expires_at: Timestamp, now: Timestamp) -> Option<i64> {
    if now >= expires_at {
        return None;
    }
    let left_ms = expires_at.as_millis() - now.as_millis();
    EXPIRY_WARNING_DAYS
        .iter()
        .rev()
        .copied()
        .find(|d| left_ms <= d * 86_400_000)
}

/// Backoff before retry `attempt` (1-based): `base * 2^(attempt-1)`, capped, with "full
/// jitter" drawn from `jitter` in [0, 1) so that retries from many rows spread out.
pub fn backoff_ms(attempt: u32, base_ms: i64, cap_ms: i64, jitter: f64) -> i64 {
    let exp = base_ms.saturating_mul(1i64 << attempt.saturating_sub(1).min(30));
    let ceiling = exp.min(cap_ms).max(1);
    // Half fixed, half random: never retries immediately, never all at once.
    ceiling / 2 + ((ceiling / 2) as f64 * jitter.clamp(0.0, 1.0)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

    #[test]
    fn an_sqs_queue_url_names_its_region_unless_it_is_a_local_one() {
        assert_eq!(
            sqs_region_from_url("https://sqs.eu-west-2.amazonaws.com/123456789012/q").as_deref(),
            Some("eu-west-2")
        );
        assert_eq!(
            sqs_region_from_url("http://127.0.0.1:4566/000000000000/q"),
            None
        );
        assert_eq!(sqs_region_from_url("not a url"), None);
    }

    #[test]
    fn a_secrets_manager_destination_takes_its_region_from_an_arn() {
        let arn = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:billing-AbCdEf";
        assert_eq!(arn_region(arn).as_deref(), Some("eu-central-1"));
        assert_eq!(arn_region("billing/client-secret"), None);
        let fields = |id: &str, region: Option<&str>| TargetFields {
            secret_id: Some(id.into()),
            region: region.map(str::to_string),
            ..Default::default()
        };
        let t = Target::from_fields("secrets_manager", fields(arn, None)).unwrap();
        assert!(matches!(&t, Target::SecretsManager { region, .. } if region == "eu-central-1"));
        assert!(t.validate().is_ok());
        assert!(Target::from_fields("secrets_manager", fields("billing", None)).is_err());
        let named = Target::from_fields("secrets_manager", fields("billing", Some("us-east-1")));
        assert!(named.unwrap().validate().is_ok());
        let odd = Target::from_fields("secrets_manager", fields("a b", Some("us-east-1")));
        assert!(odd.unwrap().validate().is_err());
    }

    #[test]
    fn the_envelope_has_the_sp_api_fields() {
        let nid = NotificationId::new();
        let did = DestinationId::new();
        let e = envelope(
            NotificationType::NewSecret,
            nid,
            "rkc_app",
            did,
            new_secret_payload("rkc_app", "rks_x", Some(T0), None),
            T0,
        );
        // Checked as JSON: the field names are the wire contract.
        let e = serde_json::to_value(&e).unwrap();
        assert_eq!(e["notificationVersion"], "1.0");
        assert_eq!(e["notificationType"], "APPLICATION_OAUTH_CLIENT_NEW_SECRET");
        assert_eq!(e["payloadVersion"], "2023-11-30");
        assert_eq!(e["eventTime"], T0.to_rfc3339());
        assert_eq!(e["notificationMetadata"]["notificationId"], nid.to_string());
        assert_eq!(e["notificationMetadata"]["subscriptionId"], did.to_string());
        let p = &e["payload"]["applicationOAuthClientNewSecret"];
        assert_eq!(p["newClientSecret"], "rks_x");
        assert_eq!(p["newClientSecretExpiryTime"], T0.to_rfc3339());
        assert!(p["oldClientSecretExpiryTime"].is_null());
    }

    #[test]
    fn a_delivery_payload_is_sealed_to_its_row() {
        let key = crate::crypto::ServerKey::generate();
        let sealer = key.sealer("outbox");
        let env = json!({"secret": "rks_plain"});
        let d = Delivery::new(
            &sealer,
            NotificationId::new(),
            AppId::new(),
            OrgId::new(),
            NotificationType::NewSecret,
            DestinationId::new(),
            &env,
            None,
            T0,
        );
        let sealed = d.sealed_payload.clone().unwrap();
        assert!(!sealed.windows(9).any(|w| w == b"rks_plain"));
        let opened = sealer.open(&sealed, &payload_context(d.id)).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&opened).unwrap(),
            env
        );
        assert!(sealer
            .open(&sealed, &payload_context(DeliveryId::new()))
            .is_err());
    }

    #[test]
    fn expiry_warnings_fire_at_the_most_urgent_threshold_crossed() {
        let day = 86_400_000;
        let exp = T0.plus_secs(100 * 86_400);
        assert_eq!(expiry_warning_due(exp, T0), None);
        assert_eq!(
            expiry_warning_due(exp, Timestamp::from_millis(exp.as_millis() - 90 * day)),
            Some(90)
        );
        assert_eq!(
            expiry_warning_due(exp, Timestamp::from_millis(exp.as_millis() - 59 * day)),
            Some(60)
        );
        assert_eq!(
            expiry_warning_due(exp, Timestamp::from_millis(exp.as_millis() - day)),
            Some(1)
        );
        assert_eq!(expiry_warning_due(exp, exp), None);
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        assert_eq!(backoff_ms(1, 1000, 60_000, 0.0), 500);
        assert_eq!(backoff_ms(1, 1000, 60_000, 1.0), 1000);
        assert_eq!(backoff_ms(3, 1000, 60_000, 0.0), 2000);
        assert_eq!(backoff_ms(20, 1000, 60_000, 0.5), 45_000);
        assert!(backoff_ms(64, 1000, 60_000, 0.99) <= 60_000);
    }

    #[test]
    fn targets_are_validated() {
        assert!(Target::Sqs {
            queue_url: "http://127.0.0.1:5000/123/q".into(),
            region: "us-east-1".into(),
            endpoint_url: None
        }
        .validate()
        .is_ok());
        assert!(Target::Sqs {
            queue_url: "q".into(),
            region: "us-east-1".into(),
            endpoint_url: None
        }
        .validate()
        .is_err());
        assert!(Target::Webhook {
            url: "ftp://x".into()
        }
        .validate()
        .is_err());
        assert!(Target::File {
            directory: "app/notifications".into()
        }
        .validate()
        .is_ok());
        for bad in ["/etc", "../up", "a/../b", "a//b", "", "a b"] {
            assert!(
                Target::File {
                    directory: bad.into()
                }
                .validate()
                .is_err(),
                "{bad}"
            );
        }
        let t: Target = serde_json::from_value(json!({"kind": "file", "directory": "x"})).unwrap();
        assert_eq!(t.kind(), "file");
        assert!(serde_json::from_value::<Target>(
            json!({"kind": "file", "directory": "/x", "extra": 1})
        )
        .is_err());
    }
}

/// Which addresses destinations may reach: public ones, and the networks the operator lists
/// in `allowed_destination_networks` (on-premises receivers, tests on loopback).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    pub allowed: Vec<ipnet::IpNet>,
}

impl AddressPolicy {
    pub fn permits(&self, ip: std::net::IpAddr) -> bool {
        // An IPv4-mapped IPv6 address is the IPv4 address it carries.
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        is_public(ip) || self.allowed.iter().any(|net| net.contains(&ip))
    }
}

/// Why a destination's address is refused, in words safe to show to members.
pub const ADDRESS_NOT_ALLOWED: &str = "the destination's address is not allowed on this server \
     (a loopback, private, link-local or otherwise internal address; the server's operator may \
     allow its network with allowed_destination_networks)";

/// The host (an IP address without brackets, or a name) and port a URL connects to, read by
/// the `url` crate, the parser the HTTP client itself uses: a URL cannot name one host here
/// and another one on the wire (`http://127.0.0.1:/`, `http://a\@b/`, percent-encoded or
/// dotless IPv4 hosts are all read as the client reads them). `None` if it does not parse or
/// has no host.
pub fn url_host_port(url: &str) -> Option<(String, u16)> {
    let parsed = url::Url::parse(url).ok()?;
    let port = parsed.port_or_known_default()?;
    let host = match parsed.host()? {
        url::Host::Ipv4(v4) => v4.to_string(),
        url::Host::Ipv6(v6) => v6.to_string(),
        url::Host::Domain(d) => d.trim_end_matches('.').to_string(),
    };
    (!host.is_empty()).then_some((host, port))
}

/// Checks a destination's network addresses before it is saved (the server resolves names;
/// see `rekey_dispatch::guard`). `Err` says why, in words safe to show.
#[async_trait::async_trait]
pub trait DestinationCheck: Send + Sync {
    async fn check(&self, target: &Target) -> Result<(), String>;
}

fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
                || (a == 198 && (18..20).contains(&b))  // benchmarking (RFC 2544)
                || (a == 192 && b == 0)                 // IETF protocol assignments
                || a >= 240) // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                is_public(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)))
            };
            // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address they carry.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return embedded(s[6], s[7]);
            }
            if s[0] == 0x2002 {
                return embedded(s[1], s[2]);
            }
            // Only global unicast (2000::/3), less the IETF protocol assignments (2001::/23:
            // Teredo, ORCHID, ...) and documentation (2001:db8::/32). Everything else
            // (loopback, unique local, link-local, site-local, IPv4-compatible, local-use
            // NAT64, multicast) is internal.
            (s[0] & 0xe000) == 0x2000
                && !(s[0] == 0x2001 && s[1] < 0x0200)
                && !(s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod address_tests {
    use super::{url_host_port, AddressPolicy};

    fn literal(url: &str) -> std::net::IpAddr {
        url_host_port(url).unwrap().0.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_refused_and_public_ones_permitted() {
        let policy = AddressPolicy::default();
        for url in [
            "https://127.0.0.1:5432/",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::1]:8443/hook",
            "https://10.0.0.1/",
            "https://172.16.5.4/",
            "https://192.168.1.1/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:169.254.169.254]/",
            "https://user@127.0.0.1/",
            "https://224.0.0.1/",
            "https://[ff02::1]/",
            "https://198.18.0.1/",
            // Spelled so that a hand-written parser would see another host, or none.
            "http://127.0.0.1:/x",
            "http://[::1]:/",
            "http://127.0.0.1\\@8.8.8.8/",
            "http://%31%32%37.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            // IPv6 forms that carry or stand for internal addresses.
            "http://[64:ff9b::7f00:1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[64:ff9b:1::1]/",
            "http://[2002:7f00:1::]/",
            "http://[::127.0.0.1]/",
            "http://[2001::1]/",
            "http://[2001:db8::1]/",
            "http://[fec0::1]/",
        ] {
            assert!(!policy.permits(literal(url)), "{url}");
        }
        for url in [
            "https://93.184.216.34/",
            "https://[2606:4700::1111]/",
            "https://[64:ff9b::5db8:d822]/",
            "https://[2002:5db8:d822::]/",
        ] {
            assert!(policy.permits(literal(url)), "{url}");
        }
    }

    #[test]
    fn listed_networks_are_permitted_and_nothing_else() {
        let policy = AddressPolicy {
            allowed: vec!["127.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
        };
        assert!(policy.permits(literal("http://127.0.0.1:9000/")));
        assert!(policy.permits(literal("http://[::ffff:127.0.0.2]/")));
        assert!(policy.permits(literal("http://[fd00::5]/")));
        assert!(!policy.permits(literal("http://10.0.0.1/")));
        assert!(!policy.permits(literal("http://[::1]/")));
    }

    #[test]
    fn host_and_port_come_from_the_authority() {
        assert_eq!(
            url_host_port("https://user:pw@Hooks.Example.com./x?y#z"),
            Some(("hooks.example.com".into(), 443))
        );
        assert_eq!(
            url_host_port("http://127.0.0.1\\@8.8.8.8/"),
            Some(("127.0.0.1".into(), 80))
        );
        assert_eq!(
            url_host_port("http://[::1]:8080/"),
            Some(("::1".into(), 8080))
        );
        assert_eq!(url_host_port("http://h:99999/"), None);
        assert_eq!(url_host_port("not a url"), None);
    }
}
