-- Message search: an FTS5 index of the visible messages ('complete', 'stopped'), kept by triggers on
-- "messages", so whatever writes a message (a new one, a bot answer completing, an edit, a deletion,
-- a chat deleted with its messages) updates the index in the same transaction.
-- Contentless (content=''): the text stays in "messages" and the index holds only tokens. Each row's
-- chat id is a token of its own column, so a search within some chats intersects posting lists
-- instead of filtering every match. unicode61 with remove_diacritics 2 splits words at spaces and
-- punctuation in any script, ignores case and folds Latin diacritics (cafe finds café).
-- Prisma cannot describe these objects: test/migrations.test.ts lists them. A later migration that
-- redefines "messages" (copy, drop, rename) drops these triggers and must create them again.
CREATE VIRTUAL TABLE "messages_search" USING fts5("content", "chat_id", content='', tokenize='unicode61 remove_diacritics 2');

INSERT INTO "messages_search" ("rowid", "content", "chat_id")
    SELECT "id", "content", "chat_id" FROM "messages" WHERE "status" IN ('complete', 'stopped');

CREATE TRIGGER "messages_search_insert" AFTER INSERT ON "messages" WHEN new."status" IN ('complete', 'stopped') BEGIN
    INSERT INTO "messages_search" ("rowid", "content", "chat_id") VALUES (new."id", new."content", new."chat_id");
END;

-- A contentless index forgets a row only when told the values it indexed: the old row's.
CREATE TRIGGER "messages_search_delete" AFTER DELETE ON "messages" WHEN old."status" IN ('complete', 'stopped') BEGIN
    INSERT INTO "messages_search" ("messages_search", "rowid", "content", "chat_id") VALUES ('delete', old."id", old."content", old."chat_id");
END;

CREATE TRIGGER "messages_search_update" AFTER UPDATE OF "content", "status", "chat_id" ON "messages" BEGIN
    INSERT INTO "messages_search" ("messages_search", "rowid", "content", "chat_id")
        SELECT 'delete', old."id", old."content", old."chat_id" WHERE old."status" IN ('complete', 'stopped');
    INSERT INTO "messages_search" ("rowid", "content", "chat_id")
        SELECT new."id", new."content", new."chat_id" WHERE new."status" IN ('complete', 'stopped');
END;
