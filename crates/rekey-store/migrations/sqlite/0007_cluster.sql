-- Rolling upgrades (docs/upgrading.md): each migration from this one on records the oldest
-- migration a binary must know to keep running against it. A binary that finds migrations
-- newer than it knows starts when each of them lists a version it knows, and refuses otherwise.
CREATE TABLE schema_compat (
    version            BIGINT PRIMARY KEY,
    oldest_compatible  BIGINT NOT NULL
);

-- One row per serving node, refreshed by the node every 30 s: `rekey doctor` compares the
-- nodes' public_url and clocks. `last_seen_at` is the database's clock, `clock_skew_ms` the
-- node's clock minus the database's when it wrote the row.
CREATE TABLE nodes (
    id              TEXT PRIMARY KEY,
    hostname        TEXT NOT NULL,
    public_url      TEXT NOT NULL,
    version         TEXT NOT NULL,
    schema_version  BIGINT NOT NULL,
    started_at      BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL,
    clock_skew_ms   BIGINT NOT NULL
);

-- Server administrators may rotate the signing keys through the native API.
ALTER TABLE users ADD COLUMN server_admin BIGINT NOT NULL DEFAULT 0;

-- Additive: binaries that know migration 6 run against it.
INSERT INTO schema_compat (version, oldest_compatible) VALUES (7, 6);
