import type { Database } from './client';
import type { Logger } from '../log';

export interface CheckpointRequest {
  path: string;
}
export type CheckpointReport = { walPages: number; copiedPages: number } | { error: string };

export interface CheckpointObserver {
  onReport?(report: CheckpointReport): void;
  onFallBack?(): void;
}

/** How often the worker copies the WAL back: bounds the WAL to what the server writes in this long. */
const CHECKPOINT_EVERY_MS = 200;
/** SQLite's own autocheckpoint length: the server's connection goes back to it if the worker fails, and the worker starts the WAL over about as often. */
export const AUTOCHECKPOINT_PAGES = 1000;

/**
 * Moves SQLite's WAL checkpoints off the event loop. By default the connection that commits also
 * checkpoints, inside a commit, every 1000 WAL pages: it copies them into the database file and
 * fsyncs it while every socket waits (measured on the message path: a third of a busy writer's wall
 * time). Here the server's connection never checkpoints, and a worker thread with a connection of its
 * own does, every CHECKPOINT_EVERY_MS. Durability is unchanged: a commit is durable once in the WAL.
 * If the worker fails, the server's connection checkpoints for itself again, so the WAL never grows
 * without bound; the checkpointer owns the worker and its timer, both released by `close()`.
 */
export class SqliteCheckpointer {
  private readonly worker: Worker;
  private readonly timer: Timer;
  private inFlight = false;
  private failed = false;
  private closed = false;
  /** Settles when the thread has ended, and with it the connection it holds. */
  private readonly ended: Promise<void>;

  private constructor(
    private readonly db: Database,
    private readonly path: string,
    private readonly log: Logger,
    /** Hears each round's report, and the fall-back once it is done. */
    private readonly observer: CheckpointObserver,
  ) {
    this.worker = new Worker(new URL('./sqlite-checkpoint-worker.ts', import.meta.url).href, { ref: false, smol: true });
    this.worker.onmessage = ({ data }: MessageEvent<CheckpointReport>) => {
      this.inFlight = false;
      observer.onReport?.(data);
      if ('error' in data) void this.fallBack(data.error);
    };
    this.worker.onerror = (event) => void this.fallBack(event.message);
    // A thread that ends with no error event (killed, or exited) would otherwise leave the round it was
    // given in flight for ever, and no checkpoint would run again.
    const ended = Promise.withResolvers<void>();
    this.ended = ended.promise;
    this.worker.addEventListener('close', () => {
      ended.resolve();
      void this.fallBack('the worker thread ended');
    });
    this.timer = setInterval(() => this.round(), CHECKPOINT_EVERY_MS);
    this.timer.unref();
  }

  /** Takes the checkpoints of the database file at `path` from `db`'s connection onto a worker. */
  static async start(db: Database, path: string, log: Logger, observer: CheckpointObserver = {}): Promise<SqliteCheckpointer> {
    await db.$queryRawUnsafe('PRAGMA wal_autocheckpoint = 0');
    return new SqliteCheckpointer(db, path, log, observer);
  }

  /** One checkpoint at a time: a round still running (a large WAL, a slow disk) is not joined by another. */
  private round(): void {
    if (this.inFlight || this.failed) return;
    this.inFlight = true;
    this.worker.postMessage({ path: this.path } satisfies CheckpointRequest);
  }

  private async fallBack(reason: string): Promise<void> {
    // After close() the server's connection is closing, or closed: a query now would open it again.
    if (this.failed || this.closed) return;
    this.failed = true;
    this.log.error({ reason }, 'the SQLite checkpoint worker failed: the server checkpoints on its own connection again');
    clearInterval(this.timer);
    this.worker.terminate();
    await this.db.$queryRawUnsafe(`PRAGMA wal_autocheckpoint = ${AUTOCHECKPOINT_PAGES}`).catch((error: unknown) => {
      this.log.error({ err: error }, 'turning SQLite checkpoints back on failed');
    });
    this.observer.onFallBack?.();
  }

  /**
   * Stops the rounds and waits for the thread to end: its connection closes with it, later than
   * `terminate` returns, and until then the file stays open. Closing the server's connection after
   * this checkpoints what is left and removes the WAL, as SQLite does when its last connection closes.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.worker.terminate();
    await this.ended;
  }
}
