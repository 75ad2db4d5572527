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

-- The index itself is made again, with prefix indexes of 2 and 3
-- characters: a prefix query (`ven*`) merged the doclists of every word
-- it matches (137 words, 17 ms, for each row a one-room search checks);
-- with them it reads one doclist. The index is about twice the size (41 MB
-- a million messages before). The database thread fills it from the
-- watermark 0, in chunks, after the upgrade: until then a search answers
-- from what is indexed.
DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;
DROP TABLE messages_fts;
CREATE VIRTUAL TABLE messages_fts USING fts5(
    text, content='messages', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2', prefix='2 3');
INSERT INTO search_index(one, indexed) VALUES (1, 0);
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN old.id <= (SELECT indexed FROM search_index) BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages
WHEN old.id <= (SELECT indexed FROM search_index) BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
END;
