import { Database } from 'bun:sqlite';
import { afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { closeSync, existsSync, mkdtempSync, openSync, readSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Prisma } from '../../generated/sqlite/client';
import { AppError } from '../errors';
import { searchIndexFile } from './sqlite-search-file';
import { SqliteSearchRunner } from './sqlite-search-runner';

/** Counts to `n` in SQLite itself: a statement that keeps the worker busy for as long as a test needs. */
const countTo = (n: number) => Prisma.sql`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${n}) SELECT count(*) AS n FROM c`;

let path: string;
/** Messages in the database, each with the word "heron". */
const HERONS = 3_000;
const runners: SqliteSearchRunner[] = [];

beforeAll(() => {
  path = join(mkdtempSync(join(tmpdir(), 'search-runner-')), 'test.db');
  const db = new Database(path);
  db.run('PRAGMA journal_mode = WAL');
  db.run('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, created_at DATETIME)');
  db.run("INSERT INTO notes VALUES (1, 'one', '2026-12-06T10:00:00.000+00:00'), (2, 'two', '2026-12-06 11:00:00')");
  // What the worker's search index follows (migration 20261218000000_search_index_file), with messages to index.
  db.run("CREATE TABLE search_source (id INTEGER PRIMARY KEY, token TEXT NOT NULL); INSERT INTO search_source VALUES (1, 'runner')");
  db.run('CREATE TABLE search_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id INTEGER NOT NULL)');
  db.run(
    "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, chat_id INTEGER NOT NULL, content TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'complete', created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
  );
  db.run(
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${HERONS}) INSERT INTO messages (chat_id, content) SELECT 1, 'heron ' || i FROM n`,
  );
  db.close();
});

afterEach(async () => {
  await Promise.all(runners.splice(0).map((runner) => runner.close()));
});

function runner(limits: Partial<ConstructorParameters<typeof SqliteSearchRunner>[1]> = {}): SqliteSearchRunner {
  const created = new SqliteSearchRunner(
    { path, indexFile: searchIndexFile(path), visibleStatuses: ['complete'] },
    { maxWaiting: 8, timeoutMs: 30_000, idleMs: 60_000, ...limits },
  );
  runners.push(created);
  return created;
}

/** Whether `promise` has settled by the end of one turn of the event loop. */
async function settledWithinATurn(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

const herons = Prisma.sql`SELECT count(*) AS n FROM messages_search WHERE messages_search MATCH ${'heron'}`;

/** Flips bytes in the pages of FTS5's own data, in the index file: FTS5 reports SQLITE_CORRUPT_VTAB. */
function damageIndexPages(): void {
  const indexFile = searchIndexFile(path);
  const index = new Database(indexFile);
  index.run('PRAGMA wal_checkpoint(TRUNCATE)');
  const pages = index.query<{ pageno: number }, []>("SELECT pageno FROM dbstat WHERE name = 'messages_search_data' AND pagetype = 'leaf'").all();
  const { page_size: pageSize } = index.query<{ page_size: number }, []>('PRAGMA page_size').get()!;
  index.close();
  const fd = openSync(indexFile, 'r+');
  try {
    for (const { pageno } of pages) {
      const page = Buffer.alloc(pageSize);
      readSync(fd, page, 0, pageSize, (pageno - 1) * pageSize);
      // The end of each page: FTS5 records, not the page headers SQLite itself checks.
      for (let i = pageSize - 1096; i < pageSize - 6; i += 7) page[i] = page[i]! ^ 0x5a;
      writeSync(fd, page, 0, pageSize, (pageno - 1) * pageSize);
    }
  } finally {
    closeSync(fd);
  }
}

const isBusy = (error: unknown) => error instanceof AppError && error.code === 'SERVICE_UNAVAILABLE' && error.status === 503;

describe('SqliteSearchRunner', () => {
  test('runs a statement with its bound values; created_at comes back as a Date, with or without a zone stored', async () => {
    const rows = await runner().run(Prisma.sql`SELECT id, body, created_at FROM notes WHERE id >= ${1} ORDER BY id`);
    expect(rows).toEqual([
      { id: 1, body: 'one', created_at: new Date('2026-12-06T10:00:00.000Z') },
      { id: 2, body: 'two', created_at: new Date('2026-12-06T11:00:00.000Z') },
    ]);
  });

  test('a long statement runs off the event loop: the loop turns while it runs', async () => {
    const search = runner();
    const long = search.run(countTo(200_000));
    expect(await settledWithinATurn(long)).toBe(false);
    expect(await long).toEqual([{ n: 200_000 }]);
  });

  test('a search not answered in time is refused with 503, as is one queued behind it; later searches run once the statement ends', async () => {
    const search = runner({ timeoutMs: 100 });
    const [overdue, queued] = await Promise.allSettled([search.run(countTo(5_000_000)), search.run(Prisma.sql`SELECT 2 AS two`)]);
    expect(overdue.status === 'rejected' && isBusy(overdue.reason)).toBe(true);
    expect(queued.status === 'rejected' && isBusy(queued.reason)).toBe(true);
    // Each try waits at most its 100 ms; the abandoned statement ends within seconds and the queue moves on.
    let answer: unknown = null;
    for (let tries = 0; tries < 200 && answer === null; tries++) answer = await search.run(Prisma.sql`SELECT 3 AS three`).catch(() => null);
    expect(answer).toEqual([{ three: 3 }]);
  });

  test('past maxWaiting queued searches one is refused at once with 503 and counted; the queue still runs', async () => {
    let refusals = 0;
    const search = runner({ maxWaiting: 2, onRefused: () => refusals++ });
    const running = search.run(countTo(500_000));
    const waiting = [search.run(Prisma.sql`SELECT 1 AS one`), search.run(Prisma.sql`SELECT 1 AS one`)];
    const refused = await search.run(Prisma.sql`SELECT 1 AS one`).catch((error: unknown) => error);
    expect(isBusy(refused)).toBe(true);
    expect(refusals).toBe(1);
    expect(await Promise.all([running, ...waiting])).toEqual([[{ n: 500_000 }], [{ one: 1 }], [{ one: 1 }]]);
  });

  test("a statement SQLite refuses rejects with SQLite's message; the worker carries on", async () => {
    const search = runner();
    expect(await search.run(Prisma.sql`SELECT * FROM no_such_table`).catch((error: Error) => error.message)).toContain('no such table');
    expect(await search.run(Prisma.sql`SELECT count(*) AS n FROM notes`)).toEqual([{ n: 2 }]);
  });

  test('an index that FTS5 finds damaged is rebuilt before the search that found it runs again: the search finds every hit', async () => {
    const before = runner();
    await before.index();
    expect(await before.run(herons)).toEqual([{ n: HERONS }]);
    await before.close();
    damageIndexPages();
    // No pass first: the search itself meets the damage.
    expect(await runner().run(herons)).toEqual([{ n: HERONS }]);
  });

  test('a worker thread that ends without an error (killed mid-statement) fails its statement at once; the next search starts another', async () => {
    const search = runner();
    const running = search.run(countTo(50_000_000)).catch((error: unknown) => error);
    (search as unknown as { worker: Worker }).worker.terminate();
    expect(((await running) as Error).message).toBe('search worker ended');
    expect(await search.run(Prisma.sql`SELECT 2 AS two`)).toEqual([{ two: 2 }]);
  });

  test("close() settles once the thread has ended: its connection is closed, and the index file's WAL gone with it", async () => {
    const search = runner();
    await search.index();
    expect(existsSync(`${searchIndexFile(path)}-wal`)).toBe(true);
    await search.close();
    expect(existsSync(`${searchIndexFile(path)}-wal`)).toBe(false);
  });

  test('close() refuses what runs and waits, and every later search', async () => {
    const search = runner();
    const running = search.run(countTo(200_000)).catch((error: unknown) => error);
    const waiting = search.run(Prisma.sql`SELECT 1`).catch((error: unknown) => error);
    await search.close();
    expect(isBusy(await running)).toBe(true);
    expect(isBusy(await waiting)).toBe(true);
    expect(isBusy(await search.run(Prisma.sql`SELECT 1`).catch((error: unknown) => error))).toBe(true);
  });
});
