/**
 * The worker thread behind SqliteCheckpointer: copies the WAL back into the database file on a
 * connection of its own, so that copy and its fsync block this thread, never the server's.
 * PASSIVE: it neither waits for nor blocks the server's writes and reads; whatever a reader still
 * needs is copied on a later round.
 */
import { Database } from 'bun:sqlite';
import type { CheckpointRequest, CheckpointReport } from './sqlite-checkpointer';

declare const self: Worker;

let db: Database | null = null;

self.onmessage = ({ data }: MessageEvent<CheckpointRequest>) => {
  let report: CheckpointReport;
  try {
    db ??= new Database(data.path);
    const [result] = db.query<{ busy: number; log: number; checkpointed: number }, []>('PRAGMA wal_checkpoint(PASSIVE)').all();
    report = { walPages: result?.log ?? 0, copiedPages: result?.checkpointed ?? 0 };
  } catch (error) {
    report = { error: error instanceof Error ? error.message : String(error) };
  }
  self.postMessage(report);
};
