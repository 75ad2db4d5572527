-- Version 4 (protocol 1.1): direct messages. A DM room belongs to exactly
-- two users; its name is derived from the pair (server/dm.c), so the same
-- two users always meet in the same room. user_a is the smaller id (byte
-- order), user_b the larger: one row per pair, whoever asked first.
-- Messages of a DM room are ordinary rows of `messages`.
CREATE TABLE dm_rooms (
    room    TEXT    PRIMARY KEY,
    user_a  TEXT    NOT NULL,
    user_b  TEXT    NOT NULL,
    created INTEGER NOT NULL,      -- Unix milliseconds
    CHECK (user_a < user_b)
) WITHOUT ROWID;
-- A user's DMs (the `rooms` listing) are found from either side.
CREATE INDEX dm_rooms_a ON dm_rooms (user_a);
CREATE INDEX dm_rooms_b ON dm_rooms (user_b);
