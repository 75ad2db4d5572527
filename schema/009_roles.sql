-- Version 9: the role a user's token carried at its last welcome ('mod',
-- 'admin'; NULL: none, and every guest), so that a moderation request
-- knows the rank of a target who is offline: a mod may act only on users
-- without a role, an admin on anyone but another admin (docs/moderation.md).
ALTER TABLE users ADD COLUMN role TEXT;
