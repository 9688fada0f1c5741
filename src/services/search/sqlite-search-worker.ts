/**
 * The worker thread behind SqliteSearchRunner. It owns the search index (sqlite-search-file.ts): it
 * takes new and changed messages into it, and runs search statements, one job at a time, on a
 * connection of its own to the database with the index file attached. It reads the database, never
 * writes it (SQLite in WAL mode lets it read while the server writes), and is the only writer of the
 * index file, so neither blocks the server's event loop nor its write lock.
 */
import { Database } from 'bun:sqlite';
import { existsSync, rmSync } from 'node:fs';
import { attachSearchIndex, indexPass } from './sqlite-search-file';
import type { SearchJob, SearchResponse } from './sqlite-search-runner';

declare const self: Worker;

let db: Database | null = null;

self.onmessage = ({ data: job }: MessageEvent<SearchJob>) => {
  let response: SearchResponse;
  try {
    response = perform(job);
  } catch (error) {
    try {
      // A damaged index file is deleted and the job tried once more, on a new one built from the
      // messages first: a search on the empty index would find nothing, and say nothing of it.
      if (!isDamaged(error)) throw error;
      discardIndex(job.indexFile);
      db = open(job);
      if (job.kind === 'search') indexPass(db, job.visibleStatuses);
      response = perform(job);
    } catch (failure) {
      response = { id: job.id, error: failure instanceof Error ? failure.message : String(failure) };
    }
  }
  self.postMessage(response);
};

function perform(job: SearchJob): SearchResponse {
  db ??= open(job);
  if (job.kind === 'index') return { id: job.id, changesUpTo: indexPass(db, job.visibleStatuses) };
  const rows = db.query<Record<string, unknown>, never[]>(job.sql).all(...(job.values as never[]));
  return { id: job.id, rows: rows.map(withDates) };
}

/** `created_at` as Prisma reads it: a Date (it is stored as ISO 8601 text, SQLite's own default without a zone, meaning UTC). */
function withDates(row: Record<string, unknown>): Record<string, unknown> {
  const stored = row.created_at;
  if (typeof stored !== 'string') return row;
  return { ...row, created_at: new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(stored) ? stored : `${stored.replace(' ', 'T')}Z`) };
}

function open({ path, indexFile }: SearchJob): Database {
  // Opened to write, for the index attached (whose file it may create); a database gone is an error, not a new empty one.
  if (!existsSync(path)) throw new Error(`the database file ${path} is gone`);
  const connection = new Database(path);
  try {
    // A writer's checkpoint can hold the file for a moment: wait for it rather than fail the job.
    connection.run('PRAGMA busy_timeout = 5000');
    attachSearchIndex(connection, indexFile);
    return connection;
  } catch (error) {
    connection.close();
    throw error;
  }
}

/** The index file is not a database, or a damaged one (FTS5's own damage is SQLITE_CORRUPT_VTAB). */
function isDamaged(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB');
}

/** Closes the connection and deletes the index file: the next job opens a new one and takes every message in again. */
function discardIndex(indexFile: string): void {
  db?.close();
  db = null;
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${indexFile}${suffix}`, { force: true });
}
