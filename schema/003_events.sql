-- Version 3 (protocol 1.1): every change to a room is an event whose id
-- comes from the one sequence message ids come from: a new message, an
-- edit, a delete. A row of `messages` is a message's current state, and
-- `rev` the id of its latest change (its own id while unchanged), so
-- "everything that changed in room R after id N" is one range of the
-- (room, rev) index: the query behind join `since`, `rooms.last_id` and
-- catching up after a 1013.
ALTER TABLE messages ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN edited_ts INTEGER;          -- the latest edit (ms)
ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET rev = id;
CREATE INDEX messages_room_rev ON messages (room, rev);

-- Every edit and delete, with the text it replaced: kept for moderation,
-- never sent to clients. `id` is the change's id (the message's rev then).
CREATE TABLE edits (
    id       INTEGER PRIMARY KEY,
    msg_id   INTEGER NOT NULL,
    room     TEXT    NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('edit', 'delete')),
    old_text TEXT    NOT NULL,
    new_text TEXT,                 -- NULL for a delete
    by_user  TEXT    NOT NULL,     -- who made the change
    ts       INTEGER NOT NULL      -- Unix milliseconds
);
CREATE INDEX edits_msg ON edits (msg_id);

-- Everyone ever welcomed, guests included: what `dm` checks a user id
-- against, and what operators query.
CREATE TABLE users (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,   -- the latest display name
    guest      INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,   -- Unix milliseconds
    last_seen  INTEGER NOT NULL
) WITHOUT ROWID;
