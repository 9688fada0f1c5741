import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createTestApp, signUp, type TestApp, type TestUser } from './support/app';
import type { FakeGemini } from './support/fake-gemini';
import { startFakeGemini } from './support/fake-gemini';
import { groupRoom } from './support/rooms';

/** Incoming hooks: the owner creates and revokes them; their token posts into the chat under the hook's name, `/bot` included, rate-limited. */

let fake: FakeGemini;
let t: TestApp;
let owner: TestUser;
let member: TestUser;
let chatId: number;
beforeAll(async () => {
  fake = await startFakeGemini();
  t = await createTestApp({ GEMINI_API_KEY: fake.apiKey, GEMINI_BASE_URL: fake.url });
  [owner, member] = [await signUp(t), await signUp(t)];
  chatId = await groupRoom(t, owner, [member], 'integrations');
}, 30_000);
afterAll(async () => {
  await t.cleanup();
  await fake.stop();
});

interface CreatedHook {
  id: number;
  chat_id: number;
  name: string;
  token: string;
  url: string;
  created_at: string;
}

async function createHook(app: TestApp, user: TestUser, chat: number, name: string): Promise<CreatedHook> {
  const response = await app.request(`/api/chats/${chat}/hooks`, { method: 'POST', token: user.token, json: { name } });
  expect(response.status).toBe(201);
  return (await response.json()) as CreatedHook;
}

const post = (app: TestApp, token: string, json: unknown) => app.request(`/api/hooks/${token}`, { method: 'POST', json });

async function history(user: TestUser) {
  return (await (await t.request(`/api/chats/${chatId}/messages`, { token: user.token })).json()) as {
    id: number;
    username: string;
    user_id: number | null;
    content: string;
    is_bot: boolean;
  }[];
}

describe('managing incoming hooks', () => {
  test('the owner creates, lists and revokes them; the token is shown once; nobody else manages them', async () => {
    const hook = await createHook(t, owner, chatId, 'Deploy bot');
    expect(hook).toMatchObject({ chat_id: chatId, name: 'Deploy bot', url: `/api/hooks/${hook.token}` });
    expect(hook.token).toMatch(/^ihk_[0-9a-f]{64}$/);
    const listed = await (await t.request(`/api/chats/${chatId}/hooks`, { token: owner.token })).json();
    expect(listed).toContainEqual({ id: hook.id, chat_id: chatId, name: 'Deploy bot', created_at: hook.created_at });
    expect(JSON.stringify(listed)).not.toContain(hook.token);

    for (const [method, path] of [
      ['GET', `/api/chats/${chatId}/hooks`],
      ['POST', `/api/chats/${chatId}/hooks`],
      ['DELETE', `/api/chats/${chatId}/hooks/${hook.id}`],
    ] as const) {
      const refused = await t.request(path, { method, token: member.token, json: method === 'POST' ? { name: 'sneaky' } : undefined });
      expect(refused.status).toBe(403);
    }
    expect((await t.request(`/api/chats/${chatId}/hooks`, { method: 'POST', token: owner.token, json: { name: '   ' } })).status).toBe(422);

    expect((await post(t, hook.token, { content: 'before revoking' })).status).toBe(200);
    expect((await t.request(`/api/chats/${chatId}/hooks/${hook.id}`, { method: 'DELETE', token: owner.token })).status).toBe(200);
    const revoked = await post(t, hook.token, { content: 'after revoking' });
    expect(revoked.status).toBe(404);
    expect(await revoked.json()).toEqual({ detail: 'Unknown or revoked hook' });
    expect((await t.request(`/api/chats/${chatId}/hooks/${hook.id}`, { method: 'DELETE', token: owner.token })).status).toBe(404);
  });
});

describe('posting through a hook', () => {
  test("the message is stored and shown under the hook's name", async () => {
    const hook = await createHook(t, owner, chatId, 'CI');
    const response = await post(t, hook.token, { content: 'Build 42 passed' });
    expect(response.status).toBe(200);
    const message = (await response.json()) as { id: number; username: string; user_id: number | null; is_bot: boolean };
    expect(message).toMatchObject({ chat_id: chatId, username: 'CI', user_id: null, is_bot: false, content: 'Build 42 passed' });
    expect((await history(member)).find((m) => m.id === message.id)).toMatchObject({ username: 'CI', user_id: null, content: 'Build 42 passed' });
    // GraphQL names the hook as the author too.
    const graphql = await t.request('/graphql', {
      method: 'POST',
      token: member.token,
      json: { query: `query($id: ID!) { chat(id: $id) { messages(last: 50) { edges { node { id username user { id } } } } } }`, variables: { id: chatId } },
    });
    const body = (await graphql.json()) as { data: { chat: { messages: { edges: { node: { id: string; username: string; user: null } }[] } } } };
    expect(body.data.chat.messages.edges.map((edge) => edge.node).find((node) => node.id === String(message.id))).toEqual({
      id: String(message.id),
      username: 'CI',
      user: null,
    });
  });

  test('a /bot ask through a hook is answered', async () => {
    const hook = await createHook(t, owner, chatId, 'Pager');
    fake.reply({ kind: 'text', chunks: ['Restart ', 'the pod.'] });
    const completed = new Promise<{ messageId: number; fullResponse?: string }>((resolve) => {
      const listening = t.app.services.pubsub.on('chat:bot', chatId, (event) => {
        if (!event.isComplete) return;
        listening.stop();
        resolve(event);
      });
    });
    const asked = (await (await post(t, hook.token, { content: '/bot what do I do about the 500s?' })).json()) as { id: number };
    const done = await completed;
    const request = JSON.stringify(fake.requests.at(-1)!.body);
    expect(request).toContain('what do I do about the 500s?');
    // The model is told who asks: the hook, by its name.
    expect(request).toContain('Pager');
    expect(done.fullResponse).toBe('Restart the pod.');
    expect(done.messageId).toBeGreaterThan(asked.id);
    const answer = (await history(member)).find((m) => m.id === done.messageId);
    expect(answer).toMatchObject({ is_bot: true, content: 'Restart the pod.' });
  });

  test('a bad token or bad content is refused', async () => {
    expect((await post(t, 'not-a-token', { content: 'hi' })).status).toBe(404);
    expect((await post(t, `ihk_${'0'.repeat(64)}`, { content: 'hi' })).status).toBe(404);
    const hook = await createHook(t, owner, chatId, 'Strict');
    expect((await post(t, hook.token, { content: '' })).status).toBe(422);
    expect((await post(t, hook.token, {})).status).toBe(422);
  });
});

test('a hook is rate-limited like a user, in a budget of its own', async () => {
  const limited = await createTestApp({ MESSAGE_RATE_LIMIT: '1', MESSAGE_BURST: '2' });
  try {
    const boss = await signUp(limited);
    const room = await groupRoom(limited, boss, [], 'limited');
    const hook = await createHook(limited, boss, room, 'Chatty');
    expect((await post(limited, hook.token, { content: 'one' })).status).toBe(200);
    expect((await post(limited, hook.token, { content: 'two' })).status).toBe(200);
    const refused = await post(limited, hook.token, { content: 'three' });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).not.toBeNull();
    // The owner's own budget is untouched.
    expect((await limited.request(`/api/chats/${room}/messages`, { method: 'POST', token: boss.token, json: { content: 'mine' } })).status).toBe(200);
  } finally {
    await limited.cleanup();
  }
});

describe('a hostile caller', () => {
  test("content is judged exactly as a user's message is, and a malformed or oversized body is refused", async () => {
    const hook = await createHook(t, owner, chatId, 'Mirror');
    for (const json of [{ content: '' }, { content: '   ' }, { content: 'x'.repeat(10_001) }, { content: 'a\u0000b' }, { content: 42 }, {}, [], 'text']) {
      const asUser = await t.request(`/api/chats/${chatId}/messages`, { method: 'POST', token: member.token, json });
      const asHook = await post(t, hook.token, json);
      expect([JSON.stringify(json).slice(0, 40), asHook.status]).toEqual([JSON.stringify(json).slice(0, 40), asUser.status]);
    }
    const malformed = await t.request(`/api/hooks/${hook.token}`, { method: 'POST', body: '{"content": ', headers: { 'content-type': 'application/json' } });
    expect(malformed.status).toBe(422);
    const huge = await t.request(`/api/hooks/${hook.token}`, {
      method: 'POST',
      body: JSON.stringify({ content: 'x'.repeat(2_000_000) }),
      headers: { 'content-type': 'application/json' },
    });
    expect(huge.status).toBe(413);
  });

  test('a hook of a deleted chat posts nothing; one revoked mid-burst answers 200 or 404, never a 500, and 404 once revoked', async () => {
    const room = await groupRoom(t, owner, [], 'short-lived');
    const hook = await createHook(t, owner, room, 'Doomed');
    const burst = Array.from({ length: 10 }, (_, n) => post(t, hook.token, { content: `burst ${n}` }));
    const revoked = await t.request(`/api/chats/${room}/hooks/${hook.id}`, { method: 'DELETE', token: owner.token });
    expect(revoked.status).toBe(200);
    for (const answer of await Promise.all(burst)) expect([200, 404, 429]).toContain(answer.status);
    expect((await post(t, hook.token, { content: 'after' })).status).toBe(404);

    const other = await createHook(t, owner, room, 'Orphan');
    expect((await t.request(`/api/chats/${room}`, { method: 'DELETE', token: owner.token })).status).toBe(200);
    expect((await post(t, other.token, { content: 'into the void' })).status).toBe(404);
  });
});

test('a burst in parallel gets exactly the budget, however many are in flight', async () => {
  const limited = await createTestApp({ MESSAGE_RATE_LIMIT: '1', MESSAGE_BURST: '3' });
  try {
    const boss = await signUp(limited);
    const room = await groupRoom(limited, boss, [], 'burst');
    const hook = await createHook(limited, boss, room, 'Flood');
    const answers = await Promise.all(Array.from({ length: 20 }, (_, n) => post(limited, hook.token, { content: `m${n}` })));
    expect(answers.filter((r) => r.status === 200)).toHaveLength(3);
    expect(answers.filter((r) => r.status === 429)).toHaveLength(17);
  } finally {
    await limited.cleanup();
  }
});
