-- Version 7 (protocol 1.1): moderation.

-- Every moderation action, by a moderator over the WebSocket or by the
-- HTTP API (actor 'api'): who, whom, what, where, why, when, until when.
-- Kept for the operators; clients never read it.
CREATE TABLE mod_log (
    id         INTEGER PRIMARY KEY,
    ts         INTEGER NOT NULL,   -- Unix milliseconds
    actor      TEXT    NOT NULL,   -- a user id, or 'api'
    actor_name TEXT,
    action     TEXT    NOT NULL,   -- kick, mute, unmute, ban, unban, delete, publish
    target     TEXT,               -- the user acted on
    room       TEXT,               -- NULL: server-wide
    message_id INTEGER,            -- delete, publish
    reason     TEXT,
    until      INTEGER             -- Unix ms a mute or ban ends; NULL: until lifted
);
CREATE INDEX mod_log_room_ts ON mod_log (room, ts);
CREATE INDEX mod_log_target_ts ON mod_log (target, ts);

-- The mutes and bans in force (and ended ones until replaced or lifted):
-- what the server loads at start. room '' is a server-wide ban.
CREATE TABLE sanctions (
    user_id TEXT    NOT NULL,
    room    TEXT    NOT NULL,
    kind    TEXT    NOT NULL CHECK (kind IN ('mute', 'ban')),
    until   INTEGER,                -- Unix ms; NULL: until lifted
    reason  TEXT,
    by_user TEXT    NOT NULL,
    ts      INTEGER NOT NULL,
    PRIMARY KEY (user_id, room, kind)
) WITHOUT ROWID;
