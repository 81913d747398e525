-- Notification preferences (destinations), the delivery outbox, and rate-limit buckets.

CREATE TABLE destinations (
    id                  TEXT PRIMARY KEY,
    app_id              TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    notification_type   TEXT NOT NULL,
    target              TEXT NOT NULL,       -- JSON: kind and its settings, no secrets
    sealed_signing_key  BYTEA,                -- webhook signing key, sealed with the server key
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    UNIQUE (app_id, notification_type)
);

-- The transactional outbox: one row per notification, written in the transaction of the
-- change that causes it. The payload is sealed, and wiped once delivered.
CREATE TABLE deliveries (
    id                  TEXT PRIMARY KEY,
    notification_id     TEXT NOT NULL UNIQUE,
    app_id              TEXT NOT NULL,
    org_id              TEXT NOT NULL,
    notification_type   TEXT NOT NULL,
    destination_id      TEXT NOT NULL,
    sealed_payload      BYTEA,
    state               TEXT NOT NULL,       -- pending, delivered, dead
    attempts            BIGINT NOT NULL,
    next_attempt_at     BIGINT NOT NULL,
    lease_owner         TEXT,
    lease_until         BIGINT,
    last_error          TEXT,
    dedupe_key          TEXT UNIQUE,         -- e.g. one expiry warning per secret and threshold
    created_at          BIGINT NOT NULL,
    delivered_at        BIGINT
);
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_by_org ON deliveries (org_id, created_at);
CREATE INDEX deliveries_by_app ON deliveries (app_id, created_at);

-- Token buckets shared by every node (SP-API rotation rate limit).
CREATE TABLE rate_limits (
    bucket      TEXT PRIMARY KEY,
    tokens      DOUBLE PRECISION NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE INDEX secrets_by_expiry ON secrets (expires_at) WHERE state IN ('current', 'previous');
