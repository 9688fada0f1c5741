import { afterAll, expect, test } from 'bun:test';
import { createApp } from '../src/app';
import { createTestApp, signUp, type TestApp } from './support/app';
import { startFakeGemini, type FakeGemini } from './support/fake-gemini';

/**
 * A process that died mid-answer leaves a message marked streaming, and asks it had not answered
 * marked pending: the next start fails the first and answers the others.
 */

let t: TestApp;
let fake: FakeGemini;
afterAll(async () => {
  await t.cleanup();
  await fake.stop();
});

test('an answer left streaming by a dead process is marked failed at start, its ask is not answered again, and the room keeps working', async () => {
  fake = await startFakeGemini();
  // One process on its own (no Redis even in the scaled suite): only then is every answer marked
  // streaming at start known to be dead. With Redis the room lock's holder clears it (test/cluster.test.ts).
  t = await createTestApp({ GEMINI_API_KEY: fake.apiKey, GEMINI_BASE_URL: fake.url, REDIS_URL: '' });
  const alice = await signUp(t);
  const chat = await (await t.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'crash' } })).json();
  // Still marked pending: the process died after creating the answer, before clearing the ask's mark.
  const ask = await t.app.services.db.message.create({ data: { chatId: chat.id, userId: alice.id, content: '/bot are you there?', askPending: true } });
  const orphan = await t.app.services.db.message.create({
    data: { chatId: chat.id, isBot: true, content: 'half an ans', status: 'streaming', replyToId: ask.id },
  });

  // A second start on the same database, as after a crash and restart.
  const restarted = await createApp(t.config);
  try {
    const row = await restarted.services.db.message.findUniqueOrThrow({ where: { id: orphan.id } });
    expect(row).toMatchObject({ status: 'failed', content: 'half an ans' });
    expect(await restarted.services.db.message.findUniqueOrThrow({ where: { id: ask.id } })).toMatchObject({ askPending: false });
    const history = await (await restarted.fetch(
      new Request(`http://test/api/chats/${chat.id}/messages`, { headers: { authorization: `Bearer ${alice.token}` } }),
    ))!.json();
    expect(history.map((message: { id: number }) => message.id)).toEqual([ask.id]);

    fake.reply({ kind: 'text', chunks: ['Yes', ', here.'] });
    const response = await restarted.fetch(
      new Request(`http://test/api/chats/${chat.id}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ content: '/bot and now?' }),
      }),
    );
    expect(response!.status).toBe(200);
    await restarted.services.bot.idle();
    const after = await restarted.services.db.message.findMany({ where: { chatId: chat.id, isBot: true, status: 'complete' } });
    expect(after.map((message) => message.content)).toEqual(['Yes, here.']);
    expect(fake.requests).toHaveLength(1);
  } finally {
    await restarted.close();
  }
});

test('an answer stopped before its first word leaves nothing in the history', async () => {
  const alice = await signUp(t);
  const chat = await (await t.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'silent' } })).json();
  fake.reply({ kind: 'hang' });
  const requested = fake.nextRequest();
  await t.request(`/api/chats/${chat.id}/messages`, { method: 'POST', token: alice.token, json: { content: '/bot hello?' } });
  await requested;
  await t.app.services.bot.stop(await t.app.services.auth.authenticate(alice.token), chat.id);
  await t.app.services.bot.idle();
  const history = await (await t.request(`/api/chats/${chat.id}/messages`, { token: alice.token })).json();
  expect(history.map((message: { content: string }) => message.content)).toEqual(['/bot hello?']);
});

test('asks left pending by a stopped process are answered at the next start, in order, each once', async () => {
  const alice = await signUp(t);
  const { db } = t.app.services;
  const chats = [];
  for (const name of ['one', 'two']) chats.push(await (await t.request('/api/chats', { method: 'POST', token: alice.token, json: { name } })).json());
  const ask = (chatId: number, content: string, askPending = true) => db.message.create({ data: { chatId, userId: alice.id, content, askPending } });
  const answered = await ask(chats[0].id, '/bot answered before the stop', false);
  await db.message.create({ data: { chatId: chats[0].id, isBot: true, content: 'Done.', replyToId: answered.id } });
  const pending = [await ask(chats[0].id, '/bot first'), await ask(chats[1].id, '/bot elsewhere'), await ask(chats[0].id, '/bot second')];
  const requestsBefore = fake.requests.length;

  const restarted = await createApp(t.config);
  try {
    await restarted.services.bot.idle();
    const asked = fake.requests.slice(requestsBefore).map((request) => request.body.contents.at(-1).parts[0].text.split('\n').at(-1));
    expect(asked.toSorted()).toEqual([`${alice.username}: /bot elsewhere`, `${alice.username}: /bot first`, `${alice.username}: /bot second`]);
    expect(asked.indexOf(`${alice.username}: /bot first`)).toBeLessThan(asked.indexOf(`${alice.username}: /bot second`));
    const answers = await db.message.findMany({
      where: { isBot: true, replyToId: { in: pending.map((message) => message.id) } },
      orderBy: { replyToId: 'asc' },
    });
    expect(answers.map((answer) => [answer.replyToId, answer.status])).toEqual(pending.map((message) => [message.id, 'complete']));
    expect(await db.message.count({ where: { askPending: true } })).toBe(0);
  } finally {
    await restarted.close();
  }
});
