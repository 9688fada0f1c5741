-- The index of "status" held every message, and took each new one (all 'complete'): only answers being
-- written ('streaming') are ever looked up by status (an interrupted answer, after a restart or the
-- death of the instance that wrote it), and they are a handful. Measured on SQLite, commits of 30 rows
-- across 20 rooms: 27.7 pages written to the WAL a commit instead of 30.3. Partial, so in raw SQL only
-- (see 20261216000000_partial_indexes).
DROP INDEX "messages_status_idx";
CREATE INDEX "messages_streaming_idx" ON "messages"("chat_id") WHERE "status" = 'streaming';
