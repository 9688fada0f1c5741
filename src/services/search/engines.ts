import type { Engine } from '../../db/migrate';
import { Prisma } from '../../generated/sqlite/client';
import { VISIBLE_STATUSES } from '../room-feed';
import type { SearchClause, SearchQuery } from './search-query';

/**
 * Message search in each engine's own full-text index (migration 20261210000000_search): SQLite's
 * FTS5 table `messages_search`, PostgreSQL's `messages.search_vector` with its GIN index. Both index
 * the chat id beside the words, so a search in a few chats intersects posting lists instead of
 * ranking every match in the database and filtering afterwards. Every word reaches the engine
 * quoted, as a bound parameter: a query can hold no operator of the engine's syntax.
 */

/**
 * Which chats to search: named (the index filters them), or every chat of a member who is in too
 * many for that (the filter would cost more than the search; a join with their memberships instead).
 */
export type SearchScope = { chatIds: number[] } | { memberId: number };

/** Above this many chats, a search across a member's chats filters by a join instead of the index. */
export const INDEXED_CHATS_LIMIT = 100;

export interface SearchPageRequest {
  query: SearchQuery;
  scope: SearchScope;
  limit: number;
  /** A message id: the page starts after this hit, in the search's order. */
  before: number | null;
}

/** A row of a page of hits, best first then newest. */
export interface SearchHitRow {
  id: number;
  chat_id: number;
  user_id: number | null;
  content: string;
  is_bot: boolean | number;
  created_at: Date;
  username: string | null;
}

export interface SearchEngine {
  /** A page of hits: best first, then newest; after `before` when given. */
  page(request: SearchPageRequest): Prisma.Sql;
  /** One row (its id) when `messageId` is a hit of the query in the scope, none otherwise. */
  hit(query: SearchQuery, scope: SearchScope, messageId: number): Prisma.Sql;
}

const visible = Prisma.join(VISIBLE_STATUSES);

/** An FTS5 string: double quotes around, a double quote inside doubled. */
const fts5String = (text: string) => `"${text.replaceAll('"', '""')}"`;

/** The clauses, all required, on the content column; a phrase is one string, its last word a prefix when `*` follows. */
function fts5Content(query: SearchQuery): string {
  const clause = ({ words, prefix }: SearchClause) => `${fts5String(words.join(' '))}${prefix ? ' *' : ''}`;
  return `content : (${query.clauses.map(clause).join(' AND ')})`;
}

/** The MATCH expression: the words, and, for named chats, one of their ids in the chat_id column. */
function fts5Match(query: SearchQuery, scope: SearchScope): string {
  const content = fts5Content(query);
  if (!('chatIds' in scope)) return content;
  return `chat_id : (${scope.chatIds.map((id) => fts5String(String(id))).join(' OR ')}) AND ${content}`;
}

/** bm25 counts the words only: the chat id column weighs nothing. Negated, so that higher is better as in PostgreSQL. */
const FTS5_SCORE = Prisma.raw('-bm25(messages_search, 1.0, 0.0)');

const sqlite: SearchEngine = {
  page({ query, scope, limit, before }) {
    const match = fts5Match(query, scope);
    // The boundary's score comes from the same statement: one snapshot, the same bm25 statistics.
    const after =
      before === null
        ? Prisma.empty
        : Prisma.sql`AND (hits.score, hits.id) < (SELECT ${FTS5_SCORE}, rowid FROM messages_search WHERE messages_search MATCH ${match} AND rowid = ${before})`;
    return Prisma.sql`
      SELECT m.id, m.chat_id, m.user_id, m.content, m.is_bot, m.created_at, u.username
      FROM (SELECT rowid AS id, ${FTS5_SCORE} AS score FROM messages_search WHERE messages_search MATCH ${match}) hits
      JOIN messages m ON m.id = hits.id
      ${sqliteScope(scope)}
      LEFT JOIN users u ON u.id = m.user_id
      WHERE m.status IN (${visible}) ${after}
      ORDER BY hits.score DESC, hits.id DESC
      LIMIT ${limit}`;
  },
  hit(query, scope, messageId) {
    return Prisma.sql`
      SELECT m.id FROM messages_search JOIN messages m ON m.id = messages_search.rowid
      ${sqliteScope(scope)}
      WHERE messages_search MATCH ${fts5Match(query, scope)} AND messages_search.rowid = ${messageId} AND m.status IN (${visible})`;
  },
};

/**
 * The scope on the messages themselves, not only in the index: the index is another file, written after
 * the messages, and the chats it holds for them must never be what lets a message through.
 */
const sqliteScope = (scope: SearchScope) =>
  'memberId' in scope
    ? Prisma.sql`JOIN chat_participants p ON p.chat_id = m.chat_id AND p.user_id = ${scope.memberId}`
    : Prisma.sql`AND m.chat_id IN (${Prisma.join(scope.chatIds)})`;

/** A tsquery lexeme: single quotes around, a quote or backslash inside escaped. */
const tsLexeme = (text: string) => `'${text.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;

/**
 * The clauses as tsquery text, all required (`&`); a phrase's words follow each other (`<->`), its
 * last one a prefix (`:*`). The server folds it as it folds the text (search_fold) and parses it with
 * the 'simple' configuration.
 */
function tsContent(query: SearchQuery): string {
  const clause = ({ words, prefix }: SearchClause) => `(${words.map(tsLexeme).join(' <-> ')}${prefix ? ':*' : ''})`;
  return query.clauses.map(clause).join(' & ');
}

/**
 * Each visible row's vector holds its chat's id as the lexeme `#<id>`, which no text can produce
 * (punctuation becomes a space before parsing). A separate condition from the words, so the GIN scan
 * intersects the two as separate keys, skipping through the longer posting lists.
 */
const tsChats = (chatIds: number[]) => chatIds.map((id) => tsLexeme(`#${id}`)).join(' | ');

/** ts_rank with normalization 1 (divided by 1 + the log of the length): a short message that is about the words ranks higher. */
const tsScore = (alias: string) => Prisma.raw(`ts_rank(${alias}.search_vector, words, 1)`);

function postgresScope(scope: SearchScope): Prisma.Sql {
  return 'chatIds' in scope
    ? Prisma.sql`m.search_vector @@ CAST(${tsChats(scope.chatIds)} AS tsquery)`
    : Prisma.sql`m.chat_id IN (SELECT chat_id FROM chat_participants WHERE user_id = ${scope.memberId})`;
}

const postgres: SearchEngine = {
  page({ query, scope, limit, before }) {
    const after =
      before === null ? Prisma.empty : Prisma.sql`AND (${tsScore('m')}, m.id) < (SELECT ${tsScore('b')}, b.id FROM messages b WHERE b.id = ${before})`;
    return Prisma.sql`
      SELECT m.id, m.chat_id, m.user_id, m.content, m.is_bot, m.created_at, u.username
      FROM messages m
      CROSS JOIN to_tsquery('simple', search_fold(${tsContent(query)})) AS words
      LEFT JOIN users u ON u.id = m.user_id
      WHERE m.search_vector @@ words AND ${postgresScope(scope)} AND m.status IN (${visible}) ${after}
      ORDER BY ${tsScore('m')} DESC, m.id DESC
      LIMIT ${limit}`;
  },
  hit(query, scope, messageId) {
    return Prisma.sql`
      SELECT m.id FROM messages m CROSS JOIN to_tsquery('simple', search_fold(${tsContent(query)})) AS words
      WHERE m.id = ${messageId} AND m.search_vector @@ words AND ${postgresScope(scope)} AND m.status IN (${visible})`;
  },
};

export const searchEngines: Record<Engine, SearchEngine> = { sqlite, postgres };
