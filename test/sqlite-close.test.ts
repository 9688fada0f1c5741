import { Database } from 'bun:sqlite';
import { expect, test } from 'bun:test';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestApp, signUp } from './support/app';
import { groupRoom, storeMessages } from './support/rooms';

/**
 * A statement left unfinalized keeps a closed SQLite connection alive: its file stays locked and its
 * WAL is never folded back. Prisma's adapter left one (its WAL set-up, for the garbage collector to
 * finalize), and the message writer runs its own on Prisma's connection (see sqliteInsertRows).
 * Whatever engine the suite runs on, this file runs on a SQLite file of its own.
 */
test('a closed app lets go of its SQLite file at once, after messages went through the writer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gemini-coop-close-'));
  const file = join(dir, 'close.db');
  try {
    const t = await createTestApp({ DATABASE_URL: `file:${file}` });
    const owner = await signUp(t);
    const chatId = await groupRoom(t, owner, [], 'closing');
    await storeMessages(t, owner, chatId, 3, (i) => `before closing ${i}`);
    await t.app.close();

    // The last connection's close folds the WAL back and removes it; a lingering one keeps both.
    expect(existsSync(`${file}-wal`)).toBe(false);
    const next = new Database(file);
    try {
      next.run('BEGIN EXCLUSIVE');
      next.run('COMMIT');
      expect((next.query('SELECT count(*) AS count FROM messages').get() as { count: number }).count).toBe(3);
    } finally {
      next.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
