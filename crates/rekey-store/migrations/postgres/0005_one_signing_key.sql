-- At most one signing key signs (publish_until NULL): two nodes starting at once on an empty
-- database could each make one, and the second retired the first at once. A database that
-- already has two keeps the newest signing, and the others published one more day.
UPDATE signing_keys
SET publish_until = (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT + 86400000
WHERE publish_until IS NULL
  AND kid <> (SELECT kid FROM signing_keys WHERE publish_until IS NULL
              ORDER BY created_at DESC, kid DESC LIMIT 1);
CREATE UNIQUE INDEX signing_keys_one_signing ON signing_keys ((publish_until IS NULL))
    WHERE publish_until IS NULL;
