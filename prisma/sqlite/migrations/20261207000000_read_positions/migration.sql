-- A read position per participant instead of a row per message per reader: the newest message read,
-- and when the position last moved. Existing participants start with nothing unread.

-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_chat_participants" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "chat_id" INTEGER NOT NULL,
    "user_id" INTEGER NOT NULL,
    "joined_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_read_message_id" INTEGER,
    "last_read_at" DATETIME,
    CONSTRAINT "chat_participants_chat_id_fkey" FOREIGN KEY ("chat_id") REFERENCES "chats" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "chat_participants_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
INSERT INTO "new_chat_participants" ("id", "chat_id", "user_id", "joined_at", "last_read_message_id")
    SELECT "id", "chat_id", "user_id", "joined_at",
        (SELECT MAX("messages"."id") FROM "messages" WHERE "messages"."chat_id" = "chat_participants"."chat_id" AND "messages"."status" IN ('complete', 'stopped'))
    FROM "chat_participants";
DROP TABLE "chat_participants";
ALTER TABLE "new_chat_participants" RENAME TO "chat_participants";
CREATE INDEX "chat_participants_user_id_idx" ON "chat_participants"("user_id");
CREATE UNIQUE INDEX "chat_participants_chat_id_user_id_key" ON "chat_participants"("chat_id", "user_id");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;
