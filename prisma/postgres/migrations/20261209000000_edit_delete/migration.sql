-- Messages can be edited (edited_at) and deleted (status 'deleted', content erased, deleted_at). Each
-- edit or deletion records the chat's newest message id then (change_mark), so a client resuming from a
-- message id is sent the changes it missed (indexed by chat for that catch-up).
ALTER TABLE "messages" ADD COLUMN "edited_at" TIMESTAMP(3),
ADD COLUMN "deleted_at" TIMESTAMP(3),
ADD COLUMN "change_mark" INTEGER;
CREATE INDEX "messages_chat_id_change_mark_idx" ON "messages"("chat_id", "change_mark");
