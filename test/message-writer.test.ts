import { afterAll, beforeAll, expect, test } from 'bun:test';
import type { Database } from '../src/db/client';
import { Prisma } from '../src/generated/sqlite/client';
import { insertRowsFor, MAX_BATCH_ROWS, MessageWriter } from '../src/services/message-writer';
import { indexedOnWrite } from '../src/services/search/search-index';
import { MAX_CONTENT_LENGTH } from '../src/services/validation';
import type { TestApp, TestUser } from './support/app';
import { createTestApp, signUp } from './support/app';

/** The group-commit writer: bounded statements, and a bad row fails only itself. Counts statements, never times them. */

let t: TestApp;
let alice: TestUser;
let statements = 0;
/**
 * A writer whose every batch and every question whether the database answers, failed ones included
 * (the query log shows only statements that succeed, and none that bypass Prisma), is counted.
 */
let writer: MessageWriter;
beforeAll(async () => {
  t = await createTestApp();
  alice = await signUp(t);
  const { db } = t.app.services;
  const insertRows = insertRowsFor(db);
  const counting = { $queryRaw: (...args: Parameters<Database['$queryRaw']>) => (statements++, db.$queryRaw(...args)) };
  writer = new MessageWriter(
    counting as unknown as Database,
    (rows, createdAt) => (statements++, insertRows(rows, createdAt)),
    t.app.services.metrics,
    indexedOnWrite,
  );
});
afterAll(() => t.cleanup());

async function newChat(name: string): Promise<number> {
  const response = await t.request('/api/chats', { method: 'POST', token: alice.token, json: { name } });
  return ((await response.json()) as { id: number }).id;
}

test(`a burst is written ${MAX_BATCH_ROWS} rows per batch, the rest in the next batches, each row in order`, async () => {
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
  // The batch's statement, whether the database answers, then each row alone.
  expect(statements - before).toBe(1 + 1 + 4);
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

test('when the database itself fails, a batch fails at once: its rows are not retried one by one', async () => {
  let attempts = 0;
  const fail = () => (attempts++, Promise.reject(new Error('Connection terminated unexpectedly')));
  const failing = new MessageWriter({ $queryRaw: fail } as unknown as Database, fail, t.app.services.metrics, indexedOnWrite);
  const results = await Promise.allSettled(
    Array.from({ length: 10 }, (_, i) => failing.write({ chatId: 1, userId: alice.id, content: `lost ${i}`, askPending: false })),
  );
  expect(results.map((result) => result.status)).toEqual(Array.from({ length: 10 }, () => 'rejected'));
  // The batch's statement and the question whether the database answers: not ten retries.
  expect(attempts).toBe(2);
});

test('every field of every row in one batch is stored exactly as sent, ids in the rows’ order', async () => {
  const chatId = await newChat('unicode');
  const assistant = (await (await t.request(`/api/chats/${chatId}/assistants`, { method: 'POST', token: alice.token, json: { name: 'helper' } })).json()) as {
    id: number;
  };
  const under = await writer.write({ chatId, userId: alice.id, content: 'thread start', askPending: false });
  const astral = '𝄞🙂👩🏽‍💻🇫🇷';
  const contents = [
    'plain',
    astral,
    'e\u0301 a\u0308\u0323 Z\u0351\u0352\u0353',
    'שלום عربي \u202ereversed\u202c \u200f',
    'line\u2028separator\u2029paragraph',
    `"quoted" 'single' \\backslash\\ \\u0041 \\n not a newline`,
    'tab\tnewline\ncr\r\u0001\u001f\u007f\u0085',
    '\ufeffbom \ufffe \uffff noncharacters',
    '{"a":[1,"x"]}',
    '123',
    'true',
    'null',
    '  leading and trailing spaces  ',
    // The longest content allowed, in astral characters: each is two UTF-16 units and four UTF-8 bytes.
    '😀'.repeat(MAX_CONTENT_LENGTH / 2),
    'x'.repeat(MAX_CONTENT_LENGTH),
  ];
  const rows = contents.map((content, i) => ({
    chatId,
    userId: i % 3 === 0 ? null : alice.id,
    content,
    askPending: i % 2 === 0,
    ...(i % 3 === 0 ? { senderName: `Hook ${astral} "${i}" \\` } : {}),
    assistantId: i % 4 === 0 ? assistant.id : null,
    threadId: i % 5 === 0 ? under.id : null,
  }));
  const before = statements;
  const stored = await Promise.all(rows.map((row) => writer.write(row)));
  expect(statements - before).toBe(1);
  const ids = stored.map((row) => row.id);
  expect(ids).toEqual([...ids].sort((a, b) => a - b));

  const { db } = t.app.services;
  const saved = await db.message.findMany({
    where: { id: { in: ids } },
    orderBy: { id: 'asc' },
    select: { id: true, chatId: true, userId: true, content: true, askPending: true, senderName: true, assistantId: true, threadId: true, createdAt: true },
  });
  expect(saved).toEqual(
    rows.map((row, i) => ({
      id: ids[i]!,
      chatId,
      userId: row.userId,
      content: row.content,
      askPending: row.askPending,
      senderName: row.senderName ?? null,
      assistantId: row.assistantId,
      threadId: row.threadId,
      // As the writer told its callers, read back by Prisma: the writer stores dates as Prisma does.
      createdAt: stored[i]!.createdAt,
    })),
  );
  // Byte for byte, as the database holds them (not only as the driver decodes them).
  const hex =
    t.config.database.engine === 'sqlite'
      ? Prisma.sql`SELECT id, lower(hex(content)) AS bytes FROM messages WHERE chat_id = ${chatId} ORDER BY id`
      : Prisma.sql`SELECT id, encode(convert_to(content, 'UTF8'), 'hex') AS bytes FROM messages WHERE chat_id = ${chatId} ORDER BY id`;
  const bytes = await db.$queryRaw<{ id: number; bytes: string }[]>(hex);
  expect(bytes.slice(1).map((row) => row.bytes)).toEqual(contents.map((content) => Buffer.from(content, 'utf8').toString('hex')));
});

test('a batch written while a Prisma transaction is open on the connection is not taken into it: its rollback keeps the batch', async () => {
  const chatId = await newChat('beside a transaction');
  const { db } = t.app.services;
  let entered!: () => void;
  const inside = new Promise<void>((resolve) => (entered = resolve));
  let rollBack!: () => void;
  const rolledBack = new Promise<void>((resolve) => (rollBack = resolve));
  const transaction = db
    .$transaction(async (tx) => {
      await tx.message.create({ data: { chatId, userId: alice.id, content: 'rolled back' } });
      entered();
      // Awaits outside the database, as a transaction that calls out would: other work runs meanwhile.
      await rolledBack;
      throw new Error('roll back');
    })
    .then(
      () => null,
      (error: unknown) => error,
    );
  await inside;
  const written = writer.write({ chatId, userId: alice.id, content: 'acknowledged', askPending: false });
  // The batch gets its turn while the transaction is still open.
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
  rollBack();
  expect(((await transaction) as Error).message).toBe('roll back');
  const stored = await written;
  const rows = await db.message.findMany({ where: { chatId }, select: { id: true, content: true } });
  expect(rows).toEqual([{ id: stored.id, content: 'acknowledged' }]);
});
