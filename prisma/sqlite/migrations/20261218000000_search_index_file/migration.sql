-- Message search's index moves to a file of its own beside the database, "<database file>-search",
-- written by the search worker's connection (src/services/search/sqlite-search-file.ts): FTS5's inserts
-- and segment merges no longer hold this database's write lock, nor the server's event loop. The worker
-- builds the new index from the messages on its first run; this database keeps what it needs to follow
-- them:
-- - "search_source": this database's token, which the index file records, so that a file left beside
--   another database (one created afresh at the same path, say) is rebuilt rather than trusted;
-- - "search_changes": each message whose words, visibility or room changed, by trigger, in the
--   transaction that changed it. The worker takes such messages out of the index and puts them back as
--   they are now; the server then deletes the rows it has taken in but the last, whose number tells an
--   index that lost a pass (a power cut, a restored copy) that it must be rebuilt. AUTOINCREMENT, so that
--   a number is never given twice.
-- Prisma cannot describe these objects: test/migrations.test.ts lists them.
DROP TRIGGER "search_progress_advance";
DROP TRIGGER "messages_search_delete";
DROP TRIGGER "messages_search_update";
DROP TABLE "search_progress";
DROP TABLE "messages_search";

CREATE TABLE "search_source" (
    "id" INTEGER NOT NULL PRIMARY KEY CHECK ("id" = 1),
    "token" TEXT NOT NULL
);
INSERT INTO "search_source" ("id", "token") VALUES (1, lower(hex(randomblob(16))));

CREATE TABLE "search_changes" (
    "seq" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "message_id" INTEGER NOT NULL
);

-- Only changes that can matter to the index: a message that was or becomes visible.
CREATE TRIGGER "search_changes_update" AFTER UPDATE OF "content", "status", "chat_id" ON "messages"
WHEN old."status" IN ('complete', 'stopped') OR new."status" IN ('complete', 'stopped') BEGIN
    INSERT INTO "search_changes" ("message_id") VALUES (old."id");
END;

CREATE TRIGGER "search_changes_delete" AFTER DELETE ON "messages" WHEN old."status" IN ('complete', 'stopped') BEGIN
    INSERT INTO "search_changes" ("message_id") VALUES (old."id");
END;
