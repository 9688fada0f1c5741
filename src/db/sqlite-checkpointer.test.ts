import { Database as BunDatabase } from 'bun:sqlite';
import { afterAll, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config';
import { createLogger } from '../log';
import type { Database } from './client';
import { openDatabase } from './client';
import type { CheckpointObserver, CheckpointReport } from './sqlite-checkpointer';
import { SqliteCheckpointer } from './sqlite-checkpointer';

const dir = mkdtempSync(join(tmpdir(), 'gemini-coop-checkpoints-'));
const opened: { db: Database; checkpointer: SqliteCheckpointer }[] = [];
afterAll(async () => {
  for (const { db, checkpointer } of opened) {
    await checkpointer.close();
    await db.$disconnect();
  }
  rmSync(dir, { recursive: true, force: true });
});

const log = createLogger({ level: 'silent' });

async function open(name: string, workerPath: string | null, observer: CheckpointObserver) {
  const path = join(dir, `${name}.db`);
  const config = loadConfig({ DATABASE_URL: `file:${path}`, SECRET_KEY: 'test-secret-key-that-is-long-enough-0123456789' });
  const db = await openDatabase(config.database);
  const checkpointer = await SqliteCheckpointer.start(db, workerPath ?? path, log, observer);
  opened.push({ db, checkpointer });
  return Object.assign(db, { checkpointer });
}

const autocheckpoint = async (db: Database) =>
  Number((await db.$queryRawUnsafe<{ wal_autocheckpoint: bigint }[]>('PRAGMA wal_autocheckpoint'))[0]!.wal_autocheckpoint);

/** Resolves with the first report that `accept`s. */
function reportWhere(accept: (report: CheckpointReport) => boolean): { observer: CheckpointObserver; report: Promise<CheckpointReport> } {
  const { promise, resolve } = Promise.withResolvers<CheckpointReport>();
  return { observer: { onReport: (report) => accept(report) && resolve(report) }, report: promise };
}

test("the server's connection never checkpoints; the worker copies what it wrote into the database file", async () => {
  const { observer, report } = reportWhere((round) => 'copiedPages' in round && round.copiedPages > 0);
  const db = await open('copies', null, observer);
  expect(await autocheckpoint(db)).toBe(0);
  await db.$executeRawUnsafe("INSERT INTO users (username, username_key, email, hashed_password) VALUES ('ana', 'ana', 'ana@example.com', 'x')");
  // Nothing reads meanwhile, so the round copies the whole WAL.
  const round = (await report) as { walPages: number; copiedPages: number };
  expect(round.copiedPages).toBeGreaterThan(0);
  expect(round.copiedPages).toBe(round.walPages);
});

test('a worker that fails hands checkpoints back to the server, so the WAL cannot grow without bound', async () => {
  const fellBack = Promise.withResolvers<void>();
  const { observer, report } = reportWhere((round) => 'error' in round);
  const db = await open('fails', join(dir, 'no-such-folder', 'x.db'), { ...observer, onFallBack: () => fellBack.resolve() });
  expect(Object.keys(await report)).toEqual(['error']);
  await fellBack.promise;
  expect(await autocheckpoint(db)).toBe(1000);
});

test('under writes that never pause, the WAL still starts over from its beginning: it stays bounded', async () => {
  // Each round reports the WAL's length in pages: it only ever grows until a writer starts the file over.
  let rounds = 0;
  let longest = 0;
  let restarted = false;
  const db = await open('busy-writer', null, {
    onReport: (round) => {
      if (!('walPages' in round)) return;
      rounds++;
      if (round.walPages < longest) restarted = true;
      longest = Math.max(longest, round.walPages);
    },
  });
  // A reader that holds a snapshot meanwhile, as a long search does, only delays the start-over.
  const reader = new BunDatabase(join(dir, 'busy-writer.db'), { readonly: true });
  reader.run('BEGIN');
  reader.query('SELECT count(*) FROM users').get();
  for (let written = 0; !restarted && rounds < 40; written++) {
    if (written === 500) reader.run('COMMIT');
    // A commit on every turn of the event loop: a round never ends without a write just behind it.
    await db.$executeRawUnsafe(
      `INSERT INTO users (username, username_key, email, hashed_password) VALUES ('u${written}', 'u${written}', 'u${written}@example.com', 'x')`,
    );
    await new Promise((resolve) => setImmediate(resolve));
  }
  reader.close();
  expect(restarted).toBe(true);
}, 30_000);

test('a worker thread that ends without an error (killed mid-round) hands checkpoints back to the server too', async () => {
  const fellBack = Promise.withResolvers<void>();
  const { observer, report } = reportWhere(() => true);
  const db = await open('dies', null, { ...observer, onFallBack: () => fellBack.resolve() });
  await report;
  (db.checkpointer as unknown as { worker: Worker }).worker.terminate();
  await fellBack.promise;
  expect(await autocheckpoint(db)).toBe(1000);
});
