-- Room assistants (their settings and long memory), the usage of every model call, and the earlier
-- versions of regenerated answers. Messages record the assistant an ask addresses (or an answer
-- came from), the thread an ask was made under, and a grounded answer's sources.

-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_messages" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "chat_id" INTEGER NOT NULL,
    "user_id" INTEGER,
    "content" TEXT NOT NULL,
    "is_bot" BOOLEAN NOT NULL DEFAULT false,
    "status" TEXT NOT NULL DEFAULT 'complete',
    "reply_to_id" INTEGER,
    "ask_pending" BOOLEAN NOT NULL DEFAULT false,
    "created_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "edited_at" DATETIME,
    "deleted_at" DATETIME,
    "change_mark" INTEGER,
    "sender_name" TEXT,
    "assistant_id" INTEGER,
    "thread_id" INTEGER,
    "sources" TEXT,
    CONSTRAINT "messages_chat_id_fkey" FOREIGN KEY ("chat_id") REFERENCES "chats" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "messages_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT "messages_assistant_id_fkey" FOREIGN KEY ("assistant_id") REFERENCES "assistants" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
INSERT INTO "new_messages" ("id", "chat_id", "user_id", "content", "is_bot", "status", "reply_to_id", "ask_pending", "created_at", "edited_at", "deleted_at", "change_mark", "sender_name")
    SELECT "id", "chat_id", "user_id", "content", "is_bot", "status", "reply_to_id", "ask_pending", "created_at", "edited_at", "deleted_at", "change_mark", "sender_name" FROM "messages";
DROP TABLE "messages";
ALTER TABLE "new_messages" RENAME TO "messages";
CREATE INDEX "messages_chat_id_id_idx" ON "messages"("chat_id", "id");
CREATE INDEX "messages_status_idx" ON "messages"("status");
CREATE INDEX "messages_ask_pending_chat_id_id_idx" ON "messages"("ask_pending", "chat_id", "id");
CREATE INDEX "messages_chat_id_change_mark_idx" ON "messages"("chat_id", "change_mark");

-- Search's triggers went with the old table (its index keeps the rows, copied with the same ids).
CREATE TRIGGER "messages_search_insert" AFTER INSERT ON "messages" WHEN new."status" IN ('complete', 'stopped') BEGIN
    INSERT INTO "messages_search" ("rowid", "content", "chat_id") VALUES (new."id", new."content", new."chat_id");
END;

CREATE TRIGGER "messages_search_delete" AFTER DELETE ON "messages" WHEN old."status" IN ('complete', 'stopped') BEGIN
    INSERT INTO "messages_search" ("messages_search", "rowid", "content", "chat_id") VALUES ('delete', old."id", old."content", old."chat_id");
END;

CREATE TRIGGER "messages_search_update" AFTER UPDATE OF "content", "status", "chat_id" ON "messages" BEGIN
    INSERT INTO "messages_search" ("messages_search", "rowid", "content", "chat_id")
        SELECT 'delete', old."id", old."content", old."chat_id" WHERE old."status" IN ('complete', 'stopped');
    INSERT INTO "messages_search" ("rowid", "content", "chat_id")
        SELECT new."id", new."content", new."chat_id" WHERE new."status" IN ('complete', 'stopped');
END;
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;

-- CreateTable
CREATE TABLE "assistants" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "chat_id" INTEGER NOT NULL,
    "name" TEXT NOT NULL,
    "name_key" TEXT NOT NULL,
    "instructions" TEXT NOT NULL DEFAULT '',
    "model" TEXT NOT NULL,
    "temperature" REAL,
    "answers_mentions" BOOLEAN NOT NULL DEFAULT false,
    "grounding" BOOLEAN NOT NULL DEFAULT false,
    "is_default" BOOLEAN NOT NULL DEFAULT false,
    "memory" TEXT,
    "memory_up_to_id" INTEGER,
    "memory_updated_at" DATETIME,
    "created_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "assistants_chat_id_fkey" FOREIGN KEY ("chat_id") REFERENCES "chats" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "bot_usage" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "chat_id" INTEGER NOT NULL,
    "assistant_id" INTEGER,
    "message_id" INTEGER,
    "asker_id" INTEGER,
    "kind" TEXT NOT NULL DEFAULT 'answer',
    "model" TEXT NOT NULL,
    "prompt_tokens" INTEGER NOT NULL,
    "answer_tokens" INTEGER NOT NULL,
    "total_tokens" INTEGER NOT NULL,
    "duration_ms" INTEGER NOT NULL,
    "created_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "bot_usage_chat_id_fkey" FOREIGN KEY ("chat_id") REFERENCES "chats" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "message_versions" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "message_id" INTEGER NOT NULL,
    "content" TEXT NOT NULL,
    "sources" TEXT,
    "created_at" DATETIME NOT NULL,
    CONSTRAINT "message_versions_message_id_fkey" FOREIGN KEY ("message_id") REFERENCES "messages" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateIndex
CREATE UNIQUE INDEX "assistants_chat_id_name_key_key" ON "assistants"("chat_id", "name_key");

-- CreateIndex
CREATE INDEX "bot_usage_chat_id_created_at_idx" ON "bot_usage"("chat_id", "created_at");

-- CreateIndex
CREATE INDEX "message_versions_message_id_id_idx" ON "message_versions"("message_id", "id");
