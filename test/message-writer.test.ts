import { afterAll, beforeAll, expect, test } from 'bun:test';
import type { Database } from '../src/db/client';
import { MAX_BATCH_ROWS, MessageWriter } from '../src/services/message-writer';
import type { TestApp, TestUser } from './support/app';
import { createTestApp, signUp } from './support/app';

/** The group-commit writer: bounded statements, and a bad row fails only itself. Counts statements, never times them. */

let t: TestApp;
let alice: TestUser;
let statements = 0;
/** A writer whose every statement, failed ones included (the query log shows only those that succeed), is counted. */
let writer: MessageWriter;
beforeAll(async () => {
  t = await createTestApp();
  alice = await signUp(t);
  const { db } = t.app.services;
  const counting = { $queryRaw: (...args: Parameters<Database['$queryRaw']>) => (statements++, db.$queryRaw(...args)) };
  writer = new MessageWriter(counting as unknown as Database, t.config.database.engine, t.app.services.metrics);
});
afterAll(() => t.cleanup());

async function newChat(name: string): Promise<number> {
  const response = await t.request('/api/chats', { method: 'POST', token: alice.token, json: { name } });
  return ((await response.json()) as { id: number }).id;
}

test(`a burst is written ${MAX_BATCH_ROWS} rows per INSERT, the rest in the next statements, each row in order`, async () => {
  const chatId = await newChat('burst');
  const count = 2 * MAX_BATCH_ROWS + 1;
  const before = statements;
  const stored = await Promise.all(Array.from({ length: count }, (_, i) => writer.write({ chatId, userId: alice.id, content: `m${i}`, askPending: i === 0 })));
  expect(statements - before).toBe(3);
  const ids = stored.map((row) => row.id);
  expect(ids).toEqual([...ids].sort((a, b) => a - b));
  expect(new Set(ids).size).toBe(count);
  const rows = await t.app.services.db.message.findMany({ where: { chatId }, orderBy: { id: 'asc' }, select: { id: true, content: true, askPending: true } });
  expect(rows.map((row) => row.id)).toEqual(ids);
  expect(rows.map((row) => row.content)).toEqual(Array.from({ length: count }, (_, i) => `m${i}`));
  expect(rows.filter((row) => row.askPending).map((row) => row.content)).toEqual(['m0']);
});

test('a row that cannot be stored fails alone: its neighbours in the batch are stored', async () => {
  const [kept, deleted] = [await newChat('kept'), await newChat('deleted')];
  await t.app.services.db.chat.delete({ where: { id: deleted } });
  const before = statements;
  const results = await Promise.allSettled(
    [kept, deleted, kept, kept].map((chatId, i) => writer.write({ chatId, userId: alice.id, content: `n${i}`, askPending: false })),
  );
  expect(results.map((result) => result.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
  // The batch's statement, then each row alone.
  expect(statements - before).toBe(1 + 4);
  const rows = await t.app.services.db.message.findMany({ where: { chatId: kept }, orderBy: { id: 'asc' }, select: { id: true, content: true } });
  expect(rows.map((row) => row.content)).toEqual(['n0', 'n2', 'n3']);
  expect(rows.map((row) => row.id)).toEqual(results.filter((result) => result.status === 'fulfilled').map((result) => result.value.id));
  expect(await t.app.services.db.message.count({ where: { chatId: deleted } })).toBe(0);

  // The writer goes on: the next batch is one statement again.
  const next = statements;
  await Promise.all([
    writer.write({ chatId: kept, userId: alice.id, content: 'after', askPending: false }),
    writer.write({ chatId: kept, userId: alice.id, content: 'after 2', askPending: false }),
  ]);
  expect(statements - next).toBe(1);
});
