import type { Database } from '../../db/client';
import type { Logger } from '../../log';

/**
 * Keeps message search's index up with the messages. A search calls `catchUp` first, so it finds
 * every message stored before it, whatever the index has taken in meanwhile.
 */
export interface SearchIndex {
  /** Messages were stored: take them in soon. */
  stored(): void;
  /** Takes in every message stored so far; settles when the index holds them. */
  catchUp(): Promise<void>;
  /** Settles once what was scheduled or running when called is done (tests wait on it). */
  settled(): Promise<void>;
  /** At shutdown: nothing more is scheduled; settles once a run under way is done. */
  close(): Promise<void>;
}

/** PostgreSQL indexes each message as it is written (a generated column and its GIN index): nothing to do. */
export const indexedOnWrite: SearchIndex = {
  stored() {},
  catchUp: () => Promise.resolve(),
  settled: () => Promise.resolve(),
  close: () => Promise.resolve(),
};

/** Messages taken in by one statement at most: it holds the write lock, which message writes wait for. */
export const SEARCH_INDEX_BATCH = 2_000;

/**
 * SQLite's search index, fed in bulk (migration 20261217000000_deferred_search_index): FTS5 writes a
 * segment for every transaction that changes it, which cost each group commit of messages more than
 * its rows. Stored messages are taken in SEARCH_INDEX_DELAY_MS (100 ms) later, by a statement that moves
 * `search_progress.indexed_up_to` on, at most SEARCH_INDEX_BATCH messages at a time; its trigger
 * indexes the visible messages passed, in that statement, so a crash loses nothing (the next start
 * takes them in). Runs never overlap: each waits for the one before.
 */
export class SqliteSearchIndex implements SearchIndex {
  private timer: Timer | null = null;
  /** Settles when the scheduled run has been done (see `settled`). */
  private scheduled: PromiseWithResolvers<void> | null = null;
  /** The run in progress or last done; the next one starts after it. */
  private running: Promise<void> = Promise.resolve();
  /** The next run while it waits for `running`: every caller meanwhile shares it. */
  private queued: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly db: Database,
    private readonly log: Logger,
    /** SEARCH_INDEX_DELAY_MS: how long stored messages wait, so that one statement takes in all those stored meanwhile. */
    private readonly delayMs: number,
  ) {}

  stored(): void {
    if (this.timer || this.closed) return;
    const scheduled = (this.scheduled = Promise.withResolvers<void>());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.scheduled = null;
      // A failure here is logged: the next write or search tries again, and nothing indexed is lost.
      void this.catchUp()
        .catch((error: unknown) => this.log.error({ err: error }, 'indexing messages for search failed'))
        .finally(() => scheduled.resolve());
    }, this.delayMs);
    this.timer.unref();
  }

  settled(): Promise<void> {
    const running = this.running.catch(() => {});
    return this.scheduled ? this.scheduled.promise.then(() => running) : running;
  }

  /**
   * A run that starts after this call, so it takes in everything stored before it. Callers share a run
   * that has not started yet: a burst of searches costs at most the run under way and one more.
   */
  catchUp(): Promise<void> {
    if (this.queued) return this.queued;
    const run = this.running
      .catch(() => {})
      .then(() => {
        this.queued = null;
        return this.takeEverything();
      });
    this.queued = run;
    this.running = run;
    return run;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.scheduled?.resolve();
    this.scheduled = null;
    // The database closes after this: a run under way finishes first rather than failing.
    await this.running.catch(() => {});
  }

  /** Moves the progress on until it reaches the newest message: one statement per SEARCH_INDEX_BATCH messages. */
  private async takeEverything(): Promise<void> {
    for (;;) {
      const moved = await this.db.$executeRaw`
        UPDATE search_progress SET indexed_up_to = min((SELECT coalesce(max(id), 0) FROM messages), indexed_up_to + ${SEARCH_INDEX_BATCH})
        WHERE id = 1 AND indexed_up_to < (SELECT coalesce(max(id), 0) FROM messages)`;
      if (moved === 0) return;
    }
  }
}
