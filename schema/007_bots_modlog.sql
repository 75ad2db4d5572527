-- Version 7: bot messages and the moderation log. (Version 6 is another
-- feature's; db_schema.c numbers each migration by its file name and lists
-- each one applied, so this is 7 whether or not 006 is present, and a 006
-- arriving later is still applied.)
--
-- A message posted through the HTTP API (POST /api/publish) is a bot's:
-- `bot` is 1 and every MESSAGE of it carries "bot": true in its `user`.
ALTER TABLE messages ADD COLUMN bot INTEGER NOT NULL DEFAULT 0;

-- Every moderation action and every write made through the HTTP API: who
-- (`actor`, 'api' for the API), what (`action`: 'publish', 'delete', and
-- the moderation feature's kick/mute/ban...), whom (`target`, a user id),
-- where (`room`; NULL: server-wide), which message, why and until when
-- (Unix milliseconds). Written in the same transaction as the change.
CREATE TABLE mod_log(id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, actor TEXT NOT NULL, actor_name TEXT, action TEXT NOT NULL, target TEXT, room TEXT, message_id INTEGER, reason TEXT, until INTEGER);
CREATE INDEX mod_log_room_ts ON mod_log(room, ts);
CREATE INDEX mod_log_target_ts ON mod_log(target, ts);
