-- RFC 8707 audiences: the resource servers an app may ask tokens for, as a JSON list; the
-- first is the audience of a token whose request names none. Empty: tokens carry no `aud`.
ALTER TABLE apps ADD COLUMN audiences TEXT NOT NULL DEFAULT '[]';

-- Additive: a release that knows migration 8 runs against it (it keeps the column as it is,
-- but issues tokens without `aud`; set audiences once every node knows migration 9).
INSERT INTO schema_compat (version, oldest_compatible) VALUES (9, 8);
