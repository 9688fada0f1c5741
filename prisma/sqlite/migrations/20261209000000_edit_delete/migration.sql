-- Messages can be edited (edited_at) and deleted (status 'deleted', content erased, deleted_at). Each
-- edit or deletion records the chat's newest message id then (change_mark), so a client resuming from a
-- message id is sent the changes it missed (indexed by chat for that catch-up).

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
    CONSTRAINT "messages_chat_id_fkey" FOREIGN KEY ("chat_id") REFERENCES "chats" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "messages_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
INSERT INTO "new_messages" ("id", "chat_id", "user_id", "content", "is_bot", "status", "reply_to_id", "ask_pending", "created_at")
    SELECT "id", "chat_id", "user_id", "content", "is_bot", "status", "reply_to_id", "ask_pending", "created_at" FROM "messages";
DROP TABLE "messages";
ALTER TABLE "new_messages" RENAME TO "messages";
CREATE INDEX "messages_chat_id_id_idx" ON "messages"("chat_id", "id");
CREATE INDEX "messages_status_idx" ON "messages"("status");
CREATE INDEX "messages_ask_pending_chat_id_id_idx" ON "messages"("ask_pending", "chat_id", "id");
CREATE INDEX "messages_chat_id_change_mark_idx" ON "messages"("chat_id", "change_mark");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;
