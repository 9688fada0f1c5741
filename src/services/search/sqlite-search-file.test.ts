import { Database } from 'bun:sqlite';
import { afterAll, afterEach, beforeEach, describe, expect, test } from 'bun:test';
import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrismaBunSqlite } from 'prisma-adapter-bun-sqlite';
import { applyMigrations } from '../../db/migrate';
import { VISIBLE_STATUSES } from '../room-feed';
import { attachSearchIndex, indexPass, searchIndexFile } from './sqlite-search-file';

/**
 * The search index in its own file, as the search worker keeps it: on a migrated database written
 * straight through bun:sqlite, read through a connection that has the index attached.
 */
const dir = mkdtempSync(join(tmpdir(), 'gemini-coop-search-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let file: string;
/** The server's side: writes messages. */
let server: Database;
/** The worker's side: the database with the index attached. */
let worker: Database;
let databases = 0;

beforeEach(async () => {
  file = join(dir, `chat-${++databases}.db`);
  await applyMigrations('sqlite', new PrismaBunSqlite({ url: `file:${file}` }));
  server = new Database(file);
  server.run('PRAGMA journal_mode = WAL');
  // As the server's connection: a chat deleted deletes its messages.
  server.run('PRAGMA foreign_keys = ON');
  server.run("INSERT INTO users (id, username, username_key, email, hashed_password) VALUES (1, 'ann', 'ann', 'ann@example.com', 'x')");
  server.run("INSERT INTO chats (id, name, owner_id) VALUES (1, 'one', 1), (2, 'two', 1)");
  worker = openWorker();
});
afterEach(() => {
  worker.close();
  server.close();
});

function openWorker(): Database {
  const connection = new Database(file);
  attachSearchIndex(connection, searchIndexFile(file));
  return connection;
}

function store(content: string, { chatId = 1, status = 'complete' } = {}): number {
  return Number(server.run('INSERT INTO messages (chat_id, user_id, content, status) VALUES (?, 1, ?, ?)', [chatId, content, status]).lastInsertRowid);
}

/** Records the progress each transaction of a pass commits (a temporary trigger on the attached table); returns the reader of the record. */
function logProgress(): () => number[] {
  worker.run('CREATE TEMP TABLE progress_log (indexed INTEGER)');
  worker.run('CREATE TEMP TRIGGER log_progress AFTER UPDATE ON search.search_progress BEGIN INSERT INTO progress_log VALUES (new.indexed_up_to); END');
  return () =>
    worker
      .query<{ indexed: number }, []>('SELECT indexed FROM progress_log')
      .all()
      .map((row) => row.indexed);
}

/** As after a power cut that lost the commit of the newest message: its row is gone without a trace, and its id will be given again. */
function loseNewest(id: number): void {
  server.run('DROP TRIGGER search_changes_delete');
  server.run('DELETE FROM messages WHERE id = ?', [id]);
  server.run("UPDATE sqlite_sequence SET seq = ? WHERE name = 'messages'", [id - 1]);
}

const pass = (batch?: number) => indexPass(worker, VISIBLE_STATUSES, batch);
const found = (words: string) =>
  worker
    .query<{ id: number }, [string]>('SELECT rowid AS id FROM messages_search WHERE messages_search MATCH ? ORDER BY rowid')
    .all(words)
    .map((row) => row.id);
const documents = () => worker.query<{ n: number }, []>('SELECT count(*) AS n FROM search.messages_search_docsize').get()!.n;
const progress = () =>
  worker.query<{ indexed: number; changes: number }, []>('SELECT indexed_up_to AS indexed, changes_up_to AS changes FROM search.search_progress').get()!;

describe('the search index file', () => {
  test('takes in new visible messages, and every later change to the words, visibility or room of one already in', () => {
    const [edited, deleted, removed, moved, streaming, kept] = [
      'otter edited',
      'otter deleted',
      'otter removed',
      'otter moved',
      'otter draft',
      'otter kept',
    ].map((content, i) => store(content, { status: i === 4 ? 'streaming' : 'complete' }));
    store('otter failed', { status: 'failed' });
    pass();
    expect(found('otter')).toEqual([edited!, deleted!, removed!, moved!, kept!]);

    server.run("UPDATE messages SET content = 'beaver edited' WHERE id = ?", [edited!]);
    server.run("UPDATE messages SET status = 'deleted', content = '' WHERE id = ?", [deleted!]);
    server.run('DELETE FROM messages WHERE id = ?', [removed!]);
    server.run('UPDATE messages SET chat_id = 2 WHERE id = ?', [moved!]);
    server.run("UPDATE messages SET status = 'complete', content = 'otter answered' WHERE id = ?", [streaming!]);
    const changesUpTo = pass();

    expect(found('otter')).toEqual([moved!, streaming!, kept!]);
    expect(found('beaver')).toEqual([edited!]);
    expect(found('chat_id : "2"')).toEqual([moved!]);
    expect(documents()).toBe(server.query<{ n: number }, []>("SELECT count(*) AS n FROM messages WHERE status IN ('complete', 'stopped')").get()!.n);
    // FTS5's own check of its structure: throws on a corrupt index.
    worker.run(`INSERT INTO search.messages_search (messages_search) VALUES ('integrity-check')`);
    // The last change row it took in, which the server may now delete.
    expect(changesUpTo).toBe(server.query<{ seq: number }, []>('SELECT max(seq) AS seq FROM search_changes').get()!.seq);
  });

  test('a chat deleted takes its messages out', () => {
    store('heron in one');
    const other = store('heron in two', { chatId: 2 });
    pass();
    server.run('DELETE FROM chats WHERE id = 1');
    pass();
    expect(found('heron')).toEqual([other]);
  });

  test('a change not yet taken in is kept by the server: deleting the rows taken in leaves the next pass right', () => {
    const id = store('lynx first');
    pass();
    server.run("UPDATE messages SET content = 'lynx second' WHERE id = ?", [id]);
    const taken = pass();
    server.run('DELETE FROM search_changes WHERE seq <= ?', [taken]);
    server.run("UPDATE messages SET content = 'puma third' WHERE id = ?", [id]);
    pass();
    expect(found('lynx')).toEqual([]);
    expect(found('puma')).toEqual([id]);
    expect(progress().changes).toBeGreaterThan(taken);
  });

  test('a backlog goes in transactions of at most the batch, each committing its progress', () => {
    server.run(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 250) INSERT INTO messages (chat_id, user_id, content) SELECT 1, 1, 'walrus ' || i FROM n",
    );
    const progressed = logProgress();
    pass(100);
    expect(progressed()).toEqual([100, 200, 250]);
    expect(documents()).toBe(250);
  });

  test('a file built from another database, or of another format, is rebuilt from the messages', () => {
    const first = store('gannet one');
    pass();
    worker.close();
    // Another database at the same path: the index's record of its source no longer matches.
    server.run("UPDATE search_source SET token = 'another'");
    server.run("UPDATE messages SET content = 'gannet changed unseen' WHERE id = ?", [first]);
    server.run('DELETE FROM search_changes');
    worker = openWorker();
    expect(progress()).toEqual({ indexed: 0, changes: 0 });
    pass();
    expect(found('unseen')).toEqual([first]);

    worker.run('PRAGMA search.user_version = 0');
    worker.close();
    worker = openWorker();
    expect(documents()).toBe(0);
    pass();
    expect(found('gannet')).toEqual([first]);
  });

  test('deleting the newest message, or its chat, does not start the index over', () => {
    store('ibis one');
    store('ibis two');
    const newest = store('ibis newest', { chatId: 2 });
    pass();
    const progressed = logProgress();
    server.run('DELETE FROM chats WHERE id = 2');
    pass(1);
    const next = store('ibis next');
    pass(1);
    // Each pass one step on from the last message taken in: none from the first message again.
    expect(progressed()).toEqual([newest, next]);
    expect(found('ibis')).toHaveLength(3);
  });

  test('an index that lost a pass whose changes the server had deleted starts over', () => {
    const [first, second] = [store('crane one'), store('stork one')];
    pass();
    // A copy of the index as it is now: the pass after it is lost, as on a power cut or a restored copy.
    const copy = `${searchIndexFile(file)}.copy`;
    worker.run(`VACUUM search INTO '${copy}'`);
    server.run("UPDATE messages SET content = 'crane two' WHERE id = ?", [first]);
    server.run("UPDATE messages SET content = 'stork two' WHERE id = ?", [second]);
    const taken = pass();
    server.run('DELETE FROM search_changes WHERE seq < ?', [taken]);
    worker.close();
    renameSync(copy, searchIndexFile(file));
    for (const suffix of ['-wal', '-shm']) rmSync(`${searchIndexFile(file)}${suffix}`, { force: true });
    worker = openWorker();
    expect(found('one')).toEqual([first, second]);
    pass();
    expect(found('one')).toEqual([]);
    expect(found('two')).toEqual([first, second]);
  });

  test('an index past the newest message (the database lost commits it had taken in) starts over', () => {
    const kept = store('stoat kept');
    const lost = store('stoat lost');
    pass();
    loseNewest(lost);
    pass();
    expect(found('stoat')).toEqual([kept]);
    expect(store('marten again')).toBe(lost);
    pass();
    expect(found('marten')).toEqual([lost]);
    expect(found('lost')).toEqual([]);
  });

  test('ids given again before the next pass (its last message is another one now) start the index over', () => {
    const kept = store('plover kept');
    const lost = store('plover lost');
    pass();
    loseNewest(lost);
    // A new message before the index's next pass: the same id, another time.
    const again = Number(
      server.run("INSERT INTO messages (chat_id, user_id, content, created_at) VALUES (1, 1, 'sandpiper again', '2099-01-01 00:00:00')").lastInsertRowid,
    );
    expect(again).toBe(lost);
    pass();
    expect(found('plover')).toEqual([kept]);
    expect(found('sandpiper')).toEqual([again]);
  });
});
