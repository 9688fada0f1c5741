import type { Prisma } from '../../generated/sqlite/client';
import type { Database } from '../../db/client';
import type { PublicUser } from '../auth.service';
import { AppError } from '../errors';
import type { Memberships } from '../memberships';
import { messageSearchQuery, parseInput } from '../validation';
import type { SearchEngine, SearchHitRow, SearchScope } from './engines';
import { INDEXED_CHATS_LIMIT } from './engines';
import type { SearchIndex } from './search-index';
import { snippet } from './snippet';

/** A message that matched a search, with the snippet that shows why. */
export interface MessageSearchHit {
  id: number;
  chatId: number;
  /** The author's username; BOT_NAME for a bot answer. */
  username: string | null;
  content: string;
  createdAt: Date;
  /** The text around the first match, HTML-escaped, matches between `<mark>` and `</mark>`. */
  snippet: string;
}

/** Runs the engine's statements: Prisma's `$queryRaw` on PostgreSQL, a worker thread on SQLite (see SqliteSearchRunner). */
export interface SearchStatements {
  run(statement: Prisma.Sql): Promise<unknown[]>;
  /** Releases what running them holds (the worker); later searches are refused. */
  close(): Promise<void>;
}

export interface MessageSearchPage {
  hits: MessageSearchHit[];
  /** Another page follows: ask with `before` = the last hit's id. */
  hasMore: boolean;
}

/**
 * Full-text search over the messages of the caller's chats: every word must match, best matches
 * first (bm25 on SQLite, ts_rank on PostgreSQL), then newest. Only visible messages are indexed
 * (never a streaming, failed or deleted one), and the index follows every write (see the migration
 * 20261210000000_search; on SQLite new messages go in bulk, see SqliteSearchIndex), so an edit is
 * found by its new words at once.
 *
 * Pages: the order is by rank, so a page cannot start "below an id" as history does; `before` names
 * the last hit received, and the next page starts after that hit's (rank, id) computed afresh in the
 * same statement. A `before` that is no longer a hit (edited, deleted, the caller left the chat)
 * cannot place the page: 422, search again.
 */
export class MessageSearchService {
  constructor(
    private readonly db: Database,
    private readonly memberships: Memberships,
    private readonly engine: SearchEngine,
    private readonly statements: SearchStatements,
    /** Caught up before each search, so it finds every message stored before it. */
    private readonly index: SearchIndex,
    /** BOT_NAME: the `username` of bot messages, as history shows it. */
    private readonly botName: string,
  ) {}

  async search(reader: PublicUser, input: unknown): Promise<MessageSearchPage> {
    const { q: query, chat_id: chatId, limit, before } = parseInput(messageSearchQuery, input, 'query');
    const scope = await this.scopeOf(reader, chatId);
    if (scope === null) return { hits: [], hasMore: false };
    await this.index.catchUp();
    if (before !== undefined && (await this.statements.run(this.engine.hit(query, scope, before))).length === 0) {
      const msg = `Message ${before} is not a result of this search (it changed, or was deleted): search again`;
      throw new AppError('BAD_USER_INPUT', `before: ${msg}`, [{ type: 'value_error', loc: ['query', 'before'], msg }]);
    }
    const rows = (await this.statements.run(this.engine.page({ query, scope, limit: limit + 1, before: before ?? null }))) as SearchHitRow[];
    return {
      hits: rows.slice(0, limit).map((row) => ({
        id: row.id,
        chatId: row.chat_id,
        username: row.is_bot ? this.botName : row.username,
        content: row.content,
        createdAt: row.created_at,
        snippet: snippet(row.content, query),
      })),
      hasMore: rows.length > limit,
    };
  }

  /** At shutdown: ends the search worker, if any, and the index's schedule. */
  async close(): Promise<void> {
    await this.index.close();
    await this.statements.close();
  }

  /** The chats to search: the one named, if the caller is in it (404, then 403, as everywhere), else all of theirs; null when they are in none. */
  private async scopeOf(reader: PublicUser, chatId: number | undefined): Promise<SearchScope | null> {
    if (chatId !== undefined) {
      await this.memberships.require(reader.id, chatId);
      return { chatIds: [chatId] };
    }
    const participations = await this.db.chatParticipant.findMany({ where: { userId: reader.id }, select: { chatId: true }, take: INDEXED_CHATS_LIMIT + 1 });
    if (participations.length === 0) return null;
    if (participations.length > INDEXED_CHATS_LIMIT) return { memberId: reader.id };
    return { chatIds: participations.map((participation) => participation.chatId) };
  }
}
