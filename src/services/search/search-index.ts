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

/**
 * Takes every message stored before it into SQLite's index; settles with the last `search_changes` row
 * taken in. Runs on the search worker (SqliteSearchRunner.index).
 */
export type IndexPass = () => Promise<number>;

/**
 * SQLite's search index, in a file of its own written by the search worker (sqlite-search-file.ts):
 * stored messages are taken in SEARCH_INDEX_DELAY_MS (100 ms) later, by one pass that takes in all
 * those stored meanwhile; FTS5 writes a segment for every transaction that changes it, which cost each
 * group commit more than its rows. A crash loses nothing: the pass after the next start (with the next
 * message or search) takes them in. Passes never overlap: each waits for the one before. After each,
 * the change rows it took in are deleted here, since only the server writes the database.
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

  /** The `search_changes` rows before this one are deleted. */
  private pruned = 0;

  constructor(
    private readonly db: Database,
    private readonly pass: IndexPass,
    private readonly log: Logger,
    /** SEARCH_INDEX_DELAY_MS: how long stored messages wait, so that one pass takes in all those stored meanwhile. */
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

  /**
   * A pass, then the change rows it took in are deleted but the last, which tells a later pass whether
   * its index lost any (see `outOfStep`). A failure is logged: the next pass's deletion covers them.
   */
  private async takeEverything(): Promise<void> {
    const changesUpTo = await this.pass();
    if (changesUpTo <= this.pruned) return;
    await this.db.$executeRaw`DELETE FROM search_changes WHERE seq < ${changesUpTo}`.then(
      () => (this.pruned = changesUpTo),
      (error: unknown) => this.log.warn({ err: error }, 'deleting the changes search has taken in failed'),
    );
  }
}
