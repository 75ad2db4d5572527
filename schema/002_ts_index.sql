-- Version 2: retention deletes by age (--retention-days); without an index on
-- ts every pass would scan the whole table.
CREATE INDEX messages_ts ON messages (ts);
