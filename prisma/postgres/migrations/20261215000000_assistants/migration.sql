-- Room assistants (their settings and long memory), the usage of every model call, and the earlier
-- versions of regenerated answers. Messages record the assistant an ask addresses (or an answer
-- came from), the thread an ask was made under, and a grounded answer's sources.
ALTER TABLE "messages" ADD COLUMN "assistant_id" INTEGER,
ADD COLUMN "thread_id" INTEGER,
ADD COLUMN "sources" TEXT;

-- CreateTable
CREATE TABLE "assistants" (
    "id" SERIAL NOT NULL,
    "chat_id" INTEGER NOT NULL,
    "name" TEXT NOT NULL,
    "name_key" TEXT NOT NULL,
    "instructions" TEXT NOT NULL DEFAULT '',
    "model" TEXT NOT NULL,
    "temperature" DOUBLE PRECISION,
    "answers_mentions" BOOLEAN NOT NULL DEFAULT false,
    "grounding" BOOLEAN NOT NULL DEFAULT false,
    "is_default" BOOLEAN NOT NULL DEFAULT false,
    "memory" TEXT,
    "memory_up_to_id" INTEGER,
    "memory_updated_at" TIMESTAMP(3),
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "assistants_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "bot_usage" (
    "id" SERIAL NOT NULL,
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
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "bot_usage_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "message_versions" (
    "id" SERIAL NOT NULL,
    "message_id" INTEGER NOT NULL,
    "content" TEXT NOT NULL,
    "sources" TEXT,
    "created_at" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "message_versions_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "assistants_chat_id_name_key_key" ON "assistants"("chat_id", "name_key");

-- CreateIndex
CREATE INDEX "bot_usage_chat_id_created_at_idx" ON "bot_usage"("chat_id", "created_at");

-- CreateIndex
CREATE INDEX "message_versions_message_id_id_idx" ON "message_versions"("message_id", "id");

-- AddForeignKey
ALTER TABLE "assistants" ADD CONSTRAINT "assistants_chat_id_fkey" FOREIGN KEY ("chat_id") REFERENCES "chats"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "bot_usage" ADD CONSTRAINT "bot_usage_chat_id_fkey" FOREIGN KEY ("chat_id") REFERENCES "chats"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "message_versions" ADD CONSTRAINT "message_versions_message_id_fkey" FOREIGN KEY ("message_id") REFERENCES "messages"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "messages" ADD CONSTRAINT "messages_assistant_id_fkey" FOREIGN KEY ("assistant_id") REFERENCES "assistants"("id") ON DELETE SET NULL ON UPDATE CASCADE;
