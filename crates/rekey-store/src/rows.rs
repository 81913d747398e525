//! Mapping between rows and domain records.

use rekey_core::clock::Timestamp;
use rekey_core::crypto::SecretHash;
use rekey_core::error::CoreError;
use rekey_core::metrics::StoreGauges;
use rekey_core::model::{
    ApiToken, ApiTokenId, App, AppId, AuditEvent, AuditId, ConsoleLink, ConsoleSession,
    ConsoleSessionId, DeliveryId, DestinationId, Membership, NotificationId, Org, OrgId, Outcome,
    Principal, Secret, SecretId, SecretState, StoredSigningKey, User, UserId,
};
use rekey_core::notify::{Delivery, DeliveryState, Destination, NotificationType};
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

pub(crate) fn db_err(e: sqlx::Error) -> CoreError {
    if let sqlx::Error::Database(d) = &e {
        if d.is_unique_violation() {
            return CoreError::Conflict("a record with the same unique key exists".into());
        }
        if d.is_foreign_key_violation() {
            return CoreError::NotFound;
        }
    }
    CoreError::storage("database query failed", e)
}

fn corrupt(what: &str) -> CoreError {
    CoreError::storage("a stored value is not valid", format!("column {what}"))
}

/// The columns of a row, whichever driver read it: sqlx's `AnyRow` everywhere, and rusqlite's
/// row for the client read on SQLite ([`crate::sqlite_reader`]). The record mappings that
/// both use ([`app`], [`secret`]) are written once against this.
pub(crate) trait Columns {
    fn text(&self, col: &str) -> Result<Option<String>, CoreError>;
    fn integer(&self, col: &str) -> Result<Option<i64>, CoreError>;
    fn bytes(&self, col: &str) -> Result<Option<Vec<u8>>, CoreError>;
}

impl Columns for AnyRow {
    fn text(&self, col: &str) -> Result<Option<String>, CoreError> {
        self.try_get(col).map_err(db_err)
    }
    fn integer(&self, col: &str) -> Result<Option<i64>, CoreError> {
        self.try_get(col).map_err(db_err)
    }
    fn bytes(&self, col: &str) -> Result<Option<Vec<u8>>, CoreError> {
        self.try_get(col).map_err(db_err)
    }
}

fn uuid(row: &impl Columns, col: &str) -> Result<Uuid, CoreError> {
    Uuid::parse_str(&string(row, col)?).map_err(|_| corrupt(col))
}

fn opt_uuid(row: &impl Columns, col: &str) -> Result<Option<Uuid>, CoreError> {
    row.text(col)?
        .map(|s| Uuid::parse_str(&s).map_err(|_| corrupt(col)))
        .transpose()
}

fn ts(row: &impl Columns, col: &str) -> Result<Timestamp, CoreError> {
    Ok(Timestamp::from_millis(int(row, col)?))
}

fn opt_ts(row: &impl Columns, col: &str) -> Result<Option<Timestamp>, CoreError> {
    Ok(row.integer(col)?.map(Timestamp::from_millis))
}

fn string(row: &impl Columns, col: &str) -> Result<String, CoreError> {
    row.text(col)?.ok_or_else(|| corrupt(col))
}

fn int(row: &impl Columns, col: &str) -> Result<i64, CoreError> {
    row.integer(col)?.ok_or_else(|| corrupt(col))
}

pub(crate) fn opt_int(row: &impl Columns, col: &str) -> Result<Option<i64>, CoreError> {
    row.integer(col)
}

fn hash(row: &impl Columns, col: &str) -> Result<SecretHash, CoreError> {
    let b = row.bytes(col)?.ok_or_else(|| corrupt(col))?;
    SecretHash::from_slice(&b).ok_or_else(|| corrupt(col))
}

fn string_list(row: &impl Columns, col: &str) -> Result<Vec<String>, CoreError> {
    serde_json::from_str(&string(row, col)?).map_err(|_| corrupt(col))
}

#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a list of strings always serializes"
)]
pub(crate) fn to_json_list(v: &[String]) -> String {
    serde_json::to_string(v).expect("a list of strings serializes")
}

pub(crate) fn org(row: &AnyRow) -> Result<Org, CoreError> {
    Ok(Org {
        id: OrgId(uuid(row, "id")?),
        name: string(row, "name")?,
        created_at: ts(row, "created_at")?,
    })
}

pub(crate) fn user(row: &AnyRow) -> Result<User, CoreError> {
    Ok(User {
        id: UserId(uuid(row, "id")?),
        email: string(row, "email")?,
        display_name: string(row, "display_name")?,
        created_at: ts(row, "created_at")?,
    })
}

pub(crate) fn membership(row: &AnyRow) -> Result<Membership, CoreError> {
    let id = uuid(row, "principal_id")?;
    let principal = match string(row, "principal_kind")?.as_str() {
        "user" => Principal::User(UserId(id)),
        "app" => Principal::App(AppId(id)),
        _ => return Err(corrupt("principal_kind")),
    };
    Ok(Membership {
        org_id: OrgId(uuid(row, "org_id")?),
        principal,
        role: string(row, "role")?.parse().map_err(|_| corrupt("role"))?,
        created_at: ts(row, "created_at")?,
    })
}

pub(crate) fn api_token(row: &AnyRow) -> Result<ApiToken, CoreError> {
    Ok(ApiToken {
        id: ApiTokenId(uuid(row, "id")?),
        user_id: UserId(uuid(row, "user_id")?),
        org_id: OrgId(uuid(row, "org_id")?),
        name: string(row, "name")?,
        hash: hash(row, "hash")?,
        hint: string(row, "hint")?,
        created_at: ts(row, "created_at")?,
        expires_at: opt_ts(row, "expires_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
    })
}

pub(crate) const APP_COLUMNS: &str = "apps.id, apps.org_id, apps.client_id, apps.name, \
    apps.description, apps.grant_types, apps.scopes, apps.access_token_ttl_secs, \
    apps.secret_lifetime_secs, apps.rotation_grace_secs, apps.owner_only_secret_rotation, \
    apps.service_account, apps.audiences, apps.rotate_before_expiry_secs, \
    apps.retire_when_unused_secs, apps.created_at, apps.updated_at";

pub(crate) fn app(row: &impl Columns) -> Result<App, CoreError> {
    Ok(App {
        id: AppId(uuid(row, "id")?),
        org_id: OrgId(uuid(row, "org_id")?),
        client_id: string(row, "client_id")?,
        name: string(row, "name")?,
        description: string(row, "description")?,
        grant_types: string_list(row, "grant_types")?,
        scopes: string_list(row, "scopes")?,
        access_token_ttl_secs: int(row, "access_token_ttl_secs")?,
        secret_lifetime_secs: int(row, "secret_lifetime_secs")?,
        rotation_grace_secs: int(row, "rotation_grace_secs")?,
        owner_only_secret_rotation: int(row, "owner_only_secret_rotation")? != 0,
        service_account: int(row, "service_account")? != 0,
        audiences: string_list(row, "audiences")?,
        rotation_policy: rekey_core::rotation_policy::RotationPolicy {
            rotate_before_expiry_secs: opt_int(row, "rotate_before_expiry_secs")?,
            retire_when_unused_secs: opt_int(row, "retire_when_unused_secs")?,
        },
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

pub(crate) const SECRET_COLUMNS: &str = "secrets.id AS s_id, secrets.app_id AS s_app_id, \
    secrets.state AS s_state, secrets.hash AS s_hash, secrets.hint AS s_hint, \
    secrets.created_at AS s_created_at, secrets.expires_at AS s_expires_at, \
    secrets.last_used_at AS s_last_used_at, secrets.created_by AS s_created_by, \
    secrets.revoked_at AS s_revoked_at, secrets.revoked_reason AS s_revoked_reason";

/// Reads a secret from columns selected with [`SECRET_COLUMNS`].
pub(crate) fn secret(row: &impl Columns) -> Result<Secret, CoreError> {
    Ok(Secret {
        id: SecretId(uuid(row, "s_id")?),
        app_id: AppId(uuid(row, "s_app_id")?),
        state: string(row, "s_state")?
            .parse::<SecretState>()
            .map_err(|_| corrupt("state"))?,
        hash: hash(row, "s_hash")?,
        hint: string(row, "s_hint")?,
        created_at: ts(row, "s_created_at")?,
        expires_at: opt_ts(row, "s_expires_at")?,
        last_used_at: opt_ts(row, "s_last_used_at")?,
        created_by: string(row, "s_created_by")?,
        revoked_at: opt_ts(row, "s_revoked_at")?,
        revoked_reason: row.text("s_revoked_reason")?,
    })
}

pub(crate) fn signing_key(row: &AnyRow) -> Result<StoredSigningKey, CoreError> {
    Ok(StoredSigningKey {
        kid: string(row, "kid")?,
        algorithm: string(row, "algorithm")?,
        public_key: row.try_get("public_key").map_err(db_err)?,
        sealed_private_key: row.try_get("sealed_private_key").map_err(db_err)?,
        created_at: ts(row, "created_at")?,
        publish_until: opt_ts(row, "publish_until")?,
        signs_from: opt_ts(row, "signs_from")?,
    })
}

pub(crate) fn audit_event(row: &AnyRow) -> Result<AuditEvent, CoreError> {
    Ok(AuditEvent {
        id: AuditId(uuid(row, "id")?),
        time: ts(row, "time")?,
        action: string(row, "action")?,
        actor: string(row, "actor")?,
        org_id: opt_uuid(row, "org_id")?.map(OrgId),
        app_id: opt_uuid(row, "app_id")?.map(AppId),
        secret_id: opt_uuid(row, "secret_id")?.map(SecretId),
        request_id: row.try_get("request_id").map_err(db_err)?,
        source: row.try_get("source").map_err(db_err)?,
        outcome: match string(row, "outcome")?.as_str() {
            "success" => Outcome::Success,
            _ => Outcome::Failure,
        },
        details: serde_json::from_str(&string(row, "details")?).map_err(|_| corrupt("details"))?,
    })
}

pub(crate) const DESTINATION_COLUMNS: &str =
    "id, app_id, notification_type, target, sealed_signing_key, created_at, updated_at";

pub(crate) fn destination(row: &AnyRow) -> Result<Destination, CoreError> {
    Ok(Destination {
        id: DestinationId(uuid(row, "id")?),
        app_id: AppId(uuid(row, "app_id")?),
        notification_type: NotificationType::parse(&string(row, "notification_type")?)
            .ok_or_else(|| corrupt("notification_type"))?,
        target: serde_json::from_str(&string(row, "target")?).map_err(|_| corrupt("target"))?,
        sealed_signing_key: row.try_get("sealed_signing_key").map_err(db_err)?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

pub(crate) const DELIVERY_COLUMNS: &str = "id, notification_id, app_id, org_id, \
    notification_type, destination_id, sealed_payload, state, attempts, next_attempt_at, \
    lease_owner, lease_until, last_error, dedupe_key, created_at, delivered_at";

pub(crate) fn delivery(row: &AnyRow) -> Result<Delivery, CoreError> {
    Ok(Delivery {
        id: DeliveryId(uuid(row, "id")?),
        notification_id: NotificationId(uuid(row, "notification_id")?),
        app_id: AppId(uuid(row, "app_id")?),
        org_id: OrgId(uuid(row, "org_id")?),
        notification_type: NotificationType::parse(&string(row, "notification_type")?)
            .ok_or_else(|| corrupt("notification_type"))?,
        destination_id: DestinationId(uuid(row, "destination_id")?),
        sealed_payload: row.try_get("sealed_payload").map_err(db_err)?,
        state: DeliveryState::parse(&string(row, "state")?).ok_or_else(|| corrupt("state"))?,
        attempts: u32::try_from(int(row, "attempts")?).unwrap_or(u32::MAX),
        next_attempt_at: ts(row, "next_attempt_at")?,
        lease_owner: row.try_get("lease_owner").map_err(db_err)?,
        lease_until: opt_ts(row, "lease_until")?,
        last_error: row.try_get("last_error").map_err(db_err)?,
        dedupe_key: row.try_get("dedupe_key").map_err(db_err)?,
        created_at: ts(row, "created_at")?,
        delivered_at: opt_ts(row, "delivered_at")?,
    })
}

pub(crate) fn store_gauges(row: &AnyRow) -> Result<StoreGauges, CoreError> {
    let count = |col: &str| int(row, col).map(|n| u64::try_from(n).unwrap_or(0));
    Ok(StoreGauges {
        outbox_pending: count("pending")?,
        oldest_pending_since: opt_ts(row, "oldest")?,
        deliveries_dead: count("dead")?,
        current_expiring_7d: count("expiring_7d")?,
        current_expiring_30d: count("expiring_30d")?,
        previous_used_1h: count("used_1h")?,
        previous_used_24h: count("used_24h")?,
        previous_used_older: count("used_older")?,
        previous_never_used: count("never_used")?,
    })
}

pub(crate) fn console_link(row: &AnyRow) -> Result<ConsoleLink, CoreError> {
    Ok(ConsoleLink {
        hash: hash(row, "hash")?,
        user_id: UserId(uuid(row, "user_id")?),
        org_id: OrgId(uuid(row, "org_id")?),
        created_at: ts(row, "created_at")?,
        expires_at: ts(row, "expires_at")?,
        used_at: opt_ts(row, "used_at")?,
    })
}

pub(crate) fn console_session(row: &AnyRow) -> Result<ConsoleSession, CoreError> {
    Ok(ConsoleSession {
        id: ConsoleSessionId(uuid(row, "id")?),
        hash: hash(row, "hash")?,
        user_id: UserId(uuid(row, "user_id")?),
        org_id: OrgId(uuid(row, "org_id")?),
        created_at: ts(row, "created_at")?,
        last_seen_at: ts(row, "last_seen_at")?,
        expires_at: ts(row, "expires_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
        api_token_id: opt_uuid(row, "api_token_id")?.map(ApiTokenId),
    })
}

pub(crate) fn node(r: &AnyRow) -> Result<rekey_core::model::NodeInfo, CoreError> {
    Ok(rekey_core::model::NodeInfo {
        id: r.try_get("id").map_err(db_err)?,
        hostname: r.try_get("hostname").map_err(db_err)?,
        public_url: r.try_get("public_url").map_err(db_err)?,
        version: r.try_get("version").map_err(db_err)?,
        schema_version: r.try_get("schema_version").map_err(db_err)?,
        started_at: Timestamp::from_millis(r.try_get("started_at").map_err(db_err)?),
        last_seen_at: Timestamp::from_millis(r.try_get("last_seen_at").map_err(db_err)?),
        clock_skew_ms: r.try_get("clock_skew_ms").map_err(db_err)?,
    })
}
