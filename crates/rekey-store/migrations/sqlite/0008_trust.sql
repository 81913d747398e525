-- RFC 7009: access tokens an app revoked, by `jti`, until they would have expired anyway.
-- In the database so that every node refuses them (and introspection says inactive).
CREATE TABLE revoked_tokens (
    jti         TEXT PRIMARY KEY,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_by_expiry ON revoked_tokens (expires_at);

-- The audit trail as hash chains (one per org, and the server's, ''): each event stores the
-- link of the event before it in its chain and its own link, an HMAC keyed from the server
-- key. Events from before this migration have none. The head holds the last link and the
-- number of linked events, so that deleting the newest events is detected too.
ALTER TABLE audit_events ADD COLUMN chain TEXT;
ALTER TABLE audit_events ADD COLUMN prev_link TEXT;
ALTER TABLE audit_events ADD COLUMN link TEXT;
CREATE INDEX audit_events_by_chain ON audit_events (chain, seq);
CREATE TABLE audit_chain_heads (
    chain      TEXT PRIMARY KEY,
    last_link  TEXT NOT NULL,
    events     BIGINT NOT NULL,
    -- HMAC over (chain, events, last_link): the head cannot be rewritten without the key.
    mac        TEXT NOT NULL
);

-- Where the chains begin: events up to this seq were written before them and carry no
-- links; any later event without links had them removed.
CREATE TABLE audit_chain_start (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    after_seq  BIGINT NOT NULL
);
INSERT INTO audit_chain_start (id, after_seq) SELECT 1, COALESCE(MAX(seq), 0) FROM audit_events;

-- Not for older binaries: they would write audit events without links (breaking the chains)
-- and accept revoked tokens. Every node runs a binary that knows migration 8.
INSERT INTO schema_compat (version, oldest_compatible) VALUES (8, 8);
