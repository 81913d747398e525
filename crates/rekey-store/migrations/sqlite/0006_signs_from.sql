-- A new signing key is published before any node signs with it (`signs_from`), so that every
-- node and every verifier caching the JWKS knows it before its first token. NULL: it signs
-- from its creation (the first key of a database).
ALTER TABLE signing_keys ADD COLUMN signs_from BIGINT;
