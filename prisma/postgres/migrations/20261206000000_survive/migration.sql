-- Usernames are unique regardless of case: each user gets its lower-case key.
ALTER TABLE "users" ADD COLUMN "username_key" TEXT;
UPDATE "users" SET "username_key" = lower("username");
ALTER TABLE "users" ALTER COLUMN "username_key" SET NOT NULL;
CREATE UNIQUE INDEX "users_username_key_key" ON "users"("username_key");

-- Pending /bot asks are marked, so finding the next one reads an index instead of a room's history.
ALTER TABLE "messages" ADD COLUMN "ask_pending" BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX "messages_ask_pending_chat_id_id_idx" ON "messages"("ask_pending", "chat_id", "id");
