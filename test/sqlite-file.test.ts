import { Database } from 'bun:sqlite';
import { expect, test } from 'bun:test';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestApp, signUp } from './support/app';
import { groupRoom, storeMessages } from './support/rooms';

/**
 * The SQLite file as other processes see it: the message writer runs its own statements on the
 * connection Prisma opened (see sqliteInsertRows). Whatever engine the suite runs on, this file runs
 * on SQLite files of its own.
 */

/** A fresh SQLite file for `run`, removed afterwards. */
async function withFile(name: string, run: (file: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `gemini-coop-${name}-`));
  try {
    await run(join(dir, `${name}.db`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// A statement left unfinalized keeps a closed connection alive: its file stays locked and its WAL is
// never folded back. Prisma's adapter left one (its WAL set-up, for the garbage collector to finalize).
test('a closed app lets go of its SQLite file at once, after messages went through the writer', async () => {
  await withFile('close', async (file) => {
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
    // What the test app made besides the app (its folder; on PostgreSQL runs, its database) goes too.
    await t.cleanup();
  });
});

test('a message sent while another connection (another process, say) holds the write lock past the busy timeout is refused with 503 and not stored', async () => {
  await withFile('held', async (file) => {
    // Nothing in the background writes meanwhile: only the message meets the lock.
    const t = await createTestApp({ DATABASE_URL: `file:${file}`, SEARCH_INDEX_DELAY_MS: '3600000', WEBHOOK_POLL_MS: '3600000' });
    try {
      const owner = await signUp(t);
      const chatId = await groupRoom(t, owner, [], 'held');
      const send = (content: string) => t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: owner.token, json: { content } });

      const holder = new Database(file);
      holder.run('BEGIN IMMEDIATE');
      let refused: Response;
      try {
        refused = await send('while held');
      } finally {
        holder.run('ROLLBACK');
        holder.close();
      }
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(((await refused.json()) as { detail: string }).detail).toBe('The database is not responding: try again shortly');

      expect((await send('after')).status).toBe(200);
      const history = (await (await t.request(`/api/chats/${chatId}/messages`, { token: owner.token })).json()) as { content: string }[];
      expect(history.map((message) => message.content)).toEqual(['after']);
    } finally {
      await t.cleanup();
    }
  });
}, 30_000);
