-- Version 5 (protocol 1.1): read markers and search.

-- Where each user has read up to, per room (DM rooms included): the `read`
-- request moves it forward only, and unread counts are the messages above
-- it. Per user id, so every connection and device of a user shares it.
CREATE TABLE read_markers (
    user_id TEXT    NOT NULL,
    room    TEXT    NOT NULL,
    id      INTEGER NOT NULL,      -- read up to this id (a message's or a change's)
    ts      INTEGER NOT NULL,      -- when it last moved (Unix milliseconds)
    PRIMARY KEY (user_id, room)
) WITHOUT ROWID;

-- Full-text search over the messages' current texts. An external-content
-- FTS5 index (the text lives once, in `messages`), kept in step by the
-- triggers below: a new message is indexed, an edit re-indexes its text,
-- a delete (a tombstone, whose text is "") leaves nothing to match, and
-- retention's removal takes it out. Every row is indexed, tombstones too,
-- so the index always mirrors the table: FTS5's 'integrity-check' and
-- 'rebuild' commands work on it. Words are matched without regard to case
-- or diacritics ("cafe" finds "Café").
CREATE VIRTUAL TABLE messages_fts USING fts5(
    text, content='messages', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2');
INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
END;
