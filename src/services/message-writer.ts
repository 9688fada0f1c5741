import type { Database } from '../db/client';
import type { Metrics } from '../metrics';
import { Prisma } from '../generated/sqlite/client';
import type { SearchIndex } from './search/search-index';

interface PendingWrite {
  /** `askPending` marks a `/bot` ask that no answer has started for yet. */
  /** `assistantId`: the assistant an ask addresses; `threadId`: the message it was written under; `senderName`: an incoming hook's name (no user). */
  data: {
    chatId: number;
    userId: number | null;
    content: string;
    askPending: boolean;
    senderName?: string;
    assistantId?: number | null;
    threadId?: number | null;
  };
  resolve: (stored: { id: number; createdAt: Date }) => void;
  reject: (error: unknown) => void;
}

/**
 * Rows per INSERT: bounds how long one statement holds the write lock; the rest go in the next.
 */
export const MAX_BATCH_ROWS = 500;

/** A row as the INSERT reads it from its one JSON parameter: `[chat_id, user_id, content, ask_pending, sender_name, assistant_id, thread_id]`. */
type RowTuple = [number, number | null, string, boolean, string | null, number | null, number | null];

/**
 * The batch's INSERT, one statement text whatever its size: the rows travel as one JSON array, so the
 * statement is prepared once and Prisma maps three parameters instead of eight a row (measured: the
 * per-row parameters, and preparing a new statement for each batch size, cost more than the insert).
 * Rows are inserted in array order, so ids follow it.
 */
const insertStatements = {
  sqlite: (rows: string, createdAt: Date) => Prisma.sql`
    INSERT INTO messages (chat_id, user_id, content, created_at, ask_pending, sender_name, assistant_id, thread_id)
    SELECT value ->> 0, value ->> 1, value ->> 2, ${createdAt}, value ->> 3, value ->> 4, value ->> 5, value ->> 6
    FROM json_each(${rows}) ORDER BY key
    RETURNING id, created_at`,
  postgres: (rows: string, createdAt: Date) => Prisma.sql`
    INSERT INTO messages (chat_id, user_id, content, created_at, ask_pending, sender_name, assistant_id, thread_id)
    SELECT (row ->> 0)::int, (row ->> 1)::int, row ->> 2, ${createdAt}, (row ->> 3)::boolean, row ->> 4, (row ->> 5)::int, (row ->> 6)::int
    FROM jsonb_array_elements(${rows}::jsonb) WITH ORDINALITY AS rows (row, position) ORDER BY position
    RETURNING id, created_at`,
};

/**
 * Group commit for the hot path. Messages written while an insert is in flight wait for it and
 * then go together as one multi-row `INSERT … RETURNING`: one statement and one transaction per
 * batch instead of per message. Under light load a batch is a single message, so nothing waits
 * longer than one insert; under heavy load batches grow and the per-message cost falls.
 * A message's promise settles only once its row is durable: callers publish and acknowledge after.
 */
export class MessageWriter {
  private pending: PendingWrite[] = [];
  private flushing = false;

  constructor(
    private readonly db: Database,
    private readonly engine: 'sqlite' | 'postgres',
    private readonly metrics: Pick<Metrics, 'messagesStored' | 'messageBatchSize'>,
    /** Told of every batch stored, to take it into search soon. */
    private readonly searchIndex: Pick<SearchIndex, 'stored'>,
  ) {}

  write(data: PendingWrite['data']): Promise<{ id: number; createdAt: Date }> {
    return new Promise((resolve, reject) => {
      this.pending.push({ data, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        // Wait out the current turn of the event loop, so frames read in it share one insert.
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, MAX_BATCH_ROWS);
      try {
        const rows = await this.insert(batch);
        batch.forEach((write, index) => write.resolve(rows[index]!));
      } catch (error) {
        // One bad row (its chat deleted meanwhile, say) fails the whole statement: retried alone,
        // each row succeeds or fails on its own, so only the bad one's sender sees an error. Unless the
        // database itself fails: then each retry would wait out its own timeout, one after another.
        if (batch.length === 1 || !(await this.answers())) batch.forEach((write) => write.reject(error));
        else for (const write of batch) await this.insert([write]).then(([row]) => write.resolve(row!), write.reject);
      }
    }
    this.flushing = false;
  }

  /** Whether the database answers at all: one statement, bounded like any by DATABASE_TIMEOUT_MS. */
  private answers(): Promise<boolean> {
    return this.db.$queryRaw`SELECT 1`.then(
      () => true,
      () => false,
    );
  }

  /** One INSERT of the rows, in order; returns each row's id and timestamp in the same order. */
  private async insert(batch: PendingWrite[]): Promise<{ id: number; createdAt: Date }[]> {
    const createdAt = new Date();
    const rows = JSON.stringify(
      batch.map(({ data }): RowTuple => [
        data.chatId,
        data.userId,
        data.content,
        data.askPending,
        data.senderName ?? null,
        data.assistantId ?? null,
        data.threadId ?? null,
      ]),
    );
    const stored = await this.db.$queryRaw<{ id: number; created_at: Date }[]>(insertStatements[this.engine](rows, createdAt));
    this.metrics.messagesStored.inc(stored.length);
    this.searchIndex.stored();
    this.metrics.messageBatchSize.observe(stored.length);
    // Ids follow the rows' order in the statement; sorting makes that explicit.
    stored.sort((a, b) => a.id - b.id);
    return stored.map((row) => ({ id: row.id, createdAt: row.created_at }));
  }
}
