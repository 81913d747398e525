-- Rotation policies (see rekey-core's rotation_policy): on an app, NULL inherits the org's
-- value; on an org, NULL is off; 0 is off on both. Seconds.
ALTER TABLE apps ADD COLUMN rotate_before_expiry_secs BIGINT;
ALTER TABLE apps ADD COLUMN retire_when_unused_secs BIGINT;
ALTER TABLE orgs ADD COLUMN rotate_before_expiry_secs BIGINT;
ALTER TABLE orgs ADD COLUMN retire_when_unused_secs BIGINT;

-- Additive: older releases run against it (they ignore policies; nothing rotates by itself
-- until every node knows migration 10).
INSERT INTO schema_compat (version, oldest_compatible) VALUES (10, 8);
