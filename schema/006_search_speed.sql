-- Version 6: unread counts from one index, and a search index that no
-- longer costs the writer.

-- Unread counts ("messages above the marker, not deleted, not mine") read
-- only this index: it replaces (room, id), which every history read used
-- and still can, and adds what the count filters on, so a count of 1000
-- touches no table row.
CREATE INDEX messages_room_unread ON messages (room, id, deleted, user_id);
DROP INDEX messages_room_id;

-- The search index follows the messages behind a watermark instead of
-- inside each insert: the database thread indexes the rows above
-- `indexed`, in chunks, when it has nothing else to do (or when the index
-- falls far behind, or a search waits for it), and moves the watermark in
-- the same transaction. A chunk costs a small part of what a trigger per
-- insert did, and a send's commit no longer waits for it. A search waits
-- until everything committed before it is indexed (at most a second).
-- Rows at or below the watermark are in the index, so only their edits
-- and removals change it; a row above it is indexed later, with whatever
-- text it has then. Every row is still indexed, tombstones too: once the
-- watermark reaches max(id), FTS5's 'integrity-check' holds. After a
-- 'rebuild' from the shell (server stopped), set `indexed` to max(id).
CREATE TABLE search_index (
    one     INTEGER PRIMARY KEY CHECK (one = 1),
    indexed INTEGER NOT NULL      -- every messages row with id <= this is indexed
);
-- Up to version 5 every row was indexed as it was inserted.
INSERT INTO search_index(one, indexed) SELECT 1, coalesce(max(id), 0) FROM messages;

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.id <= (SELECT indexed FROM search_index) BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages
WHEN old.id <= (SELECT indexed FROM search_index) BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
END;
