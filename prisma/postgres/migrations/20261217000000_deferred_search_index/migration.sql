-- SQLite only: its search index now takes new messages in bulk (see the SQLite migration of the same
-- name). PostgreSQL indexes each message as it is written, through the generated "search_vector"
-- column and its GIN index, whose pending list already defers the index's work: nothing changes here.
-- The migration exists so that both engines share one history.
SELECT 1;
