import { afterAll, expect, test } from 'bun:test';
import { createApp } from '../src/app';
import { createTestApp, signUp, type TestApp } from './support/app';
import { startFakeGemini, type FakeGemini } from './support/fake-gemini';

/** A process that died mid-answer leaves a message marked streaming: the next start clears it. */

let t: TestApp;
let fake: FakeGemini;
afterAll(async () => {
  await t.cleanup();
  await fake.stop();
});

test('an answer left streaming by a dead process is marked failed at start, and the room keeps working', async () => {
  fake = await startFakeGemini();
  // One process on its own (no Redis even in the scaled suite): only then is every answer marked
  // streaming at start known to be dead. With Redis the room lock's holder clears it (test/cluster.test.ts).
  t = await createTestApp({ GEMINI_API_KEY: fake.apiKey, GEMINI_BASE_URL: fake.url, REDIS_URL: '' });
  const alice = await signUp(t);
  const chat = await (await t.request('/api/chats', { method: 'POST', token: alice.token, json: { name: 'crash' } })).json();
  const ask = await t.app.services.db.message.create({ data: { chatId: chat.id, userId: alice.id, content: '/bot are you there?' } });
  const orphan = await t.app.services.db.message.create({
    data: { chatId: chat.id, isBot: true, content: 'half an ans', status: 'streaming', replyToId: ask.id },
  });

  // A second start on the same database, as after a crash and restart.
  const restarted = await createApp(t.config);
  try {
    const row = await restarted.services.db.message.findUniqueOrThrow({ where: { id: orphan.id } });
    expect(row).toMatchObject({ status: 'failed', content: 'half an ans' });
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
