-- Usernames are unique regardless of case: each user gets its lower-case key.
-- Pending /bot asks are marked, so finding the next one reads an index instead of a room's history.

-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_users" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "username" TEXT NOT NULL,
    "username_key" TEXT NOT NULL,
    "email" TEXT NOT NULL,
    "hashed_password" TEXT NOT NULL,
    "created_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO "new_users" ("id", "username", "username_key", "email", "hashed_password", "created_at")
    SELECT "id", "username", lower("username"), "email", "hashed_password", "created_at" FROM "users";
DROP TABLE "users";
ALTER TABLE "new_users" RENAME TO "users";
CREATE UNIQUE INDEX "users_username_key" ON "users"("username");
CREATE UNIQUE INDEX "users_username_key_key" ON "users"("username_key");
CREATE UNIQUE INDEX "users_email_key" ON "users"("email");
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
    CONSTRAINT "messages_chat_id_fkey" FOREIGN KEY ("chat_id") REFERENCES "chats" ("id") ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT "messages_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE SET NULL ON UPDATE CASCADE
);
INSERT INTO "new_messages" ("id", "chat_id", "user_id", "content", "is_bot", "status", "reply_to_id", "created_at")
    SELECT "id", "chat_id", "user_id", "content", "is_bot", "status", "reply_to_id", "created_at" FROM "messages";
DROP TABLE "messages";
ALTER TABLE "new_messages" RENAME TO "messages";
CREATE INDEX "messages_chat_id_id_idx" ON "messages"("chat_id", "id");
CREATE INDEX "messages_status_idx" ON "messages"("status");
CREATE INDEX "messages_ask_pending_chat_id_id_idx" ON "messages"("ask_pending", "chat_id", "id");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;
