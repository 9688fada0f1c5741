import type { Database as SqliteConnection } from 'bun:sqlite';
import type { Database } from '../db/client';
import { sqliteConnectionOf } from '../db/client';
import type { Metrics } from '../metrics';
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
 * Rows per transaction: bounds how long one batch holds the write lock; the rest go in the next.
 */
export const MAX_BATCH_ROWS = 500;

/** A row as the INSERT takes it: `[chat_id, user_id, content, ask_pending, sender_name, assistant_id, thread_id]`. */
type RowTuple = [number, number | null, string, boolean, string | null, number | null, number | null];

/** Stores rows in one transaction, in order, and returns their ids in the same order. */
export type InsertRows = (rows: RowTuple[], createdAt: Date) => Promise<number[]>;

/**
 * PostgreSQL's batch INSERT, one statement text whatever its size: the rows travel as one JSON array,
 * so the statement is prepared once and Prisma maps three parameters instead of eight a row.
 */
function prismaInsertRows(db: Database): InsertRows {
  return async (rows, createdAt) => {
    const stored = await db.$queryRaw<{ id: number }[]>`
      INSERT INTO messages (chat_id, user_id, content, created_at, ask_pending, sender_name, assistant_id, thread_id)
      SELECT (row ->> 0)::int, (row ->> 1)::int, row ->> 2, ${createdAt}, (row ->> 3)::boolean, row ->> 4, (row ->> 5)::int, (row ->> 6)::int
      FROM jsonb_array_elements(${JSON.stringify(rows)}::jsonb) WITH ORDINALITY AS rows (row, position) ORDER BY position
      RETURNING id`;
    // Ids follow the rows' order in the statement; sorting makes that explicit.
    return stored.map((row) => row.id).sort((a, b) => a - b);
  };
}

/**
 * SQLite's batch, on the connection Prisma's queries use: one prepared INSERT a row inside one
 * transaction, straight through bun:sqlite. The JSON-array INSERT through Prisma was the largest
 * single cost of a message; measured in commits of 45 rows, its SQL alone took 12.7 µs a row, these
 * inserts 8.4 µs, and Prisma's own work per statement is gone too.
 * Dates are written as Prisma writes them, so Prisma reads these rows like its own.
 */
function sqliteInsertRows(connection: SqliteConnection): InsertRows {
  // `query`, not `prepare`: the connection keeps the statement and finalizes it when Prisma closes the
  // connection. An unfinalized one would keep the closed connection alive, holding the file's lock.
  const insert = connection.query<unknown, [number, number | null, string, string, number, string | null, number | null, number | null]>(
    'INSERT INTO messages (chat_id, user_id, content, created_at, ask_pending, sender_name, assistant_id, thread_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const insertAll = connection.transaction((rows: RowTuple[], createdAt: string) =>
    rows.map(([chatId, userId, content, askPending, senderName, assistantId, threadId]) =>
      Number(insert.run(chatId, userId, content, createdAt, askPending ? 1 : 0, senderName, assistantId, threadId).lastInsertRowid),
    ),
  );
  return async (rows, createdAt) => {
    // A Prisma transaction open on the connection (awaiting between its statements) would take these
    // rows in and could roll them back: wait for it to end. Rare and short (Prisma times it out), so polled.
    while (connection.inTransaction) await Bun.sleep(1);
    return insertAll(rows, createdAt.toISOString().replace('Z', '+00:00'));
  };
}

/** The configured engine's way of storing a batch: straight on SQLite's connection, through Prisma on PostgreSQL. */
export function insertRowsFor(db: Database): InsertRows {
  const connection = sqliteConnectionOf(db);
  return connection ? sqliteInsertRows(connection) : prismaInsertRows(db);
}

/**
 * Group commit for the hot path. Messages written in one turn of the event loop, or while an insert
 * is in flight, go together in one transaction (see InsertRows): one commit per batch instead of
 * per message. Under light load a batch is a single message, so nothing waits
 * longer than one insert; under heavy load batches grow and the per-message cost falls.
 * A message's promise settles only once its row is durable: callers publish and acknowledge after.
 */
export class MessageWriter {
  private pending: PendingWrite[] = [];
  private flushing = false;

  constructor(
    /** Asked whether it answers at all, when a batch failed. */
    private readonly db: Database,
    private readonly insertRows: InsertRows,
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

  /** One transaction of the rows, in order; returns each row's id and timestamp in the same order. */
  private async insert(batch: PendingWrite[]): Promise<{ id: number; createdAt: Date }[]> {
    const createdAt = new Date();
    const ids = await this.insertRows(
      batch.map(({ data }): RowTuple => [
        data.chatId,
        data.userId,
        data.content,
        data.askPending,
        data.senderName ?? null,
        data.assistantId ?? null,
        data.threadId ?? null,
      ]),
      createdAt,
    );
    this.metrics.messagesStored.inc(ids.length);
    this.searchIndex.stored();
    this.metrics.messageBatchSize.observe(ids.length);
    return ids.map((id) => ({ id, createdAt }));
  }
}
