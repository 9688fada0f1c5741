/**
 * The worker thread behind SqliteSearchRunner: runs search statements on a read-only connection of
 * its own, so a search that ranks many matches blocks this thread, never the server's event loop.
 * SQLite in WAL mode lets it read while the server writes.
 */
import { Database } from 'bun:sqlite';
import type { SearchRequest, SearchResponse } from './sqlite-search-runner';

declare const self: Worker;

let db: Database | null = null;

self.onmessage = ({ data }: MessageEvent<SearchRequest>) => {
  let response: SearchResponse;
  try {
    db ??= openReader(data.path);
    const rows = db.query<Record<string, unknown>, never[]>(data.sql).all(...(data.values as never[]));
    response = { id: data.id, rows: rows.map(withDates) };
  } catch (error) {
    response = { id: data.id, error: error instanceof Error ? error.message : String(error) };
  }
  self.postMessage(response);
};

/** `created_at` as Prisma reads it: a Date (it is stored as ISO 8601 text, SQLite's own default without a zone, meaning UTC). */
function withDates(row: Record<string, unknown>): Record<string, unknown> {
  const stored = row.created_at;
  if (typeof stored !== 'string') return row;
  return { ...row, created_at: new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(stored) ? stored : `${stored.replace(' ', 'T')}Z`) };
}

function openReader(path: string): Database {
  const reader = new Database(path, { readonly: true });
  // A writer's checkpoint can hold the file for a moment: wait for it rather than fail the search.
  reader.run('PRAGMA busy_timeout = 5000');
  return reader;
}
