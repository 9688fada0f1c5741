-- New messages are indexed for search in bulk, a moment after they are stored, instead of by a
-- trigger in the transaction that stores them. FTS5 writes a segment for every transaction that
-- changes it: a trigger cost each group commit of messages some 150 µs however few rows it held
-- (measured: 27 µs a row in commits of 10 rows, 12 without the trigger). SqliteSearchIndex
-- (src/services/search/sqlite-search-index.ts) moves "search_progress"."indexed_up_to" on to the
-- newest message id, and the trigger below indexes the visible messages it passes, in the same
-- statement: a crash loses no indexing, only delays it. A search first moves it on to the newest
-- message, so it finds every message stored before it.
-- Edits, deletions and answers completing still change the index by trigger, but only for messages
-- already passed (the others are indexed as they are once passed): a contentless index forgets a
-- row only when told the values it indexed.
-- Prisma cannot describe these objects: test/migrations.test.ts lists them.
CREATE TABLE "search_progress" (
    "id" INTEGER NOT NULL PRIMARY KEY CHECK ("id" = 1),
    "indexed_up_to" INTEGER NOT NULL
);

-- Every visible message stored so far was indexed by the trigger this migration replaces.
INSERT INTO "search_progress" ("id", "indexed_up_to") SELECT 1, coalesce(max("id"), 0) FROM "messages";

CREATE TRIGGER "search_progress_advance" AFTER UPDATE OF "indexed_up_to" ON "search_progress" BEGIN
    INSERT INTO "messages_search" ("rowid", "content", "chat_id")
        SELECT "id", "content", "chat_id" FROM "messages"
        WHERE "id" > old."indexed_up_to" AND "id" <= new."indexed_up_to" AND "status" IN ('complete', 'stopped');
END;

DROP TRIGGER "messages_search_insert";

DROP TRIGGER "messages_search_delete";
CREATE TRIGGER "messages_search_delete" AFTER DELETE ON "messages"
WHEN old."status" IN ('complete', 'stopped') AND old."id" <= (SELECT "indexed_up_to" FROM "search_progress") BEGIN
    INSERT INTO "messages_search" ("messages_search", "rowid", "content", "chat_id") VALUES ('delete', old."id", old."content", old."chat_id");
END;

DROP TRIGGER "messages_search_update";
CREATE TRIGGER "messages_search_update" AFTER UPDATE OF "content", "status", "chat_id" ON "messages"
WHEN old."id" <= (SELECT "indexed_up_to" FROM "search_progress") BEGIN
    INSERT INTO "messages_search" ("messages_search", "rowid", "content", "chat_id")
        SELECT 'delete', old."id", old."content", old."chat_id" WHERE old."status" IN ('complete', 'stopped');
    INSERT INTO "messages_search" ("rowid", "content", "chat_id")
        SELECT new."id", new."content", new."chat_id" WHERE new."status" IN ('complete', 'stopped');
END;
