-- Version 8: bot messages. A message posted through the HTTP API (POST
-- /api/publish) is a bot's: `bot` is 1 and every MESSAGE of it carries
-- "bot": true in its `user`. (The moderation log its writes go to, mod_log,
-- is version 7's.)
ALTER TABLE messages ADD COLUMN bot INTEGER NOT NULL DEFAULT 0;
