import type { Database as SqliteConnection } from 'bun:sqlite';

/**
 * SQLite's search index lives in a file of its own beside the database, `<database file>-search`,
 * attached to a connection as the schema `search` (migration 20261218000000_search_index_file). Only
 * the search worker writes it (sqlite-search-worker.ts), so indexing never takes the database's write
 * lock nor the event loop: FTS5's inserts and segment merges held both for 2.8 ms a statement on
 * average, 16.6 ms at worst, every 100 ms under load (BENCHMARKS.md).
 *
 * The file holds nothing that cannot be rebuilt from the messages: a missing, foreign or older one is
 * rebuilt from the first message on. What it has taken in is tracked in the file itself, committed with
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
  connection.run(`CREATE TABLE search.search_progress (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    source TEXT NOT NULL,
    indexed_up_to INTEGER NOT NULL,
    changes_up_to INTEGER NOT NULL)`);
  connection.run('INSERT INTO search.search_progress (id, source, indexed_up_to, changes_up_to) VALUES (1, ?, 0, 0)', [token]);
  connection.run(`PRAGMA search.user_version = ${INDEX_FORMAT}`);
}

/**
 * Brings the index up to the newest message, in transactions of at most `batch` new messages. Each reads one snapshot of the database: messages past `indexed_up_to` go in as they
 * are (if visible); messages already in whose content, status or room changed since `changes_up_to`
 * (each change a row of `search_changes`, written by trigger) are taken out and put back as they are
 * now. Returns the last change taken in: the server deletes those rows, since only it writes the
 * database.
 */
export function indexPass(connection: SqliteConnection, visibleStatuses: readonly string[], batch = SEARCH_INDEX_BATCH): number {
  const visible = visibleStatuses.map((status) => `'${status}'`).join(', ');
  const step = connection.transaction((): { more: boolean; changesUpTo: number } => {
    const progress = connection
      .query<{ indexed: number; changes: number }, []>('SELECT indexed_up_to AS indexed, changes_up_to AS changes FROM search.search_progress')
      .get()!;
    const { newest, lastChange } = connection
      .query<{ newest: number; lastChange: number }, []>(
        'SELECT (SELECT coalesce(max(id), 0) FROM main.messages) AS newest, (SELECT coalesce(max(seq), 0) FROM main.search_changes) AS lastChange',
      )
      .get()!;
    // Past the newest message: the database lost transactions the index had taken in (a power cut
    // between their commits). Its ids will be given again, to other messages: start over.
    if (progress.indexed > newest) {
      connection.run(`INSERT INTO search.messages_search (messages_search) VALUES ('delete-all')`);
      progress.indexed = 0;
    }
    const changed = `SELECT message_id FROM main.search_changes WHERE seq > ${progress.changes} AND seq <= ${lastChange} AND message_id <= ${progress.indexed}`;
    connection.run(`DELETE FROM search.messages_search WHERE rowid IN (${changed})`);
    connection.run(
      `INSERT INTO search.messages_search (rowid, content, chat_id) SELECT id, content, chat_id FROM main.messages WHERE id IN (${changed}) AND status IN (${visible})`,
    );
    const upTo = Math.min(newest, progress.indexed + batch);
    connection.run(
      `INSERT INTO search.messages_search (rowid, content, chat_id) SELECT id, content, chat_id FROM main.messages WHERE id > ? AND id <= ? AND status IN (${visible})`,
      [progress.indexed, upTo],
    );
    connection.run('UPDATE search.search_progress SET indexed_up_to = ?, changes_up_to = ?', [upTo, lastChange]);
    return { more: upTo < newest, changesUpTo: lastChange };
  });
  for (;;) {
    const { more, changesUpTo } = step();
    if (!more) return changesUpTo;
  }
}
