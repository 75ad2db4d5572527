-- Parley schema, version 1. Applied once, tracked by PRAGMA user_version.
-- Every message ever acked is a row here; `id` is the protocol's message id
-- (AUTOINCREMENT so an id is never reused, even after retention deletes rows).
CREATE TABLE messages (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    room      TEXT    NOT NULL,
    user_id   TEXT    NOT NULL,
    user_name TEXT    NOT NULL,
    text      TEXT    NOT NULL,
    ts        INTEGER NOT NULL,      -- Unix milliseconds, set by the server
    client_id TEXT    NOT NULL,      -- the sender's idempotency key
    UNIQUE (room, user_id, client_id)
);
CREATE INDEX messages_room_id ON messages (room, id);

-- Server-wide settings, e.g. the key that signs guests' resume tokens.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
