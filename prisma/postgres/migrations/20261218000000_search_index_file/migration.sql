-- SQLite only: its search index moves to a file of its own (see the SQLite migration of the same name).
-- PostgreSQL indexes each message as it is written, through the generated "search_vector" column and its
-- GIN index: nothing changes here. The migration exists so that both engines share one history.
SELECT 1;
