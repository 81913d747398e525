-- Foundation: orgs, users, members, API tokens, apps, secrets, signing keys, audit.
-- Times are milliseconds since the Unix epoch (UTC); flags are 0/1 integers; ids are UUID text.

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE memberships (
    org_id          TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    principal_kind  TEXT NOT NULL,
    principal_id    TEXT NOT NULL,
    role            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (org_id, principal_kind, principal_id)
);

CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    org_id      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    hash        BLOB NOT NULL UNIQUE,
    hint        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);

CREATE TABLE apps (
    id                          TEXT PRIMARY KEY,
    org_id                      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    client_id                   TEXT NOT NULL UNIQUE,
    name                        TEXT NOT NULL,
    description                 TEXT NOT NULL,
    grant_types                 TEXT NOT NULL,
    scopes                      TEXT NOT NULL,
    access_token_ttl_secs       BIGINT NOT NULL,
    secret_lifetime_secs        BIGINT NOT NULL,
    rotation_grace_secs         BIGINT NOT NULL,
    owner_only_secret_rotation  BIGINT NOT NULL,
    service_account             BIGINT NOT NULL,
    -- Bumped by every secret change; the UPDATE that bumps it is the app's lock.
    secret_version              BIGINT NOT NULL DEFAULT 0,
    created_at                  BIGINT NOT NULL,
    updated_at                  BIGINT NOT NULL
);
CREATE INDEX apps_by_org ON apps (org_id, created_at, id);

CREATE TABLE secrets (
    id              TEXT PRIMARY KEY,
    app_id          TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    state           TEXT NOT NULL,
    hash            BLOB NOT NULL,
    hint            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT,
    last_used_at    BIGINT,
    created_by      TEXT NOT NULL,
    revoked_at      BIGINT,
    revoked_reason  TEXT
);
CREATE INDEX secrets_by_app_state ON secrets (app_id, state);
-- The database itself holds the rule "at most one current and one previous per app".
CREATE UNIQUE INDEX secrets_one_current ON secrets (app_id) WHERE state = 'current';
CREATE UNIQUE INDEX secrets_one_previous ON secrets (app_id) WHERE state = 'previous';

CREATE TABLE signing_keys (
    kid                 TEXT PRIMARY KEY,
    algorithm           TEXT NOT NULL,
    public_key          BLOB NOT NULL,
    sealed_private_key  BLOB NOT NULL,
    created_at          BIGINT NOT NULL,
    publish_until       BIGINT
);

CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    time        BIGINT NOT NULL,
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    org_id      TEXT,
    app_id      TEXT,
    secret_id   TEXT,
    request_id  TEXT,
    source      TEXT,
    outcome     TEXT NOT NULL,
    details     TEXT NOT NULL
);
CREATE INDEX audit_by_org ON audit_events (org_id, seq);
