-- A read position per participant instead of a row per message per reader: the newest message read,
-- and when the position last moved. Existing participants start with nothing unread.
ALTER TABLE "chat_participants" ADD COLUMN "last_read_message_id" INTEGER,
ADD COLUMN "last_read_at" TIMESTAMP(3);
UPDATE "chat_participants" SET "last_read_message_id" = (
    SELECT MAX("messages"."id") FROM "messages" WHERE "messages"."chat_id" = "chat_participants"."chat_id" AND "messages"."status" IN ('complete', 'stopped'));
