-- Version 4 (protocol 1.1): direct messages. A DM room belongs to exactly
-- two users; its name is derived from the pair (server/dm.c), so the same
-- two users always meet in the same room. user_a is the smaller id (byte
-- order), user_b the larger: one row per pair, whoever asked first.
-- Messages of a DM room are ordinary rows of `messages`.
CREATE TABLE dm_rooms (
    room       TEXT    PRIMARY KEY,
    user_a     TEXT    NOT NULL,
    user_b     TEXT    NOT NULL,
    created    INTEGER NOT NULL,   -- Unix milliseconds
    created_by TEXT    NOT NULL,   -- who asked first (user_a or user_b)
    last_id    INTEGER NOT NULL DEFAULT 0, -- the newest message's id or rev; 0: none
    CHECK (user_a < user_b)
) WITHOUT ROWID;
-- A user's DMs (the `rooms` listing), from either side, the most recently
-- active first. A room with no message yet is listed only to the user who
-- asked for it: nobody can fill someone else's list with empty rooms.
CREATE INDEX dm_rooms_a ON dm_rooms (user_a, last_id);
CREATE INDEX dm_rooms_b ON dm_rooms (user_b, last_id);
