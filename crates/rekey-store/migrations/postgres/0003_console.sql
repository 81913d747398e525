-- The developer console: one-time sign-in links and sessions, stored as keyed hashes of
-- their tokens (never the tokens), so they work on every node and can be revoked.
CREATE TABLE console_links (
    hash        BYTEA PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    org_id      TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

CREATE TABLE console_sessions (
    id            TEXT PRIMARY KEY,
    hash          BYTEA NOT NULL UNIQUE,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    org_id        TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    -- The API token it was opened with (none for a link): revoking it ends the session.
    api_token_id  TEXT
);
CREATE INDEX console_sessions_by_user ON console_sessions (user_id);
