-- Message search: a tsvector of each visible message ('complete', 'stopped', NULL for any other) in
-- a stored generated column with a GIN index. PostgreSQL recomputes it whenever the row is written, so
-- every path (a new message, a bot answer completing, an edit, a deletion) keeps the index current
-- with no trigger to maintain.
-- The 'simple' configuration: no stemming and no stop words, so any language works. Before parsing,
-- Latin diacritics are folded (search_fold, shared with the queries) and ASCII punctuation becomes
-- a space, so words split where SQLite's unicode61 splits them (john@example.com holds john).
-- Prisma cannot describe these objects: test/migrations.test.ts lists them, and the models leave the
-- column out (only raw SQL reads it). No semicolon may appear but between statements, comments
-- included: the pg driver adapter that applies migrations splits the script at every one.
CREATE FUNCTION "search_fold"(text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT normalize(regexp_replace(normalize($1, NFD), '([A-Za-z])[\u0300-\u036f]+', '\1', 'g'), NFC) $$;

-- The chat's id is a lexeme of its own, '#<id>', which no text can produce: a search in some chats
-- intersects posting lists in this one index.
ALTER TABLE "messages" ADD COLUMN "search_vector" tsvector GENERATED ALWAYS AS (
    CASE WHEN "status" IN ('complete', 'stopped')
        THEN to_tsvector('simple'::regconfig, regexp_replace(search_fold("content"), '[!-/:-@\[-`{-~]', ' ', 'g'))
            || array_to_tsvector(ARRAY['#' || "chat_id"])
    END
) STORED;

CREATE INDEX "messages_search_vector_idx" ON "messages" USING GIN ("search_vector");
