-- The key check: a value derived from the server key (HMAC, it reveals nothing of the key).
-- Every command that opens the database compares it with its own key, so a wrong or missing
-- key stops with a clear message instead of making every secret fail.
CREATE TABLE server_key_check (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    key_check   TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
