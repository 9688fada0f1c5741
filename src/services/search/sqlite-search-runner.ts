import type { Prisma } from '../../generated/sqlite/client';
import { AppError } from '../errors';
import { removeFirst } from '../lists';

/**
 * A job for the worker: a search statement (SQLite's text with `?` placeholders and its values), or a
 * pass that brings the search index up to the newest message (see `indexPass`).
 */
export type SearchJob = { id: number } & SearchIndexPlace & SearchWork;

/** Where the worker finds the database and its search index, and which messages the index holds. */
export interface SearchIndexPlace {
  /** The database file (not a `file:` URL). */
  path: string;
  /** The search index's file (see searchIndexFile). */
  indexFile: string;
  visibleStatuses: readonly string[];
}

type SearchWork = { kind: 'search'; sql: string; values: unknown[] } | { kind: 'index' };

/** A search's rows, an index pass's last change taken in, or what failed. */
export type SearchResponse = { id: number; rows: unknown[] } | { id: number; changesUpTo: number } | { id: number; error: string };

export interface SqliteSearchLimits {
  /** Searches queued behind the running one; past it a search is refused with 503 at once. */
  maxWaiting: number;
  /** A search not answered this long after it was asked is refused with 503 (its statement, if it started, runs on unheard). */
  timeoutMs: number;
  /** The worker ends after this long without a search, giving its memory back; the next search starts another. */
  idleMs: number;
  onRefused?: () => void;
}

interface Pending {
  job: SearchJob;
  resolve: (result: unknown) => void;
  reject: (error: Error) => void;
  deadline: ReturnType<typeof setTimeout>;
}

const busy = () => new AppError('SERVICE_UNAVAILABLE', 'Search is busy: try again shortly', undefined, 1);

/**
 * Runs SQLite search statements, and the passes that keep the search index up, one at a time on a
 * worker thread (sqlite-search-worker.ts). bun:sqlite is synchronous: on the server's thread a search
 * that ranks a very common word across many rooms (hundreds of milliseconds over a million messages,
 * see BENCHMARKS.md) would stall every socket, and so would FTS5 merging its segments.
 *
 * One worker, one job at a time, in the order asked, so a search asked after a pass sees what the
 * pass took in, and searches take at most one core whatever clients do. The queue of searches is
 * bounded, and a job's caller waits at most `timeoutMs` for its answer. A statement cannot be
 * interrupted (bun:sqlite has no sqlite3_interrupt, and ending a worker does not stop the native
 * call it is in), so one past its time runs to its end unheard, and the queue moves on after it. The
 * worker starts on the first search or pass and ends when idle. This runner owns the worker, its timers and
 * every pending search: `close()` releases all of them.
 */
export class SqliteSearchRunner {
  private worker: Worker | null = null;
  /** The statement on the worker, with its caller, or null once the caller gave up (or none runs). */
  private running: { id: number; caller: Pending | null } | null = null;
  private readonly waiting: Pending[] = [];
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  private nextId = 0;
  private closed = false;

  constructor(
    private readonly place: SearchIndexPlace,
    private readonly limits: SqliteSearchLimits,
  ) {}

  /** The statement's rows, as bun:sqlite gives them (dates as Date, booleans as 0 or 1). */
  run(statement: Prisma.Sql): Promise<unknown[]> {
    if (!this.closed && this.running && this.waiting.length >= this.limits.maxWaiting) {
      this.limits.onRefused?.();
      return Promise.reject(busy());
    }
    return this.enqueue({ kind: 'search', sql: statement.sql, values: statement.values }) as Promise<unknown[]>;
  }

  /**
   * A pass that takes every message stored before it into the index; settles with the last of
   * `search_changes` it took in. Never refused for a full queue: its caller (SqliteSearchIndex) has at
   * most one waiting.
   */
  index(): Promise<number> {
    return this.enqueue({ kind: 'index' }) as Promise<number>;
  }

  private enqueue(work: SearchWork): Promise<unknown> {
    if (this.closed) return Promise.reject(busy());
    return new Promise((resolve, reject) => {
      const pending: Pending = {
        job: { ...work, ...this.place, id: ++this.nextId },
        resolve,
        reject,
        deadline: setTimeout(() => this.giveUp(pending), this.limits.timeoutMs),
      };
      this.waiting.push(pending);
      this.startNext();
    });
  }

  /**
   * Ends the worker; searches still queued or running are refused with 503, and so is every later one.
   * Settles once the thread has ended: its connection, and with it the database and the index file,
   * closes with it, later than `terminate` returns.
   */
  close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    const ended = worker ? new Promise<void>((resolve) => worker.addEventListener('close', () => resolve(), { once: true })) : Promise.resolve();
    this.endWorker();
    const refused = [...(this.running?.caller ? [this.running.caller] : []), ...this.waiting.splice(0)];
    this.running = null;
    for (const pending of refused) this.refuse(pending);
    return ended;
  }

  private startNext(): void {
    if (this.running || this.waiting.length === 0) return;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const next = this.waiting.shift()!;
    this.running = { id: next.job.id, caller: next };
    this.ensureWorker().postMessage(next.job);
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    // Not ref'd: the worker must not keep alive a process that has nothing else to do. Small heap:
    // it holds one statement's rows at a time.
    const worker = new Worker(new URL('./sqlite-search-worker.ts', import.meta.url).href, { ref: false, smol: true });
    worker.onmessage = ({ data }: MessageEvent<SearchResponse>) => this.settle(data);
    worker.onerror = (event) => this.crashed(new Error(`search worker failed: ${event.message}`));
    // A thread that ends without an error event (killed by the runtime) would otherwise leave its job unanswered.
    worker.addEventListener('close', () => {
      if (this.worker === worker) this.crashed(new Error('search worker ended'));
    });
    this.worker = worker;
    return worker;
  }

  private settle(response: SearchResponse): void {
    if (this.running?.id !== response.id) return;
    const caller = this.running.caller;
    this.running = null;
    if (caller) {
      clearTimeout(caller.deadline);
      if ('error' in response) caller.reject(new Error(response.error));
      else caller.resolve('rows' in response ? response.rows : response.changesUpTo);
    }
    this.startNext();
    if (!this.running && !this.closed) this.idleTimer = setTimeout(() => this.endWorker(), this.limits.idleMs).unref();
  }

  /** The caller stops waiting: taken out of the queue, or, when its statement runs, left to finish unheard. */
  private giveUp(pending: Pending): void {
    if (!removeFirst(this.waiting, pending) && this.running?.caller === pending) this.running.caller = null;
    pending.reject(busy());
  }

  /** The worker died: its statement's caller is refused, and the next search starts a fresh worker. */
  private crashed(error: Error): void {
    this.endWorker();
    const caller = this.running?.caller;
    this.running = null;
    if (caller) {
      clearTimeout(caller.deadline);
      caller.reject(error);
    }
    this.startNext();
  }

  private refuse(pending: Pending): void {
    clearTimeout(pending.deadline);
    pending.reject(busy());
  }

  private endWorker(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.worker?.terminate();
    this.worker = null;
  }
}
