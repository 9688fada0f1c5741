import type { Database as SqliteConnection } from 'bun:sqlite';

/**
 * SQLite's search index lives in a file of its own beside the database, `<database file>-search`,
 * attached to a connection as the schema `search` (migration 20261218000000_search_index_file). Only
 * the search worker writes it (sqlite-search-worker.ts), so indexing never takes the database's write
 * lock nor the event loop: FTS5's inserts and segment merges held both for 2.8 ms a statement on
 * average, 16.6 ms at worst, every 100 ms under load (BENCHMARKS.md).
 *
 * The file holds nothing that cannot be rebuilt from the messages: a missing, damaged, foreign or older
 * one, or one out of step with the database (see `outOfStep`), is rebuilt from the first message on. What it has taken in is tracked in the file itself, committed with
 * the index rows, so a crash loses no indexing, only delays it.
 */
export const searchIndexFile = (databaseFile: string) => `${databaseFile}-search`;

/** Bumped whenever the index's tables change: a file of another version is rebuilt. */
const INDEX_FORMAT = 1;

/** Messages taken in by one transaction at most: a rebuild commits its progress as it goes. */
export const SEARCH_INDEX_BATCH = 20_000;

/**
 * Attaches the index file as `search`, creating or rebuilding its tables when it is new, of another
 * format or built from another database (each database has its own `search_source.token`).
 */
export function attachSearchIndex(connection: SqliteConnection, indexFile: string): void {
  connection.run('ATTACH DATABASE ? AS search', [indexFile]);
  connection.run('PRAGMA search.journal_mode = WAL');
  connection.run('PRAGMA search.synchronous = NORMAL');
  connection.transaction(() => {
    const { token } = connection.query<{ token: string }, []>('SELECT token FROM main.search_source').get()!;
    if (indexSource(connection) !== token) rebuild(connection, token);
  })();
}

function indexSource(connection: SqliteConnection): string | null {
  const { user_version: format } = connection.query<{ user_version: number }, []>('PRAGMA search.user_version').get()!;
  if (format !== INDEX_FORMAT) return null;
  return connection.query<{ source: string }, []>('SELECT source FROM search.search_progress').get()?.source ?? null;
}

/** An empty index of this format for the database `token` names; the next pass takes in every message. */
function rebuild(connection: SqliteConnection, token: string): void {
  connection.run('DROP TABLE IF EXISTS search.messages_search');
  connection.run('DROP TABLE IF EXISTS search.search_progress');
  // Contentless (the text stays in `messages` only), and able to forget a row by its id alone.
  connection.run(
    `CREATE VIRTUAL TABLE search.messages_search USING fts5(content, chat_id, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2')`,
  );
  // indexed_mark: the `created_at` of the message at indexed_up_to when it was taken in, to know it again.
  connection.run(`CREATE TABLE search.search_progress (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    source TEXT NOT NULL,
    indexed_up_to INTEGER NOT NULL,
    indexed_mark TEXT,
    changes_up_to INTEGER NOT NULL)`);
  connection.run('INSERT INTO search.search_progress (id, source, indexed_up_to, changes_up_to) VALUES (1, ?, 0, 0)', [token]);
  connection.run(`PRAGMA search.user_version = ${INDEX_FORMAT}`);
}

interface Progress {
  indexed: number;
  mark: string | null;
  changes: number;
}

/** The database as a pass's snapshot sees it. */
interface Snapshot {
  /** The highest id ever given to a message (`messages` is AUTOINCREMENT): deleting the newest message does not lower it. */
  given: number;
  /** The `created_at` of the message at the index's `indexed_up_to`, if it is still there. */
  markNow: string | null;
  firstChange: number | null;
  lastChange: number;
}

/**
 * Whether the index holds what this database never had, or lacks what it can no longer learn, so that
 * only a rebuild makes it right:
 * - past the highest id ever given, or its last message is another one now (same id, another time): the
 *   database lost commits the index had taken in (a power cut between their commits, a restored copy),
 *   and their ids are given again, to other messages;
 * - changes after its own are gone: the server deleted them once a pass had taken them in, and the
 *   index lost that pass (the same power cut, on its own file, or a restored copy of it). The server
 *   keeps the last change taken in, so a gap shows.
 */
function outOfStep(progress: Progress, database: Snapshot): boolean {
  if (progress.indexed === 0) return false;
  if (progress.indexed > database.given) return true;
  if (progress.mark !== null && database.markNow !== null && database.markNow !== progress.mark) return true;
  return database.firstChange !== null && database.firstChange > progress.changes + 1;
}

/**
 * Brings the index up to the newest message, in transactions of at most `batch` new messages. Each
 * reads one snapshot of the database: messages past `indexed_up_to` go in as they are (if visible);
 * messages already in whose content, status or room changed since `changes_up_to` (each change a row
 * of `search_changes`, written by trigger) are taken out and put back as they are now. An index out of
 * step with the database (see outOfStep) starts over. Returns the last change taken in: the server
 * deletes the rows before it, since only it writes the database.
 */
export function indexPass(connection: SqliteConnection, visibleStatuses: readonly string[], batch = SEARCH_INDEX_BATCH): number {
  const visible = visibleStatuses.map((status) => `'${status}'`).join(', ');
  const readProgress = connection.query<Progress, []>(
    'SELECT indexed_up_to AS indexed, indexed_mark AS mark, changes_up_to AS changes FROM search.search_progress',
  );
  const readSnapshot = connection.query<Snapshot, [number]>(`SELECT
      coalesce((SELECT seq FROM main.sqlite_sequence WHERE name = 'messages'), 0) AS given,
      (SELECT created_at FROM main.messages WHERE id = ?1) AS markNow,
      (SELECT min(seq) FROM main.search_changes) AS firstChange,
      coalesce((SELECT max(seq) FROM main.search_changes), 0) AS lastChange`);
  const step = connection.transaction((): { more: boolean; changesUpTo: number } => {
    const progress = readProgress.get()!;
    const database = readSnapshot.get(progress.indexed)!;
    if (outOfStep(progress, database)) {
      connection.run(`INSERT INTO search.messages_search (messages_search) VALUES ('delete-all')`);
      Object.assign(progress, { indexed: 0, mark: null, changes: 0 });
    }
    const changed = `SELECT message_id FROM main.search_changes WHERE seq > ${progress.changes} AND seq <= ${database.lastChange} AND message_id <= ${progress.indexed}`;
    connection.run(`DELETE FROM search.messages_search WHERE rowid IN (${changed})`);
    connection.run(
      `INSERT INTO search.messages_search (rowid, content, chat_id) SELECT id, content, chat_id FROM main.messages WHERE id IN (${changed}) AND status IN (${visible})`,
    );
    const upTo = Math.min(database.given, progress.indexed + batch);
    connection.run(
      `INSERT INTO search.messages_search (rowid, content, chat_id) SELECT id, content, chat_id FROM main.messages WHERE id > ? AND id <= ? AND status IN (${visible})`,
      [progress.indexed, upTo],
    );
    connection.run(
      'UPDATE search.search_progress SET indexed_up_to = ?1, indexed_mark = (SELECT created_at FROM main.messages WHERE id = ?1), changes_up_to = ?2',
      [upTo, database.lastChange],
    );
    return { more: upTo < database.given, changesUpTo: database.lastChange };
  });
  for (;;) {
    const { more, changesUpTo } = step();
    if (!more) return changesUpTo;
  }
}
